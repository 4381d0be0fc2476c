"""fedsage doctor against a federation deployed into moto: a correct setup passes; each break is named with its fix.

The tests share one deployment (the module-scoped `deployed` fixture, conftest.py): each one that
breaks something registers how to repair it with `undo`, which runs after the test even when it fails.
"""

import pytest
import tomli_w
from botocore.stub import Stubber
from cli_runner import run_cli
from conftest import CLIENT_ACCOUNTS, SERVER_ACCOUNT
from infra_fixtures import CLIENT_CIDRS, PORT, upload_client_objects

from orchestrator.doctor.checks import diagnose
from orchestrator.doctor.clients import check_objects
from orchestrator.doctor.findings import Doctor

pytestmark = pytest.mark.slow  # the module deploys a whole federation into moto


@pytest.fixture
def undo():
    """Register repairs of the shared deployment; they run, last first, after the test."""
    repairs = []
    yield repairs.append
    for repair in reversed(repairs):
        repair()


def failures(checks):
    return [c for c in checks if c.status == "fail"]


def only_failure(checks, subject, name):
    failed = failures(checks)
    assert [(c.subject, c.name) for c in failed] and {(c.subject, c.name) for c in failed} == {(subject, name)}, failed
    return failed


def test_a_correct_setup_passes_every_check(deployed):
    aws, federation = deployed.aws, deployed.federation
    checks = diagnose(federation, aws.server)
    assert failures(checks) == []
    names = {(c.subject, c.name) for c in checks}
    for client in ("hospital-a", "hospital-b"):
        for name in (
            "kickoff role",
            "subnets",
            "security groups",
            "peering",
            "route to server",
            "route from server",
            "server ingress",
            "jobs' egress to server",
            "S3 from the jobs",
            "training image",
            "image Python",
            "code archive",
            "train channel",
            "validation channel",
        ):
            assert (client, name) in names, (client, name)
    assert ("federation", "CIDR overlap") in names
    # every client check went through the kickoff role, with the agreed ExternalId
    for account, client in zip(CLIENT_ACCOUNTS, federation.clients, strict=True):
        assert (
            f"arn:aws:iam::{account}:role/FL-kickoff-client-job",
            "fedsage-doctor",
            client.external_id,
        ) in aws.assumed_roles(account)


def test_an_advertised_address_outside_the_server_stacks_subnet_is_named_with_its_fix(deployed):
    """Issue 10, item 18: the address the clients dial must be the server host's, in the server stack's subnet."""
    aws, federation = deployed.aws, deployed.federation
    server = federation.server.model_copy(update={"advertised_address": "10.10.200.10"})  # in the VPC, no subnet
    checks = diagnose(federation.model_copy(update={"server": server}), aws.server)
    (row,) = [c for c in checks if (c.subject, c.name) == ("server", "advertised address")]
    assert (row.status, row.detail) == ("fail", f"10.10.200.10 is in no subnet of {federation.server.vpc_id}")
    assert row.fix == "set [server] advertised_address to the host's private IP in the server VPC"
    passing = [c for c in diagnose(federation, aws.server) if (c.subject, c.name) == ("server", "advertised address")]
    assert passing[0].status == "pass" and passing[0].detail.startswith("10.10.1.10 in subnet-")


def test_an_image_whose_python_is_not_the_wheels_is_named_with_its_fix(deployed):
    aws, federation = deployed.aws, deployed.federation
    mismatched = federation.model_copy(
        update={"container": federation.container.model_copy(update={"python_version": "3.11"})}
    )
    failed = [c for c in failures(diagnose(mismatched, aws.server)) if c.name == "image Python"]
    assert {c.subject for c in failed} == {"hospital-a", "hospital-b"}
    assert "runs Python 3.12 but python_version = '3.11'" in failed[0].detail and "fedsage package" in failed[0].fix


def test_a_missing_route_to_the_server_is_named_with_its_fix(deployed, undo):
    aws, federation, outputs = deployed.aws, deployed.federation, deployed.outputs
    made = outputs["client:hospital-a"]
    pcx = outputs["peering:hospital-a"]["PeeringConnectionId"]
    ec2 = aws.admin(CLIENT_ACCOUNTS[0]).client("ec2")
    route = {"RouteTableId": made["RouteTableId"], "DestinationCidrBlock": "10.10.0.0/16"}
    ec2.delete_route(**route)
    undo(lambda: ec2.create_route(**route, VpcPeeringConnectionId=pcx))
    failed = only_failure(diagnose(federation, aws.server), "hospital-a", "route to server")
    assert len(failed) == 2  # both job subnets use the table
    assert "no route" in failed[0].detail
    assert failed[0].fix.startswith(f"add a route 10.10.0.0/16 -> {pcx} to {made['RouteTableId']}")
    assert f"PeeringConnectionId={pcx}" in failed[0].fix


def test_a_missing_route_back_from_the_server_is_named_with_its_fix(deployed, undo):
    aws, federation, outputs = deployed.aws, deployed.federation, deployed.outputs
    table = outputs["server"]["RouteTableId"]
    pcx = outputs["peering:hospital-b"]["PeeringConnectionId"]
    ec2 = aws.server.client("ec2")
    route = {"RouteTableId": table, "DestinationCidrBlock": CLIENT_CIDRS["hospital-b"]}
    ec2.delete_route(**route)
    undo(lambda: ec2.create_route(**route, VpcPeeringConnectionId=pcx))
    failed = only_failure(diagnose(federation, aws.server), "hospital-b", "route from server")
    assert failed[0].fix.startswith(f"add a route 10.30.0.0/16 -> {pcx} to {table}")


def test_a_missing_ingress_rule_is_named_with_its_fix(deployed, undo):
    aws, federation, outputs = deployed.aws, deployed.federation, deployed.outputs
    group = outputs["server"]["HostSecurityGroupId"]
    ec2 = aws.server.client("ec2")
    rule = {"IpProtocol": "tcp", "FromPort": PORT, "ToPort": PORT, "IpRanges": [{"CidrIp": CLIENT_CIDRS["hospital-b"]}]}
    ec2.revoke_security_group_ingress(GroupId=group, IpPermissions=[rule])
    undo(lambda: ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[rule]))
    failed = only_failure(diagnose(federation, aws.server), "hospital-b", "server ingress")
    assert failed[0].detail == f"{group} admits no tcp {PORT} from 10.30.0.0/24"
    assert failed[0].fix.startswith(f"add ingress tcp {PORT} from 10.30.0.0/16 to {group}")


def test_jobs_that_may_not_reach_the_server_are_named_with_the_fix(deployed, undo):
    aws, federation, outputs = deployed.aws, deployed.federation, deployed.outputs
    group = outputs["client:hospital-a"]["JobSecurityGroupId"]
    ec2 = aws.admin(CLIENT_ACCOUNTS[0]).client("ec2")
    rule = {"IpProtocol": "tcp", "FromPort": PORT, "ToPort": PORT, "IpRanges": [{"CidrIp": "10.10.0.0/16"}]}
    ec2.revoke_security_group_egress(GroupId=group, IpPermissions=[rule])
    undo(lambda: ec2.authorize_security_group_egress(GroupId=group, IpPermissions=[rule]))
    failed = only_failure(diagnose(federation, aws.server), "hospital-a", "jobs' egress to server")
    assert failed[0].fix.startswith(f"add egress tcp {PORT} to 10.10.0.0/16 on {group}")


def test_an_overlapping_cidr_is_named_with_a_free_range(deployed, undo):
    aws, federation = deployed.aws, deployed.federation
    ec2 = aws.admin(CLIENT_ACCOUNTS[1]).client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.10.0.0/16")["Vpc"]["VpcId"]  # the server's range, by mistake
    undo(lambda: ec2.delete_vpc(VpcId=vpc))
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.10.5.0/24")["Subnet"]["SubnetId"]
    undo(lambda: ec2.delete_subnet(SubnetId=subnet))
    group = ec2.create_security_group(VpcId=vpc, GroupName="jobs", Description="jobs")["GroupId"]
    undo(lambda: ec2.delete_security_group(GroupId=group))
    clients = [
        federation.clients[0],
        federation.clients[1].model_copy(update={"subnets": [subnet], "security_groups": [group]}),
    ]
    checks = diagnose(federation.model_copy(update={"clients": clients}), aws.server)
    overlap = [c for c in failures(checks) if c.name == "CIDR overlap"]
    assert len(overlap) == 1
    assert overlap[0].subject == "hospital-b"
    assert overlap[0].detail == "hospital-b's VPC 10.10.0.0/16 overlaps server's 10.10.0.0/16"
    assert overlap[0].fix.startswith("re-create hospital-b's VPC with a range no other VPC uses, e.g. 10.30.0.0/16")
    assert ("hospital-b", "peering") in {(c.subject, c.name) for c in failures(checks)}
    assert [c.status for c in checks if c.subject == "hospital-a" and c.name == "CIDR overlap"] == []


def test_a_wrong_external_id_is_refused_and_named_with_its_fix(deployed):
    aws, federation = deployed.aws, deployed.federation
    wrong = federation.clients[0].model_copy(update={"external_id": "not-the-agreed-one"})
    checks = diagnose(federation.model_copy(update={"clients": [wrong, federation.clients[1]]}), aws.server)
    failed = [c for c in failures(checks) if c.subject == "hospital-a"]
    assert [(c.name, c.status) for c in failed] == [("kickoff role", "fail")]
    assert "AccessDenied" in failed[0].detail
    assert failed[0].fix.startswith("check that external_id matches the ExternalId of the client stack")
    assert {c.subject for c in failures(checks)} == {"hospital-a"}


def test_missing_code_or_data_is_named_for_the_data_owner(deployed, undo):
    aws, federation = deployed.aws, deployed.federation
    s3 = aws.admin(CLIENT_ACCOUNTS[1]).client("s3")
    bucket = f"fedsage-{CLIENT_ACCOUNTS[1]}-eu-west-1"
    s3.delete_object(Bucket=bucket, Key="code/source.tar.gz")
    s3.delete_object(Bucket=bucket, Key="data/train/part-0.csv")
    undo(lambda: upload_client_objects(aws, [federation.clients[1]]))
    failed = failures(diagnose(federation, aws.server))
    assert [(c.subject, c.name) for c in failed] == [("hospital-b", "code archive"), ("hospital-b", "train channel")]
    assert failed[0].fix == "the data owner uploads it (fedsage package)"
    assert failed[1].detail == f"nothing at s3://{bucket}/data/train/"


def test_objects_the_kickoff_role_may_not_list_are_left_to_the_data_owner(deployed):
    aws, federation = deployed.aws, deployed.federation
    client = federation.clients[0]
    s3 = aws.admin(CLIENT_ACCOUNTS[0]).client("s3")
    runner = Doctor(federation, aws.server, lambda c: None)
    with Stubber(s3) as stub:
        for _ in range(3):
            stub.add_client_error("list_objects_v2", service_error_code="AccessDenied", http_status_code=403)

        class Session:
            def client(self, name):
                return s3

        check_objects(runner, client, Session())
    assert [(c.name, c.status) for c in runner.checks] == [
        ("code archive", "warn"),
        ("train channel", "warn"),
        ("validation channel", "warn"),
    ]
    assert runner.checks[0].fix == f"the data owner checks it: aws s3 ls {client.code_uri} --profile <data owner>"


def test_the_command_prints_the_table_and_exits_1_on_a_failure(deployed, undo, aws_profiles, tmp_path, capsys):
    aws, federation, outputs = deployed.aws, deployed.federation, deployed.outputs
    aws_profiles({"fl-server": SERVER_ACCOUNT})
    data = federation.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["server"]["profile"] = "fl-server"
    path = tmp_path / "federation.toml"
    path.write_text(tomli_w.dumps(data))
    code, out, _ = run_cli(capsys, "doctor", "-c", str(path))
    assert code == 0
    assert "0 failed" in out
    ec2 = aws.server.client("ec2")
    route = {"RouteTableId": outputs["server"]["RouteTableId"], "DestinationCidrBlock": CLIENT_CIDRS["hospital-a"]}
    ec2.delete_route(**route)
    undo(lambda: ec2.create_route(**route, VpcPeeringConnectionId=outputs["peering:hospital-a"]["PeeringConnectionId"]))
    code, out, _ = run_cli(capsys, "doctor", "-c", str(path))
    assert code == 1
    assert "route from server" in out and "fix: add a route 10.20.0.0/16" in out
    assert "2 failed" in out
