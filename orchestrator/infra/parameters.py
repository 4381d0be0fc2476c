"""Stack parameter values derived from federation.toml, and the config checked against the templates.

Which keys `fedsage infra` needs is config.py's (one home, shared with launch and doctor); this
module adds what the templates themselves require: /23 or larger VPCs (they carve /24 subnets),
KMS keys as ARNs, one bucket per client with code, data and artifacts in folders, and VPC ranges
that do not overlap (VPC peering cannot route overlapping CIDRs).
"""

from __future__ import annotations

import itertools
from ipaddress import IPv4Address, IPv4Network
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from orchestrator.aws.s3 import S3Location, parse_uri
from orchestrator.errors import BadInput

if TYPE_CHECKING:  # pydantic loads only when a command runs
    from orchestrator.config import ClientSettings, Federation

SUBNET_HOST_BITS = 8  # the templates' Fn::Cidr host bits: /24 subnets


def partition(region: str) -> str:
    """The ARN partition of a region: aws, aws-cn or aws-us-gov."""
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws-us-gov" if region.startswith("us-gov-") else "aws"


def _directory(key: str) -> str:
    """The folder a key lives in, as an S3 prefix ending in '/' ('' at the bucket's root)."""
    parent = str(PurePosixPath(key).parent) if not key.endswith("/") else key.rstrip("/")
    return "" if parent in ("", ".") else parent + "/"


def _common_prefix(prefixes: list[str]) -> str:
    """The longest folder prefix shared by S3 prefixes ending in '/'."""
    parts = [p.rstrip("/").split("/") for p in prefixes]
    common: list[str] = []
    for segment in zip(*parts, strict=False):
        if len(set(segment)) != 1:
            break
        common.append(segment[0])
    return "/".join(common) + "/" if common else ""


def _location(uri: str, where: str, key: str) -> S3Location:
    """The bucket and key of one of a client's URIs, or BadInput naming the key."""
    try:
        return parse_uri(uri)
    except ValueError:
        raise BadInput(f"{where}: {key} {uri!r} is not an s3://bucket/prefix URI") from None


def client_storage_parameters(client: ClientSettings, where: str) -> dict[str, str]:
    """Bucket and prefix parameters of a client stack (BucketName, CodePrefix, DataPrefix, ...).

    Derived from the client's s3:// URIs; `where` names the client in errors. Raises BadInput when
    the URIs span several buckets or a location is the bucket's root.
    """
    assert client.code_uri and client.output_uri, "checked by require_infra_ready"
    uris = {"code_uri": client.code_uri, "train_uri": client.train_uri, "output_uri": client.output_uri}
    if client.validation_uri:
        uris["validation_uri"] = client.validation_uri
    if client.checkpoint_uri:
        uris["checkpoint_uri"] = client.checkpoint_uri
    locations = {key: _location(uri, where, key) for key, uri in uris.items()}
    bucket = locations["code_uri"].bucket
    for key, location in locations.items():
        if location.bucket != bucket:
            raise BadInput(
                f"{where}: {key} is in bucket {location.bucket}, code_uri in {bucket}; the client stack manages "
                "one bucket, so put code, data and artifacts in the same bucket"
            )
    # A channel URI is a key prefix: a folder (ends in /) or the start of file names in a folder.
    channels = [_directory(locations[key].key) for key in ("train_uri", "validation_uri") if key in locations]
    prefixes = {
        "CodePrefix": _directory(locations["code_uri"].key),
        "DataPrefix": _common_prefix(channels),
        "ArtifactsPrefix": _directory(locations["output_uri"].key + "/"),
    }
    if "checkpoint_uri" in locations:
        prefixes["CheckpointsPrefix"] = _directory(locations["checkpoint_uri"].key + "/")
    for key, prefix in prefixes.items():
        if not prefix:
            raise BadInput(
                f"{where}: the {key.removesuffix('Prefix').lower()} location is the bucket's root; "
                "use a folder such as s3://bucket/code/, s3://bucket/data/train/, s3://bucket/artifacts/"
            )
    return {"BucketName": bucket, **prefixes}


def role_name(arn: str | None, default: str) -> str:
    """The role name of an ARN (the part after role/ and any path), or the template's default."""
    return arn.rsplit("/", 1)[-1] if arn else default


def image_repository_arn(federation: Federation, region: str) -> str:
    """The ECR repository ARN of the training image the client jobs pull in a region ('' if not ECR)."""
    from orchestrator.images import training_image

    image = training_image(federation.container, region)
    host, _, path = image.partition("/")
    registry = host.split(".")
    if len(registry) < 4 or registry[1] != "dkr" or not registry[0].isdigit():
        return ""  # not an ECR image: the template falls back to the scikit-learn repositories
    repository = path.split("@")[0].rsplit(":", 1)[0]
    return f"arn:{partition(region)}:ecr:{registry[3]}:{registry[0]}:repository/{repository}"


def vpc_ranges(federation: Federation) -> list[tuple[str, IPv4Network]]:
    """Every VPC CIDR the config names: ('server', cidr) and (client name, cidr)."""
    ranges = [("server", federation.server.vpc_cidr)] if federation.server.vpc_cidr else []
    ranges += [(c.name, c.vpc_cidr) for c in federation.clients if c.vpc_cidr]
    return ranges


def overlapping_vpcs(
    ranges: list[tuple[str, IPv4Network]],
) -> list[tuple[str, IPv4Network, str, IPv4Network]]:
    """Every pair of named VPC ranges that overlap, in order: (name, cidr, later name, later cidr).

    VPC peering cannot route between overlapping ranges (AWS VPC peering limitations), so both
    `fedsage infra` (on the config) and `fedsage doctor` (on the VPCs it finds) refuse them.
    """
    return [(a, ca, b, cb) for i, (a, ca) in enumerate(ranges) for b, cb in ranges[i + 1 :] if ca.overlaps(cb)]


def require_infra_ready(federation: Federation) -> None:
    """Raise BadInput naming every key `fedsage infra` needs that the config lacks or gets wrong."""
    problems = []
    for i, client in enumerate(federation.clients):
        if client.kms_key_id and not client.kms_key_id.startswith("arn:"):
            problems.append(f"clients[{i}] ({client.name}): kms_key_id must be a key ARN for the templates")
    for owner, cidr in vpc_ranges(federation):
        if cidr.prefixlen > 32 - SUBNET_HOST_BITS - 1:
            problems.append(
                f"{owner}: vpc_cidr {cidr} is too small; the templates carve two /24 subnets: use /23 or larger"
            )
    federation.require_ready("infra", also=problems)
    overlaps = overlapping_vpcs(vpc_ranges(federation))
    if overlaps:
        name, cidr, other, other_cidr = overlaps[0]
        raise BadInput(
            f"the VPC CIDR of {name} ({cidr}) overlaps that of {other} ({other_cidr}); VPC peering needs "
            "distinct ranges: give every VPC its own vpc_cidr"
        )


def server_subnet(federation: Federation) -> IPv4Network:
    """The server host's private subnet, as the template carves it: the VPC's second /24 (the first holds NAT)."""
    assert federation.server.vpc_cidr, "checked by require_infra_ready"
    return list(itertools.islice(federation.server.vpc_cidr.subnets(new_prefix=32 - SUBNET_HOST_BITS), 2))[1]


def host_private_ip(federation: Federation, host: str) -> str:
    """The EC2 host's fixed address ([server] advertised_address), checked against its subnet; '' otherwise.

    AWS reserves the first four addresses of a subnet and the last (VPC subnet sizing docs).
    """
    address = federation.server.advertised_address
    if host != "ec2" or not address:
        return ""
    subnet = server_subnet(federation)
    hosts = list(subnet.hosts())
    try:
        ip = IPv4Address(address)
    except ValueError:
        raise BadInput(
            f"server.advertised_address {address!r} is not an IPv4 address; use the host's private IP"
        ) from None
    if ip not in subnet or ip in hosts[:3]:
        raise BadInput(
            f"server.advertised_address {address} is not a usable address of the server's private subnet {subnet}; "
            f"use one from {hosts[3]} to {hosts[-1]}"
        )
    return address
