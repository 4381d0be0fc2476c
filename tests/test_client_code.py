"""client_code: parameters, data loading with the feature schema, scoring, saving."""

import hashlib

import joblib
import numpy as np
import pandas as pd
import pytest

from client_code.metrics import classification_metrics
from client_code.models.logistic import (
    fit_local,
    get_model_parameters,
    make_model,
    set_initial_params,
    set_model_params,
)
from client_code.persist import model_pipeline, save_model
from client_code.schema import load_data, normalise_schema, unseen_counts
from client_code.tabular import DataError, Dataset


def load_schema_dict(schema):
    return normalise_schema(schema, "test")


def test_parameters_round_trip_binary():
    model = set_initial_params(make_model(), n_features=4, classes=[0, 1])
    coef, intercept = get_model_parameters(model)
    assert coef.shape == (1, 4) and intercept.shape == (1,)
    assert not coef.any() and not intercept.any()

    new = [np.arange(4.0).reshape(1, 4), np.array([0.5])]
    set_model_params(model, new)
    back = get_model_parameters(model)
    assert all(np.array_equal(a, b) for a, b in zip(back, new, strict=True))
    new[0][0, 0] = 99  # the model keeps its own copy
    assert get_model_parameters(model)[0][0, 0] == 0


def test_parameters_round_trip_multiclass_and_zero_model_predicts_uniformly():
    model = set_initial_params(make_model(), n_features=3, classes=[1, 2, 3])
    assert [p.shape for p in get_model_parameters(model)] == [(3, 3), (3,)]
    proba = model.predict_proba(np.ones((2, 3)))
    assert np.allclose(proba, 1 / 3)


def test_set_model_params_rejects_wrong_shapes():
    model = set_initial_params(make_model(), n_features=4, classes=[0, 1])
    with pytest.raises(ValueError, match="do not fit"):
        set_model_params(model, [np.zeros((2, 4)), np.zeros(2)])
    with pytest.raises(ValueError, match="expected 2 parameter arrays"):
        set_model_params(model, [np.zeros((1, 4))])


@pytest.mark.parametrize(
    ("penalty", "solver", "ratio"), [("l2", "lbfgs", 0.0), ("l1", "saga", 1.0), ("elasticnet", "saga", 0.3)]
)
def test_make_model_translates_penalty(penalty, solver, ratio):
    model = make_model(penalty=penalty, c=0.5, l1_ratio=0.3, max_iter=7)
    assert (model.solver, model.l1_ratio, model.C, model.max_iter, model.warm_start) == (solver, ratio, 0.5, 7, True)


def test_make_model_none_penalty_is_unregularised():
    assert np.inf == make_model(penalty="none").C


def _write(folder, frame, name="part.csv"):
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / name, index=False)
    return folder


SCHEMA = {
    "label": "y",
    "classes": [0, 1],
    "features": [
        {"name": "amount", "kind": "numeric", "mean": 10.0, "scale": 5.0},
        {"name": "region", "kind": "categorical", "levels": ["east", "west"], "other": True},
    ],
}


def test_schema_scales_numeric_one_hot_encodes_categorical_and_fixes_column_order(tmp_path):
    # columns in another order, and a level the schema has never seen: it lands in "other"
    _write(tmp_path, pd.DataFrame({"region": ["west", "east", "north"], "y": [0, 1, 0], "amount": [10, 20, 0]}))
    data = load_data(tmp_path, SCHEMA)
    assert data.feature_names == ["amount", "region=east", "region=west", "region=other"]
    assert data.X.tolist() == [[0.0, 0.0, 1.0, 0.0], [2.0, 1.0, 0.0, 0.0], [-2.0, 0.0, 0.0, 1.0]]
    assert unseen_counts(pd.read_csv(tmp_path / "part.csv"), SCHEMA) == {"region": 1}


def test_a_version_1_schema_encodes_an_unknown_level_as_zeros(tmp_path):
    v1 = {**SCHEMA, "features": [{**SCHEMA["features"][1], "other": None}], "version": 1}
    del v1["features"][0]["other"]
    _write(tmp_path, pd.DataFrame({"region": ["west", "north"], "y": [0, 1]}))
    data = load_data(tmp_path, v1)
    assert data.feature_names == ["region=east", "region=west"]
    assert data.X.tolist() == [[0.0, 1.0], [0.0, 0.0]]
    assert load_schema_dict(v1)["task"] == "binary"


def test_schema_requires_its_columns_and_labels_in_its_classes(tmp_path):
    _write(tmp_path, pd.DataFrame({"other": [1], "y": [0]}))
    with pytest.raises(DataError, match="column 'amount' required by the feature schema is missing"):
        load_data(tmp_path, SCHEMA)
    _write(tmp_path, pd.DataFrame({"amount": [1, 2], "region": ["east", "east"], "y": [0, 7]}))
    with pytest.raises(DataError, match="label value 7 is not one of the federation's classes"):
        load_data(tmp_path, SCHEMA)


def test_string_labels_are_supported(tmp_path):
    _write(tmp_path, pd.DataFrame({"a": [1.0, 2.0, 3.0], "y": ["no", "yes", "no"]}))
    schema = {
        "label": "y",
        "classes": ["no", "yes"],
        "features": [{"name": "a", "kind": "numeric", "mean": 0, "scale": 1}],
    }
    data = load_data(tmp_path, schema)
    model = fit_local(set_initial_params(make_model(max_iter=50), 1, ["no", "yes"]), data)
    assert set(model.predict(data.X)) <= {"no", "yes"}


def test_fit_local_requires_every_class(tmp_path):
    model = set_initial_params(make_model(), 1, [0, 1])
    with pytest.raises(DataError, match="no rows of class 1"):
        fit_local(model, Dataset(np.ones((3, 1)), np.zeros(3, dtype=int), ["a"]))


def test_classification_metrics_on_a_perfect_and_a_zero_model():
    X = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    data = Dataset(X, np.array([0, 0, 1, 1]), ["x"])
    model = set_initial_params(make_model(), 1, [0, 1])
    zero = classification_metrics(model, data)
    assert zero["loss"] == pytest.approx(np.log(2)) and zero["roc_auc"] == 0.5
    set_model_params(model, [np.array([[10.0]]), np.array([0.0])])
    perfect = classification_metrics(model, data)
    assert perfect["accuracy"] == perfect["f1"] == perfect["roc_auc"] == perfect["pr_auc"] == 1.0
    assert set(perfect) == {"loss", "accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "brier"}
    assert zero["brier"] == pytest.approx(0.25) and perfect["brier"] < 1e-6


def test_save_model_writes_a_pipeline_that_scores_raw_rows_with_its_checksums(tmp_path):
    model = set_initial_params(make_model(), 4, [0, 1])
    model.coef_ = np.array([[1.0, 0.0, 2.0, -1.0]])
    path = tmp_path / "out" / "model.joblib"
    digest = save_model(model_pipeline(SCHEMA, model), path, {"run_id": "r1"}, skops=True)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert (tmp_path / "out" / "model.joblib.sha256").read_text() == f"{digest}  model.joblib\n"
    skops_file = tmp_path / "out" / "model.skops"
    skops_digest = hashlib.sha256(skops_file.read_bytes()).hexdigest()
    assert (tmp_path / "out" / "model.skops.sha256").read_text() == f"{skops_digest}  model.skops\n"
    loaded = joblib.load(path)
    assert loaded.fedsage_provenance_ == {"run_id": "r1"}
    raw = pd.DataFrame({"extra": ["x", "y"], "region": ["west", "somewhere"], "amount": [15.0, 10.0]})
    # amount 15 -> 1.0; west -> 0 weight... region=other -> -1
    expected = 1 / (1 + np.exp(-np.array([1.0 + 2.0, 0.0 - 1.0])))
    assert loaded.predict_proba(raw)[:, 1] == pytest.approx(expected)
    import skops.io

    same = skops.io.load(skops_file, trusted=[])
    assert same.predict_proba(raw)[:, 1] == pytest.approx(expected)
    assert not list((tmp_path / "out").glob("*.tmp"))
