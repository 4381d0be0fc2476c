"""The Flower NumPyClient on its own: the statistics phase, fit and evaluate without a server."""

import json

import numpy as np
import pytest

from client_code.client import Channel, FederationClient, RefusingClient
from client_code.models.logistic import LogisticHyperparameters
from client_code.schema import feature_names
from client_code.tabular import DataError, feature_fingerprint, read_channel


def _channel(name, folder):
    frame, info = read_channel(folder)
    return Channel(name, frame, info)


def _ask(client, phase, payload):
    answer = client.get_properties({"fedsage": phase, "payload": json.dumps(payload)})
    assert "error" not in answer, answer
    return json.loads(answer["payload"])


@pytest.fixture
def client(prepared):
    folders = prepared.clients[0]
    client = FederationClient(
        _channel("train", folders.train),
        _channel("validation", folders.validation),
        hyperparameters=LogisticHyperparameters(max_iter=5),
        balance_method="none",
    )
    report = _ask(client, "schema", prepared.schema)
    _ask(client, "train", {"class_counts": report["class_counts"]})
    return client


def test_the_schema_phase_reports_counts_rows_files_and_the_fingerprint(prepared):
    folders = prepared.clients[0]
    client = FederationClient(_channel("train", folders.train), _channel("validation", folders.validation))
    report = _ask(client, "schema", prepared.schema)
    frame, _ = read_channel(folders.train)
    label = prepared.label
    assert report["class_counts"] == {str(c): int((frame[label] == str(c)).sum()) for c in prepared.classes}
    assert report["rows"] == {"train": len(frame), "validation": len(read_channel(folders.validation)[0])}
    assert report["files"] == {"train": 1, "validation": 1}
    assert report["features"] == feature_fingerprint(feature_names(prepared.schema))
    assert report["unseen"] == {"train": {}, "validation": {}}
    trained = _ask(client, "train", {"class_counts": report["class_counts"]})["trained_counts"]
    counts = report["class_counts"]
    majority = max(counts.values())
    assert trained == {c: float(majority) for c in counts}  # SMOTE (the default) raises the minority to the majority


def test_a_round_before_the_schema_is_refused(prepared):
    client = FederationClient(_channel("train", prepared.clients[0].train))
    with pytest.raises(DataError, match="before the statistics phase"):
        client.fit([np.zeros((1, 3)), np.zeros(1)], {})


def test_a_data_problem_in_the_phase_is_an_error_answer_not_a_crash(prepared, tmp_path):
    (tmp_path / "a.csv").write_text("x,y\n1,0\n,1\n")
    frame, info = read_channel(tmp_path)
    client = FederationClient(Channel("train", frame, info))
    answer = client.get_properties(
        {"fedsage": "statistics", "payload": json.dumps({"label": "y", "salt": "s", "drop": []})}
    )
    assert answer == {
        "error": "train data: column 'x' has an empty cell (a.csv line 3); "
        "fill it or drop the row (fedsage does not impute)"
    }
    assert "unknown request" in client.get_properties({"fedsage": "nonsense"})["error"]


def test_fit_returns_parameters_example_count_and_train_metrics(client):
    zeros = client.get_parameters({})
    params, n, metrics = client.fit(zeros, {"server_round": 1})
    assert [p.shape for p in params] == [p.shape for p in zeros]
    assert any(p.any() for p in params)
    assert n == len(client.train)
    assert set(metrics) == {"train_loss", "train_accuracy", "fit_seconds", "features"}  # nothing else leaves
    assert metrics["features"] == feature_fingerprint(client.train.feature_names)
    assert metrics["train_loss"] < np.log(2)


def test_fit_warm_starts_from_the_global_parameters(client):
    params, _, first = client.fit(client.get_parameters({}), {})
    for _ in range(3):
        params, _, metrics = client.fit(params, {})
    assert metrics["train_loss"] <= first["train_loss"]
    assert client.rounds_trained == 4


def test_evaluate_scores_the_given_parameters_on_the_validation_channel(client):
    zeros = client.get_parameters({})
    loss, n, metrics = client.evaluate(zeros, {})
    assert loss == pytest.approx(np.log(2)) and n == len(client.validation)
    assert metrics["split"] == "validation"
    trained, _, _ = client.fit(zeros, {})
    better, _, _ = client.evaluate(trained, {})
    assert better < loss
    assert all(np.array_equal(a, b) for a, b in zip(client.global_parameters, trained, strict=True))


def test_without_validation_data_no_gain_is_reported_from_the_training_rows(prepared):
    client = FederationClient(
        _channel("train", prepared.clients[0].train),
        hyperparameters=LogisticHyperparameters(max_iter=5),
        balance_method="none",
    )
    report = _ask(client, "schema", prepared.schema)
    _ask(client, "train", {"class_counts": report["class_counts"]})
    trained, _, _ = client.fit(client.get_parameters({}), {})
    loss, n, metrics = client.evaluate(trained, {})
    assert n == len(client.train) and metrics["split"] == "train" and loss < np.log(2)
    assert not [name for name in metrics if name.startswith(("local_", "federated_"))]


def test_the_saved_global_model_carries_the_prior_correction(client):
    trained, _, _ = client.fit(client.get_parameters({}), {})
    prior = {"true": {"0": 9.0, "1": 1.0}, "trained": {"0": 1.0, "1": 1.0}}
    client.evaluate(trained, {"prior": json.dumps(prior)})
    corrected = client.global_model().intercept_[0]
    assert corrected == pytest.approx(trained[1][0] + np.log(1 / 9))


def test_global_parameters_that_do_not_fit_the_data_are_refused(client):
    wrong = [np.zeros((1, 3)), np.zeros(1)]
    with pytest.raises(DataError, match=r"the global model sent \[\(1, 3\), \(1,\)\]"):
        client.fit(wrong, {})


def test_global_parameters_with_nan_are_refused(client):
    params = client.get_parameters({})
    params[0][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        client.fit(params, {})


def test_the_server_leaves_out_gains_scored_on_training_rows():
    from orchestrator.federation.history import RoundRecord, RunHistory

    scores = {"federated_roc_auc": 0.9, "local_roc_auc": 0.8}
    history = RunHistory(
        [
            RoundRecord(
                1,
                {"loss": 0.3},
                {"a": {"split": "validation", **scores}, "b": {"split": "train", **scores}},
            )
        ]
    )
    gains = history.client_gains("binary")
    assert list(gains) == ["a"]
    assert gains["a"]["roc_auc"]["gain"] == pytest.approx(0.1)


def test_a_client_that_could_not_read_its_data_refuses_every_phase_with_the_reason():
    client = RefusingClient("train data: a.csv is not a readable CSV file (Expected 2 fields in line 3, saw 3)")
    for phase in ("statistics", "levels", "schema", "train"):
        answer = client.get_properties({"fedsage": phase, "payload": "{}"})
        assert answer == {"error": "train data: a.csv is not a readable CSV file (Expected 2 fields in line 3, saw 3)"}
    assert client.instructions_received == 4  # it joined: the transport counts it as joined
    with pytest.raises(DataError, match="not a readable CSV file"):
        client.fit([np.zeros(1)], {})
