"""Render the plan: parameter files, a README and deploy.sh with the exact AWS CLI commands, in order.

`render` builds every file in memory and moves a finished folder into place, so a bad config
leaves nothing half-written. deploy.sh runs the same steps `fedsage infra deploy` runs through
boto3; values that only exist once an earlier stack is up (outputs, the S3 prefix list id) are
looked up by command substitution when the script runs.
"""

from __future__ import annotations

import json
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import BadInput
from orchestrator.infra.plan import (
    CAPABILITIES,
    FEDERATION_TAG,
    INFRA_DIR,
    TEMPLATES,
    Account,
    InfraOptions,
    Output,
    S3PrefixList,
    StackStep,
    Value,
    plan_stacks,
)

if TYPE_CHECKING:  # pydantic loads only when a command runs
    from orchestrator.config import Federation


def _profile_args(account: Account) -> list[str]:
    """--profile (when set) and --region for an AWS CLI call into an account."""
    return (["--profile", account.profile] if account.profile else []) + ["--region", account.region]


def _shell_value(value: Value, steps: dict[str, StackStep], options: InfraOptions) -> str:
    """A parameter value as a shell word: literal, or a command substitution that looks it up."""
    if isinstance(value, str):
        return shlex.quote(value)
    if isinstance(value, S3PrefixList):
        return f'"${value.variable()}"'
    step = steps[value.step]
    query = f"Stacks[0].Outputs[?OutputKey=='{value.name}'].OutputValue"
    if step.kind == "stack-instance":
        assert step.admin
        instance = shlex.join(
            [
                "aws",
                "cloudformation",
                "describe-stack-instance",
                *_profile_args(step.admin),
                *_call_as(options),
                "--stack-set-name",
                step.stack_name,
                "--stack-instance-account",
                step.account.account_id,
                "--stack-instance-region",
                step.account.region,
                "--query",
                "StackInstance.StackId",
                "--output",
                "text",
            ]
        )
        stack = f'"$({instance})"'
    else:
        stack = shlex.quote(step.stack_name)
    command = shlex.join(["aws", "cloudformation", "describe-stacks", *_profile_args(step.account)])
    return f'"$({command} --stack-name {stack} --query {shlex.quote(query)} --output text)"'


def _call_as(options: InfraOptions) -> list[str]:
    return ["--call-as", "DELEGATED_ADMIN"] if options.delegated_admin else []


def command(step: StackStep, steps: dict[str, StackStep], options: InfraOptions, templates: str) -> str:
    """The exact AWS CLI command (bash) that performs one step.

    `steps`: the plan's steps by outputs key (to look up outputs of earlier stacks); `templates`:
    the folder (a shell word) holding the templates. Returns one or more lines of bash.
    """
    values = {key: _shell_value(value, steps, options) for key, value in step.parameters.items()}
    template = f'"{templates}/{step.template}"'
    if step.kind == "stack":
        overrides = " \\\n    ".join(f"{key}={value}" for key, value in values.items())
        return (
            f"{shlex.join(['aws', 'cloudformation', 'deploy', *_profile_args(step.account)])} \\\n"
            f"  --stack-name {shlex.quote(step.stack_name)} --template-file {template} \\\n"
            f"  --capabilities {' '.join(CAPABILITIES)} --no-fail-on-empty-changeset \\\n"
            f"  --tags {FEDERATION_TAG}={shlex.quote(step.federation)} \\\n"
            f"  --parameter-overrides \\\n    {overrides}"
        )
    assert step.admin
    parameters = " \\\n    ".join(f"ParameterKey={key},ParameterValue={value}" for key, value in values.items())
    head = shlex.join(["aws", "cloudformation"])
    admin = shlex.join([*_profile_args(step.admin), *_call_as(options)])
    if step.kind == "stack-set":
        name = shlex.quote(step.stack_name)
        return (
            "# Creates the StackSet once; later template changes: update-stack-set (or fedsage infra deploy).\n"
            f"if ! {head} describe-stack-set {admin} --stack-set-name {name} >/dev/null 2>&1; then\n"
            f"{head} create-stack-set {admin} \\\n"
            f'  --stack-set-name {name} --template-body "file://{templates}/{step.template}" \\\n'
            "  --permission-model SERVICE_MANAGED \\\n"
            "  --auto-deployment Enabled=true,RetainStacksOnAccountRemoval=false \\\n"
            f"  --capabilities {' '.join(CAPABILITIES)} \\\n"
            f"  --parameters \\\n    {parameters}\nfi"
        )
    verb = "update-stack-instances" if step.update else "create-stack-instances"
    return (
        f"OPERATION=$({head} {verb} {admin} \\\n"
        f"  --stack-set-name {shlex.quote(step.stack_name)} \\\n"
        f"  --deployment-targets OrganizationalUnitIds={options.stackset_ou},Accounts={step.account.account_id},"
        "AccountFilterType=INTERSECTION \\\n"
        f"  --regions {step.account.region} \\\n"
        "  --operation-preferences FailureToleranceCount=0,MaxConcurrentCount=1 \\\n"
        f"  --query OperationId --output text \\\n  --parameter-overrides \\\n    {parameters})\n"
        f'wait_for_operation {shlex.quote(step.stack_name)} "$OPERATION" {admin}'
    )


def _script(steps: list[StackStep], options: InfraOptions) -> str:
    """deploy.sh: every step's command, numbered, in order."""
    by_key = {step.outputs_step(): step for step in steps if not step.update}
    lookups = {v.variable(): v.account for s in steps for v in s.parameters.values() if isinstance(v, S3PrefixList)}
    lines = [
        "#!/usr/bin/env bash",
        "# Deploys the federation's infrastructure, in order. Generated by `fedsage infra render`;",
        "# `fedsage infra deploy` runs the same steps through boto3. Each step needs the profile it names.",
        "set -euo pipefail",
        'HERE="$(cd "$(dirname "$0")" && pwd)"',
        "",
    ]
    if options.stackset_ou:
        lines += [
            "wait_for_operation() {  # stack set name, operation id, admin profile arguments...",
            '  local name="$1" operation="$2"; shift 2',
            "  while true; do",
            '    status=$(aws cloudformation describe-stack-set-operation "$@" --stack-set-name "$name" \\',
            '      --operation-id "$operation" --query StackSetOperation.Status --output text)',
            '    case "$status" in',
            "      SUCCEEDED) return 0 ;;",
            '      FAILED|STOPPED) echo "StackSet operation $operation: $status" >&2; return 1 ;;',
            "    esac",
            "    sleep 15",
            "  done",
            "}",
            "",
        ]
    lines.append("# The AWS-managed S3 prefix list of each client region, for the jobs' security group.")
    for variable, account in lookups.items():
        query = shlex.join(
            [
                "aws",
                "ec2",
                "describe-managed-prefix-lists",
                *_profile_args(account),
                "--filters",
                f"Name=prefix-list-name,Values=com.amazonaws.{account.region}.s3",
                "--query",
                "PrefixLists[0].PrefixListId",
                "--output",
                "text",
            ]
        )
        lines.append(f"{variable}=$({query})")
    for number, step in enumerate(steps, 1):
        where = f"account {step.account.account_id}" if step.account.account_id else "the organization"
        lines += ["", f"# {number}. {step.title} ({where}, {step.account.region})"]
        lines.append(f'echo "step {number}/{len(steps)}: {step.title}"')
        lines.append(command(step, by_key, options, "$HERE/templates"))
    return "\n".join(lines) + "\n"


def parameter_file(step: StackStep) -> list[dict[str, str]]:
    """A step's parameters in CloudFormation's JSON format ([{ParameterKey, ParameterValue}, ...]).

    Values known only at deploy time are described in <...>.
    """
    shown = []
    for key, value in step.parameters.items():
        if isinstance(value, Output):
            text = f"<output {value.name} of step {value.step}>"
        elif isinstance(value, S3PrefixList):
            text = f"<id of the prefix list com.amazonaws.{value.account.region}.s3>"
        else:
            text = value
        shown.append({"ParameterKey": key, "ParameterValue": text})
    return shown


def _step_file(step: StackStep) -> str:
    """Where a step's parameter file goes: one folder per account."""
    folder = f"{step.account.label}-{step.account.account_id}" if step.account.account_id else step.account.label
    suffix = "-route" if step.update else ""
    return f"{folder}/{step.stack_name}{suffix}.json"


def render(federation: Federation, options: InfraOptions, out: Path) -> list[StackStep]:
    """Write the templates, every stack's parameter file, deploy.sh and a README into `out`; return the steps.

    Raises BadInput when the config cannot be deployed or `out` exists and is not empty.

    Everything is built in memory and written to a fresh folder, so a bad config leaves nothing
    half-written.
    """
    steps = plan_stacks(federation, options)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInput(f"--out {out} already exists and is not empty; choose a new folder or remove it")
    files = {f"templates/{name}": (INFRA_DIR / name).read_text() for name in TEMPLATES}
    for step in steps:
        files[_step_file(step)] = json.dumps(parameter_file(step), indent=2) + "\n"
    files["deploy.sh"] = _script(steps, options)
    files["README.md"] = _readme(federation, steps)
    staging = Path(tempfile.mkdtemp(prefix=".fedsage-infra-", dir=out.parent if out.parent.exists() else None))
    try:
        for name, text in files.items():
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        (staging / "deploy.sh").chmod(0o755)
        if out.exists():
            out.rmdir()
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return steps


def _readme(federation: Federation, steps: list[StackStep]) -> str:
    """What the rendered folder holds, the order of the steps, and what to do after them."""
    lines = [
        f"# Infrastructure of federation {federation.federation.name}",
        "",
        "Run `./deploy.sh` (or `fedsage infra deploy -c federation.toml`, which runs the same steps",
        "with change sets). Each step needs the AWS profile it names; the folders hold each stack's",
        "parameters, one folder per account.",
        "",
        "| step | what | account | region | stack | parameters |",
        "|---|---|---|---|---|---|",
    ]
    for number, step in enumerate(steps, 1):
        account = step.account.account_id or "organization"
        lines.append(
            f"| {number} | {step.title} | {account} | {step.account.region} | {step.stack_name} | {_step_file(step)} |"
        )
    lines += [
        "",
        "Afterwards, copy the stacks' outputs into federation.toml (`fedsage infra deploy` prints them):",
        "[server] vpc_id, security_group and advertised_address (the host's private IP); per client",
        "subnets and security_groups. Then upload the fedsage wheel to the server bucket's wheelhouse/",
        "prefix, and run `fedsage doctor -c federation.toml`.",
        "",
    ]
    return "\n".join(lines)
