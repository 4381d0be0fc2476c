"""fedsage infra: the CloudFormation stacks of a federation, in the order they must be deployed.

`plan_stacks` turns federation.toml into ordered steps (pure, no AWS call):

1. each client account's stack (infra/client-account.yaml): roles, bucket, VPC, job security group;
2. the server account's stack (infra/server-account.yaml): VPC, host, the AssumeRole policy;
3. per client, a peering stack in the server account (infra/server-peering.yaml): the peering
   request (auto-accepted through the client's accepter role), the route to the client's CIDR
   and the Flower ingress rule from it;
4. each client's stack again, with the peering connection id: the route back to the server.

`render` writes the steps as parameter files and the exact AWS CLI commands; `deploy` runs them
with boto3 change sets (or StackSet operations) and waits for each. With a StackSet, the client
stacks become one service-managed StackSet deployed to an organizational unit, with each
client's own values (ExternalId, CIDR, bucket) as per-account parameter overrides.
"""

from __future__ import annotations

import itertools
import json
import shlex
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from orchestrator.errors import BadInput, RunFailed

if TYPE_CHECKING:  # the CLI imports this module at start; pydantic loads only when a command runs
    from orchestrator.config import ClientSettings, Federation

INFRA_DIR = Path(__file__).resolve().parent.parent / "infra"
CLIENT_TEMPLATE = "client-account.yaml"
SERVER_TEMPLATE = "server-account.yaml"
PEERING_TEMPLATE = "server-peering.yaml"
TEMPLATES = (CLIENT_TEMPLATE, SERVER_TEMPLATE, PEERING_TEMPLATE)
CAPABILITIES = ["CAPABILITY_NAMED_IAM"]
FEDERATION_TAG = "fedsage:federation"
KICKOFF_ROLE = "FL-kickoff-client-job"
EXECUTION_ROLE = "FL-sagemaker-execution"
SUBNET_HOST_BITS = 8  # the templates' default: /24 subnets


# ----------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Output:
    """A parameter value read from an output of an earlier step's stack."""

    step: str
    name: str


@dataclass(frozen=True)
class S3PrefixList:
    """The id of the AWS-managed prefix list com.amazonaws.<region>.s3, looked up when deploying.

    Looked up in the account that deploys the stack (the client's, or the StackSet's
    administrator), in the client's region.
    """

    account: Account

    def variable(self) -> str:
        """The deploy.sh variable that holds it."""
        return "S3_PREFIX_LIST_" + f"{self.account.label}_{self.account.region}".upper().replace("-", "_")


@dataclass(frozen=True)
class Account:
    """Where a step runs: an account, its region, and the AWS profile that reaches it."""

    label: str
    account_id: str
    region: str
    profile: str | None


Value = str | Output | S3PrefixList


@dataclass(frozen=True)
class StackStep:
    """One deployment: a stack (or a StackSet, or a StackSet's instance in one account)."""

    key: str
    title: str
    account: Account
    stack_name: str
    template: str
    parameters: dict[str, Value]
    federation: str = "fedsage"  # the [federation] name, tagged on every stack
    kind: Literal["stack", "stack-set", "stack-instance"] = "stack"
    admin: Account | None = None  # StackSets: the management or delegated administrator account
    update: bool = False  # stack-instance: update an existing instance's overrides

    def outputs_step(self) -> str:
        """The key other steps use to read this step's outputs (an update shares its stack)."""
        return self.key.removesuffix(":route")


@dataclass(frozen=True)
class InfraOptions:
    """Choices `fedsage infra` makes beyond federation.toml."""

    host: Literal["notebook", "ec2"] = "notebook"
    egress: Literal["nat", "endpoints"] = "nat"
    interface_endpoints: bool = False
    existing_buckets: bool = False
    stackset_ou: str | None = None
    org_profile: str | None = None
    org_region: str | None = None
    delegated_admin: bool = False


def stack_name(federation: Federation, role: str) -> str:
    """The name of one of the federation's stacks: <prefix>-fedsage-<role>."""
    return f"{federation.federation.name}-fedsage-{role}"


def _partition(region: str) -> str:
    """The ARN partition of a region."""
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws-us-gov" if region.startswith("us-gov-") else "aws"


def _s3_parts(uri: str) -> tuple[str, str]:
    """(bucket, key) of an s3:// URI."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _directory(key: str) -> str:
    """The folder a key lives in, as an S3 prefix ending in '/' ('' at the bucket's root)."""
    parent = str(PurePosixPath(key).parent) if not key.endswith("/") else key.rstrip("/")
    return "" if parent in ("", ".") else parent + "/"


def _storage_parameters(client: ClientSettings, where: str) -> dict[str, str]:
    """Bucket and prefix parameters of a client stack, derived from the client's s3:// URIs."""
    assert client.code_uri and client.output_uri, "checked by require_infra_ready"
    uris = {"code_uri": client.code_uri, "train_uri": client.train_uri, "output_uri": client.output_uri}
    if client.validation_uri:
        uris["validation_uri"] = client.validation_uri
    if client.checkpoint_uri:
        uris["checkpoint_uri"] = client.checkpoint_uri
    buckets = {key: _s3_parts(uri)[0] for key, uri in uris.items()}
    bucket = buckets["code_uri"]
    for key, other in buckets.items():
        if other != bucket:
            raise BadInput(
                f"{where}: {key} is in bucket {other}, code_uri in {bucket}; the client stack manages one bucket, "
                "so put code, data and artifacts in the same bucket"
            )
    # A channel URI is a key prefix: a folder (ends in /) or the start of file names in a folder.
    channels = [_directory(_s3_parts(uris[key])[1]) for key in ("train_uri", "validation_uri") if key in uris]
    data = _common_prefix(channels)
    prefixes = {
        "CodePrefix": _directory(_s3_parts(client.code_uri)[1]),
        "DataPrefix": data,
        "ArtifactsPrefix": _directory(_s3_parts(client.output_uri)[1] + "/"),
    }
    if client.checkpoint_uri:
        prefixes["CheckpointsPrefix"] = _directory(_s3_parts(client.checkpoint_uri)[1] + "/")
    for key, prefix in prefixes.items():
        if not prefix:
            raise BadInput(
                f"{where}: the {key.removesuffix('Prefix').lower()} location is the bucket's root; "
                "use a folder such as s3://bucket/code/, s3://bucket/data/train/, s3://bucket/artifacts/"
            )
    return {"BucketName": bucket, **prefixes}


def _common_prefix(prefixes: list[str]) -> str:
    """The longest folder prefix shared by S3 prefixes ending in '/'."""
    parts = [p.rstrip("/").split("/") for p in prefixes]
    common: list[str] = []
    for segment in zip(*parts, strict=False):
        if len(set(segment)) != 1:
            break
        common.append(segment[0])
    return "/".join(common) + "/" if common else ""


def _role_name(arn: str | None, default: str) -> str:
    """The role name of an ARN (the part after role/ and any path), or the template's default."""
    return arn.rsplit("/", 1)[-1] if arn else default


def _image_repository_arn(federation: Federation, region: str) -> str:
    """The ECR repository ARN of the training image the client jobs pull in a region."""
    from orchestrator.images import training_image

    image = training_image(federation.container, region)
    host, _, path = image.partition("/")
    registry = host.split(".")
    if len(registry) < 4 or registry[1] != "dkr" or not registry[0].isdigit():
        return ""  # not an ECR image: the template falls back to the scikit-learn repositories
    repository = path.split("@")[0].rsplit(":", 1)[0]
    return f"arn:{_partition(region)}:ecr:{registry[3]}:{registry[0]}:repository/{repository}"


def require_infra_ready(federation: Federation) -> None:
    """Raise BadInput naming every key `fedsage infra` needs that the config lacks or gets wrong."""
    problems = []
    server = federation.server
    missing = [key for key in ("account_id", "region", "vpc_cidr") if getattr(server, key) is None]
    if server.port == 0:
        missing.append("port (a fixed port the security groups allow)")
    if missing:
        problems.append(f"server: set {', '.join(missing)}")
    for i, client in enumerate(federation.clients):
        needed = ("account_id", "region", "external_id", "vpc_cidr", "code_uri", "output_uri")
        missing = [key for key in needed if getattr(client, key) is None]
        if not client.train_uri.startswith("s3://"):
            missing.append("train_uri (an s3:// URI)")
        if missing:
            problems.append(f"clients[{i}] ({client.name}): set {', '.join(missing)}")
        if client.kms_key_id and not client.kms_key_id.startswith("arn:"):
            problems.append(f"clients[{i}] ({client.name}): kms_key_id must be a key ARN for the templates")
    for owner, cidr in vpc_ranges(federation):
        if cidr.prefixlen > 32 - SUBNET_HOST_BITS - 1:
            problems.append(
                f"{owner}: vpc_cidr {cidr} is too small; the templates carve two /24 subnets: use /23 or larger"
            )
    if problems:
        raise BadInput("federation.toml is not ready for fedsage infra: " + "; ".join(problems))
    overlap = first_overlap(federation)
    if overlap:
        raise BadInput(overlap)


def vpc_ranges(federation: Federation) -> list[tuple[str, IPv4Network]]:
    """Every VPC CIDR the config names: ('server', cidr) and (client name, cidr)."""
    ranges = [("server", federation.server.vpc_cidr)] if federation.server.vpc_cidr else []
    ranges += [(c.name, c.vpc_cidr) for c in federation.clients if c.vpc_cidr]
    return ranges


def first_overlap(federation: Federation) -> str | None:
    """A one-line problem if two VPCs of the federation overlap (peering needs distinct ranges), else None."""
    ranges = vpc_ranges(federation)
    for i, (name, cidr) in enumerate(ranges):
        for other, other_cidr in ranges[i + 1 :]:
            if cidr.overlaps(other_cidr):
                return (
                    f"the VPC CIDR of {name} ({cidr}) overlaps that of {other} ({other_cidr}); VPC peering needs "
                    "distinct ranges: give every VPC its own vpc_cidr"
                )
    return None


def server_subnet(federation: Federation) -> IPv4Network:
    """The server host's private subnet, as the template carves it: the VPC's second /24 (the first holds NAT)."""
    assert federation.server.vpc_cidr, "checked by require_infra_ready"
    return list(itertools.islice(federation.server.vpc_cidr.subnets(new_prefix=32 - SUBNET_HOST_BITS), 2))[1]


def _host_private_ip(federation: Federation, options: InfraOptions) -> str:
    """The EC2 host's fixed address: [server] advertised_address, checked against the subnet."""
    address = federation.server.advertised_address
    if options.host != "ec2" or not address:
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


def _client_parameters(federation: Federation, index: int, options: InfraOptions, lookup: Account) -> dict[str, Value]:
    """The client stack's parameters for one client (without the peering connection)."""
    client = federation.clients[index]
    server = federation.server
    assert client.region and client.external_id and client.vpc_cidr, "checked by require_infra_ready"
    parameters: dict[str, Value] = {
        "FederationPrefix": federation.federation.name,
        "ServerAccountId": str(server.account_id),
        "ExternalId": client.external_id,
        "ServerVpcCidr": str(server.vpc_cidr),
        "FlowerPort": str(server.port),
        "VpcCidr": str(client.vpc_cidr),
        "S3PrefixListId": S3PrefixList(lookup),
        "InterfaceEndpoints": str(options.interface_endpoints).lower(),
        "CreateBucket": str(not options.existing_buckets).lower(),
        "KickoffRoleName": _role_name(client.kickoff_role_arn, KICKOFF_ROLE),
        "ExecutionRoleName": _role_name(client.execution_role_arn, EXECUTION_ROLE),
        "ImageRepositoryArn": _image_repository_arn(federation, client.region),
        "KmsKeyArn": client.kms_key_id or "",
    }
    parameters.update(_storage_parameters(client, f"clients[{index}] ({client.name})"))
    return parameters


def plan_stacks(federation: Federation, options: InfraOptions) -> list[StackStep]:
    """Every deployment of the federation's infrastructure, in the order it must run."""
    require_infra_ready(federation)
    server = federation.server
    assert server.account_id and server.region, "checked by require_infra_ready"
    server_account = Account("server", server.account_id, server.region, server.profile)
    client_stack = stack_name(federation, "clients" if options.stackset_ou else "client")
    server_stack = stack_name(federation, "server")
    admin = None
    if options.stackset_ou:
        admin = Account("organization", "", options.org_region or server.region, options.org_profile)

    first: list[StackStep] = []
    routes: list[StackStep] = []
    peerings: list[StackStep] = []
    kickoff_roles = []
    for index, client in enumerate(federation.clients):
        assert client.account_id and client.region, "checked by require_infra_ready"
        account = Account(client.name, client.account_id, client.region, client.profile)
        lookup = replace(admin, region=client.region) if admin else account
        parameters = _client_parameters(federation, index, options, lookup)
        key = f"client:{client.name}"
        kind: Literal["stack", "stack-instance"] = "stack-instance" if admin else "stack"
        first.append(
            StackStep(
                key,
                f"client {client.name}: roles, bucket, network",
                account,
                client_stack,
                CLIENT_TEMPLATE,
                parameters,
                kind=kind,
                admin=admin,
            )
        )
        peering_key = f"peering:{client.name}"
        peerings.append(
            StackStep(
                peering_key,
                f"server: peering with {client.name}, route and Flower ingress",
                server_account,
                stack_name(federation, f"peering-{client.name}"),
                PEERING_TEMPLATE,
                {
                    "ServerStackName": server_stack,
                    "ClientName": client.name,
                    "ClientAccountId": client.account_id,
                    "ClientRegion": client.region,
                    "ClientVpcId": Output(key, "VpcId"),
                    "ClientVpcCidr": str(client.vpc_cidr),
                    "PeerAccepterRoleArn": Output(key, "PeerAccepterRoleArn"),
                    "FlowerPort": str(server.port),
                },
            )
        )
        routes.append(
            StackStep(
                f"{key}:route",
                f"client {client.name}: route to the server through the peering",
                account,
                client_stack,
                CLIENT_TEMPLATE,
                {**parameters, "PeeringConnectionId": Output(peering_key, "PeeringConnectionId")},
                kind=kind,
                admin=admin,
                update=True,
            )
        )
        kickoff_roles.append(
            client.kickoff_role_arn or f"arn:{_partition(client.region)}:iam::{client.account_id}:role/{KICKOFF_ROLE}"
        )
    server_step = StackStep(
        "server",
        "server: VPC, host, AssumeRole on the kickoff roles",
        server_account,
        server_stack,
        SERVER_TEMPLATE,
        {
            "FederationPrefix": federation.federation.name,
            "ClientKickoffRoleArns": ",".join(kickoff_roles),
            "VpcCidr": str(server.vpc_cidr),
            "HostType": options.host,
            "Egress": options.egress,
            "HostPrivateIp": _host_private_ip(federation, options),
        },
    )
    steps = first + [server_step] + peerings + routes
    if admin:
        steps.insert(0, _stack_set_step(federation, first[0], admin))
    return [replace(step, federation=federation.federation.name) for step in steps]


def _stack_set_step(federation: Federation, example: StackStep, admin: Account) -> StackStep:
    """The StackSet itself, with the values every client shares.

    Its ExternalId is empty: accounts the OU's auto-deployment adds get no role the server can
    assume until they are onboarded with their own overrides.
    """
    shared = (
        "FederationPrefix",
        "ServerAccountId",
        "ServerVpcCidr",
        "FlowerPort",
        "InterfaceEndpoints",
        "CreateBucket",
        "S3PrefixListId",
    )
    parameters = {key: example.parameters[key] for key in shared}
    return StackStep(
        "stack-set",
        "organization: the client StackSet (service-managed, auto-deployment on)",
        admin,
        stack_name(federation, "clients"),
        CLIENT_TEMPLATE,
        {**parameters, "ExternalId": ""},
        kind="stack-set",
        admin=admin,
    )


# ----------------------------------------------------------------------------- render


def _profile_args(account: Account) -> list[str]:
    """--profile (when set) and --region for an AWS CLI call into an account."""
    return (["--profile", account.profile] if account.profile else []) + ["--region", account.region]


def _shell_value(value: Value, steps: dict[str, StackStep], options: InfraOptions) -> str:
    """A parameter value as a shell word: literal, or a command substitution that looks it up."""
    if isinstance(value, str):
        return shlex.quote(value)
    if isinstance(value, S3PrefixList):
        return f'"${value.variable()}"'
    step = steps[value.step]
    query = f"Stacks[0].Outputs[?OutputKey=='{value.name}'].OutputValue"
    if step.kind == "stack-instance":
        assert step.admin
        instance = shlex.join(
            [
                "aws",
                "cloudformation",
                "describe-stack-instance",
                *_profile_args(step.admin),
                *_call_as(options),
                "--stack-set-name",
                step.stack_name,
                "--stack-instance-account",
                step.account.account_id,
                "--stack-instance-region",
                step.account.region,
                "--query",
                "StackInstance.StackId",
                "--output",
                "text",
            ]
        )
        stack = f'"$({instance})"'
    else:
        stack = shlex.quote(step.stack_name)
    command = shlex.join(["aws", "cloudformation", "describe-stacks", *_profile_args(step.account)])
    return f'"$({command} --stack-name {stack} --query {shlex.quote(query)} --output text)"'


def _call_as(options: InfraOptions) -> list[str]:
    return ["--call-as", "DELEGATED_ADMIN"] if options.delegated_admin else []


def command(step: StackStep, steps: dict[str, StackStep], options: InfraOptions, templates: str) -> str:
    """The exact AWS CLI command (bash) that performs one step."""
    values = {key: _shell_value(value, steps, options) for key, value in step.parameters.items()}
    template = f'"{templates}/{step.template}"'
    if step.kind == "stack":
        overrides = " \\\n    ".join(f"{key}={value}" for key, value in values.items())
        return (
            f"{shlex.join(['aws', 'cloudformation', 'deploy', *_profile_args(step.account)])} \\\n"
            f"  --stack-name {shlex.quote(step.stack_name)} --template-file {template} \\\n"
            f"  --capabilities {' '.join(CAPABILITIES)} --no-fail-on-empty-changeset \\\n"
            f"  --tags {FEDERATION_TAG}={shlex.quote(step.federation)} \\\n"
            f"  --parameter-overrides \\\n    {overrides}"
        )
    assert step.admin
    parameters = " \\\n    ".join(f"ParameterKey={key},ParameterValue={value}" for key, value in values.items())
    head = shlex.join(["aws", "cloudformation"])
    admin = shlex.join([*_profile_args(step.admin), *_call_as(options)])
    if step.kind == "stack-set":
        name = shlex.quote(step.stack_name)
        return (
            "# Creates the StackSet once; later template changes: update-stack-set (or fedsage infra deploy).\n"
            f"if ! {head} describe-stack-set {admin} --stack-set-name {name} >/dev/null 2>&1; then\n"
            f"{head} create-stack-set {admin} \\\n"
            f'  --stack-set-name {name} --template-body "file://{templates}/{step.template}" \\\n'
            "  --permission-model SERVICE_MANAGED \\\n"
            "  --auto-deployment Enabled=true,RetainStacksOnAccountRemoval=false \\\n"
            f"  --capabilities {' '.join(CAPABILITIES)} \\\n"
            f"  --parameters \\\n    {parameters}\nfi"
        )
    verb = "update-stack-instances" if step.update else "create-stack-instances"
    return (
        f"OPERATION=$({head} {verb} {admin} \\\n"
        f"  --stack-set-name {shlex.quote(step.stack_name)} \\\n"
        f"  --deployment-targets OrganizationalUnitIds={options.stackset_ou},Accounts={step.account.account_id},"
        "AccountFilterType=INTERSECTION \\\n"
        f"  --regions {step.account.region} \\\n"
        "  --operation-preferences FailureToleranceCount=0,MaxConcurrentCount=1 \\\n"
        f"  --query OperationId --output text \\\n  --parameter-overrides \\\n    {parameters})\n"
        f'wait_for_operation {shlex.quote(step.stack_name)} "$OPERATION" {admin}'
    )


def _script(steps: list[StackStep], options: InfraOptions) -> str:
    """deploy.sh: every step's command, numbered, in order."""
    by_key = {step.outputs_step(): step for step in steps if not step.update}
    lookups = {v.variable(): v.account for s in steps for v in s.parameters.values() if isinstance(v, S3PrefixList)}
    lines = [
        "#!/usr/bin/env bash",
        "# Deploys the federation's infrastructure, in order. Generated by `fedsage infra render`;",
        "# `fedsage infra deploy` runs the same steps through boto3. Each step needs the profile it names.",
        "set -euo pipefail",
        'HERE="$(cd "$(dirname "$0")" && pwd)"',
        "",
    ]
    if options.stackset_ou:
        lines += [
            "wait_for_operation() {  # stack set name, operation id, admin profile arguments...",
            '  local name="$1" operation="$2"; shift 2',
            "  while true; do",
            '    status=$(aws cloudformation describe-stack-set-operation "$@" --stack-set-name "$name" \\',
            '      --operation-id "$operation" --query StackSetOperation.Status --output text)',
            '    case "$status" in',
            "      SUCCEEDED) return 0 ;;",
            '      FAILED|STOPPED) echo "StackSet operation $operation: $status" >&2; return 1 ;;',
            "    esac",
            "    sleep 15",
            "  done",
            "}",
            "",
        ]
    lines.append("# The AWS-managed S3 prefix list of each client region, for the jobs' security group.")
    for variable, account in lookups.items():
        query = shlex.join(
            [
                "aws",
                "ec2",
                "describe-managed-prefix-lists",
                *_profile_args(account),
                "--filters",
                f"Name=prefix-list-name,Values=com.amazonaws.{account.region}.s3",
                "--query",
                "PrefixLists[0].PrefixListId",
                "--output",
                "text",
            ]
        )
        lines.append(f"{variable}=$({query})")
    for number, step in enumerate(steps, 1):
        where = f"account {step.account.account_id}" if step.account.account_id else "the organization"
        lines += ["", f"# {number}. {step.title} ({where}, {step.account.region})"]
        lines.append(f'echo "step {number}/{len(steps)}: {step.title}"')
        lines.append(command(step, by_key, options, "$HERE/templates"))
    return "\n".join(lines) + "\n"


def parameter_file(step: StackStep) -> list[dict[str, str]]:
    """A step's parameters in CloudFormation's JSON format; looked-up values are described in <...>."""
    shown = []
    for key, value in step.parameters.items():
        if isinstance(value, Output):
            text = f"<output {value.name} of step {value.step}>"
        elif isinstance(value, S3PrefixList):
            text = f"<id of the prefix list com.amazonaws.{value.account.region}.s3>"
        else:
            text = value
        shown.append({"ParameterKey": key, "ParameterValue": text})
    return shown


def _step_file(step: StackStep) -> str:
    """Where a step's parameter file goes: one folder per account."""
    folder = f"{step.account.label}-{step.account.account_id}" if step.account.account_id else step.account.label
    suffix = "-route" if step.update else ""
    return f"{folder}/{step.stack_name}{suffix}.json"


def render(federation: Federation, options: InfraOptions, out: Path) -> list[StackStep]:
    """Write the templates, every stack's parameter file, deploy.sh and a README into `out`.

    Everything is built in memory and written to a fresh folder, so a bad config leaves nothing
    half-written.
    """
    steps = plan_stacks(federation, options)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInput(f"--out {out} already exists and is not empty; choose a new folder or remove it")
    files = {f"templates/{name}": (INFRA_DIR / name).read_text() for name in TEMPLATES}
    for step in steps:
        files[_step_file(step)] = json.dumps(parameter_file(step), indent=2) + "\n"
    files["deploy.sh"] = _script(steps, options)
    files["README.md"] = _readme(federation, steps)
    staging = Path(tempfile.mkdtemp(prefix=".fedsage-infra-", dir=out.parent if out.parent.exists() else None))
    try:
        for name, text in files.items():
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        (staging / "deploy.sh").chmod(0o755)
        if out.exists():
            out.rmdir()
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return steps


def _readme(federation: Federation, steps: list[StackStep]) -> str:
    """What the rendered folder holds, the order of the steps, and what to do after them."""
    lines = [
        f"# Infrastructure of federation {federation.federation.name}",
        "",
        "Run `./deploy.sh` (or `fedsage infra deploy -c federation.toml`, which runs the same steps",
        "with change sets). Each step needs the AWS profile it names; the folders hold each stack's",
        "parameters, one folder per account.",
        "",
        "| step | what | account | region | stack | parameters |",
        "|---|---|---|---|---|---|",
    ]
    for number, step in enumerate(steps, 1):
        account = step.account.account_id or "organization"
        lines.append(
            f"| {number} | {step.title} | {account} | {step.account.region} | {step.stack_name} | {_step_file(step)} |"
        )
    lines += [
        "",
        "Afterwards, copy the stacks' outputs into federation.toml (`fedsage infra deploy` prints them):",
        "[server] vpc_id, security_group and advertised_address (the host's private IP); per client",
        "subnets and security_groups. Then upload the fedsage wheel to the server bucket's wheelhouse/",
        "prefix, and run `fedsage doctor -c federation.toml`.",
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- deploy

Progress = Callable[[StackStep, str], None]
SessionFor = Callable[[Account], Any]


@dataclass
class Deployer:
    """Runs the steps through boto3, in order, and remembers every stack's outputs."""

    session_for: SessionFor
    options: InfraOptions
    progress: Progress
    poll_seconds: float = 5.0
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    _prefix_lists: dict[str, str] = field(default_factory=dict)

    def run(self, steps: list[StackStep]) -> dict[str, dict[str, str]]:
        """Deploy every step; return each step's stack outputs by step key."""
        for step in steps:
            self.progress(step, "starting")
            parameters = self.parameters(step)
            if step.kind == "stack":
                self.outputs[step.outputs_step()] = self._deploy_stack(step, parameters)
            elif step.kind == "stack-set":
                self._deploy_stack_set(step, parameters)
            else:
                self.outputs[step.outputs_step()] = self._deploy_instance(step, parameters)
            self.progress(step, "done")
        return self.outputs

    def parameters(self, step: StackStep) -> list[dict[str, str]]:
        """A step's parameters with every looked-up value resolved."""
        return [{"ParameterKey": k, "ParameterValue": self._resolve(v)} for k, v in step.parameters.items()]

    def _resolve(self, value: Value) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, Output):
            try:
                return self.outputs[value.step][value.name]
            except KeyError:
                raise RunFailed(
                    f"step {value.step} has no output {value.name}; check that stack in the console"
                ) from None
        if value.variable() not in self._prefix_lists:
            region = value.account.region
            lookup = self.session_for(value.account).client("ec2", region_name=region)
            name = f"com.amazonaws.{region}.s3"
            lists = lookup.describe_managed_prefix_lists(Filters=[{"Name": "prefix-list-name", "Values": [name]}])
            found = [p["PrefixListId"] for p in lists["PrefixLists"] if p["PrefixListName"] == name]
            if not found:
                raise RunFailed(f"no managed prefix list {name} in {region}")
            self._prefix_lists[value.variable()] = found[0]
        return self._prefix_lists[value.variable()]

    def _wait_stack(self, cfn: Any, step: StackStep, stack: str) -> dict[str, Any]:
        """Poll a stack until it settles; return it, or raise RunFailed with the first failure reason."""
        while True:
            description = cfn.describe_stacks(StackName=stack)["Stacks"][0]
            status = description["StackStatus"]
            self.progress(step, status)
            if not status.endswith("IN_PROGRESS"):
                break
            time.sleep(self.poll_seconds)
        if status in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"):
            return description
        reasons = [
            f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}"
            for e in cfn.describe_stack_events(StackName=stack)["StackEvents"]
            if e["ResourceStatus"].endswith("FAILED")
        ]
        raise RunFailed(f"stack {stack} ({step.title}) ended {status}: {reasons[-1] if reasons else 'see its events'}")

    def _deploy_stack(self, step: StackStep, parameters: list[dict[str, str]]) -> dict[str, str]:
        """Create or update one stack through a change set; return its outputs."""
        cfn = self.session_for(step.account).client("cloudformation", region_name=step.account.region)
        existing = _stack_status(cfn, step.stack_name)
        if existing == "ROLLBACK_COMPLETE":
            raise RunFailed(
                f"stack {step.stack_name} is ROLLBACK_COMPLETE from an earlier failed creation; delete it "
                f"(aws cloudformation delete-stack --stack-name {step.stack_name}) and deploy again"
            )
        change_set = f"fedsage-{uuid.uuid4().hex[:16]}"
        cfn.create_change_set(
            StackName=step.stack_name,
            ChangeSetName=change_set,
            # a stack left in REVIEW_IN_PROGRESS by an unexecuted change set is still created, not updated
            ChangeSetType="UPDATE" if existing and existing != "REVIEW_IN_PROGRESS" else "CREATE",
            TemplateBody=(INFRA_DIR / step.template).read_text(),
            Parameters=parameters,
            Capabilities=CAPABILITIES,
            Tags=[{"Key": FEDERATION_TAG, "Value": step.federation}],
        )
        while True:
            change = cfn.describe_change_set(StackName=step.stack_name, ChangeSetName=change_set)
            self.progress(step, f"change set {change['Status']}")
            if change["Status"] not in ("CREATE_PENDING", "CREATE_IN_PROGRESS"):
                break
            time.sleep(self.poll_seconds)
        if change["Status"] == "FAILED":
            reason = change.get("StatusReason", "")
            if "didn't contain changes" in reason or "No updates" in reason:
                cfn.delete_change_set(StackName=step.stack_name, ChangeSetName=change_set)
                self.progress(step, "no changes")
                return _outputs(cfn.describe_stacks(StackName=step.stack_name)["Stacks"][0])
            raise RunFailed(f"change set for stack {step.stack_name} failed: {reason}")
        cfn.execute_change_set(StackName=step.stack_name, ChangeSetName=change_set)
        return _outputs(self._wait_stack(cfn, step, step.stack_name))

    def _admin(self, step: StackStep) -> tuple[Any, dict[str, str]]:
        assert step.admin
        cfn = self.session_for(step.admin).client("cloudformation", region_name=step.admin.region)
        return cfn, ({"CallAs": "DELEGATED_ADMIN"} if self.options.delegated_admin else {})

    def _deploy_stack_set(self, step: StackStep, parameters: list[dict[str, str]]) -> None:
        """Create the service-managed StackSet, or update its template and shared values."""
        cfn, call_as = self._admin(step)
        template = (INFRA_DIR / step.template).read_text()
        try:
            cfn.describe_stack_set(StackSetName=step.stack_name, **call_as)
        except cfn.exceptions.StackSetNotFoundException:
            cfn.create_stack_set(
                StackSetName=step.stack_name,
                TemplateBody=template,
                Parameters=parameters,
                Capabilities=CAPABILITIES,
                PermissionModel="SERVICE_MANAGED",
                AutoDeployment={"Enabled": True, "RetainStacksOnAccountRemoval": False},
                **call_as,
            )
            return
        operation = cfn.update_stack_set(
            StackSetName=step.stack_name,
            TemplateBody=template,
            Parameters=parameters,
            Capabilities=CAPABILITIES,
            **call_as,
        )["OperationId"]
        self._wait_operation(cfn, step, operation, call_as)

    def _deploy_instance(self, step: StackStep, parameters: list[dict[str, str]]) -> dict[str, str]:
        """Create (or update the overrides of) the StackSet's instance in one client account."""
        cfn, call_as = self._admin(step)
        request = self.instance_request(step, parameters, call_as)
        call = cfn.update_stack_instances if step.update else cfn.create_stack_instances
        self._wait_operation(cfn, step, call(**request)["OperationId"], call_as)
        instance = cfn.describe_stack_instance(
            StackSetName=step.stack_name,
            StackInstanceAccount=step.account.account_id,
            StackInstanceRegion=step.account.region,
            **call_as,
        )["StackInstance"]
        member = self.session_for(step.account).client("cloudformation", region_name=step.account.region)
        return _outputs(member.describe_stacks(StackName=instance["StackId"])["Stacks"][0])

    def instance_request(
        self, step: StackStep, parameters: list[dict[str, str]], call_as: dict[str, str]
    ) -> dict[str, Any]:
        """The Create/UpdateStackInstances request for one client account: OU and account intersected."""
        return {
            "StackSetName": step.stack_name,
            "DeploymentTargets": {
                "OrganizationalUnitIds": [self.options.stackset_ou],
                "Accounts": [step.account.account_id],
                "AccountFilterType": "INTERSECTION",
            },
            "Regions": [step.account.region],
            "ParameterOverrides": parameters,
            "OperationPreferences": {"FailureToleranceCount": 0, "MaxConcurrentCount": 1},
            **call_as,
        }

    def _wait_operation(self, cfn: Any, step: StackStep, operation: str, call_as: dict[str, str]) -> None:
        while True:
            status = cfn.describe_stack_set_operation(StackSetName=step.stack_name, OperationId=operation, **call_as)[
                "StackSetOperation"
            ]["Status"]
            self.progress(step, f"StackSet operation {status}")
            if status not in ("RUNNING", "QUEUED", "STOPPING"):
                break
            time.sleep(self.poll_seconds)
        if status != "SUCCEEDED":
            raise RunFailed(f"StackSet {step.stack_name} operation {operation} ended {status} ({step.title})")


def _stack_status(cfn: Any, name: str) -> str | None:
    """A stack's status, or None if there is no such stack."""
    from botocore.exceptions import ClientError

    try:
        return cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise


def _outputs(stack: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def next_steps(federation: Federation, outputs: dict[str, dict[str, str]]) -> list[str]:
    """federation.toml keys to set from the deployed stacks' outputs."""
    lines = []
    server = outputs.get("server", {})
    if server:
        lines.append(f'[server] vpc_id = "{server["VpcId"]}"')
        lines.append(f'[server] security_group = "{server["HostSecurityGroupId"]}"')
        if "HostPrivateIp" in server:
            lines.append(f'[server] advertised_address = "{server["HostPrivateIp"]}"')
        else:
            lines.append(
                "[server] advertised_address = the notebook's private IP (in the notebook: hostname -I), "
                f"bucket for the fedsage wheel: s3://{server['BucketName']}/wheelhouse/"
            )
    for client in federation.clients:
        made = outputs.get(f"client:{client.name}", {})
        if made:
            subnets = ", ".join(f'"{s}"' for s in made["SubnetIds"].split(","))
            lines.append(f"[[clients]] {client.name}: subnets = [{subnets}]")
            lines.append(f'[[clients]] {client.name}: security_groups = ["{made["JobSecurityGroupId"]}"]')
            if "KickoffRoleArn" in made:
                lines.append(f'[[clients]] {client.name}: kickoff_role_arn = "{made["KickoffRoleArn"]}"')
            lines.append(f'[[clients]] {client.name}: execution_role_arn = "{made["ExecutionRoleArn"]}"')
    return lines


# ----------------------------------------------------------------------------- CLI

infra_app = typer.Typer(
    name="infra",
    help="CloudFormation for the server and client accounts: render the commands, or deploy them.",
    no_args_is_help=True,
)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="federation.toml")]
HostOption = Annotated[str, typer.Option(help="Server host: notebook (SageMaker notebook instance) or ec2.")]
EgressOption = Annotated[str, typer.Option(help="Server egress: nat, or endpoints (no internet; EC2 host).")]
EndpointsOption = Annotated[
    bool, typer.Option("--interface-endpoints", help="Interface endpoints (Logs, ECR, STS) in the client VPCs.")
]
ExistingOption = Annotated[
    bool, typer.Option("--existing-buckets", help="The client buckets exist; do not create them.")
]
OuOption = Annotated[
    str | None, typer.Option("--stackset-ou", help="Deploy the client stacks as a service-managed StackSet to this OU.")
]
OrgProfileOption = Annotated[
    str | None, typer.Option("--org-profile", help="Profile of the management (or delegated admin) account.")
]
OrgRegionOption = Annotated[
    str | None, typer.Option("--org-region", help="Region of the StackSet (default: server's).")
]
DelegatedOption = Annotated[
    bool, typer.Option("--delegated-admin", help="Call StackSets as the organization's delegated administrator.")
]


def _options(
    host: str,
    egress: str,
    endpoints: bool,
    existing: bool,
    ou: str | None,
    org_profile: str | None,
    org_region: str | None,
    delegated: bool,
) -> InfraOptions:
    """Validate the command-line choices into InfraOptions."""
    if host not in ("notebook", "ec2"):
        raise BadInput(f"--host {host!r}: use notebook or ec2")
    if egress not in ("nat", "endpoints"):
        raise BadInput(f"--egress {egress!r}: use nat or endpoints")
    if host == "notebook" and egress == "endpoints":
        raise BadInput("--egress endpoints needs --host ec2: a notebook host installs Python 3.11 from the internet")
    if ou is not None and not ou.startswith(("ou-", "r-")):
        raise BadInput(f"--stackset-ou {ou!r} is not an organizational unit id (ou-... or r-...)")
    return InfraOptions(host, egress, endpoints, existing, ou, org_profile, org_region, delegated)  # type: ignore[arg-type]


@infra_app.command(
    "render",
    epilog=(
        "Examples:\n\n"
        "  fedsage infra render -c federation.toml --out infra-out\n\n"
        "  fedsage infra render -c federation.toml --out infra-out --host ec2 --egress endpoints\n\n"
        "  fedsage infra render -c federation.toml --out infra-out --stackset-ou ou-ab12-cdef3456 --org-profile org"
    ),
)
def render_command(
    config_path: ConfigOption,
    out: Annotated[Path, typer.Option(help="New folder for the templates, parameter files and deploy.sh.")],
    host: HostOption = "notebook",
    egress: EgressOption = "nat",
    interface_endpoints: EndpointsOption = False,
    existing_buckets: ExistingOption = False,
    stackset_ou: OuOption = None,
    org_profile: OrgProfileOption = None,
    org_region: OrgRegionOption = None,
    delegated_admin: DelegatedOption = False,
) -> None:
    """Write every account's parameter files and the exact AWS CLI commands, in the order they must run."""
    from rich.console import Console

    options = _options(
        host, egress, interface_endpoints, existing_buckets, stackset_ou, org_profile, org_region, delegated_admin
    )
    from orchestrator import config

    steps = render(config.load(config_path), options, out)
    console = Console(soft_wrap=True)
    for number, step in enumerate(steps, 1):
        where = step.account.account_id or "organization"
        console.print(f"{number}. {step.title}  [dim]({where}, {step.account.region}, {step.stack_name})[/]")
    console.print(f"wrote {out}/deploy.sh, {out}/README.md and the parameter files; run {out}/deploy.sh")


@infra_app.command(
    "deploy",
    epilog=(
        "Examples:\n\n"
        "  fedsage infra deploy -c federation.toml\n\n"
        "  fedsage infra deploy -c federation.toml --stackset-ou ou-ab12-cdef3456 --org-profile org"
    ),
)
def deploy_command(
    config_path: ConfigOption,
    host: HostOption = "notebook",
    egress: EgressOption = "nat",
    interface_endpoints: EndpointsOption = False,
    existing_buckets: ExistingOption = False,
    stackset_ou: OuOption = None,
    org_profile: OrgProfileOption = None,
    org_region: OrgRegionOption = None,
    delegated_admin: DelegatedOption = False,
) -> None:
    """Deploy every stack through change sets, in order, waiting for each; print the keys to copy into the config."""
    from rich.console import Console

    options = _options(
        host, egress, interface_endpoints, existing_buckets, stackset_ou, org_profile, org_region, delegated_admin
    )
    from orchestrator import config

    federation = config.load(config_path)
    steps = plan_stacks(federation, options)
    console = Console(soft_wrap=True)
    outputs = deploy_with_progress(steps, options, profile_sessions(federation), console)
    console.print("[bold]deployed.[/] Set these in federation.toml, then run fedsage doctor:")
    for line in next_steps(federation, outputs):
        console.print(f"  {line}", highlight=False, markup=False)


def profile_sessions(federation: Federation) -> SessionFor:
    """Sessions from each account's profile, checked to be in the account the config names."""
    from orchestrator.aws.sessions import profile_session

    checked: dict[tuple[str | None, str], Any] = {}

    def session_for(account: Account) -> Any:
        profile = account.profile
        key = (profile, account.region)
        if key not in checked:
            session = profile_session(profile, account.region, f"{account.label}")
            if account.account_id:
                actual = session.client("sts").get_caller_identity()["Account"]
                if actual != account.account_id:
                    raise BadInput(
                        f"profile {profile or '(default)'} is account {actual}, but {account.label} is account "
                        f"{account.account_id}; set that account's profile in federation.toml"
                    )
            checked[key] = session
        return checked[key]

    return session_for


def deploy_with_progress(steps: list[StackStep], options: InfraOptions, session_for: SessionFor, console: Any) -> Any:
    """Run the deployment with one Rich progress line per step."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console, transient=False) as bar:
        tasks = {step.key: bar.add_task(f"[dim]{step.title}[/]", total=1) for step in steps}

        def show(step: StackStep, status: str) -> None:
            done = status == "done"
            label = f"[green]{step.title}: done[/]" if done else f"{step.title}: {status}"
            bar.update(tasks[step.key], description=label, completed=1 if done else 0)

        return Deployer(session_for, options, show).run(steps)
