"""Federation config -> one TrainingJobRequest per client. Pure: no I/O, no clock, no randomness.

A TrainingJobRequest is exactly the body of SageMaker's CreateTrainingJob call. It is built
once, here, and every backend consumes the same object: the SageMaker backend sends it, the
local backend executes it the way the SageMaker scikit-learn container would.

The client's token is in the request's Environment map (FEDSAGE_CLIENT_TOKEN), never in its
HyperParameters: the training toolkit turns every hyperparameter into a process argument, which any
local user can read, and SageMaker writes them to hyperparameters.json. `redacted` masks it.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict

from client_code.constants import ENTRY_POINT, TOKEN_ENVIRONMENT
from orchestrator import defaults
from orchestrator.config import ClientSettings, Federation
from orchestrator.errors import BadInput

PROGRAM = ENTRY_POINT  # the sagemaker_program (client_code/constants.py)
# Where the job's pip installs the archive's wheels (requirements.txt), apart from the image's own
# packages (the training toolkit pins protobuf, urllib3, python-dateutil and numpy below what the
# client needs): the toolkit runs `python -m pip install -r requirements.txt`, which honours every
# PIP_* variable, and the entry script (client_code/constants.py) puts PIP_TARGET first on its path.
DEPENDENCY_TARGET = "/opt/fedsage/deps"
ENVIRONMENT = {
    "PIP_TARGET": DEPENDENCY_TARGET,
    "PIP_NO_INDEX": "1",  # the wheels are vendored; a job in a private subnet has no index anyway
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",  # no call to PyPI for pip's own version
    # no byte-compiling of everything installed (pip's default, ~70% of the install): in the training
    # image on 2 cores the install takes 20-22 s instead of 63-76 s, and the client compiles only what
    # it imports (~5 s more at its start, the image setting PYTHONDONTWRITEBYTECODE). PIP_COMPILE=0 is
    # pip's --no-compile; PIP_NO_COMPILE=1 would compile (pip reads it as --no-compile's value, True)
    "PIP_COMPILE": "0",
    "FLWR_TELEMETRY_ENABLED": "0",  # nothing calls home from an account holding regulated data
}
RUN_ID_TAG = "fedsage:run-id"
CLIENT_TAG = "fedsage:client"
REDACTED = "***"


class TrainingJobRequest(TypedDict, total=False):
    """The CreateTrainingJob request body (the subset of keys fedsage sets)."""

    TrainingJobName: str
    AlgorithmSpecification: dict[str, Any]
    HyperParameters: dict[str, str]
    Environment: dict[str, str]
    RoleArn: str
    InputDataConfig: list[dict[str, Any]]
    OutputDataConfig: dict[str, Any]
    ResourceConfig: dict[str, Any]
    VpcConfig: dict[str, Any]
    StoppingCondition: dict[str, Any]
    Tags: list[dict[str, str]]


@dataclass(frozen=True)
class JobPlacement:
    """Where one client's job takes its code and image from and puts its model."""

    code_uri: str
    output_uri: str
    image: str


@dataclass(frozen=True)
class RunContext:
    """What one run adds to the config: its id, the server's address, per-client secrets and placements."""

    run_id: str
    server_address: str
    root_certificate: bytes
    tokens: dict[str, str]
    placements: dict[str, JobPlacement]


# SageMaker's own limits on CreateTrainingJob, checked before any call (moto does not check them).
JOB_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
MAX_HYPERPARAMETERS = 100
MAX_HYPERPARAMETER_KEY = 256
MAX_HYPERPARAMETER_VALUE = 2500
SECURITY_GROUPS = (1, 5)
SUBNETS = (1, 16)
MAX_TAGS = 50
MAX_RUNTIME_SECONDS = 28 * 24 * 3600
MAX_ENVIRONMENT = 100  # entries of Environment; keys and values up to 512 characters
MAX_ENVIRONMENT_TEXT = 512
ENVIRONMENT_KEY_PATTERN = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def job_name(prefix: str, run_id: str, client: str) -> str:
    """The training job name of one client in one run: <prefix>-<run id>-<client>."""
    return f"{prefix}-{run_id}-{client}"


def _hyperparameters(federation: Federation, context: RunContext, client: ClientSettings) -> dict[str, str]:
    """Script-mode hyperparameters, JSON-encoded as the SageMaker Python SDK does."""
    model = federation.model
    values: dict[str, Any] = {
        "sagemaker_program": PROGRAM,
        "sagemaker_submit_directory": context.placements[client.name].code_uri,
        "sagemaker_container_log_level": 20,
        **({"sagemaker_region": client.region} if client.region else {}),
        "server-address": context.server_address,
        "client-name": client.name,
        "root-certificate": base64.b64encode(context.root_certificate).decode(),
        **model.arguments(),  # --model KIND and that family's keys (config/model.py)
        "balance": model.balance,
        "smote-ratio": model.smote_ratio,
        "connect-timeout": defaults.CONNECT_TIMEOUT,
        "seed": federation.federation.seed,
    }
    for key, value in values.items():
        if isinstance(value, str) and value.startswith("-"):
            raise BadInput(
                f"hyperparameter {key} = {value!r} starts with '-', which the container would read as "
                "an option; rename it"
            )
    return {key: json.dumps(value) for key, value in values.items()}


def _channel(name: str, uri: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "ContentType": "text/csv",
        "InputMode": "File",
    }


def _stopping_condition(federation: Federation, client: ClientSettings) -> dict[str, int]:
    run = federation.federation
    runtime = client.max_runtime_seconds or int(run.join_timeout + run.rounds * run.round_timeout)
    return {"MaxRuntimeInSeconds": min(runtime, MAX_RUNTIME_SECONDS)}


def request_for(federation: Federation, context: RunContext, client: ClientSettings) -> TrainingJobRequest:
    """The CreateTrainingJob request of one client."""
    placement = context.placements[client.name]
    channels = [_channel("train", client.train_uri)]
    if client.validation_uri:
        channels.append(_channel("validation", client.validation_uri))
    resources: dict[str, Any] = {
        "InstanceType": client.instance_type,
        "InstanceCount": client.instance_count,
        "VolumeSizeInGB": client.volume_size_gb,
    }
    output: dict[str, Any] = {"S3OutputPath": placement.output_uri}
    if client.kms_key_id:
        resources["VolumeKmsKeyId"] = client.kms_key_id
        output["KmsKeyId"] = client.kms_key_id
    request = TrainingJobRequest(
        TrainingJobName=job_name(federation.federation.name, context.run_id, client.name),
        AlgorithmSpecification={"TrainingImage": placement.image, "TrainingInputMode": "File"},
        HyperParameters=_hyperparameters(federation, context, client),
        Environment={**ENVIRONMENT, TOKEN_ENVIRONMENT: context.tokens[client.name]},
        InputDataConfig=channels,
        OutputDataConfig=output,
        ResourceConfig=resources,
        StoppingCondition=_stopping_condition(federation, client),
        Tags=[
            {"Key": RUN_ID_TAG, "Value": context.run_id},
            {"Key": CLIENT_TAG, "Value": client.name},
            *({"Key": key, "Value": value} for key, value in sorted(client.tags.items())),
        ],
    )
    if client.execution_role_arn:
        request["RoleArn"] = client.execution_role_arn
    if client.subnets or client.security_groups:
        request["VpcConfig"] = {"SecurityGroupIds": list(client.security_groups), "Subnets": list(client.subnets)}
    check_limits(request, client.name)
    return request


def check_limits(request: TrainingJobRequest, client: str) -> None:
    """Enforce SageMaker's CreateTrainingJob limits; BadInput naming the client, the limit and the fix."""
    where = f"client {client!r}"
    name = request["TrainingJobName"]
    if not JOB_NAME_PATTERN.match(name):
        raise BadInput(
            f"{where}: training job name {name!r} ({len(name)} characters) breaks SageMaker's rule "
            "(at most 63 letters, digits and hyphens); shorten [federation] name or the client name"
        )
    hyperparameters = request["HyperParameters"]
    if len(hyperparameters) > MAX_HYPERPARAMETERS:
        raise BadInput(f"{where}: {len(hyperparameters)} hyperparameters; SageMaker allows {MAX_HYPERPARAMETERS}")
    for key, value in hyperparameters.items():
        if len(key) > MAX_HYPERPARAMETER_KEY:
            raise BadInput(
                f"{where}: hyperparameter name {key[:40]!r}... is longer than {MAX_HYPERPARAMETER_KEY} characters"
            )
        if len(value) > MAX_HYPERPARAMETER_VALUE:
            hint = "use a CA with an EC key (its certificate is smaller)" if key == "root-certificate" else "shorten it"
            raise BadInput(
                f"{where}: hyperparameter {key} is {len(value):,} characters; SageMaker allows "
                f"{MAX_HYPERPARAMETER_VALUE:,}: {hint}"
            )
    environment = request.get("Environment", {})
    if len(environment) > MAX_ENVIRONMENT:
        raise BadInput(f"{where}: {len(environment)} environment variables; SageMaker allows {MAX_ENVIRONMENT}")
    for key, value in environment.items():
        if not ENVIRONMENT_KEY_PATTERN.match(key) or len(key) > MAX_ENVIRONMENT_TEXT:
            raise BadInput(f"{where}: environment variable name {key[:40]!r} is not a valid name")
        if len(value) > MAX_ENVIRONMENT_TEXT:
            raise BadInput(
                f"{where}: environment variable {key} is {len(value):,} characters; SageMaker allows "
                f"{MAX_ENVIRONMENT_TEXT}"
            )
    vpc = request.get("VpcConfig")
    if vpc is not None:
        for key, label, (low, high) in (
            ("SecurityGroupIds", "security_groups", SECURITY_GROUPS),
            ("Subnets", "subnets", SUBNETS),
        ):
            if not low <= len(vpc[key]) <= high:
                raise BadInput(f"{where}: {label} has {len(vpc[key])} entries; SageMaker needs {low} to {high}")
    if len(request["Tags"]) > MAX_TAGS:
        raise BadInput(f"{where}: {len(request['Tags'])} tags; SageMaker allows {MAX_TAGS} (fedsage uses 2)")


def plan(federation: Federation, context: RunContext) -> list[TrainingJobRequest]:
    """Build the training job request of every client, in config order."""
    return [request_for(federation, context, client) for client in federation.clients]


def plan_run(
    federation: Federation,
    placement: Callable[[ClientSettings], JobPlacement],
    *,
    run_id: str,
    server_address: str,
    root_certificate: bytes,
    tokens: dict[str, str],
) -> list[TrainingJobRequest]:
    """Every client's request for one run: the one planning step a run and a dry run share.

    `placement` is the backend's (Backend.placement); `server_address` is HOST:PORT as the
    clients dial it (config.host_port). The label, classes and schema are not in the requests:
    the clients receive them in the statistics phase. Raises BadInput if SageMaker would refuse a request.
    """
    context = RunContext(
        run_id=run_id,
        server_address=server_address,
        root_certificate=root_certificate,
        tokens=tokens,
        placements={client.name: placement(client) for client in federation.clients},
    )
    return plan(federation, context)


def _tag(tags: list[dict[str, str]], key: str) -> str | None:
    return next((tag["Value"] for tag in tags if tag["Key"] == key), None)


def client_of(request: TrainingJobRequest) -> str:
    """The client a request belongs to, from its fedsage:client tag."""
    client = _tag(request["Tags"], CLIENT_TAG)
    assert client is not None, "plan() tags every request"
    return client


def run_of(request: TrainingJobRequest | dict[str, Any]) -> str | None:
    """The run a request (or a described job's {"Tags": [...]}) belongs to: its fedsage:run-id tag, if any."""
    return _tag(request.get("Tags", []), RUN_ID_TAG)


def redacted(request: TrainingJobRequest) -> TrainingJobRequest:
    """A copy safe to print or write to disk: the client token (in the Environment map) is masked."""
    copy = json.loads(json.dumps(request))
    if TOKEN_ENVIRONMENT in copy.get("Environment", {}):
        copy["Environment"][TOKEN_ENVIRONMENT] = REDACTED
    return copy
