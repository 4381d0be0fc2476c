"""plan.py: the CreateTrainingJob request of every client, built from the config alone."""

import base64
import json

import pytest

from orchestrator import config
from orchestrator.errors import BadInput
from orchestrator.plan import JobPlacement, RunContext, client_of, plan, redacted


def _federation(**overrides):
    data = {
        "federation": {"name": "fraud", "rounds": 3},
        "model": {"penalty": "l1", "c": 0.5, "max_iter": 7},
        "server": {"test_data": "test.csv"},
        "clients": [
            {"name": "hospital-a", "train_uri": "s3://a/train/", "validation_uri": "s3://a/val/"},
            {"name": "hospital-b", "train_uri": "s3://b/train/"},
        ],
    }
    data.update(overrides)
    return config.parse(data)


CONTEXT = RunContext(
    run_id="20261121-101500-a1b2",
    server_address="10.0.0.10:8080",
    root_certificate=b"-----BEGIN CERTIFICATE-----\n",
    tokens={"hospital-a": "token-a", "hospital-b": "token-b"},
    placements={
        "hospital-a": JobPlacement("s3://code/source.tar.gz", "s3://a/out/", "image-a"),
        "hospital-b": JobPlacement("s3://code-b/source.tar.gz", "s3://b/out/", "image-b"),
    },
)


def test_one_request_per_client_with_its_own_channels_token_and_tags():
    requests = plan(_federation(), CONTEXT)
    assert [r["TrainingJobName"] for r in requests] == [
        "fraud-20261121-101500-a1b2-hospital-a",
        "fraud-20261121-101500-a1b2-hospital-b",
    ]
    a, b = requests
    assert [c["ChannelName"] for c in a["InputDataConfig"]] == ["train", "validation"]
    assert [c["ChannelName"] for c in b["InputDataConfig"]] == ["train"]
    assert b["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://b/train/"
    assert b["OutputDataConfig"] == {"S3OutputPath": "s3://b/out/"}
    assert {t["Key"]: t["Value"] for t in a["Tags"]} == {
        "fedsage:run-id": CONTEXT.run_id,
        "fedsage:client": "hospital-a",
    }
    assert client_of(b) == "hospital-b"


def test_hyperparameters_are_json_encoded_script_mode_arguments():
    hp = {k: json.loads(v) for k, v in plan(_federation(), CONTEXT)[0]["HyperParameters"].items()}
    assert hp["sagemaker_program"] == "fedsage_client.py"
    assert hp["sagemaker_submit_directory"] == "s3://code/source.tar.gz"
    assert hp["server-address"] == "10.0.0.10:8080"
    assert hp["client-name"] == "hospital-a" and "client-token" not in hp  # arguments are readable by any local user
    assert hp["connect-timeout"] == 60.0  # independent of the join timeout: a gone server stops the job soon
    assert base64.b64decode(hp["root-certificate"]) == CONTEXT.root_certificate
    assert (hp["penalty"], hp["inverse-regularization"], hp["max-iter"]) == ("l1", 0.5, 7)
    assert (hp["balance"], hp["smote-ratio"]) == ("smote", 1.0)
    assert "label-column" not in hp and "classes" not in hp  # the statistics phase sends them, JSON end to end
    assert all(len(key) > 1 for key in hp)  # one-letter keys would become -k arguments


def test_plan_is_pure():
    assert plan(_federation(), CONTEXT) == plan(_federation(), CONTEXT)


def test_the_token_travels_in_the_environment_and_the_redacted_copy_masks_only_it():
    """Issue 10, item 1: the token is an environment variable of the job, never a hyperparameter."""
    request = plan(_federation(), CONTEXT)[0]
    assert request["Environment"]["FEDSAGE_CLIENT_TOKEN"] == "token-a"
    assert "token-a" not in json.dumps(request["HyperParameters"])
    safe = redacted(request)
    assert safe["Environment"]["FEDSAGE_CLIENT_TOKEN"] == "***"
    assert "token-a" not in json.dumps(safe)
    assert {k: v for k, v in safe.items() if k != "Environment"} == {
        k: v for k, v in request.items() if k != "Environment"
    }


def test_a_value_that_would_read_as_an_option_is_refused():
    with pytest.raises(BadInput, match="server-address = '-x:1' starts with '-'"):
        plan(_federation(), RunContext(**{**CONTEXT.__dict__, "server_address": "-x:1"}))


CLOUD_CLIENT = {
    "name": "hospital-a",
    "train_uri": "s3://a/train/",
    "account_id": "222222222222",
    "region": "eu-west-1",
    "kickoff_role_arn": "arn:aws:iam::222222222222:role/FL-kickoff-client-job",
    "external_id": "ext",
    "execution_role_arn": "arn:aws:iam::222222222222:role/FL-sagemaker-execution",
    "code_uri": "s3://a/code/source.tar.gz",
    "output_uri": "s3://a/out/",
    "instance_type": "ml.c5.xlarge",
    "volume_size_gb": 50,
    "subnets": ["subnet-01", "subnet-02"],
    "security_groups": ["sg-01"],
    "kms_key_id": "arn:aws:kms:eu-west-1:222222222222:key/k",
    "tags": {"team": "fraud"},
}


def _cloud(**client_changes):
    """A cloud federation of hospital-a (CLOUD_CLIENT with `client_changes`) and hospital-b, in another account."""
    other = {
        key: value.replace("222222222222", "333333333333").replace("s3://a/", "s3://b/")
        if isinstance(value, str)
        else value
        for key, value in CLOUD_CLIENT.items()
    }
    return _federation(clients=[{**CLOUD_CLIENT, **client_changes}, {**other, "name": "hospital-b"}])


def test_cloud_request_carries_role_network_resources_encryption_and_tags():
    request, _ = plan(_cloud(), CONTEXT)
    assert request["RoleArn"] == CLOUD_CLIENT["execution_role_arn"]
    assert request["AlgorithmSpecification"] == {"TrainingImage": "image-a", "TrainingInputMode": "File"}
    assert request["VpcConfig"] == {"SecurityGroupIds": ["sg-01"], "Subnets": ["subnet-01", "subnet-02"]}
    assert request["ResourceConfig"] == {
        "InstanceType": "ml.c5.xlarge",
        "InstanceCount": 1,
        "VolumeSizeInGB": 50,
        "VolumeKmsKeyId": CLOUD_CLIENT["kms_key_id"],
    }
    assert request["OutputDataConfig"] == {"S3OutputPath": "s3://a/out/", "KmsKeyId": CLOUD_CLIENT["kms_key_id"]}
    assert request["Tags"][2:] == [{"Key": "team", "Value": "fraud"}]
    assert json.loads(request["HyperParameters"]["sagemaker_region"]) == "eu-west-1"
    # join timeout + 3 rounds x round timeout, from the config defaults
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 300 + 3 * 600}
    assert "EnableManagedSpotTraining" not in request


@pytest.mark.parametrize(
    ("federation", "context_changes", "message"),
    [
        (
            _cloud(),
            {"run_id": "r" * 50},
            r"training job name .* \(67 characters\) breaks SageMaker's rule",
        ),
        (
            _cloud(),
            {"root_certificate": b"x" * 2000},
            "hyperparameter root-certificate is 2,670 characters; SageMaker allows 2,500: use a CA with an EC key",
        ),
        (_cloud(tags={f"k{i}": "v" for i in range(49)}), {}, "51 tags; SageMaker allows 50"),
    ],
)
def test_sagemaker_limits_are_enforced_before_any_call(federation, context_changes, message):
    context = RunContext(
        **{
            **CONTEXT.__dict__,
            **context_changes,
            "tokens": {c.name: "t" for c in federation.clients},
            "placements": {c.name: CONTEXT.placements["hospital-a"] for c in federation.clients},
        }
    )
    with pytest.raises(BadInput, match=message):
        plan(federation, context)


def test_vpc_limits(monkeypatch):
    federation = _cloud()
    monkeypatch.setattr(federation.clients[0], "security_groups", [])
    with pytest.raises(BadInput, match="security_groups has 0 entries; SageMaker needs 1 to 5"):
        plan(federation, CONTEXT)
