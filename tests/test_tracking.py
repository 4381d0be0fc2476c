"""MLflow tracking against a local file store: what a run logs, and how asking for it is refused."""

import json
import sys

import numpy as np
import pytest
from cli_runner import assert_bad_input, run_cli
from test_runs import _run

from client_code.persist import save_model

mlflow = pytest.importorskip("mlflow")  # the dev extra installs it; CI tests this file

SCHEMA = {
    "version": 2,
    "label": "y",
    "task": "binary",
    "classes": [0, 1],
    "positive_class": 1,
    "features": [
        {"name": "amount", "kind": "numeric", "mean": 10.0, "scale": 2.0},
        {"name": "region", "kind": "categorical", "levels": ["north", "south"], "other": True},
    ],
}


def _store(tmp_path):
    return (tmp_path / "mlruns").as_uri()


def _model(folder):
    """A real model.joblib (+ .sha256) as a run saves it: the schema's preprocessing, then the estimator."""
    from sklearn.linear_model import LogisticRegression

    from client_code.persist import model_pipeline

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))  # amount, region=north, region=south, region=other
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    save_model(model_pipeline(SCHEMA, model), folder / "model.joblib", {"run_id": folder.name, "schema": SCHEMA})
    return model


def _mlflow_run(uri, experiment="fedsage"):
    client = mlflow.MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return client, run


def test_a_run_folder_is_logged_with_params_metrics_model_and_artifacts(capsys, tmp_path):
    out = tmp_path / "runs"
    folder = _run(out, "20261121-101500-aaaa", rounds=3, c=0.5)
    model = _model(folder)
    (folder / "report.md").write_text("# report\n")
    (folder / "metrics.png").write_bytes(b"\x89PNG")
    uri = _store(tmp_path)

    code, stdout, err = run_cli(capsys, "runs", "track", folder.name, "--mlflow", uri, "--out", str(out))
    assert code == 0, err
    client, run = _mlflow_run(uri)
    assert run.info.run_name == folder.name and run.info.status == "FINISHED"
    assert run.info.run_id in stdout
    assert run.data.params["model.c"] == "0.5" and run.data.params["federation.rounds"] == "3"
    assert run.data.params["clients"] == "client-1,client-2"
    assert run.data.tags["fedsage.run_id"] == folder.name and run.data.tags["fedsage.status"] == "completed"
    history = client.get_metric_history(run.info.run_id, "server.roc_auc")
    assert [m.step for m in history] == [0, 1, 2, 3]
    assert [m.value for m in history] == pytest.approx([0.5 + 0.4 * r / 3 for r in range(4)])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "client-1.num_examples")] == [0, 1, 2, 3]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.md", "run.json", "metrics.json", "metrics.png"} <= artifacts
    # the model: an MLflow scikit-learn model with a signature and an input example built from the schema
    (logged,) = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    assert logged.source_run_id == run.info.run_id
    loaded = mlflow.sklearn.load_model(logged.model_uri)
    np.testing.assert_array_equal(loaded[-1].coef_, model.coef_)  # the Pipeline's estimator
    pyfunc = mlflow.pyfunc.load_model(logged.model_uri)
    assert pyfunc.metadata.signature.inputs.input_names() == ["amount", "region"]  # raw columns: it scores raw rows
    example = pyfunc.input_example
    assert example.iloc[0].tolist() == [10.0, "north"]  # amount at its mean, region at its first level
    assert pyfunc.predict(example).shape == (1, 2)  # class probabilities
    # run.json records where the run went
    tracking = json.loads((folder / "run.json").read_text())["tracking"]
    assert tracking == {"mlflow_uri": uri, "experiment": "fedsage", "run_id": run.info.run_id}


def test_a_regression_model_is_logged_with_a_pyfunc_that_predicts_values(tmp_path):
    from sklearn.linear_model import Ridge

    from client_code.persist import model_pipeline
    from orchestrator.tracking import Tracker

    folder = _run(tmp_path / "runs", "20261121-101500-cccc", rounds=1)
    schema = {**SCHEMA, "task": "regression", "classes": [], "positive_class": None}
    X = np.random.default_rng(1).normal(size=(40, 4))
    ridge = Ridge().fit(X, X[:, 0] * 3.0)
    save_model(model_pipeline(schema, ridge), folder / "model.joblib", {"run_id": folder.name, "schema": schema})
    uri = _store(tmp_path)
    Tracker.connect(uri, "fedsage").log_run(folder)
    client, run = _mlflow_run(uri)
    (logged,) = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    pyfunc = mlflow.pyfunc.load_model(logged.model_uri)
    example = pyfunc.input_example
    assert np.ravel(pyfunc.predict(example)) == pytest.approx(ridge.predict(np.array([[0.0, 1.0, 0.0, 0.0]])))


def test_a_failed_run_is_logged_as_failed(tmp_path):
    from orchestrator.tracking import Tracker

    folder = _run(tmp_path / "runs", "20261121-101500-bbbb", rounds=1, asked=5, status="failed")
    uri = _store(tmp_path)
    Tracker.connect(uri, "fraud").log_run(folder)
    _, run = _mlflow_run(uri, "fraud")
    assert run.info.status == "FAILED" and run.data.tags["fedsage.status"] == "failed"


def test_without_mlflow_asking_for_tracking_is_bad_input_naming_the_extra(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed: importing it raises ImportError
    message = "needs MLflow: pip install 'fedsage[mlflow]'"
    out = tmp_path / "runs"
    assert_bad_input(capsys, "local", "--out", str(out), "--mlflow", _store(tmp_path), message=message, folder=tmp_path)
    _run(out, "20261121-101500-aaaa")
    assert_bad_input(
        capsys, "runs", "track", "20261121-101500-aaaa", "--mlflow", "x", "--out", str(out), message=message
    )


def test_a_store_mlflow_cannot_use_is_bad_input_before_anything_is_written(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    uri = (blocker / "mlruns").as_uri()  # a store inside a file
    out = tmp_path / "runs"
    err = assert_bad_input(
        capsys,
        "local",
        "--out",
        str(out),
        "--mlflow",
        uri,
        message=f"MLflow tracking URI {uri} cannot be used",
        folder=tmp_path,
    )
    assert not out.exists(), err


@pytest.mark.slow
def test_fedsage_local_with_mlflow_logs_the_run(capsys, tmp_path, prepared_dir):
    uri, out = _store(tmp_path), tmp_path / "runs"
    code, stdout, err = run_cli(
        capsys, "local", "--data-dir", str(prepared_dir), "--rounds", "2", "--out", str(out), "--mlflow", uri
    )
    assert code == 0, stdout + err
    (folder,) = out.iterdir()
    client, run = _mlflow_run(uri)
    assert run.info.run_name == folder.name and run.info.status == "FINISHED"
    metrics = json.loads((folder / "metrics.json").read_text())["rounds"]
    history = client.get_metric_history(run.info.run_id, "server.roc_auc")
    assert [(m.step, m.value) for m in history] == [
        (r["round"], pytest.approx(r["server"]["roc_auc"])) for r in metrics
    ]
    for name in ("client-1", "client-2", "client-3"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, f"{name}.train_loss")] == [1, 2]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.md", "metrics.png", "test_curves.png", "run.json", "federation.toml"} <= artifacts
    (logged,) = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    pyfunc = mlflow.pyfunc.load_model(logged.model_uri)
    raw_columns = [f["name"] for f in json.loads((folder / "schema.json").read_text())["features"]]
    assert pyfunc.metadata.signature.inputs.input_names() == raw_columns  # the Pipeline scores raw rows
    assert "[tracking]" in (folder / "federation.toml").read_text()  # a repeat of the run logs again
    assert json.loads((folder / "run.json").read_text())["tracking"]["run_id"] == run.info.run_id


def test_launch_asking_for_tracking_without_mlflow_is_refused_before_any_aws_call(capsys, tmp_path, monkeypatch):
    from pathlib import Path

    monkeypatch.setitem(sys.modules, "mlflow", None)
    example = Path(__file__).resolve().parent.parent / "examples" / "federation.toml"
    assert_bad_input(
        capsys,
        "launch",
        "-c",
        str(example),
        "--mlflow",
        _store(tmp_path),
        "--out",
        str(tmp_path / "runs"),
        message="needs MLflow: pip install 'fedsage[mlflow]'",
        folder=tmp_path,
    )
