"""The templates deploy into moto, each stack into its own account, in the order `fedsage infra` plans."""

import json

import pytest
from conftest import CLIENT_ACCOUNTS, REGION, SERVER_ACCOUNT
from infra_fixtures import CLIENT_CIDRS, PORT, PREFIX, SERVER_CIDR, deploy_federation, deploy_steps, patch_moto

from orchestrator import infra

pytestmark = pytest.mark.slow  # each test deploys a whole federation into moto


@pytest.fixture
def deployed(aws, monkeypatch, tmp_path):
    patch_moto(monkeypatch)
    return deploy_federation(aws, tmp_path)


def _stacks(session):
    return sorted(s["StackName"] for s in session.client("cloudformation").describe_stacks()["Stacks"])


def test_every_stack_lands_in_its_own_account(aws, deployed):
    assert _stacks(aws.server) == [
        f"{PREFIX}-fedsage-peering-hospital-a",
        f"{PREFIX}-fedsage-peering-hospital-b",
        f"{PREFIX}-fedsage-server",
    ]
    for account in CLIENT_ACCOUNTS:
        assert _stacks(aws.admin(account)) == [f"{PREFIX}-fedsage-client"]


def test_the_client_bucket_is_encrypted_versioned_private_and_tls_only(aws, deployed):
    for account in CLIENT_ACCOUNTS:
        s3 = aws.admin(account).client("s3")
        bucket = f"fedsage-{account}-{REGION}"
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert block == dict.fromkeys(
            ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
        )
        policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        tls = next(s for s in policy["Statement"] if s["Sid"] == "TlsOnly")
        assert tls["Effect"] == "Deny" and tls["Principal"] == "*" and tls["Action"] == "s3:*"
        assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert sorted(tls["Resource"]) == [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]


def test_the_jobs_may_reach_only_the_flower_port_and_s3(aws, deployed):
    _, outputs, _ = deployed
    for name, account in zip(CLIENT_CIDRS, CLIENT_ACCOUNTS, strict=True):
        made = outputs[f"client:{name}"]
        ec2 = aws.admin(account).client("ec2")
        group = ec2.describe_security_groups(GroupIds=[made["JobSecurityGroupId"]])["SecurityGroups"][0]
        assert group["IpPermissions"] == []
        s3_list = ec2.describe_managed_prefix_lists(
            Filters=[{"Name": "prefix-list-name", "Values": [f"com.amazonaws.{REGION}.s3"]}]
        )["PrefixLists"][0]["PrefixListId"]
        egress = sorted(
            (p["IpProtocol"], p["FromPort"], p["ToPort"], tuple(r["CidrIp"] for r in p["IpRanges"]),
             tuple(r["PrefixListId"] for r in p["PrefixListIds"]))
            for p in group["IpPermissionsEgress"]
        )  # fmt: skip
        assert egress == [("tcp", 443, 443, (), (s3_list,)), ("tcp", PORT, PORT, (SERVER_CIDR,), ())]
        table = ec2.describe_route_tables(RouteTableIds=[made["RouteTableId"]])["RouteTables"][0]
        pcx = outputs[f"peering:{name}"]["PeeringConnectionId"]
        routes = {r.get("DestinationCidrBlock") or r.get("DestinationPrefixListId"): r for r in table["Routes"]}
        assert routes[SERVER_CIDR]["VpcPeeringConnectionId"] == pcx
        assert routes[s3_list]["GatewayId"].startswith("vpce-")
        assert not any(r.get("DestinationCidrBlock") == "0.0.0.0/0" for r in table["Routes"])  # no internet
        associated = {a["SubnetId"] for a in table["Associations"] if "SubnetId" in a}
        assert associated == set(made["SubnetIds"].split(","))
        subnets = ec2.describe_subnets(SubnetIds=made["SubnetIds"].split(","))["Subnets"]
        assert len({s["AvailabilityZone"] for s in subnets}) == 2


def test_the_server_admits_the_flower_port_from_the_client_vpcs_only(aws, deployed):
    _, outputs, _ = deployed
    ec2 = aws.server.client("ec2")
    group = ec2.describe_security_groups(GroupIds=[outputs["server"]["HostSecurityGroupId"]])["SecurityGroups"][0]
    ingress = sorted(
        (p["IpProtocol"], p["FromPort"], p["ToPort"], r["CidrIp"])
        for p in group["IpPermissions"]
        for r in p["IpRanges"]
    )
    assert ingress == [("tcp", PORT, PORT, cidr) for cidr in sorted(CLIENT_CIDRS.values())]
    table = ec2.describe_route_tables(RouteTableIds=[outputs["server"]["RouteTableId"]])["RouteTables"][0]
    routes = {r.get("DestinationCidrBlock"): r.get("VpcPeeringConnectionId") for r in table["Routes"]}
    for name, cidr in CLIENT_CIDRS.items():
        assert routes[cidr] == outputs[f"peering:{name}"]["PeeringConnectionId"]
    assert routes["0.0.0.0/0"] is None  # the default route goes to the NAT gateway, not a peer


def test_each_peering_is_active_between_the_server_vpc_and_one_client_vpc(aws, deployed):
    _, outputs, _ = deployed
    for name, account in zip(CLIENT_CIDRS, CLIENT_ACCOUNTS, strict=True):
        pcx = outputs[f"peering:{name}"]["PeeringConnectionId"]
        seen = aws.admin(account).client("ec2").describe_vpc_peering_connections(VpcPeeringConnectionIds=[pcx])
        connection = seen["VpcPeeringConnections"][0]
        assert connection["Status"]["Code"] == "active"
        assert connection["RequesterVpcInfo"]["OwnerId"] == SERVER_ACCOUNT
        assert connection["RequesterVpcInfo"]["VpcId"] == outputs["server"]["VpcId"]
        assert connection["AccepterVpcInfo"] == {**connection["AccepterVpcInfo"], "OwnerId": account}
        assert connection["AccepterVpcInfo"]["VpcId"] == outputs[f"client:{name}"]["VpcId"]


def test_the_server_host_is_a_private_notebook_with_the_kickoff_policy(aws, deployed):
    _, outputs, _ = deployed
    server = outputs["server"]
    notebook = aws.server.client("sagemaker").describe_notebook_instance(
        NotebookInstanceName=server["NotebookInstanceName"]
    )
    assert notebook["RoleArn"] == server["HostRoleArn"]
    # moto's notebook model keeps no network settings; the template's are read back from the stack
    body = aws.server.client("cloudformation").get_template(StackName=f"{PREFIX}-fedsage-server")["TemplateBody"]
    properties = _template(body)["Resources"]["NotebookHost"]["Properties"]
    assert properties["SubnetId"] == {"Ref": "PrivateSubnet"}
    assert properties["SecurityGroupIds"] == [{"Ref": "HostSecurityGroup"}]
    assert properties["DirectInternetAccess"] == "Disabled"
    assert properties["RootAccess"] == "Disabled"
    iam = aws.server.client("iam")
    attached = iam.list_attached_role_policies(RoleName=server["HostRoleArn"].rsplit("/", 1)[1])["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [server["KickoffAccessPolicyArn"]]


def _template(body):
    from cfnlint.decode.cfn_yaml import loads

    return json.loads(json.dumps(loads(body), default=str))


def test_an_ec2_host_gets_the_advertised_address_and_interface_endpoints_replace_nat(aws, monkeypatch, tmp_path):
    patch_moto(monkeypatch)
    options = infra.InfraOptions(host="ec2", egress="endpoints")
    _, outputs = deploy_steps(aws, tmp_path, ("server",), options)
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
    options = infra.InfraOptions(interface_endpoints=True)
    _, outputs = deploy_steps(aws, tmp_path, ("client:hospital-a",), options)
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
    from infra_fixtures import federation_data, moto_sessions

    from orchestrator import config

    patch_moto(monkeypatch)
    organizations = aws.server.client("organizations")
    organizations.create_organization(FeatureSet="ALL")
    root = organizations.list_roots()["Roots"][0]["Id"]
    unit = organizations.create_organizational_unit(ParentId=root, Name="federation")["OrganizationalUnit"]["Id"]
    options = infra.InfraOptions(stackset_ou=unit, org_profile="org")
    federation = config.parse(federation_data(tmp_path))
    steps = infra.plan_stacks(federation, options)
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
    deployer = infra.Deployer(moto_sessions(aws), options, lambda step, status: None, poll_seconds=0)
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
