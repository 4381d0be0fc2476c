"""FedAvg with validated client updates, named clients and a record of every round.

Aggregation is Flower's FedAvg: the example-weighted average of the clients' parameters. Around
it, this strategy

* starts from the model family's initial parameters (zero parameters of `shapes` when none are given);
* validates every update before it can reach the average: the number and shapes of the arrays,
  a floating-point dtype, finite values, a positive example count, and the fingerprint of the
  feature columns the client trained on. A bad update is left out and reported by client name;
* fails the round, naming the clients, when fewer than `min_clients` usable updates arrive;
* evaluates the global model on the server's test set before round 1 and after every round
  (Flower calls `evaluate`), and hands each RoundRecord to `on_round`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from flwr.common import (
    EvaluateRes,
    FitRes,
    NDArrays,
    Parameters,
    Scalar,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg

from orchestrator.federation.history import RoundRecord
from orchestrator.federation.roster import Roster
from orchestrator.run.events import FederationEvent, UpdateRejected

log = logging.getLogger(__name__)

GAIN_PREFIXES = ("local_", "federated_")  # a client's local-only and federated scores (client_code/client.py)
Evaluator = Callable[[int, NDArrays, dict[str, Scalar]], tuple[float, dict[str, Scalar]]]


class RoundFailed(RuntimeError):
    """A round could not go on: too few clients, or too few usable updates."""

    def __init__(self, message: str, clients: dict[str, str]) -> None:
        super().__init__(message)
        self.clients = clients


def _weighted(metrics: list[tuple[int, dict[str, Scalar]]]) -> dict[str, Scalar]:
    """Example-weighted mean of every numeric metric the clients reported."""
    total = sum(n for n, _ in metrics)
    keys = {k for _, m in metrics for k, v in m.items() if isinstance(v, int | float)}
    return {k: sum(n * float(m[k]) for n, m in metrics if k in m) / total for k in sorted(keys)} if total else {}


class ValidatingFedAvg(FedAvg):
    """Flower FedAvg that only averages validated updates and records every round."""

    def __init__(
        self,
        *,
        shapes: list[tuple[int, ...]],
        feature_fingerprint: str,
        min_clients: int,
        roster: Roster,
        evaluator: Evaluator,
        on_round: Callable[[RoundRecord, NDArrays], None],
        emit: Callable[[FederationEvent], None],
        round_config: dict[str, Scalar] | None = None,
        initial: NDArrays | None = None,
    ) -> None:
        """`round_config` goes to the clients with every fit and evaluate instruction (e.g. the prior).

        `initial`: the first global model (the family's initial_parameters); zeros of `shapes` if None.
        """
        extra = dict(round_config or {})
        super().__init__(
            fraction_fit=1.0,
            fraction_evaluate=1.0,
            min_fit_clients=min_clients,
            min_evaluate_clients=min_clients,
            min_available_clients=min_clients,
            evaluate_fn=evaluator,
            on_fit_config_fn=lambda rnd: {"server_round": rnd, **extra},
            on_evaluate_config_fn=lambda rnd: {"server_round": rnd, **extra},
            accept_failures=True,
            initial_parameters=ndarrays_to_parameters(
                initial if initial is not None else [np.zeros(s) for s in shapes]
            ),
            fit_metrics_aggregation_fn=_weighted,
            evaluate_metrics_aggregation_fn=_weighted,
        )
        self.shapes = shapes
        self.feature_fingerprint = feature_fingerprint
        self.roster = roster
        self.on_round = on_round
        self.emit = emit
        self.latest: NDArrays | None = None
        self._sampled: dict[int, list[str]] = {}
        self._clients: dict[int, dict[str, dict[str, float]]] = {}
        self._records: dict[int, RoundRecord] = {}
        self._clock = time.monotonic()

    # ------------------------------------------------------------------ fit

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, Any]]:
        """Send the global model to every connected client; fail if too few are connected."""
        self.roster.check_aborted()
        instructions = super().configure_fit(server_round, parameters, client_manager)
        if len(instructions) < self.min_fit_clients:
            missing = self.roster.missing()
            raise RoundFailed(
                f"round {server_round}: only {len(instructions) or self.roster.num_available()} of the "
                f"{self.min_fit_clients} required clients are connected (missing: {', '.join(missing)})",
                {name: "not connected" for name in missing},
            )
        self._sampled[server_round] = [proxy.cid for proxy, _ in instructions]
        return instructions

    def validate_sender(self, res: FitRes) -> str | None:
        """Why an update's example count or feature columns are unusable, whatever its parameters, or None."""
        if not isinstance(res.num_examples, int) or res.num_examples <= 0:
            return f"example count {res.num_examples!r} is not a positive integer"
        if res.metrics.get("features") != self.feature_fingerprint:
            return "trained on different feature columns than the server's schema"
        return None

    def validate_update(self, res: FitRes) -> str | None:
        """Why an update cannot be averaged, or None if it can."""
        problem = self.validate_sender(res)
        if problem:
            return problem
        try:
            arrays = parameters_to_ndarrays(res.parameters)
        except Exception as exc:  # noqa: BLE001 - any decoding problem means an unusable update
            return f"parameters could not be decoded ({type(exc).__name__})"
        if len(arrays) != len(self.shapes):
            return f"sent {len(arrays)} parameter arrays, expected {len(self.shapes)}"
        for index, (array, shape) in enumerate(zip(arrays, self.shapes, strict=True)):
            if array.shape != shape:
                return f"parameter {index} has shape {array.shape}, expected {shape}"
            if not np.issubdtype(array.dtype, np.floating):
                return f"parameter {index} has dtype {array.dtype}, expected floating point"
            if not np.all(np.isfinite(array)):
                return f"parameter {index} has NaN or infinite values"
        return None

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        """Average the usable updates, weighted by example counts; name every client left out."""
        self.roster.check_aborted()
        usable: list[tuple[ClientProxy, FitRes]] = []
        problems: dict[str, str] = {}
        clients = self._clients.setdefault(server_round, {})
        for proxy, res in results:
            problem = self.validate_update(res)
            if problem:
                problems[proxy.cid] = problem
                continue
            usable.append((proxy, res))
            clients[proxy.cid] = {
                "num_examples": res.num_examples,
                **{k: float(v) for k, v in res.metrics.items() if isinstance(v, int | float)},
            }
        for failure in failures:
            if isinstance(failure, tuple):
                problems[failure[0].cid] = f"returned status {failure[1].status.code.name}: {failure[1].status.message}"
        answered = {proxy.cid for proxy, _ in results} | set(problems)
        for name in self._sampled.get(server_round, []):
            if name not in answered:
                problems[name] = "sent no update (connection lost or round timeout)"
        for name, reason in problems.items():
            log.warning("round %d: update of client %s left out: %s", server_round, name, reason)
            self.emit(UpdateRejected(server_round, name, reason))
        if len(usable) < self.min_fit_clients:
            detail = "; ".join(f"client {n!r}: {r}" for n, r in problems.items())
            raise RoundFailed(
                f"round {server_round}: {len(usable)} usable updates, {self.min_fit_clients} needed ({detail})",
                problems,
            )
        return self.combine(server_round, usable)

    def combine(
        self, server_round: int, usable: list[tuple[ClientProxy, FitRes]]
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        """Aggregate the validated updates: FedAvg's example-weighted mean (a strategy for trees overrides it)."""
        return super().aggregate_fit(server_round, usable, [])

    # ------------------------------------------------------------------ evaluate

    def evaluate(self, server_round: int, parameters: Parameters) -> tuple[float, dict[str, Scalar]] | None:
        """Evaluate the global model on the test set, record the round, hand it to on_round."""
        self.roster.check_aborted()
        result = super().evaluate(server_round, parameters)
        if result is None:
            return None
        now = time.monotonic()
        arrays = parameters_to_ndarrays(parameters)
        self.latest = arrays
        record = RoundRecord(
            round=server_round,
            server={k: float(v) for k, v in result[1].items()},
            clients=self._clients.setdefault(server_round, {}),
            seconds=now - self._clock,
        )
        self._clock = now
        self._records[server_round] = record
        self.on_round(record, arrays)
        return result

    def aggregate_evaluate(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, EvaluateRes]],
        failures: list[tuple[ClientProxy, EvaluateRes] | BaseException],
    ) -> tuple[float | None, dict[str, Scalar]]:
        """Record each client's validation loss and accuracy, and its local-only and federated scores, this round."""
        clients = self._clients.setdefault(server_round, {})
        for proxy, res in results:
            entry = clients.setdefault(proxy.cid, {})
            entry["val_loss"] = float(res.loss)
            if isinstance(res.metrics.get("accuracy"), int | float):
                entry["val_accuracy"] = float(res.metrics["accuracy"])
            for key, value in res.metrics.items():  # what the client gains: local_<m> and federated_<m>
                if key.startswith(GAIN_PREFIXES) and isinstance(value, int | float):
                    entry[key] = float(value)
        return super().aggregate_evaluate(server_round, results, failures)
