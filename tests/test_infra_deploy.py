"""How `fedsage infra deploy` waits: boto3's waiters for stacks and change sets, a bounded loop for StackSets.

CloudFormation answers are scripted with botocore's Stubber (no request leaves the process); the
whole deployment into moto is in test_infra_moto.py.
"""

import boto3
import pytest
from botocore.stub import Stubber

from orchestrator.errors import RunFailed
from orchestrator.infra.deploy import Deployer
from orchestrator.infra.plan import Account, InfraOptions, StackStep

ACCOUNT = Account("hospital-a", "222222222222", "eu-west-1", None)
ADMIN = Account("organization", "", "eu-west-1", "org")
STACK = "fraud-fedsage-client"
STEP = StackStep("client:hospital-a", "client hospital-a", ACCOUNT, STACK, "client-account.yaml", {"ExternalId": "e"})
INSTANCE = StackStep(
    "client:hospital-a",
    "client hospital-a",
    ACCOUNT,
    STACK,
    "client-account.yaml",
    {},
    kind="stack-instance",
    admin=ADMIN,
)
CREATED = "2026-01-01T00:00:00Z"


class Scripted:
    """A session whose CloudFormation client answers from a script, and the progress it reported."""

    def __init__(self):
        self.cfn = boto3.client(
            "cloudformation", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        self.stub = Stubber(self.cfn)
        self.seen = []

    def client(self, service, region_name=None):
        assert service == "cloudformation"
        return self.cfn

    def deployer(self, **limits):
        return Deployer(lambda account: self, InfraOptions(stackset_ou="ou-ab12-cdef3456"), self.progress, **limits)

    def progress(self, step, status):
        self.seen.append(status)

    def stack(self, status, outputs=()):
        stack = {"StackName": STACK, "CreationTime": CREATED, "StackStatus": status}
        stack["Outputs"] = [{"OutputKey": k, "OutputValue": v} for k, v in outputs]
        self.stub.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": STACK})

    def no_stack(self):
        self.stub.add_client_error("describe_stacks", "ValidationError", f"Stack with id {STACK} does not exist")

    def change_set(self, status, reason=""):
        answer = {"Status": status, "StatusReason": reason, "StackName": STACK}
        self.stub.add_response("describe_change_set", answer)

    def create_change_set(self):
        self.stub.add_response("create_change_set", {"Id": "cs", "StackId": "stack"})


def test_a_new_stack_is_created_through_a_change_set_and_its_outputs_returned():
    aws = Scripted()
    aws.no_stack()
    aws.create_change_set()
    aws.change_set("CREATE_PENDING")  # the waiter polls until the change set is ready
    aws.change_set("CREATE_COMPLETE")
    aws.change_set("CREATE_COMPLETE")
    aws.stub.add_response("execute_change_set", {})
    aws.stack("CREATE_IN_PROGRESS")  # the waiter polls until the stack settles
    aws.stack("CREATE_COMPLETE")
    aws.stack("CREATE_COMPLETE", [("VpcId", "vpc-1")])
    with aws.stub:
        outputs = aws.deployer(poll_seconds=0).run([STEP])
    aws.stub.assert_no_pending_responses()
    assert outputs == {"client:hospital-a": {"VpcId": "vpc-1"}}
    assert aws.seen == ["starting", "creating the change set", "creating the stack", "done"]


def test_an_unchanged_stack_keeps_its_outputs_and_drops_the_empty_change_set():
    aws = Scripted()
    aws.stack("UPDATE_COMPLETE")
    aws.create_change_set()
    reason = "The submitted information didn't contain changes. Submit different information to create a change set."
    aws.change_set("FAILED", reason)  # the waiter's failure state
    aws.change_set("FAILED", reason)
    aws.stub.add_response("delete_change_set", {})
    aws.stack("UPDATE_COMPLETE", [("VpcId", "vpc-1")])
    with aws.stub:
        outputs = aws.deployer(poll_seconds=0).run([STEP])
    assert outputs == {"client:hospital-a": {"VpcId": "vpc-1"}}
    assert "no changes" in aws.seen


def test_a_stack_that_rolls_back_names_the_first_failure():
    aws = Scripted()
    aws.no_stack()
    aws.create_change_set()
    aws.change_set("CREATE_COMPLETE")
    aws.change_set("CREATE_COMPLETE")
    aws.stub.add_response("execute_change_set", {})
    aws.stack("ROLLBACK_COMPLETE")  # the waiter's failure state
    aws.stack("ROLLBACK_COMPLETE")
    event = {"StackId": "stack", "EventId": "1", "StackName": STACK, "Timestamp": CREATED}
    events = [
        {**event, "LogicalResourceId": STACK, "ResourceStatus": "ROLLBACK_COMPLETE"},
        {**event, "LogicalResourceId": "Bucket", "ResourceStatus": "CREATE_FAILED", "ResourceStatusReason": "exists"},
    ]
    aws.stub.add_response("describe_stack_events", {"StackEvents": events})
    with aws.stub, pytest.raises(RunFailed) as failed:
        aws.deployer(poll_seconds=0).run([STEP])
    assert str(failed.value) == f"stack {STACK} (client hospital-a) ended ROLLBACK_COMPLETE: Bucket: exists"


def test_a_change_set_that_never_finishes_fails_after_the_time_limit():
    aws = Scripted()
    aws.no_stack()
    aws.create_change_set()
    aws.change_set("CREATE_IN_PROGRESS")  # one poll fits in the limit
    aws.change_set("CREATE_IN_PROGRESS")
    with aws.stub, pytest.raises(RunFailed) as failed:
        aws.deployer(poll_seconds=0, timeout_seconds=0).run([STEP])
    assert str(failed.value) == f"change set for stack {STACK} failed: still CREATE_IN_PROGRESS after 0 s"


def test_a_stackset_operation_is_polled_within_the_time_limit():
    aws = Scripted()
    aws.stub.add_response("create_stack_instances", {"OperationId": "op-1"})
    for _ in range(3):  # the limit: 3 polls
        aws.stub.add_response("describe_stack_set_operation", {"StackSetOperation": {"Status": "RUNNING"}})
    with aws.stub, pytest.raises(RunFailed) as failed:
        aws.deployer(poll_seconds=0, timeout_seconds=3).run([INSTANCE])
    aws.stub.assert_no_pending_responses()
    assert "operation op-1 is still RUNNING after 3 s" in str(failed.value)
    assert aws.seen.count("StackSet operation RUNNING") == 3
