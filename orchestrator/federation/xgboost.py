"""Boosted trees on the server: Flower's FedXgbBagging aggregation behind the run's validation and record.

The xgboost family (client_code/models/xgboost.py) exchanges booster JSON bytes (one uint8 array),
not arrays of weights, so it needs its own aggregation: every round the server appends each
client's new tree to the global booster with Flower's bagging (`aggregate` of
flwr.server.strategy.fedxgb_bagging, the function FedXgbBagging.aggregate_fit applies), taking
the clients in name order so the same updates always give the same booster. Everything else is
ValidatingFedAvg's: named rejections, min_clients, test-set evaluation, checkpoints.

`strategy(**options)` is the one entry point: it takes ValidatingFedAvg's keyword arguments and
returns the strategy `[federation] strategy = "fedxgb_bagging"` names (config/federation.py makes
it the default for kind = "xgboost" and refuses it for the other kinds). A strategy factory
(federation/strategies.py, issue 12) calls it for that name.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from flwr.common import FitRes, Parameters, Scalar, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy.fedxgb_bagging import aggregate

from orchestrator.federation.strategy import ValidatingFedAvg

NAME = "fedxgb_bagging"


def _booster(array: np.ndarray) -> dict[str, Any]:
    """A booster's JSON from its uint8 array; ValueError when it is not one."""
    if array.dtype != np.uint8 or array.ndim != 1:
        raise ValueError(f"an array of {array.dtype} {array.shape}, not the uint8 bytes of a booster")
    model = json.loads(array.tobytes())
    return model["learner"]


class ValidatingXgbBagging(ValidatingFedAvg):
    """ValidatingFedAvg whose aggregation is Flower's bagging of the clients' new trees."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        initial = options.get("initial")
        if not initial:
            raise ValueError("FedXgbBagging starts from the family's booster without trees (initial parameters)")
        self.global_model: bytes = np.asarray(initial[0]).tobytes()
        self.n_inputs = int(_booster(np.asarray(initial[0]))["learner_model_param"]["num_feature"])

    def validate_update(self, res: FitRes) -> str | None:
        """Why an update cannot be appended, or None: a positive example count, the features, one finite tree."""
        problem = self.validate_sender(res)
        if problem:
            return problem
        try:
            arrays = parameters_to_ndarrays(res.parameters)
            if len(arrays) != 1:
                return f"sent {len(arrays)} parameter arrays, expected 1 (a booster)"
            learner = _booster(arrays[0])
            inputs = int(learner["learner_model_param"]["num_feature"])
            trees = learner["gradient_booster"]["model"]["trees"]
            leaves = [float(v) for tree in trees for key in ("base_weights", "split_conditions") for v in tree[key]]
        except Exception as exc:  # noqa: BLE001 - any decoding problem means an unusable update
            return f"parameters are not an xgboost booster ({type(exc).__name__})"
        if inputs != self.n_inputs:
            return f"booster over {inputs} inputs, expected {self.n_inputs}"
        if len(trees) != 1:
            return f"sent {len(trees)} trees, expected the 1 tree of this round"
        if not np.all(np.isfinite(leaves)):
            return "the tree has NaN or infinite leaf values"
        return None

    def combine(
        self, server_round: int, usable: list[tuple[ClientProxy, FitRes]]
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        """Append every client's tree to the global booster (Flower's bagging), clients in name order."""
        for _, res in sorted(usable, key=lambda item: item[0].cid):
            self.global_model = aggregate(self.global_model, parameters_to_ndarrays(res.parameters)[0].tobytes())
        metrics = self.fit_metrics_aggregation_fn([(res.num_examples, res.metrics) for _, res in usable])
        return ndarrays_to_parameters([np.frombuffer(self.global_model, dtype=np.uint8).copy()]), metrics

    def checkpoint_state(self) -> dict[str, np.ndarray]:
        """The booster the next round's trees are appended to (run/checkpoint.py's strategy-state contract)."""
        return {"global_model": np.frombuffer(self.global_model, dtype=np.uint8).copy()}

    def restore_state(self, state: dict[str, np.ndarray]) -> None:
        """Continue from a checkpoint's booster (the state checkpoint_state gave)."""
        self.global_model = np.asarray(state["global_model"], dtype=np.uint8).tobytes()


def strategy(**options: Any) -> ValidatingXgbBagging:
    """The validating FedXgbBagging strategy, from ValidatingFedAvg's keyword arguments (`initial` required)."""
    return ValidatingXgbBagging(**options)
