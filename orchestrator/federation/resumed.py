"""A strategy that continues a stopped run from its checkpoint (run/checkpoint.py), inside Flower's round loop."""

from __future__ import annotations

from typing import Any

from flwr.common import Parameters, ndarrays_to_parameters
from flwr.server.client_manager import ClientManager
from flwr.server.strategy import Strategy

from orchestrator.errors import BadInput
from orchestrator.run.checkpoint import Checkpoint, restore_rng


class Resumed(Strategy):
    """`inner` continued after a checkpoint of round k: Flower's round r is round k + r (module docstring).

    Restores the strategy's state and the server's random state on construction; BadInput when the
    checkpoint holds strategy state that `inner` cannot take back. Every other attribute is `inner`'s.
    """

    def __init__(self, inner: Strategy, checkpoint: Checkpoint) -> None:
        self.inner = inner
        self.checkpoint = checkpoint
        self.offset = checkpoint.round
        restore = getattr(inner, "restore_state", None)
        if checkpoint.strategy_state and not callable(restore):
            raise BadInput(
                f"the checkpoint of round {checkpoint.round} holds strategy state "
                f"({', '.join(sorted(checkpoint.strategy_state))}) that {type(inner).__name__} cannot restore"
            )
        if callable(restore):
            restore(dict(checkpoint.strategy_state))
        restore_rng(checkpoint.rng)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (a half-built object): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        """The checkpoint's global parameters."""
        return ndarrays_to_parameters(self.checkpoint.arrays())

    def configure_fit(self, server_round: int, parameters: Parameters, client_manager: ClientManager) -> Any:
        """`inner`'s, for round k + server_round."""
        return self.inner.configure_fit(server_round + self.offset, parameters, client_manager)

    def aggregate_fit(self, server_round: int, results: Any, failures: Any) -> Any:
        """`inner`'s, for round k + server_round."""
        return self.inner.aggregate_fit(server_round + self.offset, results, failures)

    def configure_evaluate(self, server_round: int, parameters: Parameters, client_manager: ClientManager) -> Any:
        """`inner`'s, for round k + server_round."""
        return self.inner.configure_evaluate(server_round + self.offset, parameters, client_manager)

    def aggregate_evaluate(self, server_round: int, results: Any, failures: Any) -> Any:
        """`inner`'s, for round k + server_round."""
        return self.inner.aggregate_evaluate(server_round + self.offset, results, failures)

    def evaluate(self, server_round: int, parameters: Parameters) -> Any:
        """`inner`'s, for round k + server_round (Flower's round 0: the checkpoint, scored again)."""
        return self.inner.evaluate(server_round + self.offset, parameters)
