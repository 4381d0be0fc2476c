"""Federation config -> one TrainingJobRequest per client. Pure: no I/O, no clock, no randomness.

A TrainingJobRequest is exactly the body of SageMaker's CreateTrainingJob call. It is built
once, here, and every backend consumes the same object: the SageMaker backend sends it, the
local and docker backends execute it the way the SageMaker scikit-learn container would.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, TypedDict

from client_code import utils
from orchestrator.config import Federation
from orchestrator.errors import BadInput

PROGRAM = "train.py"
RUN_ID_TAG = "fedsage:run-id"
CLIENT_TAG = "fedsage:client"
TOKEN_HYPERPARAMETER = "client-token"
REDACTED = "***"


class TrainingJobRequest(TypedDict, total=False):
    """The CreateTrainingJob request body (the subset of keys fedsage sets)."""

    TrainingJobName: str
    AlgorithmSpecification: dict[str, Any]
    HyperParameters: dict[str, str]
    RoleArn: str
    InputDataConfig: list[dict[str, Any]]
    OutputDataConfig: dict[str, Any]
    ResourceConfig: dict[str, Any]
    VpcConfig: dict[str, Any]
    StoppingCondition: dict[str, Any]
    Tags: list[dict[str, str]]


@dataclass(frozen=True)
class RunContext:
    """What one run adds to the config: its id, the server's address, and per-client secrets."""

    run_id: str
    server_address: str
    root_certificate: bytes
    tokens: dict[str, str]
    label: str
    classes: list[Any]
    code_uri: str
    output_uri: dict[str, str]
    image: str = "local"


def job_name(prefix: str, run_id: str, client: str) -> str:
    """The training job name of one client in one run: <prefix>-<run id>-<client>."""
    return f"{prefix}-{run_id}-{client}"


def _hyperparameters(federation: Federation, context: RunContext, client: str) -> dict[str, str]:
    """Script-mode hyperparameters, JSON-encoded as the SageMaker Python SDK does."""
    model = federation.model
    values: dict[str, Any] = {
        "sagemaker_program": PROGRAM,
        "sagemaker_submit_directory": context.code_uri,
        "sagemaker_container_log_level": 20,
        "server-address": context.server_address,
        "client-name": client,
        TOKEN_HYPERPARAMETER: context.tokens[client],
        "root-certificate": base64.b64encode(context.root_certificate).decode(),
        "label-column": context.label,
        "classes": utils.format_classes(context.classes),
        "penalty": model.penalty,
        "inverse-regularization": model.c,
        "l1-ratio": model.l1_ratio,
        "max-iter": model.max_iter,
        "connect-timeout": federation.federation.join_timeout,
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


def plan(federation: Federation, context: RunContext) -> list[TrainingJobRequest]:
    """Build the training job request of every client, in config order."""
    requests = []
    for client in federation.clients:
        channels = [_channel("train", client.train_uri)]
        if client.validation_uri:
            channels.append(_channel("validation", client.validation_uri))
        requests.append(
            TrainingJobRequest(
                TrainingJobName=job_name(federation.federation.name, context.run_id, client.name),
                AlgorithmSpecification={"TrainingImage": context.image, "TrainingInputMode": "File"},
                HyperParameters=_hyperparameters(federation, context, client.name),
                InputDataConfig=channels,
                OutputDataConfig={"S3OutputPath": context.output_uri[client.name]},
                ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
                StoppingCondition={
                    "MaxRuntimeInSeconds": int(
                        federation.federation.join_timeout
                        + federation.federation.rounds * federation.federation.round_timeout
                    )
                },
                Tags=[
                    {"Key": RUN_ID_TAG, "Value": context.run_id},
                    {"Key": CLIENT_TAG, "Value": client.name},
                ],
            )
        )
    return requests


def client_of(request: TrainingJobRequest) -> str:
    """The client a request belongs to, from its tags."""
    return next(tag["Value"] for tag in request["Tags"] if tag["Key"] == CLIENT_TAG)


def redacted(request: TrainingJobRequest) -> TrainingJobRequest:
    """A copy safe to print or write to disk: the client token is masked."""
    copy = json.loads(json.dumps(request))
    if TOKEN_HYPERPARAMETER in copy.get("HyperParameters", {}):
        copy["HyperParameters"][TOKEN_HYPERPARAMETER] = json.dumps(REDACTED)
    return copy
