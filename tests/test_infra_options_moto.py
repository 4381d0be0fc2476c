"""Deployments into moto with other options than the default: an EC2 host, interface endpoints, a StackSet.

Each test has its own moto accounts (the `aws` fixture); the default federation, deployed once,
is tested in test_infra_moto.py.
"""

import pytest
from conftest import CLIENT_ACCOUNTS, REGION, SERVER_ACCOUNT
from infra_fixtures import PREFIX, deploy, federation_data, moto_sessions, patch_moto

from orchestrator import config
from orchestrator.infra.deploy import Deployer
from orchestrator.infra.plan import InfraOptions, plan_stacks

pytestmark = pytest.mark.slow  # each test deploys stacks into moto


def test_an_ec2_host_gets_the_advertised_address_and_interface_endpoints_replace_nat(aws, monkeypatch, tmp_path):
    patch_moto(monkeypatch)
    options = InfraOptions(host="ec2", egress="endpoints")
    outputs = deploy(aws, tmp_path, options, keys=("server",)).outputs
    server = outputs["server"]
    assert server["HostPrivateIp"] == "10.10.1.10"
    ec2 = aws.server.client("ec2")
    instance = ec2.describe_instances(InstanceIds=[server["Ec2InstanceId"]])["Reservations"][0]["Instances"][0]
    assert instance["SubnetId"] == server["PrivateSubnetId"]
    services = {e["ServiceName"] for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]}
    assert {f"com.amazonaws.{REGION}.{s}" for s in ("s3", "sts", "sagemaker.api", "ec2", "logs", "ssm")} <= services
    assert ec2.describe_nat_gateways()["NatGateways"] == []
    assert (
        ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [server["VpcId"]]}])[
            "InternetGateways"
        ]
        == []
    )


def test_interface_endpoints_in_a_client_vpc_are_reachable_from_the_jobs(aws, monkeypatch, tmp_path):
    patch_moto(monkeypatch)
    options = InfraOptions(interface_endpoints=True)
    outputs = deploy(aws, tmp_path, options, keys=("client:hospital-a",)).outputs
    made = outputs["client:hospital-a"]
    ec2 = aws.admin(CLIENT_ACCOUNTS[0]).client("ec2")
    endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [made["VpcId"]]}])["VpcEndpoints"]
    interfaces = [e for e in endpoints if e["VpcEndpointType"] == "Interface"]
    assert {e["ServiceName"].rsplit(".", 1)[-1] if "ecr" not in e["ServiceName"] else e["ServiceName"][-7:]
            for e in interfaces} == {"logs", "sts", "ecr.api", "ecr.dkr"}  # fmt: skip
    endpoint_group = interfaces[0]["Groups"][0]["GroupId"]
    group = ec2.describe_security_groups(GroupIds=[made["JobSecurityGroupId"]])["SecurityGroups"][0]
    to_endpoints = [p for p in group["IpPermissionsEgress"] if p["UserIdGroupPairs"]]
    assert [(p["FromPort"], p["UserIdGroupPairs"][0]["GroupId"]) for p in to_endpoints] == [(443, endpoint_group)]


def test_a_stackset_rollout_creates_the_set_and_one_instance_per_account_with_overrides(aws, monkeypatch, tmp_path):
    """Service-managed StackSet: the set in the management account, instances per OU account with overrides.

    moto deploys a service-managed instance only into accounts it created inside the OU, so the
    instance requests are checked as sent, and moto only has to accept them.
    """
    patch_moto(monkeypatch)
    organizations = aws.server.client("organizations")
    organizations.create_organization(FeatureSet="ALL")
    root = organizations.list_roots()["Roots"][0]["Id"]
    unit = organizations.create_organizational_unit(ParentId=root, Name="federation")["OrganizationalUnit"]["Id"]
    options = InfraOptions(stackset_ou=unit, org_profile="org")
    federation = config.parse(federation_data(tmp_path))
    steps = plan_stacks(federation, options)
    assert [(s.kind, s.update) for s in steps] == [
        ("stack-set", False),
        ("stack-instance", False),
        ("stack-instance", False),
        ("stack", False),
        ("stack", False),
        ("stack", False),
        ("stack-instance", True),
        ("stack-instance", True),
    ]
    deployer = Deployer(moto_sessions(aws), options, lambda step, status: None, poll_seconds=0)
    deployer.run(steps[:1])
    cfn = aws.server.client("cloudformation")
    stack_set = cfn.describe_stack_set(StackSetName=f"{PREFIX}-fedsage-clients")["StackSet"]
    assert stack_set["PermissionModel"] == "SERVICE_MANAGED"
    assert "ExternalId" in stack_set["TemplateBody"]
    shared = {p["ParameterKey"]: p["ParameterValue"] for p in stack_set["Parameters"]}
    assert shared["ExternalId"] == ""  # accounts the OU adds later get no role the server can assume
    assert shared["ServerAccountId"] == SERVER_ACCOUNT
    # each client account: the OU intersected with that one account, with the client's own values
    for step, client in zip(steps[1:3], federation.clients, strict=True):
        request = deployer.instance_request(step, deployer.parameters(step), {})
        assert request["DeploymentTargets"] == {
            "OrganizationalUnitIds": [unit],
            "Accounts": [client.account_id],
            "AccountFilterType": "INTERSECTION",
        }
        assert request["Regions"] == [REGION]
        overrides = {p["ParameterKey"]: p["ParameterValue"] for p in request["ParameterOverrides"]}
        assert overrides["ExternalId"] == client.external_id
        assert overrides["VpcCidr"] == str(client.vpc_cidr)
        assert overrides["BucketName"] == f"fedsage-{client.account_id}-{REGION}"
        assert overrides["S3PrefixListId"].startswith("pl-")
        operation = cfn.create_stack_instances(**request)["OperationId"]  # moto accepts the request as sent
        assert (
            cfn.describe_stack_set_operation(StackSetName=step.stack_name, OperationId=operation)["StackSetOperation"][
                "Status"
            ]
            == "SUCCEEDED"
        )
    # the route update sends every override again (an omitted one would fall back to the set's value)
    route = steps[6]
    assert route.update and set(route.parameters) == {*steps[1].parameters, "PeeringConnectionId"}


def test_with_a_kms_key_the_execution_role_may_encrypt_the_jobs_output(aws, monkeypatch, tmp_path):
    """Issue 10, item 21: SageMaker's OutputDataConfig.KmsKeyId needs kms:Encrypt on the execution role."""
    from iam_policy import ALLOW, IMPLICIT_DENY, evaluate
    from infra_fixtures import moto_sessions

    patch_moto(monkeypatch)
    key = f"arn:aws:kms:{REGION}:{CLIENT_ACCOUNTS[0]}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    data = federation_data(tmp_path)
    data["clients"][0]["kms_key_id"] = key
    options = InfraOptions()
    steps = [s for s in plan_stacks(config.parse(data), options) if s.key == "client:hospital-a"]
    Deployer(moto_sessions(aws), options, lambda step, status: None, poll_seconds=0).run(steps)
    iam = aws.admin(CLIENT_ACCOUNTS[0]).client("iam")
    policy = iam.get_role_policy(RoleName="FL-sagemaker-execution", PolicyName="fedsage-training-job")
    documents = [policy["PolicyDocument"]]
    for action in ("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"):
        assert evaluate(documents, action, key) == ALLOW, action
    assert evaluate(documents, "kms:Encrypt", key.replace("1234abcd", "99999999")) == IMPLICIT_DENY
