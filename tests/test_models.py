"""The model families behind one interface (client_code/models): shapes, exchange, rounds, FedProx, ridge, priors."""

import json

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from client_code import models
from client_code.metrics import classification_metrics, gain, regression_metrics, score
from client_code.models import linear
from client_code.models.logistic import fit_local, fit_proximal, make_model, set_initial_params
from client_code.statistics import compute_statistics, infer_task, merge_statistics
from client_code.tabular import DataError, Dataset

RNG = np.random.default_rng(11)
X = RNG.normal(size=(240, 4))
W = np.array([1.0, -2.0, 0.5, 0.0])
NAMES = [f"x{i}" for i in range(4)]
BINARY = Dataset(X, (X @ W + RNG.normal(size=240) > 0.3).astype(np.int64), NAMES)
MULTI = Dataset(X, np.digitize(X @ W, [-1.0, 1.0]).astype(np.int64), NAMES)
TEXT = Dataset(X, np.where(BINARY.y == 1, "yes", "no").astype(object), NAMES)
REGRESSION = Dataset(X, X @ W + 3.0 + 0.1 * RNG.normal(size=240), NAMES)


def _schema(task, classes=(), **extra):
    features = [{"name": n, "kind": "numeric", "mean": 0.0, "scale": 1.0} for n in NAMES]
    return {"label": "y", "task": task, "classes": list(classes), "features": features, **extra}


SCHEMAS = {
    "binary": _schema("binary", [0, 1], positive_class=1),
    "multiclass": _schema("multiclass", [0, 1, 2]),
    "regression": _schema("regression", label_stats={"count": 240, "mean": 3.0, "std": 2.0}),
}
DATA = {"binary": BINARY, "multiclass": MULTI, "regression": REGRESSION}
CASES = [(kind, task) for kind, family in models.FAMILIES.items() for task in sorted(family.tasks)]


@pytest.mark.parametrize(("kind", "task"), CASES)
def test_every_family_builds_exchanges_and_trains_through_the_interface(kind, task):
    family, schema, data = models.get(kind), SCHEMAS[task], DATA[task]
    hp = family.hyperparameters()
    model = family.build(hp, schema, seed=3)
    initial = family.get_parameters(model)
    # the first global model is the same on every party, and the interface's shapes hold it
    again = family.initial_parameters(hp, schema, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(initial, again, strict=True))
    shapes = family.parameter_shapes(hp, schema)
    assert len(shapes) == len(initial) == len(family.parameter_names(hp, schema))
    for array, shape in zip(initial, shapes, strict=True):
        assert len(array.shape) == len(shape) and all(w in (-1, g) for g, w in zip(array.shape, shape, strict=True))
    before = score(model, data, schema)
    for _ in range(3):  # three rounds: load the global model, train one local round
        family.set_parameters(model, family.get_parameters(model))
        family.fit_round(model, data, {"server_round": 1})
    after = score(model, data, schema)
    assert after["loss"] < before["loss"]
    update = family.update_from(model)
    assert [a.dtype.kind for a in update] == [a.dtype.kind for a in initial]
    # the parameters travel: a fresh estimator loaded with them predicts the same
    copy = family.set_parameters(family.build(hp, schema, seed=3), family.get_parameters(model))
    np.testing.assert_allclose(copy.predict(data.X), model.predict(data.X))


@pytest.mark.parametrize("kind", list(models.FAMILIES))
def test_hyperparameters_travel_as_job_arguments_and_back(kind):
    hp_class = models.get(kind).hyperparameters
    hp = hp_class()
    assert hp_class.from_arguments({k: str(v) for k, v in hp.arguments().items()}) == hp
    assert all(len(key) > 1 and "_" not in key for key in hp.arguments())  # never "-c": argparse's short option


def test_a_family_refuses_a_task_it_cannot_learn():
    with pytest.raises(DataError, match="the linear model family does not learn binary labels"):
        models.get("linear").build(models.get("linear").hyperparameters(), SCHEMAS["binary"])
    with pytest.raises(DataError, match="xgboost model family does not learn multiclass"):
        models.get("xgboost").build(models.get("xgboost").hyperparameters(), SCHEMAS["multiclass"])


def test_the_logistic_family_is_todays_model():
    family, schema = models.get("logistic"), SCHEMAS["binary"]
    hp = family.hyperparameters(max_iter=7)
    model = family.fit_round(family.build(hp, schema, seed=0), BINARY, {})
    today = fit_local(set_initial_params(make_model(max_iter=7), 4, [0, 1]), BINARY)
    np.testing.assert_array_equal(model.coef_, today.coef_)
    np.testing.assert_array_equal(model.intercept_, today.intercept_)


@pytest.mark.parametrize(("data", "classes"), [(BINARY, [0, 1]), (MULTI, [0, 1, 2])])
@pytest.mark.parametrize("class_weight", [None, "balanced"])
def test_fedprox_with_mu_zero_is_the_plain_fit_and_a_larger_mu_stays_closer(data, classes, class_weight):
    weights = None
    if class_weight:
        counts = np.bincount(data.y)
        weights = {c: len(data.y) / (len(classes) * counts[c]) for c in classes}

    def start():  # a warm start away from zero, as in round 2 of a federation
        model = set_initial_params(make_model(max_iter=10, class_weight=weights), 4, classes)
        model.coef_ = np.full_like(model.coef_, 0.3)
        model.intercept_ = np.full_like(model.intercept_, -0.2)
        return model

    plain = fit_local(start(), data)
    global_parameters = [start().coef_.copy(), start().intercept_.copy()]
    proximal = fit_proximal(start(), data, global_parameters, mu=0.0)
    # the same objective, start, solver and options: LogisticRegression's own computation, up to rounding
    np.testing.assert_allclose(proximal.coef_, plain.coef_, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(proximal.intercept_, plain.intercept_, rtol=1e-9, atol=1e-10)

    def distance(mu):
        model = fit_proximal(start(), data, global_parameters, mu)
        return np.linalg.norm(
            np.concatenate([(model.coef_ - global_parameters[0]).ravel(), model.intercept_ - global_parameters[1]])
        )

    distances = [distance(mu) for mu in (0.0, 0.01, 0.1, 1.0, 10.0)]
    assert all(a > b for a, b in zip(distances, distances[1:], strict=False)), distances


def test_fedprox_goes_through_the_round_config_and_refuses_saga_and_other_families():
    family, schema = models.get("logistic"), SCHEMAS["binary"]
    hp = family.hyperparameters()
    far = family.fit_round(family.build(hp, schema), BINARY, {"proximal_mu": 0.0})
    near = family.fit_round(family.build(hp, schema), BINARY, {"proximal_mu": 100.0})
    assert np.linalg.norm(near.coef_) < np.linalg.norm(far.coef_)
    with pytest.raises(ValueError, match="penalty l2 or none"):
        family.fit_round(family.build(family.hyperparameters(penalty="l1"), schema), BINARY, {"proximal_mu": 1.0})
    mlp = models.get("mlp")
    with pytest.raises(DataError, match="the mlp family has no proximal term"):
        mlp.fit_round(mlp.build(mlp.hyperparameters(), schema), BINARY, {"proximal_mu": 0.5})


def test_federated_ridge_is_the_pooled_closed_form_solution():
    family, schema = models.get("linear"), SCHEMAS["regression"]
    hp = family.hyperparameters(alpha=0.05)
    parts = [slice(0, 50), slice(50, 170), slice(170, 240)]
    clients = [Dataset(X[p], REGRESSION.y[p], NAMES) for p in parts]
    updates = [family.update_from(family.fit_round(family.build(hp, schema), c, {})) for c in clients]
    sizes = np.array([len(c) for c in clients], dtype=float)
    # FedAvg: the example-weighted mean of what the clients sent
    pooled = [sum(n * u[i] for n, u in zip(sizes, updates, strict=True)) / sizes.sum() for i in (0, 1)]
    model = family.set_parameters(family.build(hp, schema), pooled)
    # the closed form on every row at once: (X~'X~ + alpha N D) w = X~'y, intercept unpenalised
    augmented = np.hstack([X, np.ones((len(X), 1))])
    penalty = np.diag([0.05 * len(X)] * 4 + [0.0])
    expected = np.linalg.solve(augmented.T @ augmented + penalty, augmented.T @ REGRESSION.y)
    np.testing.assert_allclose(model.coef_, expected[:-1], atol=1e-8)
    assert model.intercept_ == pytest.approx(expected[-1], abs=1e-8)
    reference = Ridge(alpha=0.05 * len(X)).fit(X, REGRESSION.y)  # scikit-learn's ridge on the pooled rows
    np.testing.assert_allclose(model.coef_, reference.coef_, atol=1e-8)
    assert model.intercept_ == pytest.approx(reference.intercept_, abs=1e-8)
    # another round changes nothing: the same statistics again
    again = family.update_from(family.fit_round(family.build(hp, schema), clients[0], {}))
    assert all(np.array_equal(a, b) for a, b in zip(again, updates[0], strict=True))
    assert family.rounds_needed(hp) == 1


def test_the_saved_pipeline_leaves_out_the_federation_state():
    from client_code.persist import model_pipeline

    family, schema = models.get("linear"), SCHEMAS["regression"]
    model = family.fit_round(family.build(family.hyperparameters(), schema), REGRESSION, {})
    assert hasattr(model, linear.STATISTICS)
    saved = model_pipeline(schema, model)[-1]
    assert not hasattr(saved, linear.STATISTICS) and hasattr(model, linear.STATISTICS)
    np.testing.assert_array_equal(saved.coef_, model.coef_)


@pytest.mark.parametrize("kind", ["logistic", "sgd", "mlp", "xgboost"])
def test_the_prior_correction_moves_the_odds_by_the_prior_ratio(kind):
    family, schema = models.get(kind), SCHEMAS["binary"]
    hp = family.hyperparameters()
    model = family.fit_round(family.build(hp, schema), BINARY, {})
    params = family.get_parameters(model)
    corrected = family.prior_correction(hp, params, schema, {0: 9.0, 1: 1.0}, {0: 1.0, 1: 1.0})
    before = model.predict_proba(X)[:, 1]
    after = family.set_parameters(family.build(hp, schema), corrected).predict_proba(X)[:, 1]
    odds = (after / (1 - after)) / (before / (1 - before))
    np.testing.assert_allclose(odds, 1 / 9, rtol=1e-5)


def test_sgd_hinge_scores_without_probabilities():
    family, schema = models.get("sgd"), SCHEMAS["binary"]
    model = family.fit_round(family.build(family.hyperparameters(loss="hinge"), schema), BINARY, {})
    assert not hasattr(model, "predict_proba")
    metrics = classification_metrics(model, BINARY, 1)
    assert np.isnan(metrics["brier"]) and metrics["roc_auc"] > 0.8 and metrics["loss"] < 1.0
    with pytest.raises(DataError, match="sgd loss 'squared_error' does not fit a binary label"):
        family.build(family.hyperparameters(loss="squared_error"), schema)


def test_xgboost_scores_text_classes_by_the_schemas_order():
    family, schema = models.get("xgboost"), _schema("binary", ["no", "yes"], positive_class="yes")
    model = family.fit_round(family.build(family.hyperparameters(), schema), TEXT, {})
    assert model.classes_.tolist() == [0, 1]  # positions of the schema's classes
    assert score(model, TEXT, schema)["roc_auc"] > 0.8


def test_regression_metrics_and_the_gain_sign():
    model = Ridge().fit(X, REGRESSION.y)
    metrics = regression_metrics(model, REGRESSION)
    assert metrics["rmse"] == pytest.approx(np.sqrt(metrics["loss"])) and metrics["r2"] > 0.99
    assert gain({"rmse": 2.0, "mae": 1.0, "r2": 0.5}, {"rmse": 1.5, "mae": 1.2, "r2": 0.7}, "regression") == (
        pytest.approx({"rmse": 0.5, "mae": -0.2, "r2": 0.2})
    )
    assert gain(
        {"roc_auc": 0.8, "pr_auc": 0.5, "loss": 0.4}, {"roc_auc": 0.9, "pr_auc": 0.4, "loss": 0.3}, "binary"
    ) == (pytest.approx({"roc_auc": 0.1, "pr_auc": -0.1, "loss": 0.1}))


def _owner(values):
    import pandas as pd

    frame = pd.DataFrame({"x": [str(v) for v in range(len(values))], "y": [str(v) for v in values]})
    return compute_statistics(frame, "y", "salt")


def test_the_task_is_inferred_from_the_label_and_a_regression_label_is_never_counted():
    continuous = _owner(np.round(np.linspace(0, 1, 30), 3))
    assert "label_counts" not in continuous and continuous["label_moments"]["count"] == 30
    assert infer_task({"a": continuous}) == "regression"
    assert infer_task({"a": _owner([0, 1] * 10)}) == "binary"
    assert infer_task({"a": _owner([0, 1, 2] * 10)}) == "multiclass"
    assert infer_task({"a": _owner(list(range(15)) * 2), "b": _owner(list(range(10, 25)) * 2)}) == "regression"
    many = _owner(list(range(30)))  # integral, but more than 20 distinct values
    assert "label_counts" not in many and infer_task({"a": many}) == "regression"
    merged = merge_statistics({"a": continuous, "b": many}, "y", min_level_count=1, max_levels=50)
    assert merged["task"] == "regression" and merged["classes"] == [] and merged["positive_class"] is None
    assert merged["label_stats"]["count"] == 60
    declared = merge_statistics({"a": _owner([0, 1] * 15)}, "y", min_level_count=1, max_levels=50, task="multiclass")
    assert declared["task"] == "multiclass" and not declared["task_inferred"]


def test_a_text_label_cannot_be_a_regression_label():
    import pandas as pd

    frame = pd.DataFrame({"x": ["1", "2"], "y": ["a", "b"]})
    with pytest.raises(DataError, match="label value 'a' is not a number; a regression label is numeric"):
        compute_statistics(frame, "y", "salt", task="regression")


def test_the_client_reports_its_local_only_and_federated_scores(prepared):
    from client_code.client import Channel, FederationClient
    from client_code.tabular import read_channel

    folders = prepared.clients[0]
    channels = [
        Channel(name, *read_channel(folder))
        for name, folder in (("train", folders.train), ("validation", folders.validation))
    ]
    client = FederationClient(*channels, kind="sgd", balance_method="none")
    report = json.loads(client.get_properties({"fedsage": "schema", "payload": json.dumps(prepared.schema)})["payload"])
    client.get_properties({"fedsage": "train", "payload": json.dumps({"class_counts": report["class_counts"]})})
    params, _, _ = client.fit(client.get_parameters({}), {"server_round": 1})
    _, _, metrics = client.evaluate(params, {})
    assert set(metrics) == {"split", "accuracy"} | {
        f"{k}_{m}" for k in ("local", "federated") for m in ("roc_auc", "pr_auc", "loss")
    }
    # one round from the same start on the same rows: the local-only model is the federated one here
    assert metrics["local_roc_auc"] == pytest.approx(metrics["federated_roc_auc"])
