"""Any Flower strategy, with validated client updates, named clients, privacy and a record of every round.

`ValidatingStrategy(inner, ...)` is a Flower `Strategy` that wraps the aggregation strategy the run
chose (strategies.py builds it: FedAvg, FedProx, FedAvgM, FedAdam, FedYogi, FedAdagrad, FedMedian,
FedTrimmedAvg, Krum, Bulyan, and the xgboost family's bagging) by composition, as Flower's own DP
wrappers do, so every strategy keeps the same guarantees. Aggregation is the inner strategy's;
around it, this wrapper

* fails a round, naming the clients, when fewer than `min_updates` clients are connected or
  usable updates arrive (min_clients, or what the strategy needs: Krum 2f + 3, Bulyan 4f + 3);
* validates every update before the inner strategy sees it (validation.py: shapes, dtype, finite
  values - or the xgboost family's booster check -, example count within what the client
  declared, feature fingerprint, metrics, and the norm relative to the other clients'); a bad
  update is left out and reported by client name, as is a client that sent nothing (naming why:
  its connection closed, or it missed the round deadline and is out of the run);
* records each client's metrics (with its local-only and federated scores) before the inner
  strategy runs (DP clipping and FedAvg's in-place averaging change the updates), validates
  evaluation results the same way;
* applies differential privacy (privacy.py): central clipping with equal weights before the
  inner strategy, noise on its result; and counts the privacy spent, reported every round;
* evaluates the global model on the server's test set before round 1 and after every round
  (the inner strategy's `evaluate` calls the evaluator) and hands each RoundRecord to `on_round`,
  which checkpoints it.

The inner strategy always gets `failures=[]`: the wrapper has named them, and Flower's strategies
built with accept_failures=False (and its DP wrappers) would drop the whole round otherwise.
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
from flwr.server.strategy import Strategy

from orchestrator.errors import BadInput
from orchestrator.federation import state, validation
from orchestrator.federation.history import RoundRecord
from orchestrator.federation.privacy import PrivacyBudget
from orchestrator.federation.roster import Roster
from orchestrator.run.events import FederationEvent, PrivacySpent, UpdateRejected

log = logging.getLogger(__name__)

GAIN_PREFIXES = ("local_", "federated_")  # a client's local-only and federated scores (client_code/client.py)
OWN = "validating."  # checkpoint keys of this wrapper's own state (the inner strategy's: state.py)
Evaluator = Callable[[int, NDArrays, dict[str, Scalar]], tuple[float, dict[str, Scalar]]]


class RoundFailed(RuntimeError):
    """A round could not go on: too few clients, or too few usable updates."""

    def __init__(self, message: str, clients: dict[str, str]) -> None:
        super().__init__(message)
        self.clients = clients


def weighted_metrics(metrics: list[tuple[int, dict[str, Scalar]]]) -> dict[str, Scalar]:
    """Example-weighted mean of every numeric metric the clients reported (Flower's metrics aggregation fn)."""
    total = sum(n for n, _ in metrics)
    keys = {k for _, m in metrics for k, v in m.items() if isinstance(v, int | float)}
    return {k: sum(n * float(m[k]) for n, m in metrics if k in m) / total for k in sorted(keys)} if total else {}


class ValidatingStrategy(Strategy):
    """Validation, naming, minimum updates, privacy and recording around any Flower strategy (module docstring)."""

    def __init__(
        self,
        inner: Strategy,
        *,
        check_arrays: validation.ArraysCheck,
        feature_fingerprint: str,
        min_updates: int,
        roster: Roster,
        on_round: Callable[[RoundRecord, NDArrays], None],
        emit: Callable[[FederationEvent], None],
        declared_examples: dict[str, int] | None = None,
        norm_factor: float = 0.0,
        privacy: PrivacyBudget | None = None,
        measure_norms: bool = True,
    ) -> None:
        """`inner`: the Flower strategy that aggregates; the other arguments as follows.

        `check_arrays`: why a client's decoded parameters are unusable (validation.arrays_problem with
        the family's shapes, or the xgboost booster check), or None.
        `declared_examples`: each client's training rows from the statistics phase (the example-count bound).

        `norm_factor`: the relative norm bound's factor (0: off; validation.norm_outliers); it is not
        applied under central DP, whose clipping already bounds every update's influence.
        `privacy`: the run's privacy budget when differential privacy is on. `measure_norms` False: the
        updates are not weights (xgboost's new trees), so no distance is measured or bounded.
        """
        super().__init__()
        self.inner = inner
        self.check_arrays = check_arrays
        self.feature_fingerprint = feature_fingerprint
        self.min_updates = min_updates
        self.roster = roster
        self.on_round = on_round
        self.emit = emit
        self.declared_examples = dict(declared_examples or {})
        self.privacy = privacy
        central = privacy is not None and privacy.settings.mode == "central"
        self.norm_factor = 0.0 if central or not measure_norms else norm_factor
        self.measure_norms = measure_norms
        self.latest: NDArrays | None = None
        self._sampled: dict[int, list[str]] = {}  # the clients asked to fit, by round
        self._evaluating: dict[int, list[str]] = {}  # the clients asked to evaluate, by round
        self._global: dict[int, NDArrays] = {}
        self._previous_median: float | None = None
        self._clients: dict[int, dict[str, dict[str, float]]] = {}
        self._clock = time.monotonic()

    def __repr__(self) -> str:
        return f"ValidatingStrategy({self.inner!r})"

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        """The inner strategy's initial global model."""
        return self.inner.initialize_parameters(client_manager)

    # ------------------------------------------------------------------ fit

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, Any]]:
        """Send the global model to every connected client; fail, naming the missing, if too few are connected."""
        self.roster.check_aborted()
        self.roster.start_rounds()
        instructions = self.inner.configure_fit(server_round, parameters, client_manager)
        if len(instructions) < self.min_updates:
            missing = self.roster.missing()
            detail = ", ".join(f"{n} ({self.roster.departure(n) or 'not connected'})" for n in missing)
            raise RoundFailed(
                f"round {server_round}: only {len(instructions) or self.roster.num_available()} of the "
                f"{self.min_updates} required clients are connected (missing: {detail})",
                {name: self.roster.departure(name) or "not connected" for name in missing},
            )
        self._sampled[server_round] = [proxy.cid for proxy, _ in instructions]
        self._global[server_round] = parameters_to_ndarrays(parameters)
        return instructions

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        """Validate and record the updates, then aggregate the usable ones with the inner strategy."""
        self.roster.check_aborted()
        reference = self._global.pop(server_round)
        problems: dict[str, str] = {}
        valid: dict[str, tuple[ClientProxy, FitRes, NDArrays]] = {}
        for proxy, res in results:
            problem, arrays = validation.update_problem(
                res, self.check_arrays, self.feature_fingerprint, self.declared_examples.get(proxy.cid)
            )
            if problem:
                problems[proxy.cid] = problem
            else:
                valid[proxy.cid] = (proxy, res, arrays)
        norms = {
            name: validation.update_norm(arrays, reference)
            for name, (_, _, arrays) in valid.items()
            if self.measure_norms
        }
        for name, reason in validation.norm_outliers(norms, self._previous_median, self.norm_factor).items():
            problems[name] = reason
            del valid[name]
        if valid and norms:
            self._previous_median = float(np.median([norms[name] for name in valid]))
        self._name_missing(self._sampled.pop(server_round, []), results, failures, problems)
        self._report(server_round, problems)
        clients = self._clients.setdefault(server_round, {})
        for name, (_, res, _) in valid.items():  # recorded before the inner strategy changes anything
            numeric = {k: float(v) for k, v in res.metrics.items() if isinstance(v, int | float)}
            clients[name] = {"num_examples": res.num_examples, **numeric}
            if name in norms:
                clients[name]["update_norm"] = norms[name]
        if len(valid) < self.min_updates:
            detail = "; ".join(f"client {n!r}: {r}" for n, r in problems.items())
            raise RoundFailed(
                f"round {server_round}: {len(valid)} usable updates, {self.min_updates} needed ({detail})", problems
            )
        usable = [(proxy, self._for_inner(res, arrays, reference)) for proxy, res, arrays in valid.values()]
        parameters, metrics = self.inner.aggregate_fit(server_round, usable, [])
        if self.privacy is not None and parameters is not None:
            noised = self.privacy.noise_average(parameters_to_ndarrays(parameters), len(usable))
            parameters = ndarrays_to_parameters(noised)
            self.privacy.spend_round()
            self.emit(PrivacySpent(server_round, self.privacy.to_dict()))
        return parameters, metrics

    def _for_inner(self, res: FitRes, arrays: NDArrays, reference: NDArrays) -> FitRes:
        """The update the inner strategy aggregates: under central DP clipped, with equal weights."""
        if self.privacy is None or self.privacy.settings.mode != "central":
            return res
        clipped = self.privacy.central(arrays, reference)
        return FitRes(res.status, ndarrays_to_parameters(clipped), 1, res.metrics)

    def _name_missing(
        self, sampled: list[str], results: list[tuple[ClientProxy, Any]], failures: list[Any], problems: dict[str, str]
    ) -> None:
        """Add every `sampled` client without a result to `problems`, with why it sent nothing."""
        for failure in failures:
            if isinstance(failure, tuple):
                problems[failure[0].cid] = f"returned status {failure[1].status.code.name}"
        answered = {proxy.cid for proxy, _ in results} | set(problems)
        for name in sampled:
            if name not in answered:
                why = self.roster.departure(name) or "connection lost or round timeout"
                problems[name] = f"sent nothing: {why}"

    def _report(self, server_round: int, problems: dict[str, str], what: str = "update") -> None:
        for name, reason in problems.items():
            log.warning("round %d: %s of client %s left out: %s", server_round, what, name, reason)
            self.emit(UpdateRejected(server_round, name, reason if what == "update" else f"{what}: {reason}"))

    # ------------------------------------------------------------------ checkpoints

    def checkpoint_state(self) -> dict[str, np.ndarray]:
        """What round k+1 needs besides the global model (run/checkpoint.py's contract; state.py for the inner's)."""
        own = {f"{OWN}{key}": np.asarray(value) for key, value in self._own_state().items() if value is not None}
        return {**own, **state.capture(self.inner)}

    def restore_state(self, saved: dict[str, np.ndarray]) -> None:
        """Continue from `checkpoint_state`'s dict; BadInput when it does not fit this strategy."""
        own = {key.removeprefix(OWN): value for key, value in saved.items() if key.startswith(OWN)}
        if "privacy_rounds" in own and self.privacy is not None:
            self.privacy.rounds = int(own.pop("privacy_rounds"))
        if "previous_median" in own:
            self._previous_median = float(own.pop("previous_median"))
        try:
            if own:
                raise ValueError(f"{self!r} cannot restore {', '.join(sorted(own))}")
            state.restore(self.inner, {key: value for key, value in saved.items() if not key.startswith(OWN)})
        except ValueError as exc:
            raise BadInput(
                f"the checkpoint does not fit this run's strategy: {exc}; resume with the run's own settings"
            ) from None

    def _own_state(self) -> dict[str, float | int | None]:
        return {
            "privacy_rounds": self.privacy.rounds if self.privacy is not None else None,
            "previous_median": self._previous_median,
        }

    # ------------------------------------------------------------------ evaluate

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, Any]]:
        """The inner strategy's evaluation instructions (every connected client)."""
        instructions = self.inner.configure_evaluate(server_round, parameters, client_manager)
        self._evaluating[server_round] = [proxy.cid for proxy, _ in instructions]
        return instructions

    def evaluate(self, server_round: int, parameters: Parameters) -> tuple[float, dict[str, Scalar]] | None:
        """Evaluate the global model on the test set (the inner strategy's evaluate_fn), record the round."""
        self.roster.check_aborted()
        result = self.inner.evaluate(server_round, parameters)
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
        self.on_round(record, arrays)
        return result

    def aggregate_evaluate(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, EvaluateRes]],
        failures: list[tuple[ClientProxy, EvaluateRes] | BaseException],
    ) -> tuple[float | None, dict[str, Scalar]]:
        """Validate and record each client's validation loss and metrics; name the clients without a result."""
        clients = self._clients.setdefault(server_round, {})
        problems: dict[str, str] = {}
        usable = []
        for proxy, res in results:
            problem = validation.metrics_problem({"loss": res.loss, **res.metrics})
            if problem:
                problems[proxy.cid] = problem
                continue
            usable.append((proxy, res))
            entry = clients.setdefault(proxy.cid, {})
            entry["val_loss"] = float(res.loss)
            if isinstance(res.metrics.get("accuracy"), int | float):
                entry["val_accuracy"] = float(res.metrics["accuracy"])
            for key, value in res.metrics.items():  # what the client gains: local_<m> and federated_<m>
                if key.startswith(GAIN_PREFIXES) and isinstance(value, int | float):
                    entry[key] = float(value)
        self._name_missing(self._evaluating.pop(server_round, []), results, failures, problems)
        self._report(server_round, problems, "evaluation")
        return self.inner.aggregate_evaluate(server_round, usable, [])
