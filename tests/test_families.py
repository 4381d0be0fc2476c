"""Every model family in a real loopback federation: the global model is its aggregation formula, recomputed here."""

import json

import joblib
import numpy as np
import pandas as pd
import pytest
from cli_runner import run_cli
from flwr.server.strategy.fedxgb_bagging import aggregate

from client_code import models
from client_code.schema import load_data
from orchestrator.data import layout
from orchestrator.local import LocalOptions, build_local_run

pytestmark = pytest.mark.slow


def _run(tmp_path, **options):
    values = {"out": tmp_path / "runs", "rounds": 2, "join_timeout": 60, "round_timeout": 60, **options}
    return build_local_run(LocalOptions(**values)).execute()


def _inspect_and_predict(capsys, outcome, test, kind):
    """`fedsage inspect --test` and `fedsage predict` on the run's model: its family, the server's metrics again."""
    code, stdout, err = run_cli(capsys, "inspect", str(outcome.model_path), "--json", "--test", str(test))
    assert code == 0, err
    report = json.loads(stdout)
    assert report["model"]["family"] == kind and report["model"]["task"] == outcome.task
    assert report["test"]["metrics"] == pytest.approx(outcome.final_metrics)
    out = outcome.run_dir / "predictions.csv"
    code, _, err = run_cli(capsys, "predict", str(outcome.model_path), "--input", str(test), "--out", str(out))
    assert code == 0, err
    scored = pd.read_csv(out)
    assert len(scored) == len(pd.read_csv(test)) and scored.columns[0] == "prediction"
    return report, scored


def _checkpoint(outcome, rnd):
    with np.load(outcome.run_dir / "checkpoints" / f"round-{rnd:03d}.npz") as saved:
        return {name: saved[name] for name in saved.files}


@pytest.mark.parametrize(("kind", "estimator"), [("sgd", "SGDClassifier"), ("mlp", "MLPClassifier")])
def test_array_families_are_averaged_by_example_counts(kind, estimator, prepared_dir, tmp_path, fit_results, capsys):
    outcome = _run(tmp_path, data_dir=prepared_dir, model=kind, max_iter=2)
    family = models.get(kind)
    schema = json.loads((outcome.run_dir / "schema.json").read_text())
    names = family.parameter_names(family.hyperparameters(), schema)
    for rnd in (1, 2):
        updates = fit_results[rnd]
        assert sorted(updates) == ["client-1", "client-2", "client-3"]
        total = sum(n for _, n in updates.values())
        checkpoint = _checkpoint(outcome, rnd)
        for i, name in enumerate(names):
            expected = sum(params[i] * n for params, n in updates.values()) / total
            np.testing.assert_allclose(checkpoint[name], expected, rtol=1e-12, atol=1e-15)
        assert not np.allclose(updates["client-1"][0][0], updates["client-2"][0][0])
    first, last = outcome.history.rounds[0].server, outcome.final_metrics
    assert last["roc_auc"] > 0.75 and last["loss"] < first["loss"]
    model = joblib.load(outcome.model_path)  # a Pipeline that scores raw rows, of the family's estimator
    assert type(model[-1]).__name__ == estimator
    test = pd.read_csv(prepared_dir / layout.TEST, dtype=str)
    assert model.predict_proba(test).shape == (len(test), 2)
    _, scored = _inspect_and_predict(capsys, outcome, prepared_dir / layout.TEST, kind)
    np.testing.assert_allclose(scored[["probability_0", "probability_1"]], model.predict_proba(test), rtol=1e-6)


def test_xgboost_appends_every_clients_tree_to_the_global_booster(prepared_dir, tmp_path, fit_results, capsys):
    outcome = _run(tmp_path, data_dir=prepared_dir, model="xgboost", rounds=3)
    booster = _checkpoint(outcome, 0)["booster"].tobytes()  # the run's booster without trees
    assert json.loads(booster)["learner"]["gradient_booster"]["model"]["gbtree_model_param"]["num_trees"] == "0"
    for rnd in (1, 2, 3):
        updates = fit_results[rnd]
        for name in sorted(updates):  # Flower's bagging, clients in name order
            (tree,), _ = updates[name]
            assert (
                json.loads(tree.tobytes())["learner"]["gradient_booster"]["model"]["gbtree_model_param"]["num_trees"]
                == "1"
            )
            booster = aggregate(booster, tree.tobytes())
        assert _checkpoint(outcome, rnd)["booster"].tobytes() == booster
    model = joblib.load(outcome.model_path)
    assert type(model[-1]).__name__ == "XGBClassifier"
    assert model[-1].get_booster().num_boosted_rounds() == 9  # 3 rounds x 3 clients, one tree each
    assert outcome.final_metrics["roc_auc"] > 0.8
    test = pd.read_csv(prepared_dir / layout.TEST, dtype=str)
    assert model.predict_proba(test).shape == (len(test), 2)
    report, scored = _inspect_and_predict(capsys, outcome, prepared_dir / layout.TEST, "xgboost")
    assert report["model"]["trees"] == 9 and report["model"]["classes"] == [0, 1]
    np.testing.assert_allclose(scored[["probability_0", "probability_1"]], model.predict_proba(test), rtol=1e-6)


def test_diabetes_is_prepared_and_federated_and_ridge_is_the_pooled_solution(tmp_path, fit_results, capsys):
    outcome = _run(tmp_path, dataset="diabetes", model="linear", rounds=2)
    assert outcome.task == "regression"
    prepared = layout.open_prepared(outcome.run_dir / "data")
    schema = prepared.schema
    assert schema["task"] == "regression" and schema["classes"] == [] and "label_stats" in schema
    # the global statistics are FedAvg's example-weighted mean of what the clients sent
    updates = fit_results[1]
    total = sum(n for _, n in updates.values())
    checkpoint = _checkpoint(outcome, 1)
    for i, name in enumerate(("gram", "moment")):
        np.testing.assert_allclose(
            checkpoint[name], sum(p[i] * n for p, n in updates.values()) / total, rtol=1e-12, atol=1e-15
        )
    # ... and the saved model is the ridge solution on every client's training rows pooled
    trains = [load_data(c.train, schema) for c in prepared.clients]
    X = np.vstack([d.X for d in trains])
    y = np.concatenate([d.y for d in trains])
    augmented = np.hstack([X, np.ones((len(X), 1))])
    alpha = models.get("linear").hyperparameters().alpha
    penalty = np.diag([alpha * len(X)] * X.shape[1] + [0.0])
    w = np.linalg.solve(augmented.T @ augmented + penalty, augmented.T @ y)
    model = joblib.load(outcome.model_path)[-1]
    np.testing.assert_allclose(model.coef_, w[:-1], atol=1e-8)
    assert model.intercept_ == pytest.approx(w[-1], abs=1e-8)
    report, scored = _inspect_and_predict(capsys, outcome, outcome.run_dir / "data" / layout.TEST, "linear")
    assert report["model"]["intercept"] == pytest.approx([w[-1]]) and list(scored.columns) == ["prediction"]
    # round 2 changes nothing; the test set is scored with regression metrics
    assert outcome.history.rounds[1].server == pytest.approx(outcome.history.rounds[2].server)
    assert set(outcome.final_metrics) == {"loss", "rmse", "mae", "r2"} and outcome.final_metrics["r2"] > 0.3
    # what each client gains, in metrics.json, metrics.csv and report.md
    metrics = json.loads((outcome.run_dir / "metrics.json").read_text())
    assert sorted(metrics["client_gain"]) == ["client-1", "client-2", "client-3"]
    for scores in metrics["client_gain"].values():
        assert set(scores) == {"rmse", "mae", "r2"}
        assert scores["rmse"]["gain"] == pytest.approx(scores["rmse"]["local"] - scores["rmse"]["federated"])
    assert "server.rmse" in (outcome.run_dir / "metrics.csv").read_text().splitlines()[0]
    report = (outcome.run_dir / "report.md").read_text()
    assert "## What each client gains" in report and "| client-1 | " in report
    assert "- model: **linear** (alpha 0.001); task: regression" in report
