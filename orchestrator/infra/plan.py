"""The plan: federation.toml -> the stacks to deploy, in order, with their parameters (pure, no AWS call).

A `StackStep` is one deployment (a stack, a StackSet, or a StackSet's instance in one account);
a parameter is a literal, the output of an earlier step's stack (`Output`), or the id of the
region's S3 prefix list (`S3PrefixList`), which render.py turns into shell lookups and deploy.py
resolves through boto3. This module is also the one home of the stacks' names.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from orchestrator.infra.parameters import (
    client_storage_parameters,
    host_private_ip,
    image_repository_arn,
    partition,
    require_infra_ready,
    role_name,
)

if TYPE_CHECKING:  # pydantic loads only when a command runs
    from orchestrator.config import Federation

INFRA_DIR = Path(__file__).resolve().parent.parent.parent / "infra"
CLIENT_TEMPLATE = "client-account.yaml"
SERVER_TEMPLATE = "server-account.yaml"
PEERING_TEMPLATE = "server-peering.yaml"
TEMPLATES = (CLIENT_TEMPLATE, SERVER_TEMPLATE, PEERING_TEMPLATE)
CAPABILITIES = ["CAPABILITY_NAMED_IAM"]
FEDERATION_TAG = "fedsage:federation"
KICKOFF_ROLE = "FL-kickoff-client-job"
EXECUTION_ROLE = "FL-sagemaker-execution"


@dataclass(frozen=True)
class Account:
    """Where a step runs: an account, its region, and the AWS profile that reaches it."""

    label: str
    account_id: str
    region: str
    profile: str | None


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
        """The deploy.sh variable that holds it, e.g. S3_PREFIX_LIST_HOSPITAL_A_EU_WEST_1."""
        return "S3_PREFIX_LIST_" + f"{self.account.label}_{self.account.region}".upper().replace("-", "_")


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
    """Choices `fedsage infra` makes beyond federation.toml (validated by the command line)."""

    host: Literal["notebook", "ec2"] = "notebook"
    egress: Literal["nat", "endpoints"] = "nat"
    interface_endpoints: bool = False
    existing_buckets: bool = False
    stackset_ou: str | None = None
    org_profile: str | None = None
    org_region: str | None = None
    delegated_admin: bool = False


def stack_name(federation: Federation, role: str) -> str:
    """The name of one of the federation's stacks: <prefix>-fedsage-<role> (server, client, clients)."""
    return f"{federation.federation.name}-fedsage-{role}"


def peering_stack_name(federation: Federation, client: str) -> str:
    """The name of the server account's peering stack for one client: <prefix>-fedsage-peering-<client>."""
    return stack_name(federation, f"peering-{client}")


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
        "KickoffRoleName": role_name(client.kickoff_role_arn, KICKOFF_ROLE),
        "ExecutionRoleName": role_name(client.execution_role_arn, EXECUTION_ROLE),
        "ImageRepositoryArn": image_repository_arn(federation, client.region),
        "KmsKeyArn": client.kms_key_id or "",
    }
    parameters.update(client_storage_parameters(client, f"clients[{index}] ({client.name})"))
    return parameters


def plan_stacks(federation: Federation, options: InfraOptions) -> list[StackStep]:
    """Every deployment of the federation's infrastructure, in the order it must run.

    Order: the client stacks (or the StackSet and its instances), the server stack, one peering
    stack per client, then each client stack again with its peering connection (the route back).
    Raises BadInput (via require_infra_ready) when the config cannot be deployed.
    """
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
                peering_stack_name(federation, client.name),
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
            client.kickoff_role_arn or f"arn:{partition(client.region)}:iam::{client.account_id}:role/{KICKOFF_ROLE}"
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
            "HostPrivateIp": host_private_ip(federation, options.host),
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
