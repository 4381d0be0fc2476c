"""The statistics phase: step 0 of every run, after every client joined and before round 1.

Over the same authenticated gRPC streams as the rounds, through Flower's `get_properties`
(ClientProxy.get_properties; every value is a Flower Scalar, so JSON travels as a `str`), the
server asks every client, in parallel (client_code/client.py answers):

1. "statistics" - only when the run has no schema: each client's aggregate statistics of its raw
   training rows (client_code/statistics.py); the server merges them with k = [data]
   min_level_count and infers the column kinds and the task ([data] task overrides: a numeric
   label with more than 20 distinct values, or a fraction, is a regression label, announced);
2. "levels" - only then too: the names of the kept levels (seen at least k times over the
   federation), each asked from one client that holds it;
3. "schema" - always: the federation's schema (a channel's own schema.json is ignored); each
   client encodes its data and reports raw class counts, rows and files read, channel digests, values outside the
   schema's levels (counts per column) and its feature fingerprint. A client without rows of
   some class fails the phase by name (BadInput, exit 2);
4. "train" - always: the federation's raw class counts; each client balances its training split
   ([model] balance; not for a regression label, which has no classes) and reports its trained
   class counts, which the prior correction needs.

A client's data problem ({"error": ...}) is BadInput naming the client; a client that does not
answer within the round timeout is a runtime failure.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from flwr.common import GetPropertiesIns
from flwr.server.client_proxy import ClientProxy
from flwr.server.superlink.fleet.grpc_bidi.grpc_bridge import GrpcBridgeClosed

from client_code.constants import PHASE_KEY
from client_code.schema import feature_names, normalise_schema
from client_code.statistics import choose_positive, merge_statistics, name_levels, reveal_requests
from client_code.tabular import DataError, canonical_class, feature_fingerprint
from orchestrator.config import DataSettings
from orchestrator.config.base import name_order
from orchestrator.errors import BadInput
from orchestrator.federation.strategy import RoundFailed
from orchestrator.run.folder import ClientReport
from orchestrator.text import plural

log = logging.getLogger(__name__)


@dataclass
class PhaseResult:
    """The phase's outcome: the schema, where it came from, each client's report and the class counts."""

    schema: dict[str, Any]
    source: str  # "statistics phase" or "schema file"
    clients: dict[str, ClientReport]
    raw_counts: dict[Any, int]
    trained_counts: dict[Any, float]
    seconds: float
    inferred: list[str] = field(default_factory=list)
    task_note: str = ""  # why the task is what it is, when it was inferred from the label

    @property
    def task(self) -> str:
        """The schema's task: binary, multiclass or regression."""
        return str(self.schema["task"])

    def declared_examples(self) -> dict[str, int]:
        """Each client's training rows: the rows it read, or its trained counts after balancing if more (SMOTE).

        A client may not report more examples than this in a round (federation/validation.py).
        Class weights make the trained counts weighted sums, near but not equal to the rows, hence
        the larger of the two, rounded up.
        """
        declared = {}
        for name, report in self.clients.items():
            trained = sum(float(n) for n in report.trained_counts.values())
            declared[name] = max(math.ceil(trained), int(report.rows.get("train", 0)))
        return declared

    def prior(self) -> dict[str, dict[str, float]]:
        """The prior correction's inputs as JSON: {"true": {class: n}, "trained": {class: n}}."""
        return {
            "true": {str(c): float(n) for c, n in self.raw_counts.items()},
            "trained": {str(c): float(n) for c, n in self.trained_counts.items()},
        }


def _missing_class(cls: Any, held: dict[str, dict[Any, int]]) -> str:
    """A client's refusal for lacking class `cls`, naming who holds it (`held`: client -> class -> rows)."""
    names = sorted((name for name, counts in held.items() if counts.get(cls)), key=name_order)
    holders = ", ".join(f"{name} ({plural(held[name][cls], 'row')})" for name in names)
    return (
        f"train data: no rows of class {cls!r}, held by {holders}; every client needs training rows of every class "
        "(docs/adr/0002-data-partitions.md): leave that client out, give it rows of that class, or fix the label "
        "where it is a typo"
    )


class ClientRefusal(BadInput):
    """A client's answer {"error": <one line>}: it cannot use its own data (client_code/client.py)."""

    def __init__(self, client: str, error: str) -> None:
        super().__init__(f"client {client!r}: {error}")
        self.client, self.error = client, error

    def located(self, channels: dict[str, str]) -> BadInput:
        """The refusal naming the channel where the data owner finds it (`channels`: channel -> URI or folder).

        A client names a channel's problem `<channel> data: ...` (client.py): it sees only its own
        mount (/opt/ml/input/data/<channel>), the server knows where the channel comes from.
        """
        for channel, where in channels.items():
            prefix = f"{channel} data: "
            if self.error.startswith(prefix):
                return BadInput(f"client {self.client!r} {channel} data ({where}): {self.error[len(prefix) :]}")
        return self


def _ask(proxies: dict[str, ClientProxy], phase: str, payloads: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Send one phase's request to the named clients in parallel; their decoded answers by name."""

    def one(name: str) -> Any:
        ins = GetPropertiesIns(config={PHASE_KEY: phase, "payload": json.dumps(payloads[name], default=str)})
        try:
            res = proxies[name].get_properties(ins, timeout=timeout, group_id=None)
        except Exception as exc:  # noqa: BLE001 - a lost client or a timeout: named, with its job's reason
            why = "its connection closed" if isinstance(exc, GrpcBridgeClosed) else str(exc) or type(exc).__name__
            raise RoundFailed(
                f"client {name!r} did not answer the statistics phase ({phase}): {why}; every client takes part in "
                "it, whatever min_clients",
                {name: why},
            ) from None
        properties = res.properties
        if "error" in properties:
            raise ClientRefusal(name, str(properties["error"]))
        return json.loads(str(properties.get("payload", "{}")))

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(payloads)))) as pool:
        futures = {name: pool.submit(one, name) for name in payloads}
    return {name: future.result() for name, future in futures.items()}


def task_note(schema: dict[str, Any], statistics: dict[str, dict[str, Any]]) -> str:
    """One line saying why an inferred task is what it is, e.g. "label 'y' has 214 distinct numeric values: ..."."""
    label, task = schema["label"], schema["task"]
    if task == "regression":
        counted = all("label_counts" in s for s in statistics.values())
        why = (
            "more than 20 distinct numeric values" if counted else "continuous numeric values (fractions or >20 values)"
        )
        return f"label {label!r} has {why}: a regression task (set [data] task or --task to override)"
    return (
        f"label {label!r} has {len(schema['classes'])} classes: a {task} task (set [data] task or --task to override)"
    )


def merged_schema(
    proxies: dict[str, ClientProxy], settings: DataSettings, label: str, timeout: float
) -> tuple[dict[str, Any], list[str], str]:
    """Phases 1 and 2: the merged schema, the columns inferred categorical, the task note ("" if declared)."""
    request = {
        "label": label,
        "task": settings.task,
        "salt": secrets.token_hex(16),  # per run: hashes from two runs cannot be matched
        "categorical": list(settings.categorical),
        "drop": list(settings.drop),
        "max_levels": settings.max_levels,
    }
    statistics = _ask(proxies, "statistics", dict.fromkeys(proxies, request), timeout)
    try:
        merged = merge_statistics(statistics, label, **settings.merge_options())
    except DataError as exc:
        raise BadInput(str(exc)) from None
    asks = reveal_requests(merged)
    revealed: dict[str, dict[str, str]] = {}
    if asks:
        answers = _ask(proxies, "levels", {name: {"hashes": hashes} for name, hashes in asks.items()}, timeout)
        for answer in answers.values():
            for column, names in answer.items():
                revealed.setdefault(column, {}).update(names)
    try:
        schema = name_levels(merged, revealed)
    except DataError as exc:
        raise BadInput(str(exc)) from None
    return schema, list(merged["inferred"]), task_note(schema, statistics) if merged["task_inferred"] else ""


def run_phase(
    proxies: dict[str, ClientProxy],
    schema: dict[str, Any] | None,
    settings: DataSettings,
    timeout: float,
    tie_break: dict[str, int] | None = None,
    channels: dict[str, dict[str, str]] | None = None,
) -> PhaseResult:
    """The whole phase (see the module docstring). Raises BadInput (a client's data, named) or RuntimeError.

    `tie_break`: class counts (by class text) of the server's test set, which decide the default
    positive class when the clients' training counts tie. `channels`: client -> channel -> where
    its data comes from (URI or folder), named when a client refuses its data.
    """
    try:
        return _run_phase(proxies, schema, settings, timeout, tie_break)
    except ClientRefusal as refusal:
        raise refusal.located((channels or {}).get(refusal.client, {})) from None


def _run_phase(
    proxies: dict[str, ClientProxy],
    schema: dict[str, Any] | None,
    settings: DataSettings,
    timeout: float,
    tie_break: dict[str, int] | None,
) -> PhaseResult:
    started = time.monotonic()
    inferred: list[str] = []
    source, note = "schema file", ""
    if schema is None:
        if not settings.label:
            raise BadInput("the run has no feature schema and no label to compute one; set [data] label")
        schema, inferred, note = merged_schema(proxies, settings, settings.label, timeout)
        source = "statistics phase"
        log.info("schema merged from %d clients' statistics (inferred categorical: %s)", len(proxies), inferred)
    schema = normalise_schema(schema, "the run's schema")
    if settings.task and schema["task"] != settings.task:
        raise BadInput(
            f"[data] task = {settings.task!r} but the schema's task is {schema['task']!r}; prepare the data with "
            f"--task {settings.task} or remove [data] task"
        )
    classes = list(schema["classes"])
    fingerprint = feature_fingerprint(feature_names(schema))
    answers = _ask(proxies, "schema", dict.fromkeys(proxies, schema), timeout)
    reports: dict[str, ClientReport] = {}
    raw: dict[Any, int] = dict.fromkeys(classes, 0)
    held = {
        name: {canonical_class(k, classes): int(v) for k, v in a["class_counts"].items()} for name, a in answers.items()
    }
    for name, answer in answers.items():
        counts = held[name]
        missing = [c for c in classes if counts.get(c, 0) == 0]
        if missing:
            raise ClientRefusal(name, _missing_class(missing[0], held))  # named with its train channel (run_phase)
        if answer["features"] != fingerprint:
            raise BadInput(f"client {name!r} encodes different features than the schema; update its client code")
        for c, n in counts.items():
            raw[c] += n
        reports[name] = ClientReport(
            rows=answer["rows"],
            files=answer["files"],
            class_counts=answer["class_counts"],
            unseen=answer["unseen"],
            digests=answer.get("digests", {}),  # absent from the replies of older client code
        )
    if schema.get("positive_class") is None or settings.positive_class:
        test_counts = {c: (tie_break or {}).get(str(c), 0) for c in classes}
        try:
            schema["positive_class"] = choose_positive(classes, raw, settings.positive_class or None, test_counts)
        except DataError as exc:
            raise BadInput(str(exc)) from None
    request = {"class_counts": {str(c): n for c, n in raw.items()}}
    trained_answers = _ask(proxies, "train", dict.fromkeys(proxies, request), timeout)
    trained: dict[Any, float] = dict.fromkeys(classes, 0.0)
    for name, answer in trained_answers.items():
        reports[name].trained_counts = answer["trained_counts"]
        for key, n in answer["trained_counts"].items():
            trained[canonical_class(key, classes)] += float(n)
    return PhaseResult(schema, source, reports, raw, trained, time.monotonic() - started, inferred, note)
