"""Boosted trees on the server: Flower's FedXgbBagging aggregation, as the inner strategy of the run.

The xgboost family (client_code/models/xgboost.py) exchanges booster JSON bytes (one uint8 array),
not arrays of weights, so it needs its own aggregation: every round the server appends each
client's new tree to the global booster with Flower's bagging (`aggregate` of
flwr.server.strategy.fedxgb_bagging, the function FedXgbBagging.aggregate_fit applies), taking
the clients in name order so the same updates always give the same booster.

`Bagging` is that inner strategy (strategies.py builds it for `[federation] strategy =
"fedxgb_bagging"`, which config/federation.py makes the default for kind = "xgboost" and refuses
for the other kinds); `booster_check(initial)` is the check of a client's update the
ValidatingStrategy applies in place of the weight arrays' shapes. Everything else is the
ValidatingStrategy's: named rejections, min_clients, test-set evaluation, checkpoints.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from flwr.common import FitRes, NDArrays, Parameters, Scalar, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg
from flwr.server.strategy.fedxgb_bagging import aggregate

from orchestrator.federation.validation import ArraysCheck

NAME = "fedxgb_bagging"


def _booster(array: np.ndarray) -> dict[str, Any]:
    """A booster's JSON learner from its uint8 array; ValueError when it is not one."""
    if array.dtype != np.uint8 or array.ndim != 1:
        raise ValueError(f"an array of {array.dtype} {array.shape}, not the uint8 bytes of a booster")
    model = json.loads(array.tobytes())
    return model["learner"]


def booster_check(initial: NDArrays) -> ArraysCheck:
    """The check of one client's update against the family's initial booster (`initial`, one uint8 array).

    The returned function answers why decoded arrays are unusable (not one booster, over another
    number of inputs, not exactly the one tree of this round, NaN or infinite leaves), or None.
    """
    n_inputs = int(_booster(np.asarray(initial[0]))["learner_model_param"]["num_feature"])

    def check(arrays: NDArrays) -> str | None:
        try:
            if len(arrays) != 1:
                return f"sent {len(arrays)} parameter arrays, expected 1 (a booster)"
            learner = _booster(arrays[0])
            inputs = int(learner["learner_model_param"]["num_feature"])
            trees = learner["gradient_booster"]["model"]["trees"]
            leaves = [float(v) for tree in trees for key in ("base_weights", "split_conditions") for v in tree[key]]
        except Exception as exc:  # noqa: BLE001 - any decoding problem means an unusable update
            return f"parameters are not an xgboost booster ({type(exc).__name__})"
        if inputs != n_inputs:
            return f"booster over {inputs} inputs, expected {n_inputs}"
        if len(trees) != 1:
            return f"sent {len(trees)} trees, expected the 1 tree of this round"
        if not np.all(np.isfinite(leaves)):
            return "the tree has NaN or infinite leaf values"
        return None

    return check


class Bagging(FedAvg):
    """FedAvg's configuration and evaluation, with Flower's bagging of the clients' new trees as aggregation."""

    def __init__(self, **options: Any) -> None:
        """FedAvg's keyword arguments; `initial_parameters` (the booster without trees) is required."""
        super().__init__(**options)
        if self.initial_parameters is None:
            raise ValueError("FedXgbBagging starts from the family's booster without trees (initial parameters)")
        self.global_model: bytes = parameters_to_ndarrays(self.initial_parameters)[0].tobytes()

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        """Append every client's tree to the global booster (Flower's bagging), clients in name order."""
        for _, res in sorted(results, key=lambda item: item[0].cid):
            self.global_model = aggregate(self.global_model, parameters_to_ndarrays(res.parameters)[0].tobytes())
        metrics = {}
        if self.fit_metrics_aggregation_fn is not None:
            metrics = self.fit_metrics_aggregation_fn([(res.num_examples, res.metrics) for _, res in results])
        return ndarrays_to_parameters([np.frombuffer(self.global_model, dtype=np.uint8).copy()]), metrics

    def checkpoint_state(self) -> dict[str, np.ndarray]:
        """The booster the next round's trees are appended to (run/checkpoint.py's strategy-state contract)."""
        return {"global_model": np.frombuffer(self.global_model, dtype=np.uint8).copy()}

    def restore_state(self, state: dict[str, np.ndarray]) -> None:
        """Continue from a checkpoint's booster (the state checkpoint_state gave)."""
        self.global_model = np.asarray(state["global_model"], dtype=np.uint8).tobytes()
