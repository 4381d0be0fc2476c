"""A strategy's server-side state survives a checkpoint: FedAvgM's momentum, FedOpt's moments (issue 14 resume).

Scenario: Flower's own strategy aggregates round 1, its state goes through a real checkpoint file
(run/checkpoint.py) into a freshly built strategy, and both then aggregate the same round 2: the
two global models must be equal. Without the state, FedAvgM asserts on round 2 and FedAdam restarts
its moment estimates, so the models differ.
"""

import numpy as np
import pytest
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.strategy import FedAdagrad, FedAdam, FedAvg, FedAvgM, FedYogi

from orchestrator.federation import state
from orchestrator.run import checkpoint

INITIAL = [np.array([[0.5, -1.0, 2.0]]), np.array([0.1])]


def _updates(round_number: int) -> list:
    rng = np.random.default_rng(round_number)
    ok = Status(Code.OK, "")
    return [
        (None, FitRes(ok, ndarrays_to_parameters([a + rng.normal(size=a.shape) for a in INITIAL]), 10 * (i + 1), {}))
        for i in range(3)
    ]


STRATEGIES = {
    "fedavgm": lambda: FedAvgM(initial_parameters=ndarrays_to_parameters(INITIAL), server_momentum=0.9),
    "fedadam": lambda: FedAdam(initial_parameters=ndarrays_to_parameters(INITIAL), eta=0.1),
    "fedyogi": lambda: FedYogi(initial_parameters=ndarrays_to_parameters(INITIAL), eta=0.1),
    "fedadagrad": lambda: FedAdagrad(initial_parameters=ndarrays_to_parameters(INITIAL), eta=0.1),
}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_a_resumed_server_optimiser_aggregates_round_2_as_the_uninterrupted_one(name, tmp_path):
    uninterrupted = STRATEGIES[name]()
    uninterrupted.aggregate_fit(1, _updates(1), [])
    saved = state.capture(uninterrupted)
    assert saved, f"{name} carries state between rounds"
    path = checkpoint.write(tmp_path, 1, {"coef": INITIAL[0], "intercept": INITIAL[1]}, _Holder(saved))
    restored = STRATEGIES[name]()
    state.restore(restored, checkpoint.read(path).strategy_state)

    expected, _ = uninterrupted.aggregate_fit(2, _updates(2), [])
    got, _ = restored.aggregate_fit(2, _updates(2), [])
    for a, b in zip(parameters_to_ndarrays(expected), parameters_to_ndarrays(got), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)

    fresh = STRATEGIES[name]()  # without the state the next round is another one: the state matters
    if name == "fedavgm":
        with pytest.raises(AssertionError):
            fresh.aggregate_fit(2, _updates(2), [])
    else:
        different, _ = fresh.aggregate_fit(2, _updates(2), [])
        assert np.abs(parameters_to_ndarrays(different)[0] - parameters_to_ndarrays(expected)[0]).max() > 1e-3


def test_a_stateless_strategy_stores_nothing_and_refuses_state_it_cannot_take():
    fedavg = FedAvg(initial_parameters=ndarrays_to_parameters(INITIAL))
    fedavg.aggregate_fit(1, _updates(1), [])
    assert state.capture(fedavg) == {}
    with pytest.raises(ValueError, match="FedAvg has no m_t to restore"):
        state.restore(fedavg, {"m_t.0": np.zeros(3)})
    with pytest.raises(ValueError, match="FedAvg cannot restore booster"):
        state.restore(fedavg, {"inner.booster": np.zeros(3)})


class _Holder:
    """Any object with the checkpoint_state hook (what run/checkpoint.py's write reads)."""

    def __init__(self, saved):
        self.saved = saved

    def checkpoint_state(self):
        return self.saved
