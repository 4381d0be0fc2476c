"""`fedsage infra render` writes the exact commands in order; `fedsage infra deploy` runs them through boto3."""

import json
import subprocess
from pathlib import Path

import pytest
import tomli_w
from conftest import CLIENT_ACCOUNTS, SERVER_ACCOUNT
from infra_fixtures import EXTERNAL_IDS, federation_data, patch_moto

from orchestrator import cli

INFRA = Path(__file__).resolve().parent.parent / "infra"


def write_config(tmp_path, change=None):
    data = federation_data(tmp_path)
    if change:
        change(data)
    path = tmp_path / "federation.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def run(argv):
    with pytest.raises(SystemExit) as ended:
        cli.main(argv)
    return ended.value.code


def steps_of(script):
    return [line.split(". ", 1)[1] for line in script.splitlines() if line.startswith("# ") and line[2].isdigit()]


def test_render_writes_every_accounts_parameters_and_the_commands_in_order(tmp_path, capsys):
    out = tmp_path / "out"
    assert run(["infra", "render", "-c", str(write_config(tmp_path)), "--out", str(out)]) == 0
    for name in ("client-account.yaml", "server-account.yaml", "server-peering.yaml"):
        assert (out / "templates" / name).read_text() == (INFRA / name).read_text()
    script = (out / "deploy.sh").read_text()
    assert (out / "deploy.sh").stat().st_mode & 0o100
    assert subprocess.run(["bash", "-n", str(out / "deploy.sh")], check=False).returncode == 0
    assert [step.split(" (")[0] for step in steps_of(script)] == [
        "client hospital-a: roles, bucket, network",
        "client hospital-b: roles, bucket, network",
        "server: VPC, host, AssumeRole on the kickoff roles",
        "server: peering with hospital-a, route and Flower ingress",
        "server: peering with hospital-b, route and Flower ingress",
        "client hospital-a: route to the server through the peering",
        "client hospital-b: route to the server through the peering",
    ]
    first = script.split("# 1. ")[1].split("# 2. ")[0]
    assert "aws cloudformation deploy --region eu-west-1" in first
    assert "--stack-name fraud-fedsage-client" in first and "--capabilities CAPABILITY_NAMED_IAM" in first
    assert f"ExternalId={EXTERNAL_IDS['hospital-a']}" in first and "VpcCidr=10.20.0.0/16" in first
    peering = script.split("# 4. ")[1].split("# 5. ")[0]
    assert 'ClientVpcId="$(aws cloudformation describe-stacks' in peering and "OutputKey=='" in peering
    route = script.split("# 6. ")[1].split("# 7. ")[0]
    assert 'PeeringConnectionId="$(aws cloudformation describe-stacks' in route
    assert "--stack-name fraud-fedsage-peering-hospital-a" in route
    parameters = json.loads((out / f"hospital-a-{CLIENT_ACCOUNTS[0]}" / "fraud-fedsage-client.json").read_text())
    values = {p["ParameterKey"]: p["ParameterValue"] for p in parameters}
    assert values["ServerAccountId"] == SERVER_ACCOUNT
    assert (
        values["CodePrefix"] == "code/"
        and values["DataPrefix"] == "data/"
        and values["ArtifactsPrefix"] == "artifacts/"
    )
    assert values["ImageRepositoryArn"].startswith("arn:aws:ecr:eu-west-1:") and values["ImageRepositoryArn"].endswith(
        ":repository/sagemaker-scikit-learn"
    )
    assert values["S3PrefixListId"] == "<id of the prefix list com.amazonaws.eu-west-1.s3>"
    server = json.loads((out / f"server-{SERVER_ACCOUNT}" / "fraud-fedsage-server.json").read_text())
    arns = next(p["ParameterValue"] for p in server if p["ParameterKey"] == "ClientKickoffRoleArns")
    assert arns == ",".join(f"arn:aws:iam::{a}:role/FL-kickoff-client-job" for a in CLIENT_ACCOUNTS)
    assert "| 7 | client hospital-b: route to the server" in (out / "README.md").read_text()
    assert "deploy.sh" in capsys.readouterr().out


def test_render_for_a_stackset_targets_each_account_of_the_ou_with_its_own_overrides(tmp_path):
    out = tmp_path / "out"
    argv = ["infra", "render", "-c", str(write_config(tmp_path)), "--out", str(out)]
    assert run([*argv, "--stackset-ou", "ou-ab12-cdef3456", "--org-profile", "org", "--delegated-admin"]) == 0
    script = (out / "deploy.sh").read_text()
    assert subprocess.run(["bash", "-n", str(out / "deploy.sh")], check=False).returncode == 0
    stack_set = script.split("# 1. ")[1].split("# 2. ")[0]
    assert "create-stack-set --profile org --region eu-west-1 --call-as DELEGATED_ADMIN" in stack_set
    assert "--permission-model SERVICE_MANAGED" in stack_set
    assert "--auto-deployment Enabled=true,RetainStacksOnAccountRemoval=false" in stack_set
    assert "ParameterKey=ExternalId,ParameterValue=''" in stack_set
    for number, (name, account) in enumerate(zip(EXTERNAL_IDS, CLIENT_ACCOUNTS, strict=True), 2):
        instance = script.split(f"# {number}. ")[1].split(f"# {number + 1}. ")[0]
        assert "create-stack-instances --profile org --region eu-west-1 --call-as DELEGATED_ADMIN" in instance
        targets = f"OrganizationalUnitIds=ou-ab12-cdef3456,Accounts={account},AccountFilterType=INTERSECTION"
        assert targets in instance
        assert f"ParameterKey=ExternalId,ParameterValue={EXTERNAL_IDS[name]}" in instance
        assert 'wait_for_operation fraud-fedsage-clients "$OPERATION"' in instance
    route = script.split("# 7. ")[1].split("# 8. ")[0]
    assert "update-stack-instances" in route
    assert "ParameterKey=PeeringConnectionId,ParameterValue=" in route
    assert f"ParameterKey=ExternalId,ParameterValue={EXTERNAL_IDS['hospital-a']}" in route  # overrides kept
    peering = script.split("# 5. ")[1].split("# 6. ")[0]
    assert "describe-stack-instance --profile org" in peering


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["clients"][1].update(vpc_cidr="10.10.128.0/17"), "the VPC CIDR of server (10.10.0.0/16) overlaps"),
        (lambda d: d["federation"].update(name="Fraud"), "16 lowercase letters, digits and single hyphens"),
        (lambda d: d["clients"][0].pop("external_id"), "clients[0] (hospital-a): set external_id"),
        (lambda d: d["server"].pop("vpc_cidr"), "server: set vpc_cidr"),
        (lambda d: d["clients"][0].update(output_uri="s3://another-bucket/artifacts/"), "put code, data and artifacts"),
    ],
)
def test_render_refuses_a_config_it_cannot_deploy_and_writes_nothing(tmp_path, capsys, change, message):
    out = tmp_path / "out"
    assert run(["infra", "render", "-c", str(write_config(tmp_path, change)), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".fedsage-infra")] == []


def test_render_never_overwrites_a_folder(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert run(["infra", "render", "-c", str(write_config(tmp_path)), "--out", str(out)]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_render_checks_the_host_options(tmp_path, capsys):
    config = str(write_config(tmp_path))
    assert run(["infra", "render", "-c", config, "--out", str(tmp_path / "a"), "--egress", "endpoints"]) == 2
    assert "--egress endpoints needs --host ec2" in capsys.readouterr().err
    outside = str(write_config(tmp_path, lambda d: d["server"].update(advertised_address="10.10.0.10")))
    assert run(["infra", "render", "-c", outside, "--out", str(tmp_path / "b"), "--host", "ec2"]) == 2
    assert "not a usable address of the server's private subnet 10.10.1.0/24" in capsys.readouterr().err
    config = str(write_config(tmp_path))
    assert run(["infra", "render", "-c", config, "--out", str(tmp_path / "c"), "--host", "ec2"]) == 0
    server = json.loads((tmp_path / "c" / f"server-{SERVER_ACCOUNT}" / "fraud-fedsage-server.json").read_text())
    assert {"ParameterKey": "HostPrivateIp", "ParameterValue": "10.10.1.10"} in server


def with_profiles(data):
    data["server"]["profile"] = "fl-server"
    for client in data["clients"]:
        client["profile"] = client["name"]


def test_deploy_runs_every_step_and_prints_the_keys_for_federation_toml(
    aws, aws_profiles, monkeypatch, tmp_path, capsys
):
    patch_moto(monkeypatch)
    aws_profiles({"fl-server": SERVER_ACCOUNT, "hospital-a": CLIENT_ACCOUNTS[0], "hospital-b": CLIENT_ACCOUNTS[1]})
    assert run(["infra", "deploy", "-c", str(write_config(tmp_path, with_profiles))]) == 0
    out = capsys.readouterr().out
    assert "client hospital-b: route to the server through the peering: done" in out
    stacks = aws.server.client("cloudformation").describe_stacks(StackName="fraud-fedsage-server")["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks["Outputs"]}
    assert f'[server] vpc_id = "{outputs["VpcId"]}"' in out
    assert f'[server] security_group = "{outputs["HostSecurityGroupId"]}"' in out
    assert "[[clients]] hospital-a: subnets = [" in out
    assert {"Key": "fedsage:federation", "Value": "fraud"} in stacks["Tags"]


def test_deploy_refuses_a_profile_of_the_wrong_account(aws, aws_profiles, monkeypatch, tmp_path, capsys):
    patch_moto(monkeypatch)
    aws_profiles({"fl-server": SERVER_ACCOUNT, "hospital-a": CLIENT_ACCOUNTS[1], "hospital-b": CLIENT_ACCOUNTS[1]})
    assert run(["infra", "deploy", "-c", str(write_config(tmp_path, with_profiles))]) == 2
    err = capsys.readouterr().err
    assert f"profile hospital-a is account {CLIENT_ACCOUNTS[1]}, but hospital-a is account {CLIENT_ACCOUNTS[0]}" in err
    assert aws.admin(CLIENT_ACCOUNTS[1]).client("cloudformation").describe_stacks()["Stacks"] == []
