"""Issue 10, items 3 and 10, and issue 12's robust aggregators: what a malicious member can send, and what it gets.

The attacker is a member with a valid token running changed client code: a FederationClient
subclass in a thread of this process (tests/federation_support.py), on a real loopback federation.
"""

import json

import numpy as np
import pytest
from federation_support import InProcessClients, run_with

from client_code.client import FederationClient
from orchestrator.data.prepare import PrepareOptions, prepare
from orchestrator.data.synth import LABEL
from orchestrator.federation import validation
from orchestrator.local import LocalOptions, build_local_run

QUIET = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
ROUNDS = 5


class Scaled(FederationClient):
    """Sends its parameters x -20 (a well-formed update that flips and blows up the model)."""

    def fit(self, parameters, config):
        params, n, metrics = super().fit(parameters, config)
        return [p * -20 for p in params], n, metrics


class Shifted(FederationClient):
    """Sends its parameters + 1e300 (finite, well-formed, enormous)."""

    def fit(self, parameters, config):
        params, n, metrics = super().fit(parameters, config)
        return [p + 1e300 for p in params], n, metrics


class Inflated(FederationClient):
    """Claims 10**12 examples for flipped parameters, to dominate an example-weighted average."""

    def fit(self, parameters, config):
        params, _, metrics = super().fit(parameters, config)
        return [-p for p in params], 10**12, metrics


class HugeMetric(FederationClient):
    """Sends a 1 MB string as a fit metric."""

    def fit(self, parameters, config):
        params, n, metrics = super().fit(parameters, config)
        return params, n, {**metrics, "notes": "x" * 1_000_000}


class NanEvaluation(FederationClient):
    """Reports a NaN accuracy from its evaluation."""

    def evaluate(self, parameters, config):
        loss, n, metrics = super().evaluate(parameters, config)
        return loss, n, {**metrics, "accuracy": float("nan")}


def _run(data_dir, out, attackers, **sections):
    """A local run on `data_dir` with every client in-process, `attackers` by name, config sections changed."""
    run = build_local_run(LocalOptions(data_dir=data_dir, out=out, rounds=ROUNDS, join_timeout=60, round_timeout=60))
    names = [c.name for c in run.federation.clients]
    clients = {name: attackers.get(name, FederationClient) for name in names}
    return run_with(run, InProcessClients(run.backend, clients), **sections)


@pytest.fixture(scope="module")
def clean_roc_auc(prepared_dir, tmp_path_factory):
    """Test ROC-AUC of a FedAvg run of the three honest clients."""
    return _run(prepared_dir, tmp_path_factory.mktemp("clean"), {}).execute().final_metrics["roc_auc"]


@pytest.mark.parametrize(
    ("attacker", "reason"),
    [
        (Shifted, "its update's norm inf is more than 10 times the others' median"),
        (Scaled, "is more than 10 times the others' median"),
        (Inflated, "claimed 1,000,000,000,000 training examples, more than the"),
    ],
    ids=["plus-1e300", "times-minus-20", "10**12-examples-flipped"],
)
@pytest.mark.slow
@QUIET
def test_poisoned_updates_are_refused_by_name_and_the_model_stays_clean(
    prepared_dir, tmp_path, clean_roc_auc, attacker, reason
):
    """Item 10: the example count declared before round 1 and the relative norm bound (factor 10, the default)."""
    run = _run(prepared_dir, tmp_path / "runs", {"client-3": attacker}, federation={"min_clients": 2})
    outcome = run.execute()
    rejected = [w for w in outcome.warnings if "client 'client-3' left out" in w]
    assert len(rejected) == ROUNDS and all(reason in w for w in rejected), outcome.warnings
    assert all("num_examples" not in r.clients.get("client-3", {}) for r in outcome.history.rounds), outcome.history
    assert abs(outcome.final_metrics["roc_auc"] - clean_roc_auc) <= 0.02
    assert outcome.final_metrics["roc_auc"] > 0.85


@pytest.mark.slow
@QUIET
def test_bad_metrics_reject_that_update_by_name_with_a_short_reason(prepared_dir, tmp_path):
    """Item 3: a 1 MB string metric and a NaN evaluation metric; nothing of them reaches the run's files."""
    run = _run(
        prepared_dir,
        tmp_path / "runs",
        {"client-3": HugeMetric, "client-2": NanEvaluation},
        federation={"min_clients": 2},
    )
    outcome = run.execute()
    fit = [w for w in outcome.warnings if "client 'client-3'" in w]
    evaluation = [w for w in outcome.warnings if "client 'client-2'" in w]
    assert len(fit) == ROUNDS and all("metric 'notes' is text; only features, split may be" in w for w in fit)
    assert len(evaluation) == ROUNDS + 1 or len(evaluation) == ROUNDS  # every federated evaluation
    assert all("evaluation: metric 'accuracy' is not a finite number" in w for w in evaluation)
    assert max(len(w) for w in outcome.warnings) < 200
    for name in ("run.json", "report.md", "metrics.json", "server.log"):
        assert "x" * 1000 not in (outcome.run_dir / name).read_text(), name
    assert all("val_accuracy" not in r.clients.get("client-2", {}) for r in outcome.history.rounds)
    assert json.loads((outcome.run_dir / "run.json").read_text())["status"] == "completed"


@pytest.mark.parametrize(
    ("metrics", "problem"),
    [
        ({"loss": 0.5, "accuracy": 1, "ok": True}, None),
        ({"features": "a" * 64, "split": "validation"}, None),
        ({"notes": "x"}, "metric 'notes' is text; only features, split may be"),
        ({"features": "f" * 1_000_000}, "metric 'features' is 1,000,000 characters long, at most 128 are accepted"),
        ({"loss": float("inf")}, "metric 'loss' is not a finite number"),
        ({"blob": b"\x00" * 10}, "metric 'blob' is a bytes, not a number"),
        ({f"m{i}": 1.0 for i in range(65)}, "sent 65 metrics, at most 64 are accepted"),
        ({"k" * 5000: 1.0}, "metric a name of 5,000 characters has a name longer than 64 characters or unprintable"),
    ],
)
def test_metric_validation(metrics, problem):
    assert validation.metrics_problem(metrics) == problem


def test_the_norm_bound_is_relative_to_the_other_clients_and_falls_back_to_the_last_round():
    norms = {"a": 1.0, "b": 1.3, "c": 25.0}
    assert set(validation.norm_outliers(norms, None, 10)) == {"c"}
    assert validation.norm_outliers(norms, None, 0) == {}  # off
    assert validation.norm_outliers({"a": 1.0, "b": 30.0}, None, 10) == {}  # round 1, two updates: no reference
    assert set(validation.norm_outliers({"a": 1.0, "b": 30.0}, 1.2, 10)) == {"b"}  # last round's median


# ------------------------------------------------------------------ issue 12: robust aggregators


@pytest.fixture(scope="module")
def five_clients(fraud_frame, tmp_path_factory):
    """The synthetic data split over five clients (Krum with f = 1 needs 2f + 3 = 5)."""
    out = tmp_path_factory.mktemp("five") / "data"
    prepare(fraud_frame, PrepareOptions(label=LABEL, clients=5, categorical=("region",), seed=7), out)
    return out


@pytest.mark.slow
@QUIET
def test_robust_aggregators_keep_the_model_clean_where_fedavg_falls(five_clients, tmp_path):
    """One of five clients sends its parameters x -20, with the norm bound off (it would reject the attacker).

    Each strategy's attacked run is compared with the same strategy's clean run (five honest clients).
    """
    off = {"update_norm_factor": 0}
    scores = {}
    for name, parameters in (
        ("fedavg", {}),
        ("fedmedian", {}),
        ("fedtrimmedavg", {"beta": 0.2}),
        ("krum", {"num_malicious_clients": 1}),
    ):
        for attacked in (False, True):
            attack = {"client-5": Scaled} if attacked else {}
            sections = {"federation": {**off, "strategy": name}, "strategy": parameters}
            outcome = _run(five_clients, tmp_path / f"{name}-{attacked}", attack, **sections).execute()
            assert not [w for w in outcome.warnings if "left out" in w]  # nothing rejected: the aggregator copes
            scores[name, attacked] = outcome.final_metrics["roc_auc"]
    assert scores["fedavg", True] < scores["fedavg", False] - 0.2, scores
    for name in ("fedmedian", "fedtrimmedavg", "krum"):
        assert abs(scores[name, True] - scores[name, False]) <= 0.02, (name, scores)
    assert np.isfinite(list(scores.values())).all()
