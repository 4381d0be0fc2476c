"""Issue 12, section 1: every strategy, on a real loopback federation, aggregates what its formula says.

Three clients (threads of this process over the real transport) train for three rounds under each
strategy. The test records what every client returned in every round, as the server received it,
and recomputes the global model of each round with its own numpy code of the strategy's formula
(the papers': McMahan 2017, Li 2020, Hsu 2019, Reddi 2021, Yin 2018, Blanchard 2017, El Mhamdi 2018,
with Flower's documented conventions: Adam's bias correction uses round + 1), carrying the server
state (momentum, moment estimates) from round to round. The checkpoint of every round must equal it.
"""

import numpy as np
import pytest
from federation_support import InProcessClients, run_with
from scipy import stats

from orchestrator.local import LocalOptions, build_local_run

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")]

ROUNDS = 3


def _mean(updates, weighted=True):
    weights = np.array([n if weighted else 1 for _, n in updates.values()], dtype=float)
    arrays = [w for w, _ in updates.values()]
    return [sum(w[i] * k for w, k in zip(arrays, weights, strict=True)) / weights.sum() for i in range(2)]


def _per_coordinate(updates, reduce):
    arrays = [w for w, _ in updates.values()]
    return [reduce(np.stack([w[i] for w in arrays]), axis=0) for i in range(2)]


def _krum(updates, f):
    flat = [np.concatenate([a.ravel() for a in w]) for w, _ in updates.values()]
    arrays = [w for w, _ in updates.values()]
    n = len(flat)
    scores = []
    for i in range(n):
        distances = sorted(float(np.sum((flat[i] - flat[j]) ** 2)) for j in range(n) if j != i)
        scores.append(sum(distances[: max(1, n - f - 2)]))
    return arrays[int(np.argmin(scores))]


class Server:
    """The strategy's server side, recomputed: state carried between rounds."""

    def __init__(self, name, parameters, initial):
        self.name, self.p, self.w = name, parameters, initial
        self.m = self.v = None

    def aggregate(self, rnd, updates):
        name, p = self.name, self.p
        if name in ("fedavg", "fedprox"):
            new = _mean(updates)
        elif name == "fedavgm":
            g = [w - a for w, a in zip(self.w, _mean(updates), strict=True)]
            self.m = g if rnd == 1 else [p["server_momentum"] * m + gi for m, gi in zip(self.m, g, strict=True)]
            new = [w - p["server_learning_rate"] * m for w, m in zip(self.w, self.m, strict=True)]
        elif name in ("fedadam", "fedyogi", "fedadagrad"):
            delta = [a - w for a, w in zip(_mean(updates), self.w, strict=True)]
            b1, b2 = p.get("beta_1", 0.0), p.get("beta_2", 0.0)
            self.m = [(b1 * m if self.m else 0) + (1 - b1) * d for m, d in zip(self.m or delta, delta, strict=True)]
            v = self.v or [np.zeros_like(d) for d in delta]
            if name == "fedadam":
                self.v = [b2 * vi + (1 - b2) * d**2 for vi, d in zip(v, delta, strict=True)]
                eta = p["eta"] * np.sqrt(1 - b2 ** (rnd + 1)) / (1 - b1 ** (rnd + 1))
            elif name == "fedyogi":
                self.v = [vi - (1 - b2) * d**2 * np.sign(vi - d**2) for vi, d in zip(v, delta, strict=True)]
                eta = p["eta"]
            else:
                self.v = [vi + d**2 for vi, d in zip(v, delta, strict=True)]
                eta = p["eta"]
            new = [w + eta * m / (np.sqrt(v) + p["tau"]) for w, m, v in zip(self.w, self.m, self.v, strict=True)]
        elif name == "fedmedian":
            new = _per_coordinate(updates, np.median)
        elif name == "fedtrimmedavg":
            new = _per_coordinate(updates, lambda a, axis: stats.trim_mean(a, p["beta"], axis=axis))
        elif name == "krum":
            new = _krum(updates, p["num_malicious_clients"])
        elif name == "bulyan":  # f = 0 with 3 clients: Krum selects all 3, and all 3 are kept around the median
            new = _mean(updates, weighted=False)
        self.w = new
        return new


CASES = {
    "fedavg": {},
    "fedprox": {"proximal_mu": 0.5},
    "fedavgm": {"server_learning_rate": 0.7, "server_momentum": 0.9},
    "fedadam": {"eta": 0.05, "beta_1": 0.9, "beta_2": 0.99, "tau": 1e-9},
    "fedyogi": {"eta": 0.01, "beta_1": 0.9, "beta_2": 0.99, "tau": 1e-3},
    "fedadagrad": {"eta": 0.1, "tau": 1e-9},
    "fedmedian": {},
    "fedtrimmedavg": {"beta": 0.34},  # trims one of three at each end: not the plain mean
    "krum": {"num_malicious_clients": 0, "num_clients_to_keep": 0},
    "bulyan": {"num_malicious_clients": 0},
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_strategy_aggregates_what_its_formula_says(name, prepared_dir, tmp_path, fit_results):
    run = build_local_run(LocalOptions(data_dir=prepared_dir, out=tmp_path / "runs", rounds=ROUNDS, round_timeout=60))
    run = run_with(run, InProcessClients(run.backend), federation={"strategy": name}, strategy=CASES[name])
    outcome = run.execute()

    checkpoints = {r: np.load(outcome.run_dir / "checkpoints" / f"round-{r:03d}.npz") for r in range(ROUNDS + 1)}
    initial = [checkpoints[0]["coef"], checkpoints[0]["intercept"]]
    assert all(np.all(a == 0) for a in initial)
    server = Server(name, CASES[name], initial)
    for rnd in range(1, ROUNDS + 1):
        updates = fit_results[rnd]
        assert sorted(updates) == ["client-1", "client-2", "client-3"]
        expected = server.aggregate(rnd, updates)
        np.testing.assert_allclose(checkpoints[rnd]["coef"], expected[0], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(checkpoints[rnd]["intercept"], expected[1], rtol=1e-9, atol=1e-12)
    if name not in ("fedavg", "fedprox", "bulyan"):  # the others differ from the weighted average
        assert not np.allclose(checkpoints[ROUNDS]["coef"], _mean(fit_results[ROUNDS])[0])
    assert outcome.final_metrics["roc_auc"] > 0.75
    assert outcome.history.final().round == ROUNDS
    assert run.record.provenance(run.data)["strategy"] == {"name": name, **CASES[name]}
