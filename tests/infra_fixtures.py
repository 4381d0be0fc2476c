"""Test helpers for the infrastructure: moto's CloudFormation gaps filled in, and a federation deployed.

moto runs real CloudFormation templates, with gaps. The templates stay valid for real
CloudFormation; these patches make moto do what CloudFormation does for the parts the tests rely on:

- Fn::Cidr (moto has no implementation) and AWS::NoValue inside lists (CloudFormation drops it);
- a security group's SecurityGroupEgress (moto ignores it and keeps the allow-all default) and
  its SecurityGroupIngress CIDRs;
- AWS::EC2::SecurityGroupEgress and AWS::S3::BucketPolicy resources (moto skips them), and a
  bucket's VersioningConfiguration and PublicAccessBlockConfiguration (moto ignores them); moto
  applies a bucket policy's Deny without its condition, so the TLS-only statements are evaluated
  as for boto3's requests (TLS 1.2 or newer);
- a role's inline Policies (moto stores a Python repr instead of JSON, and ignores them on update);
- AWS::EC2::SubnetRouteTableAssociation (moto records it but leaves the subnet on the main table);
- cross-account AWS::EC2::VPCPeeringConnection: moto looks the peer VPC up in the requester's
  account; CloudFormation creates the request and accepts it by assuming PeerRoleArn;
- a change set's stack outputs, exports and imports (moto wires them only for CreateStack/UpdateStack);
- the kickoff role's trust policy: moto's sts:AssumeRole ignores the role's sts:ExternalId
  condition; AWS refuses a wrong or missing ExternalId with AccessDenied.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

from conftest import CLIENT_ACCOUNTS, REGION, SERVER_ACCOUNT
from moto.cloudformation import parsing
from moto.cloudformation.models import ChangeSet, cloudformation_backends
from moto.core.common_models import CloudFormationModel
from moto.core.exceptions import AccessDeniedError
from moto.ec2.models import ec2_backends
from moto.ec2.models.security_groups import SecurityGroup
from moto.ec2.models.subnets import SubnetRouteTableAssociation
from moto.ec2.models.vpc_peering_connections import VPCPeeringConnection
from moto.iam.models import Role, iam_backends
from moto.s3.models import FakeBucket, s3_backends
from moto.sts.models import STSBackend

from orchestrator import config
from orchestrator.aws.s3 import parse_uri
from orchestrator.infra.deploy import Deployer
from orchestrator.infra.plan import Account, InfraOptions, StackStep, plan_stacks

ROOT = Path(__file__).resolve().parent.parent


class _BucketPolicy(CloudFormationModel):
    """AWS::S3::BucketPolicy, which moto's CloudFormation skips."""

    __module__ = "moto.s3.fedsage_tests"  # moto files every model under the service its module names

    def __init__(self, bucket: str):
        self.bucket = bucket

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::S3::BucketPolicy"

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @property
    def physical_resource_id(self) -> str:
        return self.bucket

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json["Properties"]
        policy = json.dumps(properties["PolicyDocument"]).encode()
        s3_backends[account_id]["aws"].put_bucket_policy(properties["Bucket"], policy)
        return cls(properties["Bucket"])


class _SecurityGroupEgress(CloudFormationModel):
    """AWS::EC2::SecurityGroupEgress, which moto's CloudFormation skips."""

    __module__ = "moto.ec2.fedsage_tests"

    def __init__(self, group_id: str):
        self.group_id = group_id

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::EC2::SecurityGroupEgress"

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @property
    def physical_resource_id(self) -> str:
        return self.group_id

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json["Properties"]
        _authorize(ec2_backends[account_id][region_name], properties["GroupId"], properties, egress=True)
        return cls(properties["GroupId"])


def _authorize(backend: Any, group_id: str, rule: dict[str, Any], egress: bool) -> None:
    """Add one CloudFormation-style security group rule through moto's EC2 backend."""
    description = {"Description": rule["Description"]} if "Description" in rule else {}
    cidr = rule.get("CidrIp")
    peer_group = rule.get("DestinationSecurityGroupId" if egress else "SourceSecurityGroupId")
    prefix_list = rule.get("DestinationPrefixListId" if egress else "SourcePrefixListId")
    arguments = {
        "ip_ranges": [{"CidrIp": cidr, **description}] if cidr else [],
        "source_groups": [{"GroupId": peer_group, **description}] if peer_group else [],
        "prefix_list_ids": [{"PrefixListId": prefix_list, **description}] if prefix_list else [],
    }
    call = backend.authorize_security_group_egress if egress else backend.authorize_security_group_ingress
    call(group_id, rule["IpProtocol"], rule.get("FromPort"), rule.get("ToPort"), **arguments)


def _clean_json_with_cidr(original):
    def clean_json(resource_json: Any, resources_map: Any) -> Any:
        if isinstance(resource_json, dict) and "Fn::Cidr" in resource_json:
            block, count, host_bits = (clean_json(value, resources_map) for value in resource_json["Fn::Cidr"])
            subnets = IPv4Network(block).subnets(new_prefix=32 - int(host_bits))
            return [str(subnet) for subnet in itertools.islice(subnets, int(count))]
        cleaned = original(resource_json, resources_map)
        if isinstance(cleaned, list):
            return [value for value in cleaned if value is not None]
        return cleaned

    return clean_json


def _security_group_with_rules(original):
    def create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json["Properties"]
        bare = {
            **cloudformation_json,
            "Properties": {k: v for k, v in properties.items() if k != "SecurityGroupIngress"},
        }
        group = original(cls, resource_name, bare, account_id, region_name, **kwargs)
        backend = ec2_backends[account_id][region_name]
        for rule in properties.get("SecurityGroupIngress", []):
            _authorize(backend, group.id, rule, egress=False)
        if properties.get("SecurityGroupEgress"):
            backend.revoke_security_group_egress(group.id, "-1", None, None, [{"CidrIp": "0.0.0.0/0"}])
            for rule in properties["SecurityGroupEgress"]:
                _authorize(backend, group.id, rule, egress=True)
        return group

    return classmethod(create)


def _bucket_with_settings(original):
    def create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        bucket = original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        properties = cloudformation_json.get("Properties", {})
        backend = s3_backends[account_id]["aws"]
        if "VersioningConfiguration" in properties:
            backend.put_bucket_versioning(bucket.name, properties["VersioningConfiguration"]["Status"])
        if "PublicAccessBlockConfiguration" in properties:
            block = {key: str(value).lower() for key, value in properties["PublicAccessBlockConfiguration"].items()}
            backend.put_public_access_block(bucket.name, block)
        return bucket

    return classmethod(create)


TLS_ONLY_CONDITIONS = ({"Bool": {"aws:SecureTransport": "false"}}, {"NumericLessThan": {"s3:TlsVersion": "1.2"}})


def _bucket_permission_over_tls(original):
    """moto applies a bucket policy's Deny without its condition; boto3 always talks TLS 1.2+."""

    def get_permission(self, action, resource):
        if self.policy is None:
            return original(self, action, resource)
        from moto.iam.access_control import IAMPolicy

        policy = json.loads(self.policy)
        kept = [s for s in policy["Statement"] if s.get("Condition") not in TLS_ONLY_CONDITIONS]
        return IAMPolicy(json.dumps({**policy, "Statement": kept})).is_action_permitted(action, resource)

    return get_permission


def _associating_route_table(original):
    """moto records AWS::EC2::SubnetRouteTableAssociation without associating the table."""

    def create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        association = original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        properties = cloudformation_json["Properties"]
        ec2_backends[account_id][region_name].associate_route_table(
            properties["RouteTableId"], subnet_id=properties["SubnetId"]
        )
        return association

    return classmethod(create)


def _role_with_json_policies(create, update):
    """moto stores a role's inline Policies as a Python repr and ignores them on update; IAM keeps JSON."""

    def put_policies(role, cloudformation_json):
        for policy in cloudformation_json["Properties"].get("Policies", []):
            role.put_policy(policy["PolicyName"], json.dumps(policy["PolicyDocument"]))
        return role

    def on_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        role = create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        return put_policies(role, cloudformation_json)

    def on_update(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
        role = update(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name)
        return put_policies(role, cloudformation_json)

    return classmethod(on_create), classmethod(on_update)


def _cross_account_peering(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    """What CloudFormation does for a peering into another account: request, then accept as PeerRoleArn."""
    properties = cloudformation_json["Properties"]
    peer_account = properties.get("PeerOwnerId", account_id)
    peer_region = properties.get("PeerRegion", region_name)
    requester = ec2_backends[account_id][region_name]
    peer_vpc = ec2_backends[peer_account][peer_region].get_vpc(properties["PeerVpcId"])
    tags = {tag["Key"]: tag["Value"] for tag in properties.get("Tags", [])}
    connection = requester.create_vpc_peering_connection(requester.get_vpc(properties["VpcId"]), peer_vpc, tags)
    if peer_account != account_id:
        role = iam_backends[peer_account]["aws"].get_role_by_arn(properties["PeerRoleArn"])
        trusted = json.dumps(json.loads(role.assume_role_policy_document)["Statement"])
        if f":iam::{account_id}:root" not in trusted:
            raise AccessDeniedError(user_arn=f"arn:aws:iam::{account_id}:root", action="sts:AssumeRole")
        ec2_backends[peer_account][peer_region].accept_vpc_peering_connection(connection.id)
    return connection


def _assume_role_checking_external_id(original):
    def assume_role(self, region_name, role_session_name, role_arn, policy, duration, external_id):
        account = role_arn.split(":")[4]
        try:
            role = iam_backends[account]["aws"].get_role_by_arn(role_arn)
        except Exception:  # a role moto's tests assume without creating it (the admin sessions)
            role = None
        if role is not None:
            document = role.assume_role_policy_document
            statements = json.loads(document if isinstance(document, str) else json.dumps(document))["Statement"]
            for statement in statements:
                required = statement.get("Condition", {}).get("StringEquals", {}).get("sts:ExternalId")
                if required is not None and external_id != required:
                    raise AccessDeniedError(user_arn=f"session {role_session_name}", action="sts:AssumeRole")
        return original(self, region_name, role_session_name, role_arn, policy, duration, external_id)

    return assume_role


def _change_set_with_outputs(original):
    def apply(self):
        stack = self.stack
        backend = cloudformation_backends[stack.account_id][stack.region_name]
        stack.resource_map.cross_stack_resources = backend.exports
        original(self)
        stack.template = self.template
        stack._parse_template()
        stack.output_map = stack._create_output_map()
        for export in stack.exports:
            backend.exports[export.name] = export

    return apply


def patch_moto(monkeypatch) -> None:
    """Make moto's CloudFormation, EC2 and STS behave like AWS where the templates need it."""
    monkeypatch.setattr(parsing, "clean_json", _clean_json_with_cidr(parsing.clean_json))
    monkeypatch.setattr(
        SecurityGroup,
        "create_from_cloudformation_json",
        _security_group_with_rules(SecurityGroup.create_from_cloudformation_json.__func__),
    )
    monkeypatch.setattr(
        FakeBucket,
        "create_from_cloudformation_json",
        _bucket_with_settings(FakeBucket.create_from_cloudformation_json.__func__),
    )
    monkeypatch.setattr(FakeBucket, "get_permission", _bucket_permission_over_tls(FakeBucket.get_permission))
    monkeypatch.setattr(
        SubnetRouteTableAssociation,
        "create_from_cloudformation_json",
        _associating_route_table(SubnetRouteTableAssociation.create_from_cloudformation_json.__func__),
    )
    on_create, on_update = _role_with_json_policies(
        Role.create_from_cloudformation_json.__func__, Role.update_from_cloudformation_json.__func__
    )
    monkeypatch.setattr(Role, "create_from_cloudformation_json", on_create)
    monkeypatch.setattr(Role, "update_from_cloudformation_json", on_update)
    monkeypatch.setattr(VPCPeeringConnection, "create_from_cloudformation_json", classmethod(_cross_account_peering))
    monkeypatch.setattr(ChangeSet, "apply", _change_set_with_outputs(ChangeSet.apply))
    monkeypatch.setattr(STSBackend, "assume_role", _assume_role_checking_external_id(STSBackend.assume_role))
    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()


# ----------------------------------------------------------------------------- a deployed federation

EXTERNAL_IDS = {"hospital-a": "ext-hospital-a-7f3k", "hospital-b": "ext-hospital-b-9q2m"}
CLIENT_CIDRS = {"hospital-a": "10.20.0.0/16", "hospital-b": "10.30.0.0/16"}
SERVER_CIDR = "10.10.0.0/16"
PREFIX = "fraud"
PORT = 8080


def federation_data(tmp_path: Path) -> dict[str, Any]:
    """A launch-ready federation.toml (as a mapping) for the moto accounts, before infra exists."""
    (tmp_path / "test.csv").write_text("x,label\n1,0\n")
    clients = []
    for (name, cidr), account in zip(CLIENT_CIDRS.items(), CLIENT_ACCOUNTS, strict=True):
        bucket = f"fedsage-{account}-{REGION}"
        clients.append(
            {
                "name": name,
                "account_id": account,
                "region": REGION,
                "kickoff_role_arn": f"arn:aws:iam::{account}:role/FL-kickoff-client-job",
                "external_id": EXTERNAL_IDS[name],
                "execution_role_arn": f"arn:aws:iam::{account}:role/FL-sagemaker-execution",
                "code_uri": f"s3://{bucket}/code/source.tar.gz",
                "train_uri": f"s3://{bucket}/data/train/",
                "validation_uri": f"s3://{bucket}/data/validation/",
                "output_uri": f"s3://{bucket}/artifacts/",
                "vpc_cidr": cidr,
            }
        )
    return {
        "federation": {"name": PREFIX},
        "server": {
            "region": REGION,
            "account_id": SERVER_ACCOUNT,
            "vpc_cidr": SERVER_CIDR,
            "bind_address": "0.0.0.0",
            "port": PORT,
            "advertised_address": "10.10.1.10",
            "test_data": str(tmp_path / "test.csv"),
        },
        "clients": clients,
    }


def moto_sessions(aws):
    """A deploy session factory that opens an administrator session in each moto account."""

    opened: dict[tuple[str, str], Any] = {}

    def session_for(account: Account):
        key = (account.account_id or SERVER_ACCOUNT, account.region)
        if key not in opened:  # one session per account: each loads botocore's service models anew
            opened[key] = aws.admin(*key)
        return opened[key]

    return session_for


@dataclass
class Deployment:
    """A federation deployed into moto: the accounts, the config with the stacks' ids, the outputs by step key."""

    aws: Any
    federation: config.Federation
    outputs: dict[str, dict[str, str]]
    steps: list[StackStep]


def deploy(aws, tmp_path: Path, options: InfraOptions | None = None, keys: tuple[str, ...] | None = None) -> Deployment:
    """Deploy the federation into moto with `fedsage infra deploy`'s Deployer, and fill its ids into the config.

    `keys` deploys only those steps (ones that need no other step's outputs); by default every step.
    """
    data = federation_data(tmp_path)
    options = options or InfraOptions()
    steps = [step for step in plan_stacks(config.parse(data), options) if keys is None or step.key in keys]
    outputs = Deployer(moto_sessions(aws), options, lambda step, status: None, poll_seconds=0).run(steps)
    if "server" in outputs:
        data["server"]["vpc_id"] = outputs["server"]["VpcId"]
        data["server"]["security_group"] = outputs["server"]["HostSecurityGroupId"]
    for client in data["clients"]:
        made = outputs.get(f"client:{client['name']}")
        if made:
            client["subnets"] = made["SubnetIds"].split(",")
            client["security_groups"] = [made["JobSecurityGroupId"]]
    return Deployment(aws, config.parse(data), outputs, steps)


def upload_client_objects(aws, clients) -> None:
    """What the data owners upload: each client's code archive and data channels."""
    for client in clients:
        s3 = aws.admin(client.account_id).client("s3")
        for uri in (client.code_uri, client.train_uri + "part-0.csv", client.validation_uri + "part-0.csv"):
            location = parse_uri(uri)
            s3.put_object(Bucket=location.bucket, Key=location.key, Body=b"x,label\n1,0\n")
