"""The templates deploy into moto, each stack into its own account, in the order `fedsage infra` plans.

Every test reads the one federation the `deployed` fixture deploys (conftest.py) and changes nothing;
deployments with other options are in test_infra_options_moto.py.
"""

import json

import pytest
from conftest import CLIENT_ACCOUNTS, REGION, SERVER_ACCOUNT
from infra_fixtures import CLIENT_CIDRS, PORT, PREFIX, SERVER_CIDR

pytestmark = pytest.mark.slow  # the module deploys a whole federation into moto


def _stacks(session):
    return sorted(s["StackName"] for s in session.client("cloudformation").describe_stacks()["Stacks"])


def test_every_stack_lands_in_its_own_account(deployed):
    aws = deployed.aws
    assert _stacks(aws.server) == [
        f"{PREFIX}-fedsage-peering-hospital-a",
        f"{PREFIX}-fedsage-peering-hospital-b",
        f"{PREFIX}-fedsage-server",
    ]
    for account in CLIENT_ACCOUNTS:
        assert _stacks(aws.admin(account)) == [f"{PREFIX}-fedsage-client"]


def test_the_client_bucket_is_encrypted_versioned_private_and_tls_only(deployed):
    aws = deployed.aws
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


def test_the_jobs_may_reach_only_the_flower_port_and_s3(deployed):
    aws, outputs = deployed.aws, deployed.outputs
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


def test_the_server_admits_the_flower_port_from_the_client_vpcs_only(deployed):
    aws, outputs = deployed.aws, deployed.outputs
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


def test_each_peering_is_active_between_the_server_vpc_and_one_client_vpc(deployed):
    aws, outputs = deployed.aws, deployed.outputs
    for name, account in zip(CLIENT_CIDRS, CLIENT_ACCOUNTS, strict=True):
        pcx = outputs[f"peering:{name}"]["PeeringConnectionId"]
        seen = aws.admin(account).client("ec2").describe_vpc_peering_connections(VpcPeeringConnectionIds=[pcx])
        connection = seen["VpcPeeringConnections"][0]
        assert connection["Status"]["Code"] == "active"
        assert connection["RequesterVpcInfo"]["OwnerId"] == SERVER_ACCOUNT
        assert connection["RequesterVpcInfo"]["VpcId"] == outputs["server"]["VpcId"]
        assert connection["AccepterVpcInfo"] == {**connection["AccepterVpcInfo"], "OwnerId": account}
        assert connection["AccepterVpcInfo"]["VpcId"] == outputs[f"client:{name}"]["VpcId"]


def test_the_server_host_is_a_private_notebook_with_the_kickoff_policy(deployed):
    aws, outputs = deployed.aws, deployed.outputs
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
