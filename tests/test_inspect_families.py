"""`fedsage inspect` and `fedsage predict` for every model family; what the allow-lists refuse.

Each model is trained the way a client trains it (family.build, fit_round on rows read with the
schema) and saved the way a run saves it (persist.model_pipeline, save_model with model.skops).
The real federations of every family (tests/test_families.py, slow) inspect and predict too.
"""

import hashlib
import json

import joblib
import numpy as np
import pandas as pd
import pytest
from cli_runner import assert_bad_input, run_cli

from client_code import models
from client_code.persist import PIPELINE_GLOBALS, model_pipeline, save_model
from client_code.schema import load_data

FEATURES = [
    {"name": "amount", "kind": "numeric", "mean": 0.0, "scale": 1.0},
    {"name": "age", "kind": "numeric", "mean": 0.0, "scale": 1.0},
    {"name": "region", "kind": "categorical", "levels": ["east", "west"], "other": True},
]
SCHEMAS = {
    "binary": {"label": "y", "task": "binary", "classes": ["no", "yes"], "positive_class": "yes"},
    "multiclass": {"label": "y", "task": "multiclass", "classes": ["a", "b", "c"]},
    "regression": {"label": "y", "task": "regression", "classes": [], "label_stats": {"mean": 3.0, "std": 2.0}},
}
CASES = [(kind, task) for kind, family in models.FAMILIES.items() for task in sorted(family.tasks)]
# what each family's report shows beyond the common fields: model keys and tables
SHOWN = {
    "logistic": ({"solver", "C", "intercept"}, ["top_coefficients"]),
    "sgd": ({"loss", "penalty", "alpha", "intercept"}, ["top_coefficients"]),
    "linear": ({"alpha", "intercept"}, ["top_coefficients"]),
    "mlp": ({"layers", "activation", "output_activation", "parameters"}, ["layers", "top_inputs"]),
    "xgboost": ({"trees", "objective", "base_score", "max_depth"}, ["top_features"]),
}


def _rows(task, n=240, seed=5):
    """Raw rows as a data owner has them (text cells), with the label column `y`."""
    rng = np.random.default_rng(seed)
    amount, age = rng.normal(size=n), rng.normal(size=n)
    region = rng.choice(["east", "west", "north"], size=n)
    signal = 2 * amount - age + (region == "west")
    if task == "regression":
        y = 3.0 + signal + 0.1 * rng.normal(size=n)
    elif task == "binary":
        y = np.where(signal + 0.3 * rng.normal(size=n) > 0, "yes", "no")
    else:
        y = np.array(["a", "b", "c"])[np.digitize(signal, [-1.0, 1.0])]
    return pd.DataFrame({"amount": amount, "age": age, "region": region, "y": y})


def _trained(tmp_path, kind, task, skops=True, stopped=None, **hyperparameters):
    """A model of `kind` trained on raw rows as a client trains it, saved as a run saves it; and the rows.

    `stopped`: the model is the partial one of a run of 5 rounds that stopped after round 2, for this reason.
    """
    family = models.get(kind)
    schema = {**SCHEMAS[task], "features": FEATURES}
    rows = _rows(task)
    train = tmp_path / "train"
    train.mkdir()
    rows.to_csv(train / "train.csv", index=False)
    estimator = family.build(family.hyperparameters(**hyperparameters), schema, seed=1)
    data = load_data(train, schema)
    for rnd in (1, 2):
        family.set_parameters(estimator, family.get_parameters(estimator))
        family.fit_round(estimator, data, {"server_round": rnd})
    path = tmp_path / "run" / "model.joblib"
    provenance = {
        "run_id": "r1",
        "rounds": 2,
        "label": "y",
        "task": task,
        "classes": schema["classes"],
        "positive_class": schema.get("positive_class"),
        "schema": schema,
        "model": {"kind": kind, **hyperparameters},
    }
    if stopped is not None:
        provenance |= {"partial": True, "rounds_asked": 5, "stopped": stopped}
    save_model(model_pipeline(schema, estimator), path, provenance, skops=skops)
    return path, rows


@pytest.mark.parametrize(("kind", "task"), CASES)
def test_every_family_is_inspected_and_predicts_raw_rows(capsys, tmp_path, kind, task):
    path, rows = _trained(tmp_path, kind, task)
    test = tmp_path / "test.csv"
    rows.to_csv(test, index=False)
    code, stdout, err = run_cli(capsys, "inspect", str(path), "--json", "--top", "3", "--test", str(test))
    assert code == 0, err
    report = json.loads(stdout)
    model = report["model"]
    assert report["checksum"] == "verified" and report["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (model["family"], model["task"], model["n_features"]) == (kind, task, 5)  # 2 numeric + 3 region levels
    keys, tables = SHOWN[kind]
    assert keys <= set(model) and list(report["tables"]) == tables
    assert all(len(table["rows"]) <= 3 and table["title"] for table in report["tables"].values())
    if task == "regression":
        assert model["target"] == {"label": "y", "mean": 3.0, "std": 2.0} and "classes" not in model
        assert set(report["test"]["metrics"]) == {"loss", "rmse", "mae", "r2"}
    else:
        assert model["classes"] == SCHEMAS[task]["classes"]
    code, stdout, err = run_cli(capsys, "inspect", str(path))
    assert code == 0, err
    assert f"{kind} family" in stdout and "checksum verified" in stdout
    if "intercept" in model:  # to 4 significant digits, as every model setting shown
        assert f"intercept [{', '.join(f'{v:.4g}' for v in model['intercept'])}]" in stdout
    assert all(table["title"].split(" (")[0] in stdout for table in report["tables"].values())

    raw = tmp_path / "raw.csv"
    rows.drop(columns="y").iloc[::-1].to_csv(raw, index=False)  # rows in another order, no label
    out = tmp_path / "predictions.csv"
    code, stdout, err = run_cli(capsys, "predict", str(path), "--input", str(raw), "--out", str(out))
    assert code == 0, err
    assert f"scored {len(rows)} rows" in stdout
    scored = pd.read_csv(out)
    pipeline = joblib.load(path)
    features = pd.read_csv(raw, dtype=str)
    truth = rows["y"].iloc[::-1].to_numpy()
    metrics = report["test"]["metrics"]  # inspect --test scores what predict predicts
    if task == "regression":
        assert list(scored.columns) == ["prediction"]
        np.testing.assert_allclose(scored["prediction"], pipeline.predict(features), rtol=1e-6)
        assert metrics["rmse"] == pytest.approx(np.sqrt(np.mean((scored["prediction"] - truth) ** 2)), rel=1e-6)
    else:
        classes = SCHEMAS[task]["classes"]
        assert list(scored.columns) == ["prediction", *(f"probability_{c}" for c in classes)]
        proba = pipeline.predict_proba(features)
        np.testing.assert_allclose(scored.iloc[:, 1:].to_numpy(), proba, rtol=1e-6)
        assert scored["prediction"].tolist() == [classes[i] for i in np.argmax(proba, axis=1)]
        assert metrics["accuracy"] == pytest.approx(np.mean(scored["prediction"].to_numpy() == truth))


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_an_sgd_hinge_model_predicts_decision_scores_not_probabilities(capsys, tmp_path, task):
    path, rows = _trained(tmp_path, "sgd", task, loss="hinge")
    raw = tmp_path / "raw.csv"
    rows.drop(columns="y").to_csv(raw, index=False)
    out = tmp_path / "p.csv"
    code, stdout, err = run_cli(capsys, "predict", str(path), "--input", str(raw), "--out", str(out))
    assert code == 0, err
    assert "no probabilities" in stdout
    classes = SCHEMAS[task]["classes"]
    scored = pd.read_csv(out)
    assert list(scored.columns) == ["prediction", *(f"score_{c}" for c in classes)]
    pipeline = joblib.load(path)
    assert scored["prediction"].tolist() == pipeline.predict(pd.read_csv(raw, dtype=str)).tolist()


def _references(path):
    """Every (module, name) a joblib file's pickle refers to (loaded by a recording unpickler)."""
    import io

    from joblib.numpy_pickle import NumpyUnpickler

    seen = set()

    class Recorder(NumpyUnpickler):
        def find_class(self, module, name):
            seen.add((module, name))
            return super().find_class(module, name)

    Recorder(str(path), io.BytesIO(path.read_bytes()), ensure_native_byte_order=True).load()
    return seen


@pytest.mark.parametrize("skops", [True, False])
def test_each_family_loads_with_exactly_its_own_allow_list(tmp_path, skops):
    """The globals a saved model refers to are the Pipeline's plus its own family's, whichever format loads."""
    import skops.io as sio

    from orchestrator import api
    from orchestrator.model_file import family_globals

    for kind, task in CASES:
        folder = tmp_path / f"{kind}-{task}"
        folder.mkdir()
        path, _ = _trained(folder, kind, task, skops=skops)
        seen = _references(path)
        own = family_globals(models.get(kind))
        assert seen - PIPELINE_GLOBALS <= own and seen & set(models.get(kind).estimator_classes)
        if skops:
            untrusted = set(sio.get_untrusted_types(file=path.with_suffix(".skops")))
            assert untrusted <= {f"{m}.{n}" for m, n in own}
        assert models.family_of(api.inspect(path).model[-1]).name == kind


def _refused(capsys, path, message):
    return assert_bad_input(capsys, "inspect", str(path), message=message, folder=path.parent)


def _checksum(path):
    path.with_name(path.name + ".sha256").write_text(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n")


def test_a_tampered_model_of_any_family_is_refused(capsys, tmp_path):
    path, rows = _trained(tmp_path, "xgboost", "regression", skops=False)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    _refused(capsys, path, "does not match its checksum in model.joblib.sha256")
    raw = tmp_path / "raw.csv"
    rows.to_csv(raw, index=False)
    assert_bad_input(
        capsys,
        "predict",
        str(path),
        "--input",
        str(raw),
        "--out",
        str(tmp_path / "p.csv"),
        message="does not match its checksum",
    )


def test_another_familys_type_inside_a_model_is_refused(capsys, tmp_path):
    """A logistic Pipeline that carries mlp's Adam optimizer: a reference outside the logistic allow-list."""
    from sklearn.neural_network._stochastic_optimizers import AdamOptimizer

    path, _ = _trained(tmp_path, "logistic", "binary", skops=False)
    model = joblib.load(path)
    model[-1].smuggled_ = AdamOptimizer([np.zeros(2)])
    joblib.dump(model, path)
    _checksum(path)
    adam = "sklearn.neural_network._stochastic_optimizers.AdamOptimizer"
    _refused(capsys, path, f"it refers to {adam}, which a fedsage logistic model never contains")


class Stranger:
    """A type no family's allow-list holds."""


def test_a_skops_file_with_an_unexpected_type_is_refused_before_loading(capsys, tmp_path):
    import skops.io as sio

    path, _ = _trained(tmp_path, "mlp", "binary")
    model = joblib.load(path)
    model[-1].extra_ = Stranger()
    skops_file = path.with_suffix(".skops")
    sio.dump(model, skops_file)
    _checksum(skops_file)
    _refused(capsys, path, "holds types no fedsage model family contains (test_inspect_families.Stranger)")


def test_an_estimator_no_family_trains_is_refused_by_name(capsys, tmp_path):
    """skops trusts scikit-learn's estimators by default; fedsage only its families'."""
    import skops.io as sio
    from sklearn.linear_model import Lasso
    from sklearn.pipeline import Pipeline

    path, rows = _trained(tmp_path, "linear", "regression")
    model = joblib.load(path)
    other = Lasso(alpha=0.1).fit(model[0].transform(rows.drop(columns="y")), rows["y"])
    swapped = Pipeline([("preprocess", model[0]), ("model", other)])
    swapped.fedsage_provenance_ = model.fedsage_provenance_
    skops_file = path.with_suffix(".skops")
    sio.dump(swapped, skops_file)
    _checksum(skops_file)
    _refused(capsys, path, "holds a Lasso, which no fedsage model family trains (logistic, sgd, mlp")


def test_a_model_whose_provenance_names_another_family_is_refused(capsys, tmp_path):
    path, _ = _trained(tmp_path, "sgd", "binary", skops=False)
    model = joblib.load(path)
    model.fedsage_provenance_["model"]["kind"] = "logistic"
    joblib.dump(model, path)
    _checksum(path)
    _refused(capsys, path, "holds an sgd estimator but its provenance says kind 'logistic'")


def test_a_partial_model_says_so_first_in_inspect_and_warns_in_predict(capsys, tmp_path):
    path, rows = _trained(tmp_path, "logistic", "binary", stopped="interrupted by the user (Ctrl-C)")
    line = "partial model: the global model after round 2 of 5; the run stopped: interrupted by the user (Ctrl-C)"
    code, out, err = run_cli(capsys, "inspect", str(path))
    assert code == 0, err
    assert out.splitlines()[1] == line  # right under the file's name, before any number
    code, out, err = run_cli(capsys, "inspect", str(path), "--json")
    assert json.loads(out)["partial"] == {"round": 2, "rounds": 5, "stopped": "interrupted by the user (Ctrl-C)"}
    raw = tmp_path / "raw.csv"
    rows.drop(columns="y").to_csv(raw, index=False)
    code, out, err = run_cli(capsys, "predict", str(path), "--input", str(raw), "--out", str(tmp_path / "p.csv"))
    assert code == 0 and err == f"warning: {line}"
    (tmp_path / "whole").mkdir()
    whole, _ = _trained(tmp_path / "whole", "logistic", "binary")
    code, out, err = run_cli(capsys, "inspect", str(whole))
    assert code == 0 and "partial model" not in out
    code, out, err = run_cli(capsys, "inspect", str(whole), "--json")
    assert json.loads(out)["partial"] is None
