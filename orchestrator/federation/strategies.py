"""The strategy factory: `[federation] strategy` and its `[strategy]` parameters -> a Flower strategy, wrapped.

Every strategy is Flower's own (flwr.server.strategy, flwr 1.41; formulas in config/strategy.py
and docs/benchmarks.md; fedxgb_bagging is Flower's bagging in federation/xgboost.py), built with
its parameters and the run's common settings:

* every connected client trains and evaluates in every round (fractions 1.0); the fewest updates
  a round needs is min_clients or what the strategy needs (Krum 2f + 3, Bulyan 4f + 3), whichever
  is larger (config refuses a federation too small for it);
* the innermost strategy gets the initial parameters: FedAvgM and the FedOpt family (FedAdam,
  FedYogi, FedAdagrad) keep the global model as server state from them;
* the test-set evaluator is its `evaluate_fn`; `round_config` goes with every fit and evaluate
  instruction (the prior; under local DP the clipping norm and noise multiplier; FedProx adds
  its proximal_mu itself);
* client metrics are aggregated example-weighted.

`build` wraps it in the ValidatingStrategy (strategy.py): validation, named rejections, minimum
updates, differential privacy, recording, checkpoints and test-set evaluation, the same for all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flwr.common import NDArrays, Scalar, ndarrays_to_parameters
from flwr.server.strategy import (
    Bulyan,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedMedian,
    FedProx,
    FedTrimmedAvg,
    FedYogi,
    Krum,
    Strategy,
)

from orchestrator.config import Federation
from orchestrator.config.strategy import minimum_updates
from orchestrator.federation import validation, xgboost
from orchestrator.federation.history import RoundRecord
from orchestrator.federation.privacy import PrivacyBudget
from orchestrator.federation.roster import Roster
from orchestrator.federation.strategy import Evaluator, ValidatingStrategy, weighted_metrics
from orchestrator.run.events import FederationEvent

FLOWER: dict[str, type[Strategy]] = {
    "fedavg": FedAvg,
    "fedprox": FedProx,
    "fedavgm": FedAvgM,
    "fedadam": FedAdam,
    "fedyogi": FedYogi,
    "fedadagrad": FedAdagrad,
    "fedmedian": FedMedian,
    "fedtrimmedavg": FedTrimmedAvg,
    "krum": Krum,
    "bulyan": Bulyan,
    xgboost.NAME: xgboost.Bagging,
}
# Bulyan forwards its extra keyword arguments to its first rule, Krum, which needs `to_keep` (0: select one)
EXTRA: dict[str, dict[str, Any]] = {"bulyan": {"to_keep": 0}}


def updates_needed(federation: Federation) -> int:
    """The fewest usable updates every round needs: min_clients or the strategy's own minimum, whichever is larger."""
    need = minimum_updates(federation.federation.strategy, federation.strategy_parameters())
    return max(federation.min_clients(), need)


def flower_strategy(
    federation: Federation, initial: NDArrays, evaluator: Evaluator, round_config: dict[str, Scalar]
) -> Strategy:
    """Flower's strategy for `[federation] strategy`, with its `[strategy]` parameters (see the module docstring)."""
    name = federation.federation.strategy
    need = updates_needed(federation)
    return FLOWER[name](
        fraction_fit=1.0,
        fraction_evaluate=1.0,
        min_fit_clients=need,
        min_evaluate_clients=federation.min_clients(),
        min_available_clients=need,
        evaluate_fn=evaluator,
        on_fit_config_fn=lambda rnd: {"server_round": rnd, **round_config},
        on_evaluate_config_fn=lambda rnd: {"server_round": rnd, **round_config},
        accept_failures=True,
        initial_parameters=ndarrays_to_parameters(initial),
        fit_metrics_aggregation_fn=weighted_metrics,
        evaluate_metrics_aggregation_fn=weighted_metrics,
        **federation.strategy_parameters().model_dump(),
        **EXTRA.get(name, {}),
    )


def build(
    federation: Federation,
    *,
    shapes: list[tuple[int, ...]],
    initial: NDArrays,
    feature_fingerprint: str,
    evaluator: Evaluator,
    round_config: dict[str, Scalar],
    roster: Roster,
    on_round: Callable[[RoundRecord, NDArrays], None],
    emit: Callable[[FederationEvent], None],
    declared_examples: dict[str, int],
) -> ValidatingStrategy:
    """The run's strategy: Flower's, inside the ValidatingStrategy (with the run's privacy budget, if DP is on).

    `shapes`: the family's parameter shapes; `initial`: the first global model (the family's
    initial_parameters); `declared_examples`: each client's training rows from the
    statistics phase (the bound on the example counts it may report).
    """
    privacy = PrivacyBudget(federation.privacy) if federation.privacy.enabled else None
    trees = federation.federation.strategy == xgboost.NAME
    config = {**round_config, **(privacy.client_config() if privacy else {})}
    return ValidatingStrategy(
        flower_strategy(federation, initial, evaluator, config),
        check_arrays=(
            xgboost.booster_check(initial) if trees else lambda arrays: validation.arrays_problem(arrays, shapes)
        ),
        measure_norms=not trees,
        feature_fingerprint=feature_fingerprint,
        min_updates=updates_needed(federation),
        roster=roster,
        on_round=on_round,
        emit=emit,
        declared_examples=declared_examples,
        norm_factor=federation.federation.update_norm_factor,
        privacy=privacy,
    )
