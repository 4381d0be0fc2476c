"""Issue 12, part 2: differential privacy - clipping, noise, equal weights, what config refuses, the budget.

The accountant's epsilon is checked against an independent computation in this file: the analytic
Gaussian mechanism's privacy profile (Balle & Wang 2018, Thm. 8; Dong, Roth & Su 2022, Cor. 2.13)
solved for epsilon with scipy, with T rounds of multiplier z composed to mu = sqrt(T) / z
(Dong, Roth & Su 2022, Cor. 3.3). The loopback test runs a real federation under central DP.
"""

import json
import math

import numpy as np
import pytest
from federation_support import run_with
from flwr.common import parameters_to_ndarrays
from flwr.server.strategy import FedAvg
from scipy import optimize, stats

from client_code import privacy as local_dp
from orchestrator.config import Federation
from orchestrator.config.strategy import PrivacySettings
from orchestrator.federation import privacy
from orchestrator.federation.strategy import ValidatingStrategy
from orchestrator.inspect import load_model
from orchestrator.local import LocalOptions, build_local_run
from orchestrator.run.events import PrivacySpent


def federation_with(**sections):
    """A three-client federation.toml's Federation with the given sections (pydantic's ValidationError if refused)."""
    clients = [{"name": f"c{i}", "train_uri": f"file:///data/c{i}/"} for i in (1, 2, 3)]
    return Federation.model_validate({"server": {"test_data": "test.csv"}, "clients": clients, **sections})


def _independent_epsilon(z: float, rounds: int, delta: float) -> float:
    """epsilon with delta(eps) = Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2), mu = sqrt(T)/z, by root finding."""
    mu = math.sqrt(rounds) / z

    def excess(eps):
        return stats.norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * stats.norm.cdf(-eps / mu - mu / 2) - delta

    return optimize.brentq(excess, 0.0, 500.0, xtol=1e-12)


@pytest.mark.parametrize(("z", "rounds", "delta"), [(1.0, 10, 1e-5), (2.0, 5, 1e-5), (0.8, 3, 1e-6), (5.0, 50, 1e-5)])
def test_the_accountants_epsilon_equals_the_analytic_gaussian_mechanism(z, rounds, delta):
    assert privacy.epsilon(z, rounds, delta) == pytest.approx(_independent_epsilon(z, rounds, delta), rel=1e-6)


def test_the_budget_grows_with_rounds_and_shrinks_with_noise():
    assert privacy.epsilon(1.0, 0, 1e-5) == 0.0
    assert privacy.epsilon(1.0, 10, 1e-5) == pytest.approx(17.86, abs=0.01)  # the docstring's figure
    assert privacy.epsilon(1.0, 5, 1e-5) < privacy.epsilon(1.0, 10, 1e-5)
    assert privacy.epsilon(2.0, 10, 1e-5) < privacy.epsilon(1.0, 10, 1e-5)
    budget = privacy.PrivacyBudget(PrivacySettings(mode="central", noise_multiplier=2.0))
    assert [round(budget.spend_round(), 6) for _ in range(3)] == [
        round(privacy.epsilon(2.0, r, 1e-5), 6) for r in (1, 2, 3)
    ]
    assert budget.to_dict()["rounds"] == 3 and budget.to_dict()["epsilon"] == budget.epsilon


def test_clipping_bounds_the_update_norm_and_keeps_small_updates():
    rng = np.random.default_rng(0)
    reference = [rng.normal(size=(1, 7)), rng.normal(size=(1,))]
    big = [r + 10 * rng.normal(size=r.shape) for r in reference]
    clipped, norm = local_dp.clip(big, reference, 1.5)
    assert norm > 1.5
    distance = math.sqrt(sum(float(np.sum((c - r) ** 2)) for c, r in zip(clipped, reference, strict=True)))
    assert distance == pytest.approx(1.5)
    direction = np.concatenate([(b - r).ravel() for b, r in zip(big, reference, strict=True)])
    kept = np.concatenate([(c - r).ravel() for c, r in zip(clipped, reference, strict=True)])
    assert np.allclose(kept, direction * 1.5 / norm)  # same direction, scaled
    small = [r + 0.01 for r in reference]
    assert all(np.allclose(a, b) for a, b in zip(local_dp.clip(small, reference, 1.5)[0], small, strict=True))
    assert all(
        np.array_equal(a, r) for a, r in zip(local_dp.clip(reference, reference, 1.5)[0], reference, strict=True)
    )


def test_local_dp_clips_then_adds_noise_of_sd_z_times_c():
    reference = [np.zeros(200_000)]
    update = [np.full(200_000, 0.5)]  # norm 223.6, clipped to C = 2: every coordinate 2 / sqrt(200000)
    config = {local_dp.CLIPPING_NORM: 2.0, local_dp.NOISE_MULTIPLIER: 1.5}
    sent = local_dp.privatize(update, reference, config)[0]
    noise = sent - 2.0 / math.sqrt(200_000)
    assert np.std(noise) == pytest.approx(3.0, rel=0.02) and abs(np.mean(noise)) < 0.05
    assert local_dp.privatize(update, reference, {}) is update  # off: unchanged
    with pytest.raises(ValueError, match="positive clipping norm and noise multiplier"):
        local_dp.privatize(update, reference, {local_dp.CLIPPING_NORM: 1.0, local_dp.NOISE_MULTIPLIER: 0})


def test_central_noise_on_the_average_has_sd_z_c_over_m():
    budget = privacy.PrivacyBudget(PrivacySettings(mode="central", clipping_norm=2.0, noise_multiplier=1.5))
    noised = budget.noise_average([np.zeros(200_000)], updates=3)[0]
    assert np.std(noised) == pytest.approx(1.5 * 2.0 / 3, rel=0.02)
    assert budget.client_config() == {}
    local = privacy.PrivacyBudget(PrivacySettings(mode="local", clipping_norm=2.0, noise_multiplier=1.5))
    assert local.client_config() == {local_dp.CLIPPING_NORM: 2.0, local_dp.NOISE_MULTIPLIER: 1.5}
    assert local.noise_average([np.zeros(3)], 3)[0].tolist() == [0, 0, 0]  # the clients added it


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"federation": {"strategy": "fedadam"}}, "its server state would keep the un-noised averages"),
        ({"federation": {"strategy": "fedavgm"}}, "its server state would keep the un-noised averages"),
        ({"federation": {"strategy": "fedmedian"}}, "the noise is calibrated to an average"),
        ({"federation": {"min_clients": 2}}, "needs every client's update in every round"),
        ({"model": {"kind": "xgboost"}}, 'model.kind = "xgboost" sends trees'),
    ],
)
def test_central_dp_refuses_what_its_noise_is_not_calibrated_for(sections, message):
    with pytest.raises(ValueError, match=message):
        federation_with(privacy={"mode": "central"}, **sections)


def test_local_dp_runs_with_any_array_strategy_and_config_checks_the_rest():
    assert federation_with(privacy={"mode": "local"}, federation={"strategy": "fedadam"}).privacy.mode == "local"
    with pytest.raises(ValueError, match="strategy.proximal_mu is not a parameter of fedavg"):
        federation_with(strategy={"proximal_mu": 0.1})
    with pytest.raises(ValueError, match=r"needs at least 5 clients \(2f \+ 3\)"):
        federation_with(federation={"strategy": "krum"}, strategy={"num_malicious_clients": 1})
    with pytest.raises(ValueError, match='model.kind = "sgd" has none'):
        federation_with(federation={"strategy": "fedprox"}, model={"kind": "sgd"})


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_central_dp_clips_every_update_weighs_them_equally_and_records_the_budget(prepared_dir, tmp_path, monkeypatch):
    """A real loopback federation: what the inner FedAvg receives, and the (epsilon, delta) in every record."""
    rounds, c, z = 3, 0.5, 1.2
    globals_, inner = {}, {}
    configure, aggregate = ValidatingStrategy.configure_fit, FedAvg.aggregate_fit

    def spy_configure(self, server_round, parameters, client_manager):
        globals_[server_round] = parameters_to_ndarrays(parameters)
        return configure(self, server_round, parameters, client_manager)

    def spy_aggregate(self, server_round, results, failures):
        inner[server_round] = [(parameters_to_ndarrays(r.parameters), r.num_examples) for _, r in results]
        return aggregate(self, server_round, results, failures)

    monkeypatch.setattr(ValidatingStrategy, "configure_fit", spy_configure)
    monkeypatch.setattr(FedAvg, "aggregate_fit", spy_aggregate)
    run = build_local_run(
        LocalOptions(data_dir=prepared_dir, out=tmp_path / "runs", rounds=rounds, join_timeout=60, round_timeout=60)
    )
    spent = []
    observer = run.observer
    run = run_with(
        run,
        observer=lambda e: (spent.append(e) if isinstance(e, PrivacySpent) else None, observer(e)),
        privacy={"mode": "central", "clipping_norm": c, "noise_multiplier": z, "delta": 1e-5},
    )
    outcome = run.execute()
    assert sorted(inner) == list(range(1, rounds + 1))
    for rnd, updates in inner.items():
        assert len(updates) == 3 and {n for _, n in updates} == {1}  # every client, equal weights
        for arrays, _ in updates:
            distance = math.sqrt(sum(float(np.sum((a - g) ** 2)) for a, g in zip(arrays, globals_[rnd], strict=True)))
            assert distance <= c * (1 + 1e-9)
    expected = privacy.epsilon(z, rounds, 1e-5)
    assert [e.budget["rounds"] for e in spent] == [1, 2, 3]  # shown live, every round
    assert spent[-1].budget["epsilon"] == pytest.approx(expected)
    summary = json.loads((outcome.run_dir / "run.json").read_text())
    assert summary["privacy"]["epsilon"] == pytest.approx(expected) and summary["privacy"]["delta"] == 1e-5
    assert summary["privacy"]["mode"] == "central"
    assert f"epsilon {expected:.3g} at delta 1e-05" in (outcome.run_dir / "report.md").read_text()
    model, _ = load_model(outcome.run_dir / "model.joblib")
    assert model.fedsage_provenance_["privacy"]["epsilon"] == pytest.approx(expected)
