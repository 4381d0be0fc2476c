"""The Flower NumPyClient on its own: fit and evaluate without a server."""

import numpy as np
import pytest

from client_code.client import LogisticRegressionClient
from client_code.model import make_model, set_initial_params
from client_code.schema import load_data
from client_code.tabular import DataError, feature_fingerprint


@pytest.fixture
def client(prepared):
    schema, folders = prepared.schema, prepared.clients[0]
    train = load_data(folders.train, prepared.label, prepared.classes, schema)
    validation = load_data(folders.validation, prepared.label, prepared.classes, schema)
    model = set_initial_params(make_model(max_iter=5), len(train.feature_names), prepared.classes)
    return LogisticRegressionClient(model, train, validation)


def test_fit_returns_parameters_example_count_and_train_metrics(client):
    zeros = client.get_parameters({})
    params, n, metrics = client.fit(zeros, {"server_round": 1})
    assert [p.shape for p in params] == [p.shape for p in zeros]
    assert any(p.any() for p in params)
    assert n == len(client.train)
    assert set(metrics) == {"train_loss", "train_accuracy", "fit_seconds", "features"}
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


def test_global_parameters_that_do_not_fit_the_data_are_refused(client):
    wrong = [np.zeros((1, 3)), np.zeros(1)]
    with pytest.raises(DataError, match="global model expects 3"):
        client.fit(wrong, {})


def test_global_parameters_with_nan_are_refused(client):
    params = client.get_parameters({})
    params[0][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        client.fit(params, {})
