"""One federation run: server, jobs, watching, stopping, and the run folder.

The run starts the server, launches every request on the backend, watches both, stops
everything on failure or Ctrl-C, and writes the run folder.

The run folder (`runs/<run-id>/`) ends up holding:

* `model.joblib` (+ `.sha256`): the final global model with its provenance;
* `checkpoints/round-NNN.npz`: the global parameters after every round;
* `metrics.json`, `metrics.csv`, `metrics.png`, `report.md`: see report.py;
* `federation.toml`: the resolved configuration; `requests/<client>.json`: the training job
  requests as sent (client tokens masked);
* `run.json`: status, reason, timings and each job's final state;
* whatever the backend keeps per client (the local backend: `clients/<name>/client.log` and
  the emulated /opt/ml tree with the client's model).

Before anything is written, `load_server_data` and `check_local_channels` validate the
inputs, so bad input fails with exit code 2 and leaves nothing behind.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import platform
import queue
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from flwr.common import NDArrays

from client_code import utils
from orchestrator import __version__, report
from orchestrator.backends import COMPLETED, FAILED, Backend, JobStatus
from orchestrator.backends.container import file_path
from orchestrator.config import Federation
from orchestrator.data.layout import SchemaFields
from orchestrator.errors import BadInput, RunFailed
from orchestrator.federation import tls as tls_module
from orchestrator.federation.events import FederationEvent, RoundFinished, UpdateRejected
from orchestrator.federation.history import RoundRecord, RunHistory
from orchestrator.federation.roster import FederationAborted, JoinTimeout
from orchestrator.federation.server import FederationServer
from orchestrator.federation.strategy import RoundFailed
from orchestrator.plan import JobPlacement, RunContext, TrainingJobRequest, client_of, plan, redacted

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- events seen by the observer


@dataclass(frozen=True)
class ServerListening:
    """The server is up; `clients` clients will dial `address`."""

    address: str
    clients: int


@dataclass(frozen=True)
class JobChanged:
    """A training job changed state."""

    client: str
    status: JobStatus


@dataclass(frozen=True)
class Stopping:
    """The run is stopping every job it started, because of `reason`."""

    reason: str
    jobs: list[str]


@dataclass(frozen=True)
class JobLog:
    """The last lines of a failed job's log (local file or CloudWatch, read through the backend)."""

    client: str
    lines: list[str]


RunEvent = FederationEvent | ServerListening | JobChanged | Stopping | JobLog
Observer = Callable[[RunEvent], None]


# ---------------------------------------------------------------- validated inputs


@dataclass(frozen=True)
class ServerData(SchemaFields):
    """What the server holds: the feature schema, its held-out test set and the test set's columns."""

    schema: dict[str, Any]
    test: utils.Dataset
    columns: list[str]


def load_server_data(federation: Federation) -> ServerData:
    """Load the schema and the test set the server evaluates on; BadInput if either is unusable."""
    server = federation.server
    schema_path = server.resolved_schema()
    if not schema_path.is_file():
        raise BadInput(f"feature schema {schema_path} not found; set [server] schema or run `fedsage data prepare`")
    try:
        schema = utils.load_schema(schema_path)
        if "label" not in schema or "classes" not in schema:
            raise utils.DataError(f"{schema_path} has no label or classes; prepare the data again")
        test = utils.load_data(server.test_data, schema["label"], list(schema["classes"]), schema)
        columns = [str(c) for c in utils.read_csv_folder(server.test_data).columns]
    except utils.DataError as exc:
        raise BadInput(str(exc)) from None
    return ServerData(schema=schema, test=test, columns=columns)


def check_local_channels(federation: Federation, server: ServerData) -> None:
    """Check every file:// channel loads the way its client will load it, with the server's columns.

    Catches, before any process starts: missing or empty folders, a missing label column,
    non-numeric values, labels outside the classes, and clients whose columns differ.
    """
    for client in federation.clients:
        for channel, uri in (("train", client.train_uri), ("validation", client.validation_uri)):
            if uri is None or not uri.startswith("file://"):
                continue
            folder = file_path(uri)
            where = f"client {client.name!r} {channel} data"
            try:
                columns = [str(c) for c in utils.read_csv_folder(folder).columns]
                if columns != server.columns:
                    missing = [c for c in server.columns if c not in columns]
                    extra = [c for c in columns if c not in server.columns]
                    detail = (f"missing {', '.join(missing)}" if missing else "") + (
                        f"{'; ' if missing else ''}extra {', '.join(extra)}" if extra else ""
                    )
                    raise utils.DataError(
                        f"{where} ({folder}) has different feature columns from the server's test set "
                        f"({detail or 'different order'}); prepare every client's data with the same columns"
                    )
                utils.load_data(folder, server.label, server.classes, server.schema)
            except utils.DataError as exc:
                message = str(exc)
                raise BadInput(message if message.startswith(where) else f"{where}: {message}") from None


def new_run_id(now: dt.datetime | None = None) -> str:
    """A sortable, unique run id usable in job names: 20261121-101500-a1b2."""
    now = now or dt.datetime.now()
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def versions() -> dict[str, str]:
    """Versions that matter for reproducing a model."""
    found = {"fedsage": __version__, "python": platform.python_version()}
    for package in ("flwr", "scikit-learn", "numpy", "pandas"):
        found[package] = metadata.version(package)
    return found


# ---------------------------------------------------------------- the run

RUN_FILES = {
    "model.joblib": "final global model (scikit-learn LogisticRegression) with provenance",
    "model.joblib.sha256": "checksum `fedsage inspect` verifies before loading",
    "checkpoints": "global parameters after every round (.npz)",
    "federation.toml": "the resolved configuration",
    "requests": "the training job requests sent (client tokens masked)",
    "clients": "each client's log and emulated /opt/ml tree, with its model",
    "server.log": "the Flower server's and fedsage's log",
}
REPORT_FILES = {
    "metrics.json": "server test metrics and client metrics per round",
    "metrics.csv": "the same, one row per round",
    "metrics.png": "metrics over rounds",
    "report.md": "this summary",
    "run.json": "status, timings and every job's final state",
}


@dataclass
class RunOutcome:
    """What a finished run produced."""

    run_id: str
    run_dir: Path
    history: RunHistory
    model_path: Path
    jobs: dict[str, JobStatus]
    seconds: float
    warnings: list[str] = field(default_factory=list)

    @property
    def final_metrics(self) -> dict[str, float]:
        """The server's test-set metrics after the last round."""
        return self.history.final().server


class FederationRun:
    """Runs one federation on a backend and writes its run folder."""

    def __init__(
        self,
        federation: Federation,
        server_data: ServerData,
        backend: Backend,
        backend_name: str,
        run_id: str,
        run_dir: Path,
        placements: dict[str, JobPlacement],
        observer: Observer = lambda event: None,
        poll_interval: float = 0.5,
        completion_timeout: float = 120.0,
    ) -> None:
        self.federation = federation
        self.data = server_data
        self.backend = backend
        self.backend_name = backend_name
        self.run_id = run_id
        self.run_dir = Path(run_dir)
        self.placements = placements
        self.observer = observer
        self.poll_interval = poll_interval
        self.completion_timeout = completion_timeout
        self.history = RunHistory()
        self.jobs: dict[str, JobStatus] = {}
        self.requests: dict[str, TrainingJobRequest] = {}
        self.warnings: list[str] = []
        self._events: queue.Queue[RunEvent] = queue.Queue()
        self._started = time.monotonic()
        self._server: FederationServer | None = None
        self._server_error: BaseException | None = None
        self._federation_done = False
        self._created = False

    # -- callbacks from the server thread

    def _emit(self, event: RunEvent) -> None:
        if isinstance(event, UpdateRejected):
            self.warnings.append(f"round {event.round}: update of client {event.name!r} left out: {event.reason}")
        self._events.put(event)

    def _on_round(self, record: RoundRecord, parameters: NDArrays) -> None:
        self.history.rounds.append(record)
        folder = self.run_dir / "checkpoints"
        folder.mkdir(exist_ok=True)
        np.savez(folder / f"round-{record.round:03d}.npz", coef=parameters[0], intercept=parameters[1])
        self._emit(RoundFinished(record, self.federation.federation.rounds))

    # -- main thread

    def _drain(self) -> None:
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            self.observer(event)

    def _poll_jobs(self) -> None:
        """Refresh every job's status; act on jobs that ended while the federation runs."""
        for client, request in self.requests.items():
            previous = self.jobs.get(client)
            if previous is not None and previous.terminal:
                continue
            status = self.backend.poll(request["TrainingJobName"])
            changed = previous is None or (status.status, status.secondary_status) != (
                previous.status,
                previous.secondary_status,
            )
            if changed:
                self.jobs[client] = status
                self.observer(JobChanged(client, status))
                if status.status == FAILED:
                    self._show_log(client)
            if status.terminal and not self._federation_done and status.status != COMPLETED:
                self._job_ended_early(client, status)

    def _show_log(self, client: str, lines: int = 20) -> None:
        """Hand the last lines of a failed job's log to the observer (best effort: logs may lag)."""
        try:
            tail = self.backend.logs(self.requests[client]["TrainingJobName"], lines)
        except Exception as exc:  # noqa: BLE001 - a missing log must not hide the failure itself
            tail = [f"(could not read the job's log: {exc})"]
        if tail:
            self.observer(JobLog(client, tail))

    def _job_ended_early(self, client: str, status: JobStatus) -> None:
        assert self._server is not None
        self._server.roster.mark_gone(client)
        failed = [c for c, s in self.jobs.items() if s.terminal and s.status != COMPLETED]
        message = f"client {client!r} job {status.status.lower()}: {status.failure_reason or 'no reason given'}"
        if len(self.federation.clients) - len(failed) < self.federation.min_clients():
            self._server.abort(message)

    def _launch_all(self, requests: list[TrainingJobRequest]) -> None:
        """Create every job in parallel; if any launch fails, the run fails."""
        with ThreadPoolExecutor(max_workers=min(8, len(requests))) as pool:
            futures = {client_of(r): pool.submit(self.backend.launch, r) for r in requests}
        failed = {client: future.exception() for client, future in futures.items() if future.exception()}
        # record every job that was created, so the failure below stops them all
        self.requests.update({client_of(r): r for r in requests if client_of(r) not in failed})
        if failed:
            client, error = next(iter(failed.items()))
            raise RunFailed(f"could not launch client {client!r}'s training job: {error}")

    def _serve(self) -> None:
        try:
            assert self._server is not None
            self._server.run()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self._server_error = exc

    def _failure_message(self, error: BaseException) -> str:
        """Explain why the server stopped, with the failure reasons of the jobs involved."""
        if isinstance(error, FederationAborted):
            return str(error)
        names: list[str] = []
        if isinstance(error, RoundFailed):
            names = list(error.clients)
        elif isinstance(error, JoinTimeout) and self._server is not None:
            names = self._server.roster.missing()
        reasons = self._job_reasons(names)
        message = str(error) if isinstance(error, RoundFailed | JoinTimeout) else f"server failed: {error}"
        return message + (f"; {reasons}" if reasons else "")

    def _job_reasons(self, names: list[str], wait: float = 5.0) -> str:
        """Failure reasons of these clients' jobs, waiting briefly for dying jobs to report."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            self._poll_jobs()
            if all(self.jobs.get(n) is None or self.jobs[n].terminal for n in names):
                break
            time.sleep(0.2)
        found = [
            f"client {n!r} job {self.jobs[n].status.lower()}: {self.jobs[n].failure_reason}"
            for n in names
            if n in self.jobs and self.jobs[n].failure_reason
        ]
        return "; ".join(found)

    def _stop_all(self, reason: str) -> None:
        running = [c for c, r in self.requests.items() if not self.jobs.get(c) or not self.jobs[c].terminal]
        if running:
            self.observer(Stopping(reason, running))
        for client in running:
            try:
                self.backend.stop(self.requests[client]["TrainingJobName"])
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                log.error("could not stop %s's job: %s", client, exc)
                self.warnings.append(f"could not stop client {client!r}'s job: {exc}")
        for client in self.requests:
            self.jobs[client] = self.backend.poll(self.requests[client]["TrainingJobName"])

    def _warn_unfinished_jobs(self) -> None:
        """A successful run may still have lost clients (min_clients allowed it): say which."""
        for client, job in self.jobs.items():
            if job.terminal and job.status != COMPLETED:
                self.warnings.append(
                    f"client {client!r} job {job.status.lower()}: {job.failure_reason or 'no reason given'}; "
                    "the federation went on without it (min_clients allows it)"
                )

    def _await_completion(self) -> None:
        """After the last round, wait for the jobs to save their models and exit by themselves."""
        deadline = time.monotonic() + self.completion_timeout
        while time.monotonic() < deadline:
            self._poll_jobs()
            self._drain()
            if all(self.jobs.get(c) and self.jobs[c].terminal for c in self.requests):
                return
            time.sleep(self.poll_interval)
        late = [c for c in self.requests if not self.jobs[c].terminal]
        self.warnings.append(
            f"jobs of {', '.join(late)} had not finished {self.completion_timeout:g} s after the last round"
        )

    def execute(self) -> RunOutcome:
        """Run the federation to the end; raise RunFailed (after writing what exists) if it fails.

        The server binds its port and every request is planned (and checked against SageMaker's
        limits) before the run folder is created, so a port that is taken or a request SageMaker
        would refuse is bad input with nothing written.
        """
        self._bind()
        try:
            requests = self._plan()
        except BaseException:
            self._server.stop()
            raise
        status, reason = "failed", ""
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._created = True
            self._capture_logs()
            (self.run_dir / "federation.toml").write_text(self.federation.to_toml())
            self._launch(requests)
            self._watch()
            self._federation_done = True
            if self._server_error is not None:
                raise RunFailed(self._failure_message(self._server_error))
            self._await_completion()
            self._warn_unfinished_jobs()
            model_path = self._save_model()
            status = "completed"
            return RunOutcome(
                self.run_id,
                self.run_dir,
                self.history,
                model_path,
                dict(self.jobs),
                time.monotonic() - self._started,
                self.warnings,
            )
        except KeyboardInterrupt:
            status, reason = "interrupted", "interrupted by the user (Ctrl-C)"
            raise
        except (RunFailed, BadInput) as exc:
            reason = str(exc)
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._finish(status, reason)

    def _capture_logs(self) -> None:
        """Send Flower's and fedsage's log records to server.log instead of the console."""
        handler = logging.FileHandler(self.run_dir / "server.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.DEBUG)
        flower = logging.getLogger("flwr")
        self._log_restore = [(flower, h) for h in flower.handlers if type(h) is not logging.FileHandler]
        for logger, console in self._log_restore:
            logger.removeHandler(console)
        self._log_handler = handler
        for name in ("flwr", "orchestrator"):
            logging.getLogger(name).addHandler(handler)
        logging.getLogger("orchestrator").setLevel(
            min(logging.getLogger("orchestrator").getEffectiveLevel(), logging.INFO)
        )

    def _release_logs(self) -> None:
        handler = getattr(self, "_log_handler", None)
        if handler is None:
            return
        for name in ("flwr", "orchestrator"):
            logging.getLogger(name).removeHandler(handler)
        for logger, console in self._log_restore:
            logger.addHandler(console)
        handler.close()

    def _bind(self) -> None:
        """Create the run's secrets and TLS material and start the server listening."""
        # hex: a value starting with '-' would read as an option once passed as --client-token VALUE
        self._tokens = {c.name: secrets.token_hex(32) for c in self.federation.clients}
        dial_host = self.federation.server.dial_host()
        self._tls = tls_module.generate([dial_host])
        self._server = FederationServer(
            self.federation, self.data.test, self.data.classes, self._tokens, self._tls, self._emit, self._on_round
        )
        port = self._server.start()
        self.address = f"[{dial_host}]:{port}" if ":" in dial_host else f"{dial_host}:{port}"
        self.observer(ServerListening(self.address, len(self.federation.clients)))

    def _plan(self) -> list[TrainingJobRequest]:
        """Every client's training job request for this run (BadInput if SageMaker would refuse one)."""
        context = RunContext(
            run_id=self.run_id,
            server_address=self.address,
            root_certificate=self._tls.ca_certificate,
            tokens=self._tokens,
            label=self.data.label,
            classes=self.data.classes,
            placements=self.placements,
        )
        return plan(self.federation, context)

    def _launch(self, requests: list[TrainingJobRequest]) -> None:
        """Keep a masked copy of the requests, start the server loop, launch the jobs."""
        folder = self.run_dir / "requests"
        folder.mkdir()
        for request in requests:
            (folder / f"{client_of(request)}.json").write_text(json.dumps(redacted(request), indent=2) + "\n")
        log.info("run %s: %d clients x %d rounds", self.run_id, len(requests), self.federation.federation.rounds)
        self._thread = threading.Thread(target=self._serve, name="flower-server", daemon=True)
        self._thread.start()
        self._launch_all(requests)

    def _watch(self) -> None:
        next_poll = 0.0
        while self._thread.is_alive():
            self._drain()
            if time.monotonic() >= next_poll:
                self._poll_jobs()
                next_poll = time.monotonic() + self.poll_interval
            self._thread.join(0.1)
        self._drain()

    def _save_model(self) -> Path:
        assert self._server is not None
        model = self._server.evaluator.model(self._server.final_parameters())
        participants: dict[str, dict[str, Any]] = {}
        for record in self.history.rounds:
            for name, metrics in record.clients.items():
                if "num_examples" in metrics:
                    participants[name] = {"num_examples": int(metrics["num_examples"]), "last_round": record.round}
        provenance = {
            "run_id": self.run_id,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "rounds": self.history.final().round,
            "clients": participants,
            "label": self.data.label,
            "classes": self.data.classes,
            "feature_names": self.data.test.feature_names,
            "schema": self.data.schema,
            "model": self.federation.model.model_dump(),
            "versions": versions(),
            "final_metrics": self.history.final().server,
        }
        path = self.run_dir / "model.joblib"
        utils.save_model(model, path, provenance)
        return path

    def _files(self) -> dict[str, str]:
        """The run folder's files that exist, with what each one holds."""
        written = {name: what for name, what in RUN_FILES.items() if (self.run_dir / name).exists()}
        if self.history.rounds:
            written.update(REPORT_FILES)
        return written

    def _finish(self, status: str, reason: str) -> None:
        """Stop whatever still runs, then write run.json and the reports, whatever happened."""
        if self._server is not None:
            if status != "completed":
                self._server.abort(reason or status)
            self._server.stop()
        self._stop_all(reason or "the run ended")
        self._drain()
        clients: dict[str, dict[str, Any]] = {}
        for config in self.federation.clients:
            job = self.jobs.get(config.name)
            last = next(
                (
                    r.clients[config.name]
                    for r in reversed(self.history.rounds)
                    if "num_examples" in r.clients.get(config.name, {})
                ),
                {},
            )
            clients[config.name] = {
                "job_name": self.requests[config.name]["TrainingJobName"] if config.name in self.requests else None,
                "status": job.status if job else "NotLaunched",
                "failure_reason": job.failure_reason if job else None,
                "model_artifact": job.model_artifact if job else None,
                "num_examples": int(last["num_examples"]) if last else None,
            }
        info = {
            "run_id": self.run_id,
            "status": status,
            "reason": reason,
            "backend": self.backend_name,
            "rounds": self.federation.federation.rounds,
            "seconds": time.monotonic() - self._started,
            "peak_memory_mb": round(utils.peak_memory_mb(), 1),
            "versions": versions(),
            "clients": clients,
            "warnings": self.warnings,
            "files": self._files(),
        }
        if self._created:
            (self.run_dir / "run.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
            report.write_all(self.run_dir, self.history, info)
        self._release_logs()
