"""plan.py: the CreateTrainingJob request of every client, built from the config alone."""

import base64
import json

from orchestrator import config
from orchestrator.plan import RunContext, client_of, plan, redacted


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
    label="potential_fraud",
    classes=[0, 1],
    code_uri="s3://code/source.tar.gz",
    output_uri={"hospital-a": "s3://a/out/", "hospital-b": "s3://b/out/"},
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
    assert hp["sagemaker_program"] == "train.py"
    assert hp["sagemaker_submit_directory"] == "s3://code/source.tar.gz"
    assert hp["server-address"] == "10.0.0.10:8080"
    assert hp["client-name"] == "hospital-a" and hp["client-token"] == "token-a"
    assert base64.b64decode(hp["root-certificate"]) == CONTEXT.root_certificate
    assert (hp["penalty"], hp["inverse-regularization"], hp["max-iter"]) == ("l1", 0.5, 7)
    assert (hp["label-column"], hp["classes"]) == ("potential_fraud", "0,1")
    assert all(len(key) > 1 for key in hp)  # one-letter keys would become -k arguments


def test_plan_is_pure():
    assert plan(_federation(), CONTEXT) == plan(_federation(), CONTEXT)


def test_redacted_copy_masks_only_the_token():
    request = plan(_federation(), CONTEXT)[0]
    safe = redacted(request)
    assert json.loads(safe["HyperParameters"]["client-token"]) == "***"
    assert request["HyperParameters"]["client-token"] == json.dumps("token-a")
    assert "token-a" not in json.dumps(safe)


def test_a_value_that_would_read_as_an_option_is_refused():
    import pytest

    from orchestrator.errors import BadInput

    with pytest.raises(BadInput, match="label-column = '-fraud' starts with '-'"):
        plan(_federation(), RunContext(**{**CONTEXT.__dict__, "label": "-fraud"}))
