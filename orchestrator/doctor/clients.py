"""Doctor's checks of each client account, through its kickoff role (as `fedsage launch` reaches it).

The config has what launch needs; the training image exists in the client's region; the kickoff
role can be assumed with the ExternalId; the subnets and security groups are in one VPC (then
paths.py follows the routes and rules from there); the code archive and data channels exist.

The kickoff role cannot read objects. Where the client's stack allows it (AllowDoctorListing),
the role may list keys under the code and data prefixes, which is enough to see that the code
archive and the data channels exist; where it may not, those rows are warnings that name the
command the data owner runs instead.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Network
from typing import TYPE_CHECKING, Any

from orchestrator.aws.s3 import parse_uri
from orchestrator.doctor.findings import ClientView, Doctor, error_code
from orchestrator.doctor.paths import check_client_paths
from orchestrator.errors import BadInput

if TYPE_CHECKING:
    from orchestrator.config import ClientSettings


def check_client(doctor: Doctor, client: ClientSettings) -> None:
    """Every check of one client account; fills doctor.clients[client.name]."""
    view = doctor.clients[client.name] = ClientView()
    missing = client.missing_for("launch")
    if missing:
        doctor.add(
            client.name,
            "config",
            "fail",
            f"missing {', '.join(missing)}",
            "set them in this [[clients]] table (see examples/federation.toml)",
        )
    _image(doctor, client)
    if not (client.kickoff_role_arn and client.external_id and client.region):
        return
    from orchestrator.aws import sessions

    session = doctor.client_session_for(client)
    try:
        arn = sessions.check_assumable(session, client)
    except BadInput as exc:
        doctor.add(
            client.name,
            "kickoff role",
            "fail",
            str(exc).split(": ", 1)[-1].split(";")[0],
            f"check that external_id matches the ExternalId of the client stack in {client.account_id}, "
            "that the role trusts the server account, and that the server's policy allows sts:AssumeRole "
            "on it",
        )
        return
    doctor.add(client.name, "kickoff role", "pass", f"assumed as {arn}")
    ec2 = session.client("ec2")
    _client_network(doctor, client, ec2, view)
    check_objects(doctor, client, session)


def _image(doctor: Doctor, client: ClientSettings) -> None:
    if not client.region:
        return
    from orchestrator.images import training_image

    try:
        image = training_image(doctor.federation.container, client.region)
    except BadInput as exc:
        doctor.add(
            client.name,
            "training image",
            "fail",
            str(exc).split(" (")[0],
            "set [container] framework_version to one available in every client region, or image_uri",
        )
        return
    doctor.add(client.name, "training image", "pass", image)
    _image_python(doctor, client)


def _image_python(doctor: Doctor, client: ClientSettings) -> None:
    """The image's Python must be the one the code archive's wheels are built for (images.check_python)."""
    from orchestrator.images import check_python

    container = doctor.federation.container
    try:
        python = check_python(container)
    except BadInput as exc:
        fix = "make [container] framework_version and python_version agree, then `fedsage package --upload` again"
        doctor.add(client.name, "image Python", "fail", str(exc), fix)
        return
    doctor.add(client.name, "image Python", "pass", f"Python {python}, as the wheels of `fedsage package`")


def _client_resources(
    doctor: Doctor, client: ClientSettings, key: str, output: str, describe: Callable[..., Any], ids: str
) -> list[dict[str, Any]] | None:
    """The client's subnets or security groups as configured, or None after reporting the error."""
    wanted = getattr(client, key)
    name = key.replace("_", " ")
    try:
        response = describe(**{ids: wanted})
    except Exception as exc:
        doctor.add(
            client.name,
            name,
            "fail",
            f"{', '.join(wanted)}: {error_code(exc)}",
            f"set {key} to the output {output} of the client stack",
        )
        return None
    return next(value for field, value in response.items() if field != "ResponseMetadata")


def _client_network(doctor: Doctor, client: ClientSettings, ec2: Any, view: ClientView) -> None:
    """Subnets in one VPC (its CIDR as configured), security groups in that VPC, then the paths from them."""
    if not client.subnets:
        return
    subnets = _client_resources(doctor, client, "subnets", "SubnetIds", ec2.describe_subnets, "SubnetIds")
    if subnets is None:
        return
    vpcs = sorted({s["VpcId"] for s in subnets})
    if len(vpcs) != 1:
        doctor.add(
            client.name,
            "subnets",
            "fail",
            f"the subnets are in {len(vpcs)} VPCs ({', '.join(vpcs)})",
            "use subnets of the client stack's VPC only",
        )
        return
    view.vpc_id, view.subnets = vpcs[0], subnets
    view.cidr = IPv4Network(ec2.describe_vpcs(VpcIds=vpcs)["Vpcs"][0]["CidrBlock"])
    doctor.add(client.name, "subnets", "pass", f"{len(subnets)} subnets in {view.vpc_id} ({view.cidr})")
    if client.vpc_cidr and client.vpc_cidr != view.cidr:
        doctor.add(
            client.name,
            "VPC CIDR",
            "fail",
            f"{view.vpc_id} is {view.cidr}, config says {client.vpc_cidr}",
            f'set vpc_cidr = "{view.cidr}" in this [[clients]] table',
        )
    groups = _client_resources(
        doctor, client, "security_groups", "JobSecurityGroupId", ec2.describe_security_groups, "GroupIds"
    )
    if groups is None:
        return
    strays = [g["GroupId"] for g in groups if g["VpcId"] != view.vpc_id]
    if strays:
        doctor.add(
            client.name,
            "security groups",
            "fail",
            f"{', '.join(strays)} not in {view.vpc_id}",
            "use the job security group of the client stack's VPC",
        )
        return
    doctor.add(client.name, "security groups", "pass", f"{', '.join(client.security_groups)} in {view.vpc_id}")
    check_client_paths(doctor, client, ec2, view, groups)


def check_objects(doctor: Doctor, client: ClientSettings, session: Any) -> None:
    """The code archive and the data channels, as far as the kickoff role (`session`) may list keys."""
    s3 = session.client("s3")
    wanted = [("code archive", client.code_uri, True), ("train channel", client.train_uri, False)]
    if client.validation_uri:
        wanted.append(("validation channel", client.validation_uri, False))
    for name, uri, exact in wanted:
        try:
            location = parse_uri(uri or "")
        except ValueError:
            continue  # not in S3 (a file:// channel, or unset): the config row names it
        try:
            listed = s3.list_objects_v2(Bucket=location.bucket, Prefix=location.key, MaxKeys=2)
        except Exception as exc:
            code = error_code(exc)
            if code in ("AccessDenied", "AllAccessDisabled"):
                doctor.add(
                    client.name,
                    name,
                    "warn",
                    f"the kickoff role may not list {uri}",
                    f"the data owner checks it: aws s3 ls {uri} --profile <data owner>",
                )
            else:
                doctor.add(
                    client.name,
                    name,
                    "fail",
                    f"{uri}: {code}",
                    "create the bucket with the client stack, or fix the URI",
                )
            continue
        keys = [o["Key"] for o in listed.get("Contents", [])]
        present = location.key in keys if exact else bool(keys)
        if present:
            doctor.add(client.name, name, "pass", uri)
        else:
            how = "fedsage package" if exact else "fedsage data upload"
            doctor.add(client.name, name, "fail", f"nothing at {uri}", f"the data owner uploads it ({how})")
