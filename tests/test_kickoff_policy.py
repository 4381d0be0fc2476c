"""The kickoff role allows exactly what launch, status, stop and doctor need, and cannot read client data.

The policies are the ones CloudFormation (moto) created from infra/client-account.yaml. Requests
are decided three ways: moto's own IAM enforcement where it applies (S3 object access through the
role's real credentials), parliament and cloudsplaining for lint and risk classes, and the small
evaluator in tests/iam_policy.py for conditions moto cannot judge.
"""

import contextlib

import pytest
from botocore.exceptions import ClientError
from conftest import CLIENT_ACCOUNTS, REGION, SERVER_ACCOUNT
from iam_policy import ALLOW, EXPLICIT_DENY, IMPLICIT_DENY, evaluate
from infra_fixtures import PREFIX

from orchestrator import plan
from orchestrator.aws import sessions

ACCOUNT = CLIENT_ACCOUNTS[0]
BUCKET = f"fedsage-{ACCOUNT}-{REGION}"
JOB_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/"
LOG_GROUP = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/TrainingJobs"
EXECUTION_ROLE = f"arn:aws:iam::{ACCOUNT}:role/FL-sagemaker-execution"


class ClientRoles:
    """The first client's stack, as the `deployed` federation has it, with its roles' policies."""

    def __init__(self, deployed):
        self.aws = deployed.aws
        self.federation = deployed.federation
        self.server_outputs = deployed.outputs["server"]
        self.outputs = deployed.outputs["client:hospital-a"]
        iam = self.aws.admin(ACCOUNT).client("iam")
        self.kickoff = [
            iam.get_role_policy(RoleName="FL-kickoff-client-job", PolicyName="fedsage-kickoff")["PolicyDocument"]
        ]
        self.execution = [
            iam.get_role_policy(RoleName="FL-sagemaker-execution", PolicyName="fedsage-training-job")["PolicyDocument"]
        ]
        self.trust = iam.get_role(RoleName="FL-kickoff-client-job")["Role"]["AssumeRolePolicyDocument"]
        client = self.federation.clients[0].model_copy(update={"tags": {"cost-centre": "fl-pilot"}})
        self.client = client
        self.federation = self.federation.model_copy(update={"clients": [client, *self.federation.clients[1:]]})

    def request(self, run_id="20261121-101500-a1b2"):
        """The CreateTrainingJob request `fedsage launch` sends for this client."""
        client = self.client
        context = plan.RunContext(
            run_id=run_id,
            server_address="10.10.1.10:8080",
            root_certificate=b"-----BEGIN CERTIFICATE-----",
            tokens={c.name: "ab12cd34" for c in self.federation.clients},
            placements={
                c.name: plan.JobPlacement(code_uri=str(c.code_uri), output_uri=str(c.output_uri), image="image")
                for c in self.federation.clients
            },
        )
        return next(r for r in plan.plan(self.federation, context) if plan.client_of(r) == client.name)


@pytest.fixture(scope="module")
def roles(deployed):
    """The kickoff and execution roles of the first client, read once for the module's tests."""
    return ClientRoles(deployed)


def create_context(request):
    """The request context IAM sees for a CreateTrainingJob call (the condition keys the policy uses)."""
    tags = request.get("Tags", [])
    context = {"aws:TagKeys": [t["Key"] for t in tags]}
    context.update({f"aws:RequestTag/{t['Key']}": t["Value"] for t in tags})
    if "VpcConfig" in request:
        context["sagemaker:VpcSubnets"] = request["VpcConfig"]["Subnets"]
        context["sagemaker:VpcSecurityGroupIds"] = request["VpcConfig"]["SecurityGroupIds"]
    return context


def job_arn(name):
    return JOB_ARN + name.lower()  # SageMaker lowercases job names in ARNs


# ----------------------------------------------------------------------------- the evaluator itself


def test_the_evaluator_follows_iam_semantics():
    policy = {
        "Statement": [
            {"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/*"},
            {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/secret/*"},
            {
                "Effect": "Allow",
                "NotAction": "iam:*",
                "Resource": "arn:aws:ec2:*",
                "Condition": {"Bool": {"k": "true"}},
            },
            {
                "Effect": "Allow",
                "Action": "x:Create",
                "Resource": "*",
                "Condition": {
                    "Null": {"x:Subnets": "false"},
                    "ForAllValues:StringEquals": {"x:Subnets": ["a", "b"]},
                    "StringLike": {"x:Name": "fed-*"},
                    "ArnLike": {"x:Role": "arn:aws:iam::1:role/*"},
                    "ArnEquals": {"x:Vpc": "arn:aws:ec2:r:1:vpc/v"},
                    "StringNotEquals": {"x:Mode": "open"},
                },
            },
        ]
    }
    assert evaluate([policy], "s3:GetObject", "arn:aws:s3:::b/data") == ALLOW
    assert evaluate([policy], "S3:getobject", "arn:aws:s3:::b/data") == ALLOW  # actions are case-insensitive
    assert evaluate([policy], "s3:GetObject", "arn:aws:s3:::B/data") == IMPLICIT_DENY  # resources are not
    assert evaluate([policy], "s3:GetObject", "arn:aws:s3:::b/secret/x") == EXPLICIT_DENY
    assert evaluate([policy], "s3:PutObject", "arn:aws:s3:::b/data") == IMPLICIT_DENY
    assert evaluate([policy], "ec2:RunInstances", "arn:aws:ec2:vpc", {"k": "true"}) == ALLOW
    assert evaluate([policy], "iam:PassRole", "arn:aws:ec2:vpc", {"k": "true"}) == IMPLICIT_DENY
    assert evaluate([policy], "ec2:RunInstances", "arn:aws:ec2:vpc", {"k": "false"}) == IMPLICIT_DENY
    good = {
        "x:Subnets": ["a"],
        "x:Name": "fed-1",
        "x:Role": "arn:aws:iam::1:role/r",
        "x:Vpc": "arn:aws:ec2:r:1:vpc/v",
        "x:Mode": "closed",
    }
    assert evaluate([policy], "x:Create", "*", good) == ALLOW
    for key, bad in (
        ("x:Subnets", ["a", "c"]),
        ("x:Name", "other-1"),
        ("x:Role", "arn:aws:iam::2:role/r"),
        ("x:Vpc", "arn:aws:ec2:r:1:vpc/w"),
        ("x:Mode", "open"),
    ):
        assert evaluate([policy], "x:Create", "*", {**good, key: bad}) == IMPLICIT_DENY, key
    without_subnets = {k: v for k, v in good.items() if k != "x:Subnets"}
    assert evaluate([policy], "x:Create", "*", without_subnets) == IMPLICIT_DENY  # Null guards ForAllValues


# ----------------------------------------------------------------------------- what the runtime needs


def test_launch_can_create_pass_and_tag_its_jobs(roles):
    request = roles.request()
    arn = job_arn(request["TrainingJobName"])
    assert evaluate(roles.kickoff, "sagemaker:CreateTrainingJob", arn, create_context(request)) == ALLOW
    tagging = {**create_context(request), "sagemaker:TaggingAction": "CreateTrainingJob"}
    assert evaluate(roles.kickoff, "sagemaker:AddTags", arn, tagging) == ALLOW
    passing = {"iam:PassedToService": "sagemaker.amazonaws.com"}
    assert request["RoleArn"] == roles.outputs["ExecutionRoleArn"]
    assert evaluate(roles.kickoff, "iam:PassRole", request["RoleArn"], passing) == ALLOW


def test_status_stop_and_logs_reach_the_federations_jobs(roles):
    name = roles.request()["TrainingJobName"]
    for action in ("sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob", "sagemaker:ListTags"):
        assert evaluate(roles.kickoff, action, job_arn(name)) == ALLOW, action
    assert evaluate(roles.kickoff, "sagemaker:ListTrainingJobs", "*") == ALLOW
    for group in (LOG_GROUP, LOG_GROUP + ":*"):
        assert evaluate(roles.kickoff, "logs:DescribeLogStreams", group) == ALLOW
    stream = f"{LOG_GROUP}:log-stream:{name}/algo-1-1763719200"
    assert evaluate(roles.kickoff, "logs:GetLogEvents", stream) == ALLOW


def test_doctor_can_describe_the_network_and_list_code_and_data_keys(roles):
    for action in (
        "ec2:DescribeVpcs",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeRouteTables",
        "ec2:DescribeVpcPeeringConnections",
    ):
        assert evaluate(roles.kickoff, action, "*") == ALLOW, action
    for prefix in ("code/source.tar.gz", "data/train/", "data/validation/"):
        assert evaluate(roles.kickoff, "s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": prefix}) == ALLOW


# ----------------------------------------------------------------------------- what it must not do


def test_it_cannot_read_or_write_client_data(roles):
    for key in ("data/train/part-0.csv", "data/validation/part-0.csv", "code/source.tar.gz", "artifacts/m.tar.gz"):
        for action in ("s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject"):
            assert evaluate(roles.kickoff, action, f"arn:aws:s3:::{BUCKET}/{key}") == IMPLICIT_DENY, (action, key)
    bucket = f"arn:aws:s3:::{BUCKET}"
    assert evaluate(roles.kickoff, "s3:ListBucket", bucket, {}) == IMPLICIT_DENY  # no prefix: the whole bucket
    assert evaluate(roles.kickoff, "s3:ListBucket", bucket, {"s3:prefix": "artifacts/"}) == IMPLICIT_DENY
    assert evaluate(roles.kickoff, "logs:FilterLogEvents", LOG_GROUP) == IMPLICIT_DENY  # reads every job's log


def test_it_cannot_create_jobs_with_another_prefix_or_outside_the_job_network(roles):
    request = roles.request()
    context = create_context(request)
    other = request["TrainingJobName"].replace(f"{PREFIX}-", "other-", 1)
    assert evaluate(roles.kickoff, "sagemaker:CreateTrainingJob", job_arn(other), context) == IMPLICIT_DENY
    no_vpc = {k: v for k, v in context.items() if not k.startswith("sagemaker:Vpc")}
    assert evaluate(roles.kickoff, "sagemaker:CreateTrainingJob", job_arn(request["TrainingJobName"]), no_vpc) == (
        IMPLICIT_DENY
    )
    foreign = {**context, "sagemaker:VpcSubnets": ["subnet-0123456789abcdef0"]}
    assert evaluate(roles.kickoff, "sagemaker:CreateTrainingJob", job_arn(request["TrainingJobName"]), foreign) == (
        IMPLICIT_DENY
    )
    open_group = {**context, "sagemaker:VpcSecurityGroupIds": [*context["sagemaker:VpcSecurityGroupIds"], "sg-1"]}
    assert evaluate(roles.kickoff, "sagemaker:CreateTrainingJob", job_arn(request["TrainingJobName"]), open_group) == (
        IMPLICIT_DENY
    )
    untagged = {k: v for k, v in context.items() if "fedsage:run-id" not in k}
    assert evaluate(roles.kickoff, "sagemaker:CreateTrainingJob", job_arn(request["TrainingJobName"]), untagged) == (
        IMPLICIT_DENY
    )
    retag = {"sagemaker:TaggingAction": "AddTags"}  # re-tagging an existing job, e.g. to hide it from a run
    assert evaluate(roles.kickoff, "sagemaker:AddTags", job_arn(request["TrainingJobName"]), retag) == IMPLICIT_DENY
    for action in ("sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob"):
        assert evaluate(roles.kickoff, action, job_arn("other-job")) == IMPLICIT_DENY
    stream = f"{LOG_GROUP}:log-stream:other-job/algo-1-1763719200"
    assert evaluate(roles.kickoff, "logs:GetLogEvents", stream) == IMPLICIT_DENY


def test_it_passes_only_the_execution_role_and_only_to_sagemaker(roles):
    sagemaker = {"iam:PassedToService": "sagemaker.amazonaws.com"}
    admin = f"arn:aws:iam::{ACCOUNT}:role/OrganizationAccountAccessRole"
    assert evaluate(roles.kickoff, "iam:PassRole", admin, sagemaker) == IMPLICIT_DENY
    assert evaluate(roles.kickoff, "iam:PassRole", EXECUTION_ROLE, {"iam:PassedToService": "ec2.amazonaws.com"}) == (
        IMPLICIT_DENY
    )
    assert evaluate(roles.kickoff, "iam:PassRole", EXECUTION_ROLE, {}) == IMPLICIT_DENY


def test_it_grants_exactly_the_listed_actions_and_no_risky_class(roles):
    from cloudsplaining.scan.policy_document import PolicyDocument

    document = PolicyDocument(roles.kickoff[0])
    assert {a.lower() for a in document.all_allowed_actions} == {
        "sagemaker:createtrainingjob",
        "sagemaker:addtags",
        "sagemaker:describetrainingjob",
        "sagemaker:stoptrainingjob",
        "sagemaker:listtags",
        "sagemaker:listtrainingjobs",
        "iam:passrole",
        "logs:getlogevents",
        "logs:describelogstreams",
        "ec2:describevpcs",
        "ec2:describesubnets",
        "ec2:describesecuritygroups",
        "ec2:describeroutetables",
        "ec2:describevpcpeeringconnections",
        "s3:listbucket",
    }
    assert document.allows_privilege_escalation == []
    assert document.allows_data_exfiltration_actions == []
    assert document.credentials_exposure == []
    assert document.permissions_management_without_constraints == []
    assert document.infrastructure_modification == [] or set(document.infrastructure_modification) <= {
        "sagemaker:CreateTrainingJob",
        "sagemaker:StopTrainingJob",
        "sagemaker:AddTags",
    }


def test_parliament_finds_nothing_in_the_roles(roles):
    import json

    from parliament import analyze_policy_string

    assert analyze_policy_string(json.dumps(roles.kickoff[0])).findings == []
    # ec2:CreateNetworkInterface authorizes the new interface and the subnet and security group it
    # goes into. The execution role grants the interface in one statement and the subnet and group
    # (only those of the job VPC, by ec2:Vpc, a key the interface itself lacks) in another; IAM
    # judges each resource on its own, parliament expects them in one statement.
    findings = analyze_policy_string(json.dumps(roles.execution[0])).findings
    split = {"action": "ec2:CreateNetworkInterface"}
    assert [f.issue for f in findings] in ([], ["RESOURCE_MISMATCH"], ["RESOURCE_MISMATCH", "RESOURCE_MISMATCH"])
    assert all(all(split.items() <= d.items() for d in f.detail) for f in findings)
    assert (
        evaluate(
            roles.execution,
            "ec2:CreateNetworkInterface",
            f"arn:aws:ec2:{REGION}:{ACCOUNT}:subnet/subnet-1",
            {"ec2:Vpc": f"arn:aws:ec2:{REGION}:{ACCOUNT}:vpc/vpc-other"},
        )
        == IMPLICIT_DENY
    )
    vpc = f"arn:aws:ec2:{REGION}:{ACCOUNT}:vpc/{roles.outputs['VpcId']}"
    assert (
        evaluate(
            roles.execution,
            "ec2:CreateNetworkInterface",
            f"arn:aws:ec2:{REGION}:{ACCOUNT}:subnet/s",
            {"ec2:Vpc": vpc},
        )
        == ALLOW
    )


def test_the_trust_policy_names_only_the_server_account_with_the_external_id(roles):
    statement = roles.trust["Statement"]
    assert len(statement) == 1
    assert statement[0]["Principal"] == {"AWS": f"arn:aws:iam::{SERVER_ACCOUNT}:root"}
    assert statement[0]["Condition"]["StringEquals"] == {"sts:ExternalId": roles.client.external_id}
    assert statement[0]["Condition"]["StringLike"] == {"sts:RoleSessionName": "fedsage-*"}


# ----------------------------------------------------------------------------- moto's own enforcement


@contextlib.contextmanager
def iam_enforced(monkeypatch):
    """moto's IAM enforcement for the requests made inside the block."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    with monkeypatch.context() as patch:
        patch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
        patch.setattr(ActionAuthenticatorMixin, "request_count", 0)
        yield


def _denied(call):
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"] in ("AccessDenied", "403")


def test_through_its_real_credentials_the_kickoff_role_gets_no_object(roles, monkeypatch):
    kickoff = sessions.client_session(roles.aws.server, roles.client, "20261121-101500-a1b2").client("s3")
    kickoff._request_signer._credentials.get_frozen_credentials()  # assume the role before enforcement starts
    with iam_enforced(monkeypatch):
        for key in ("data/train/part-0.csv", "code/source.tar.gz"):
            assert _denied(lambda key=key: kickoff.get_object(Bucket=BUCKET, Key=key))
        assert _denied(lambda: kickoff.put_object(Bucket=BUCKET, Key="data/train/evil.csv", Body=b"x"))


def test_through_its_real_credentials_the_execution_role_reads_data_and_writes_only_artifacts(roles, monkeypatch):
    credentials = (
        roles.aws.admin(ACCOUNT)
        .client("sts")
        .assume_role(RoleArn=EXECUTION_ROLE, RoleSessionName="SageMaker")["Credentials"]
    )
    import boto3

    s3 = boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=REGION,
    ).client("s3")
    with iam_enforced(monkeypatch):
        assert s3.get_object(Bucket=BUCKET, Key="data/train/part-0.csv")["Body"].read()
        s3.put_object(Bucket=BUCKET, Key="artifacts/job/output/model.tar.gz", Body=b"model")
        assert _denied(lambda: s3.put_object(Bucket=BUCKET, Key="data/train/part-0.csv", Body=b"x"))
        assert _denied(lambda: s3.put_object(Bucket=BUCKET, Key="code/source.tar.gz", Body=b"x"))


def test_the_server_may_assume_only_the_listed_kickoff_roles(roles):
    iam = roles.aws.admin(SERVER_ACCOUNT).client("iam")
    arn = roles.server_outputs["KickoffAccessPolicyArn"]
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    kickoff = [f"arn:aws:iam::{account}:role/FL-kickoff-client-job" for account in CLIENT_ACCOUNTS]
    for role in kickoff:
        assert evaluate([document], "sts:AssumeRole", role) == ALLOW
    for role in (f"arn:aws:iam::{CLIENT_ACCOUNTS[0]}:role/FL-sagemaker-execution", "arn:aws:iam::444444444444:role/x"):
        assert evaluate([document], "sts:AssumeRole", role) == IMPLICIT_DENY
    attached = iam.list_attached_role_policies(RoleName=roles.server_outputs["HostRoleArn"].rsplit("/", 1)[1])
    assert [p["PolicyArn"] for p in attached["AttachedPolicies"]] == [arn]
