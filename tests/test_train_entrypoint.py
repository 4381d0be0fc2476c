"""client_code/train.py as the container runs it: failures go to the failure file and the exit code."""

import base64

import pytest
from conftest import free_port

from client_code import train
from orchestrator.federation import tls


@pytest.fixture
def container(tmp_path, monkeypatch, prepared):
    """SM_* environment of an emulated container whose train channel is a prepared client folder."""
    monkeypatch.setenv("SM_OUTPUT_DIR", str(tmp_path / "output"))
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "model"))
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(prepared.clients[0].train))
    monkeypatch.delenv("SM_CHANNEL_VALIDATION", raising=False)
    monkeypatch.setenv("FEDSAGE_CLIENT_TOKEN", "t" * 64)
    return tmp_path


def _args(**overrides):
    values = {
        "server-address": f"127.0.0.1:{free_port()}",
        "client-name": "client-1",
        "root-certificate": base64.b64encode(tls.generate(["127.0.0.1"]).ca_certificate).decode(),
        "connect-timeout": "1",
    }
    values.update(overrides)
    return [part for key, value in values.items() if value is not None for part in (f"--{key}", value)]


def _failure(container):
    return (container / "output" / "failure").read_text()


def test_missing_hyperparameter_is_bad_input(container):
    assert train.main(_args(**{"server-address": None})) == 2
    assert _failure(container) == "bad hyperparameters: the following arguments are required: --server-address\n"


def test_invalid_hyperparameter_value_is_bad_input(container):
    assert train.main(_args(**{"max-iter": "0"})) == 2
    assert _failure(container) == (
        "bad hyperparameters: --max-iter (logistic model): Input should be greater than or equal to 1\n"
    )


def test_a_key_of_another_model_family_is_bad_input(container):
    assert train.main(_args(**{"hidden-layer-sizes": "8"})) == 2
    assert "--hidden-layer-sizes (logistic model): Extra inputs are not permitted" in _failure(container)
    assert train.main(_args(model="forest")) == 2
    assert "--model: unknown model kind 'forest'; choose one of logistic, sgd, mlp, linear" in _failure(container)


def test_a_smote_ratio_above_one_is_bad_input(container):
    assert train.main(_args(**{"smote-ratio": "1.5"})) == 2
    assert _failure(container) == "bad hyperparameters: --smote-ratio must be in (0, 1], got 1.5\n"


def test_a_channel_without_csv_files_is_bad_input(container, monkeypatch, tmp_path):
    (tmp_path / "empty-channel").mkdir()
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(tmp_path / "empty-channel"))
    assert train.main(_args()) == 2
    assert "holds no .csv files (searched every subfolder)" in _failure(container)
    assert _failure(container).count("\n") == 1


def test_a_file_that_cannot_be_parsed_is_bad_input_named_in_the_channel_even_without_a_server(
    container, monkeypatch, tmp_path
):
    """The job joins to refuse it (client.RefusingClient); with no server to tell, its failure still names it."""
    channel = tmp_path / "channel"
    (channel / "part").mkdir(parents=True)
    (channel / "part" / "a.csv").write_text("x,y\n1,0\n2,1,9\n")
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(channel))
    assert train.main(_args()) == 2
    assert _failure(container).startswith("train data: part/a.csv is not a readable CSV file (")
    assert "line 3" in _failure(container)


def test_missing_train_channel_is_bad_input(container, monkeypatch, tmp_path):
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(tmp_path / "nowhere"))
    assert train.main(_args()) == 2
    assert "does not exist" in _failure(container)


def test_unreachable_server_is_a_runtime_failure_after_the_connect_timeout(container):
    assert train.main(_args()) == 1
    reason = _failure(container)
    assert reason.startswith("ServerUnreachable: could not reach the server at 127.0.0.1:")
    assert "within 1 s" in reason
    assert not (container / "model" / "model.joblib").exists()


def test_a_job_without_its_token_in_the_environment_is_bad_input(container, monkeypatch):
    monkeypatch.delenv("FEDSAGE_CLIENT_TOKEN")
    assert train.main(_args()) == 2
    assert "environment has no FEDSAGE_CLIENT_TOKEN" in _failure(container)


def test_the_token_is_read_from_the_environment_and_removed_from_it(container, monkeypatch):
    """Nothing the client starts inherits the token; it never was an argument."""
    args = train.parse_args(_args())
    assert args.client_token == "t" * 64
    assert "FEDSAGE_CLIENT_TOKEN" not in __import__("os").environ
    with pytest.raises(train.BadHyperparameter, match="--client-token .*Extra inputs are not permitted"):
        monkeypatch.setenv("FEDSAGE_CLIENT_TOKEN", "t" * 64)
        train.parse_args([*_args(), "--client-token", "t" * 64])
