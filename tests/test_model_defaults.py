"""Each model family's own defaults (rounds, class balance, xgboost's base score) and the run's verdict on its model.

A default `fedsage local --model xgboost` used to end with a model that predicted no positive at
0.5 (SMOTE's 50/50 rows, a base score of 0.5, 15 shrunken trees, then the prior correction); a
default linear run repeated its exact round-1 solution for 4 more rounds without saying why.
"""

import json
from typing import get_type_hints

import numpy as np
import pytest
from cli_runner import run_cli

from client_code import models
from client_code.models.xgboost import base_score
from client_code.tabular import Dataset
from orchestrator import config, defaults
from orchestrator.cli import run as cli_run
from orchestrator.local import LocalOptions, build_local_run
from orchestrator.run.verdict import prediction_warning, rounds_warning

SCHEMA = {"task": "binary", "classes": [0, 1], "positive_class": 1, "class_counts": {"0": 900, "1": 100}}


def _federation(tmp_path, model: dict, **run):
    (tmp_path / "test.csv").write_text("x,y\n1,0\n")
    return config.Federation(
        federation=config.RunSettings(**run),
        model=config.model_settings(**model),
        server={"test_data": str(tmp_path / "test.csv")},
        clients=[{"name": "a", "train_uri": "file:///tmp/a"}, {"name": "b", "train_uri": "file:///tmp/b"}],
    )


@pytest.mark.parametrize(
    ("kind", "rounds", "balance"), [("logistic", 5, "smote"), ("linear", 1, "smote"), ("xgboost", 20, "none")]
)
def test_a_kinds_rounds_and_balance_default_to_its_own_and_a_set_value_wins(tmp_path, kind, rounds, balance):
    federation = _federation(tmp_path, {"kind": kind})
    assert (federation.federation.rounds, federation.model.balance) == (rounds, balance)
    assert f"rounds = {rounds}\n" in federation.to_toml()  # the resolved file names the rounds it ran
    chosen = _federation(tmp_path, {"kind": kind, "balance": "class_weight"}, rounds=3)
    assert (chosen.federation.rounds, chosen.model.balance) == (3, "class_weight")
    assert config.default_rounds(kind) == rounds and config.default_rounds("no-such-kind") == defaults.ROUNDS


def test_the_cli_help_names_every_kinds_own_rounds():
    (option,) = get_type_hints(cli_run.local, include_extras=True)["rounds"].__metadata__
    own = {name: f.default_rounds for name, f in models.FAMILIES.items() if f.default_rounds}
    assert f"[default: {defaults.ROUNDS}; " + ", ".join(f"{k} {n}" for k, n in own.items()) + "]" in option.help


def test_the_xgboost_booster_starts_from_the_federations_positive_share():
    assert base_score(SCHEMA) == pytest.approx(0.1)
    assert base_score({**SCHEMA, "class_counts": {}}) == 0.5  # a schema without counts (version 1)
    assert base_score({"task": "regression", "classes": [], "label_stats": {"mean": 3.5}}) == 3.5
    family = models.get("xgboost")
    schema = {**SCHEMA, "label": "y", "features": [{"name": "x", "kind": "numeric", "mean": 0.0, "scale": 1.0}]}
    model = family.build(family.hyperparameters(), schema)
    assert model.predict_proba(np.zeros((3, 1)))[:, 1] == pytest.approx(0.1)  # no tree yet: the prior


class Constant:
    """A classifier that gives every row the same probabilities."""

    def __init__(self, proba):
        self.proba = np.asarray(proba, dtype=float)

    def predict_proba(self, X):
        return np.tile(self.proba, (len(X), 1))


class ByInput:
    """A classifier whose positive probability is the row's one input."""

    def predict_proba(self, X):
        return np.column_stack([1 - X[:, 0], X[:, 0]])


def test_a_model_that_predicts_one_class_is_named_with_what_to_try():
    data = Dataset(X=np.zeros((4, 1)), y=np.array([0, 1, 0, 0]), feature_names=["x"])
    warning = prediction_warning(Constant([0.7, 0.3]), data, SCHEMA)
    assert "predicts none of 4 test rows as the positive class 1, highest probability 0.30" in warning
    assert "--rounds" in warning and "model.balance" in warning
    three = {"task": "multiclass", "classes": ["a", "b", "c"]}
    assert "predicts class 'b' for all 4 test rows" in prediction_warning(Constant([0.2, 0.5, 0.3]), data, three)
    assert "predicts class 1 for all 4 test rows" in prediction_warning(Constant([0.4, 0.6]), data, SCHEMA)
    mixed = Dataset(X=np.array([[0.2], [0.7]]), y=np.array([0, 1]), feature_names=["x"])
    assert prediction_warning(ByInput(), mixed, SCHEMA) is None  # both classes predicted
    assert prediction_warning(Constant([0.7, 0.3]), data, {"task": "regression", "classes": []}) is None


def test_rounds_after_linears_exact_solution_are_explained(tmp_path):
    linear = _federation(tmp_path, {"kind": "linear"}, rounds=4)
    assert "exact solution in 1 round(s): rounds 2-4 repeat it" in rounds_warning(linear, 4)
    assert rounds_warning(linear, 1) is None
    assert rounds_warning(_federation(tmp_path, {"kind": "logistic"}), 5) is None


def _options(tmp_path, **values):
    return LocalOptions(out=tmp_path / "runs", join_timeout=60, round_timeout=60, **values)


def test_a_run_whose_model_predicts_no_positive_warns_in_the_summary_and_run_json(capsys, prepared_dir, tmp_path):
    # xgboost rebalanced with SMOTE, one round: three shrunken trees, then the prior correction (the old default)
    args = ["--data-dir", str(prepared_dir), "--model", "xgboost", "--balance", "smote", "--rounds", "1"]
    code, out, err = run_cli(capsys, "local", *args, "--out", str(tmp_path / "runs"))
    assert code == 0, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["final_metrics"]["recall"] == 0
    (warning,) = [w for w in summary["warnings"] if "the final model predicts none" in w]
    assert "as the positive class 1" in warning and warning in (run_dir / "report.md").read_text()
    printed = [line for line in out.splitlines() if "the final model predicts none" in line]
    assert len(printed) == 1 and printed[0].startswith("warning:")


@pytest.mark.slow
def test_a_default_xgboost_run_on_the_built_in_data_finds_positives(tmp_path):
    outcome = build_local_run(_options(tmp_path, model="xgboost")).execute()
    saved = (outcome.run_dir / "federation.toml").read_text()
    assert "rounds = 20\n" in saved and 'balance = "none"' in saved
    final = outcome.final_metrics  # before: precision, recall and F1 0 (ROC-AUC 0.84)
    assert final["roc_auc"] > 0.87 and final["precision"] > 0.5 and final["recall"] > 0.15 and final["f1"] > 0.3
    assert abs(outcome.calibration["mean_predicted"] - outcome.calibration["observed"]) < 0.01
    assert not [w for w in outcome.warnings if "final model" in w]


@pytest.mark.slow
def test_a_default_linear_run_is_one_round_and_more_rounds_say_they_repeat_it(tmp_path):
    one = build_local_run(_options(tmp_path, model="linear", dataset="diabetes")).execute()
    assert [r.round for r in one.history.rounds] == [0, 1] and not one.warnings
    more = build_local_run(_options(tmp_path, model="linear", dataset="diabetes", rounds=3)).execute()
    servers = [r.server for r in more.history.rounds]
    assert servers[1]["r2"] > servers[0]["r2"]  # round 1 solves the pooled ridge; rounds 2 and 3 solve it again
    assert servers[1] == pytest.approx(one.history.rounds[1].server, rel=1e-12)
    assert servers[2] == pytest.approx(servers[1], rel=1e-12) and servers[3] == pytest.approx(servers[1], rel=1e-12)
    assert any("rounds 2-3 repeat it" in w for w in more.warnings)
