"""Deploy the plan through boto3: each stack through a change set, StackSets through their operations.

Stacks and change sets are waited for with boto3's CloudFormation waiters (change_set_create_complete,
stack_create_complete, stack_update_complete), bounded by `Deployer.timeout_seconds`; StackSet
operations have no waiter in botocore, so `_wait_operation` polls them in a loop with the same bound.
"""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, WaiterError

from orchestrator.errors import BadInput, RunFailed
from orchestrator.infra.plan import (
    CAPABILITIES,
    FEDERATION_TAG,
    INFRA_DIR,
    Account,
    InfraOptions,
    Output,
    StackStep,
    Value,
)

if TYPE_CHECKING:  # pydantic loads only when a command runs
    from orchestrator.config import Federation

Progress = Callable[[StackStep, str], None]
SessionFor = Callable[[Account], Any]
# boto3's stack waiters give up after 120 polls 30 s apart; a stack with a NAT gateway or a notebook
# instance takes minutes, never an hour.
TIMEOUT_SECONDS = 3600.0
NO_CHANGES = ("didn't contain changes", "No updates")  # CloudFormation's StatusReason for an empty change set
OPERATION_RUNNING = ("RUNNING", "QUEUED", "STOPPING")  # StackSet operation states that are not final yet


@dataclass
class Deployer:
    """Runs the steps through boto3, in order, and remembers every stack's outputs.

    `session_for` opens a boto3 session for an Account; `progress(step, status)` hears each step's
    state ("starting", ..., "done"). Waits poll every `poll_seconds` for at most `timeout_seconds`.
    """

    session_for: SessionFor
    options: InfraOptions
    progress: Progress
    poll_seconds: float = 5.0
    timeout_seconds: float = TIMEOUT_SECONDS
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    _prefix_lists: dict[str, str] = field(default_factory=dict)

    def run(self, steps: list[StackStep]) -> dict[str, dict[str, str]]:
        """Deploy every step; return each step's stack outputs by step key. Raises RunFailed on a failed step."""
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
        """A step's parameters ([{ParameterKey, ParameterValue}, ...]) with every looked-up value resolved."""
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

    def _attempts(self) -> int:
        """How many polls fit in timeout_seconds (at least one; polls under a second count as a second)."""
        return max(1, math.ceil(self.timeout_seconds / max(self.poll_seconds, 1.0)))

    def _wait(self, cfn: Any, waiter: str, **request: Any) -> None:
        """Wait with one of boto3's CloudFormation waiters; the caller reads the outcome (WaiterError is not raised)."""
        limits = {"Delay": self.poll_seconds, "MaxAttempts": self._attempts()}
        with contextlib.suppress(WaiterError):  # a failure state or the time limit: the caller reads which
            cfn.get_waiter(waiter).wait(**request, WaiterConfig=limits)

    def _settled_stack(self, cfn: Any, step: StackStep, created: bool) -> dict[str, Any]:
        """Wait for a stack to finish creating or updating; return it, or raise RunFailed with the first failure."""
        stack = step.stack_name
        self._wait(cfn, "stack_create_complete" if created else "stack_update_complete", StackName=stack)
        description = cfn.describe_stacks(StackName=stack)["Stacks"][0]
        status = description["StackStatus"]
        if status in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
            return description
        if status.endswith("IN_PROGRESS"):
            raise RunFailed(
                f"stack {stack} ({step.title}) is still {status} after {self.timeout_seconds:.0f} s; "
                "follow it in the CloudFormation console, then deploy again"
            )
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
        # a stack left in REVIEW_IN_PROGRESS by an unexecuted change set is still created, not updated
        created = not existing or existing == "REVIEW_IN_PROGRESS"
        change_set = {"StackName": step.stack_name, "ChangeSetName": f"fedsage-{uuid.uuid4().hex[:16]}"}
        cfn.create_change_set(
            **change_set,
            ChangeSetType="CREATE" if created else "UPDATE",
            TemplateBody=(INFRA_DIR / step.template).read_text(),
            Parameters=parameters,
            Capabilities=CAPABILITIES,
            Tags=[{"Key": FEDERATION_TAG, "Value": step.federation}],
        )
        self.progress(step, "creating the change set")
        self._wait(cfn, "change_set_create_complete", **change_set)
        change = cfn.describe_change_set(**change_set)
        status = change["Status"]
        if status != "CREATE_COMPLETE":
            waited = f"still {status} after {self.timeout_seconds:.0f} s" if status != "FAILED" else "no reason given"
            reason = change.get("StatusReason") or waited
            if any(text in reason for text in NO_CHANGES):
                cfn.delete_change_set(**change_set)
                self.progress(step, "no changes")
                return _outputs(cfn.describe_stacks(StackName=step.stack_name)["Stacks"][0])
            raise RunFailed(f"change set for stack {step.stack_name} failed: {reason}")
        cfn.execute_change_set(**change_set)
        self.progress(step, "creating the stack" if created else "updating the stack")
        return _outputs(self._settled_stack(cfn, step, created))

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
        """Poll a StackSet operation until it ends; RunFailed unless it SUCCEEDED within timeout_seconds.

        A loop, not a waiter: botocore's CloudFormation waiters cover stacks, change sets, imports,
        refactors and type registrations, but not DescribeStackSetOperation.
        """
        status = "QUEUED"
        for attempt in range(self._attempts()):
            if attempt:
                time.sleep(self.poll_seconds)
            status = cfn.describe_stack_set_operation(StackSetName=step.stack_name, OperationId=operation, **call_as)[
                "StackSetOperation"
            ]["Status"]
            self.progress(step, f"StackSet operation {status}")
            if status not in OPERATION_RUNNING:
                break
        if status in OPERATION_RUNNING:
            raise RunFailed(
                f"StackSet {step.stack_name} operation {operation} is still {status} after "
                f"{self.timeout_seconds:.0f} s ({step.title}); follow it in the CloudFormation console"
            )
        if status != "SUCCEEDED":
            raise RunFailed(f"StackSet {step.stack_name} operation {operation} ended {status} ({step.title})")


def _stack_status(cfn: Any, name: str) -> str | None:
    """A stack's status, or None if there is no such stack."""
    try:
        return cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise


def _outputs(stack: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def profile_sessions(federation: Federation) -> SessionFor:
    """Sessions from each account's profile, checked to be in the account the config names.

    Raises BadInput when a profile is missing or reaches another account than the config says.
    """
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


def next_steps(federation: Federation, outputs: dict[str, dict[str, str]]) -> list[str]:
    """federation.toml keys to set from the deployed stacks' outputs (outputs by step key), one line each."""
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
