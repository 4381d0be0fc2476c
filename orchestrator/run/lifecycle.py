"""One federation run, top to bottom: listen, plan, launch, serve, watch, save, write the run folder.

`FederationRun.execute` is the whole lifecycle:

0. check the inputs (test set, local channels): first, or meanwhile where the backend allows it (run/startup.py);
1. listen: per-run client tokens and TLS material (federation/tls.py), the run's gRPC server
   listening (federation/listener.py, with grpc alone) - a taken port is bad input, with nothing written;
2. plan: one CreateTrainingJob request per client (plan.plan_run, with the backend's placement)
   - a request SageMaker would refuse is bad input, with nothing written;
3. create the run folder (run/folder.py), keep the masked requests, launch every job on the
   backend in parallel; then build Flower's server and serve it on the listener (clients that
   connected meanwhile waited there), and start its thread once the inputs are checked.
   Until the jobs are launched this module imports no heavy library: flwr, pandas and
   scikit-learn (~1 CPU-second) are imported by the steps that use them, while the client jobs
   import theirs (issue 15; tests/test_cli_startup.py holds it);
4. watch: drain the server's events to the observer, poll the jobs (run/watcher.py); a job that
   ends early aborts the server when fewer than min_clients remain; the server's statistics phase
   hands over the schema (`_on_phase`: schema.json in the run folder, the test set encoded);
5. after the last round, save the model (run/saving.py: a Pipeline that scores raw rows,
   model.joblib and model.skops) and the calibration curve while the jobs save theirs, then wait
   for the jobs to exit (woken by each exit on the local backends, run/watcher.py `pause`); every
   evaluated round was checkpointed on the way (run/checkpoint.py);
6. whatever happened: stop every job still running; a run that stopped after round 1 or later
   saves its last checkpointed global model, marked partial; write run.json and the reports.

With `resume` (run/resume.py) the run continues a stopped run from its last checkpoint.

Ctrl-C and SIGTERM end a run the same way (run/interrupts.py), and step 6 runs to its end even if
they come again. Every file is written whole or not at all; when the run folder's disk is full
the run stops with one line naming the file (run/folder.py `file_error`), keeping what is complete.

The backend is injected, so the same run works on every backend and tests can pass their own.
"""

from __future__ import annotations

import logging
import queue
import secrets
import sys
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.backends import Backend, JobStatus
from orchestrator.config import Federation, host_port
from orchestrator.errors import BadInput, RunFailed
from orchestrator.federation import tls as tls_module
from orchestrator.federation.history import RoundRecord, RunHistory
from orchestrator.federation.listener import Listener
from orchestrator.plan import TrainingJobRequest, client_of, plan_run, redacted
from orchestrator.run import interrupts, startup, warmup
from orchestrator.run.events import (
    Observer,
    RoundFinished,
    RunEvent,
    RunWarning,
    ServerListening,
    StatisticsDone,
    UpdateRejected,
    ignore,
)
from orchestrator.run.folder import RunFolder, file_error, write_atomic, write_json
from orchestrator.run.logs import ServerLog
from orchestrator.run.outcome import RunOutcome, failure_message
from orchestrator.run.plotter import Plotter
from orchestrator.run.record import RunRecord
from orchestrator.run.resume import ResumePoint
from orchestrator.run.watcher import JobWatcher, describe
from orchestrator.text import plural
from orchestrator.threads import Worker

if TYPE_CHECKING:
    from flwr.common import NDArrays

    from orchestrator.federation.server import FederationServer
    from orchestrator.federation.statistics import PhaseResult
    from orchestrator.run.inputs import ServerData

log = logging.getLogger(__name__)

# seconds the run's end waits for the server thread once the roster is aborted and its streams closed:
# each wait in it raises at once then, so it ends within a round's bookkeeping; past the limit (a thread
# stuck elsewhere) the run ends anyway and server.log takes the thread's last records (run/logs.py)
SERVER_THREAD_TIMEOUT = 10.0
# seconds the server thread has to end by itself once the run is aborted (its waits raise at once); past
# that it is inside a round waiting on a client that does not answer, and the run fails without it
ABORT_GRACE = 1.0


class FederationRun:
    """Runs one federation on a backend and writes its run folder (see the module docstring)."""

    def __init__(
        self,
        federation: Federation,
        inputs: startup.Inputs,
        backend: Backend,
        folder: RunFolder,
        observer: Observer = ignore,
        resume: ResumePoint | None = None,
    ) -> None:
        """`inputs`: the server's data, checked, or a function that reads and checks the run's inputs (step 0).

        `resume`: the stopped run this one continues (run/resume.py), or None for a run from round 0.
        """
        self.federation = federation
        self.resume = resume
        self.inputs = inputs
        self.data: ServerData | None = None if callable(inputs) else inputs  # once checked (run/startup.py)
        self.backend = backend
        self.folder = folder
        self.observer = observer = startup.HeldEvents(observer, held=self.data is None)
        self.record = RunRecord(folder.run_id, federation, resumed_from=resume.record() if resume else {})
        self.address = ""
        self.watcher = JobWatcher(backend, observer, self._job_ended_early, self._job_running)
        self._events: queue.Queue[RunEvent] = queue.Queue()
        self._listener: Listener | None = None  # the run's gRPC server socket, once listening (`_listen`)
        self._server: FederationServer | None = None  # Flower's server, built once the jobs are launched
        self._server_error: BaseException | None = None
        self._thread: Worker | None = None  # the server's, once started; waited on by its `ended` (threads.py)
        self._log: ServerLog | None = None
        self._plotter = Plotter()  # draws the figures in a helper process while the run writes the rest
        self._stopping = False  # set as an unfinished run starts stopping its jobs (_finish)

    @property
    def run_id(self) -> str:
        """The run's id (the run folder's name)."""
        return self.folder.run_id

    @property
    def run_dir(self) -> Path:
        """The run folder."""
        return self.folder.root

    # -- callbacks from the server thread: queue events, the main thread hands them to the observer

    @property
    def history(self) -> RunHistory:
        """Every round so far."""
        return self.record.history

    @property
    def warnings(self) -> list[str]:
        """Warnings so far (rejected updates, statistics-phase warnings, ...), as run.json lists them."""
        return self.record.warnings

    def _emit(self, event: RunEvent) -> None:
        if self._stopping and isinstance(event, UpdateRejected):
            # the stop closed the round's streams: not the clients' fault, and no round is averaged (server.log has it)
            return
        self.record.note(event)
        self._events.put(event)

    def _on_phase(self, phase: PhaseResult) -> ServerData:
        """The statistics phase ended (server thread): keep its result, write schema.json, encode the test set."""
        from client_code.schema import feature_names
        from orchestrator.run.phase import phase_warnings

        self.record.phase = phase
        self.data = data = self.data.with_schema(phase.schema)
        schema = data.schema
        write_json(self.folder.path("schema.json"), schema)
        for warning in phase_warnings(phase, data):
            self._emit(RunWarning(warning))
        features = len(feature_names(schema))
        self._emit(
            StatisticsDone(
                phase.source,
                features,
                phase.inferred,
                schema.get("positive_class"),
                phase.seconds,
                phase.task,
                phase.task_note,
            )
        )
        return data

    def _on_round(self, record: RoundRecord, parameters: NDArrays) -> None:
        self.history.rounds.append(record)
        # an OSError (a full disk) ends the server thread: run/outcome.py failure_message says which file and why
        model, schema = self.federation.model, self.data.schema
        names = model.family.parameter_names(model.hyperparameters(), schema)
        from orchestrator.run import checkpoint  # flwr's (the module docstring: nothing heavy before the launch)

        strategy = self._server.strategy if self._server is not None else None
        checkpoint.write(self.run_dir, record.round, dict(zip(names, parameters, strict=True)), strategy)
        self._emit(RoundFinished(record, self.federation.federation.rounds))

    def _drain(self) -> None:
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            self.observer(event)

    def _job_running(self, client: str) -> None:
        """A job's program runs: the join timeout counts from the last one (federation/roster.py)."""
        assert self._server is not None
        self._server.roster.job_running(client)

    def _job_ended_early(self, client: str, status: JobStatus) -> None:
        """A job ended before the federation did: stop waiting for it; abort if too few clients remain.

        The abort makes the server's waits raise but leaves the other clients' streams open: `_finish`
        stops their jobs first (a client whose stream closes first fails, and would be reported
        Failed instead of Stopped), then closes the streams.
        """
        assert self._server is not None
        self._server.roster.mark_gone(client)
        remaining = len(self.federation.clients) - len(self.watcher.ended_badly())
        if remaining < self.federation.min_clients():
            self._server.roster.abort(describe(client, status))

    # -- the lifecycle

    def execute(self) -> RunOutcome:
        """Run the federation to the end; raise RunFailed (after writing what exists) if it fails.

        Bad input found before the run folder exists (a taken port, a request SageMaker would refuse)
        leaves nothing behind; once the folder exists, run.json and the reports record whatever
        happened. SIGINT and SIGTERM raise interrupts.Interrupted (a KeyboardInterrupt) once every
        job is stopped and run.json written; a full disk or a job that could not be stopped is RunFailed.
        """
        with interrupts.as_interrupts():
            return self._execute()

    def _execute(self) -> RunOutcome:
        status, reason = "failed", ""
        try:
            interrupts.check()  # a Ctrl-C swallowed before the run (in the CLI's imports) stops it before any job
            check = startup.begin(self.inputs, self.backend)  # None: the inputs were checked already
            if check is not None and not startup.while_launching(self.backend):
                self._checked(check)  # before anything is created (SageMaker)
            self._listen()
            requests = self._plan()
            if not self.folder.created:
                self.folder.create()
            self._log = ServerLog(self.folder.path("server.log"))
            write_atomic(self.folder.path("federation.toml"), self.federation.to_toml(self.run_dir))
            interrupts.check()  # and one swallowed while the run planned: still before any job
            self._launch(requests, check)
            from orchestrator.run import provenance, saving  # the data stack, once the jobs start

            self.record.sources = provenance.sources(self.federation, requests)
            self._server.roster.jobs_launched()  # the join timeout counts from here at the earliest
            warmup.start()  # the tail's libraries, while the server waits for its clients
            self._plotter.start()  # and the figures' (matplotlib), in the helper process
            self._watch()
            self.watcher.federation_done = True
            if isinstance(self._server_error, BadInput):  # a client's data, refused in the statistics phase
                raise self._server_error
            if self._server_error is not None:
                raise RunFailed(failure_message(self._server_error, self._server, self.watcher))
            self._draw_figures()  # metrics.png, in the helper process while the model is saved
            model_path = saving.save_model(self.folder, self.record, self._server, self.data)  # as jobs exit
            self._draw_figures()  # and the final model's curves, while the rest is written
            late = self.watcher.wait_all(self.backend.completion_timeout, self._drain)
            if late:
                timeout = self.backend.completion_timeout
                self.warnings.append(f"jobs of {', '.join(late)} had not finished {timeout:g} s after the last round")
            self.warnings.extend(self.watcher.went_on_without())
            status = "completed"
            return RunOutcome(
                self.run_id,
                self.run_dir,
                self.history,
                model_path,
                {c: self.watcher.final_status(c) for c in self.watcher.requests},
                time.monotonic() - self.record.started,
                self.warnings,
                self.data.schema.get("positive_class"),
                self.record.calibration,
                self.data.schema.get("task", "binary"),
                self.record.privacy,
            )
        except KeyboardInterrupt as exc:
            status, reason = "interrupted", interrupts.handled(exc)
            raise
        except (RunFailed, BadInput) as exc:
            reason = str(exc)
            raise
        except OSError as exc:  # a file of the run folder could not be written (a full disk)
            failure = file_error(exc)
            reason = str(failure)
            raise failure from None
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            problems = self._finish(status, reason)
            if problems:  # a job left running or results not written: say so, whatever else happened
                raise RunFailed("; ".join([reason, *problems] if reason else problems)) from None

    def _listen(self) -> None:
        """Create the run's secrets and TLS material and start listening, before any heavy import.

        The listener (federation/listener.py) needs `grpc` alone: the jobs launch next, and Flower's
        server is built while they start (`_serve_clients`). A backend that brings its own server
        (`federation_server`: the simulation backend's virtual clients) needs no port.
        """
        # 256 random bits per client, hex (fits SageMaker's Environment alphabet); they reach each job as
        # FEDSAGE_CLIENT_TOKEN in its environment (plan.py), never as an argument or in a file
        self._tokens = {c.name: secrets.token_hex(32) for c in self.federation.clients}
        server = self.federation.server
        self._tls = tls_module.for_server(server)
        port = 0
        if getattr(self.backend, "federation_server", None) is None:
            self._listener = Listener(server.bind_address, server.port, self._tls)
            port = self._listener.start()
        self.address = host_port(server.dial_host(), port)
        self.observer(ServerListening(self.address, len(self.federation.clients), self._listener is None))

    def _serve_clients(self) -> None:
        """Build the run's Flower server (flwr, its strategy and evaluation imported here) and serve the listener.

        Its data (self.data) is given once checked (`_checked`), before it runs; clients that
        connected meanwhile waited on the listener and now join its roster.
        """
        from orchestrator.federation.server import FederationServer

        make = getattr(self.backend, "federation_server", FederationServer)  # the simulation backend's adapter
        self._server = make(
            self.federation, self.data, self._tokens, self._listener, self._emit, self._on_round, self._on_phase
        )
        self._server.resume = self.resume.checkpoint if self.resume else None
        if self._log is not None:  # Flower's console handler, added by its import just now, goes to server.log
            self._log.detach_consoles()
        self._server.start()

    def _plan(self) -> list[TrainingJobRequest]:
        """Every client's training job request for this run (BadInput if SageMaker would refuse one)."""
        return plan_run(
            self.federation,
            self.backend.placement,
            run_id=self.run_id,
            server_address=self.address,
            root_certificate=self._tls.ca_certificate,
            tokens=self._tokens,
        )

    def _checked(self, check: startup.InputCheck) -> None:
        """Wait for the input check (BadInput if it failed); then the server has its data, the observer its events."""
        self.data = check.result()
        if self._server is not None:
            self._server.data = self.data
        self.observer.release()

    def _launch(self, requests: list[TrainingJobRequest], check: startup.InputCheck | None) -> None:
        """Keep a masked copy of the requests, create every job in parallel, start the server loop once checked."""
        folder = self.folder.path("requests")
        folder.mkdir()
        for request in requests:
            write_json(folder / f"{client_of(request)}.json", redacted(request))
        rounds = plural(self.federation.federation.rounds, "round")
        log.info("run %s: %s x %s", self.run_id, plural(len(requests), "client"), rounds)
        pool = ThreadPoolExecutor(max_workers=min(8, len(requests)))
        futures = {client_of(r): pool.submit(self.backend.launch, r) for r in requests}
        if self.data is None:
            assert check is not None
            check.start()  # while the jobs start, in this process as the server is built (GIL-bound both)
        try:
            wait(futures.values())
        finally:  # even on Ctrl-C: let started launches finish and record them, so that every job is stopped
            with interrupts.deferred(reraise=sys.exc_info()[0] is None):
                pool.shutdown(wait=True, cancel_futures=True)
                for request in requests:
                    future = futures[client_of(request)]
                    if future.done() and not future.cancelled() and future.exception() is None:
                        self.watcher.add(client_of(request), request)
        failed = {client: future.exception() for client, future in futures.items() if future.exception()}
        self._serve_clients()
        if self.data is None:
            assert check is not None
            self._checked(check)  # bad input found meanwhile is what the run reports, not a launch failure
        self._start_server()
        if failed:
            client, error = next(iter(failed.items()))
            raise RunFailed(f"could not launch client {client!r}'s training job: {error}")

    def _start_server(self) -> None:
        """Run the server loop (statistics phase, then every round) in the "flower-server" thread."""
        self._thread = Worker(self._serve, "flower-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            assert self._server is not None
            self._server.run()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self._server_error = exc

    def _watch(self) -> None:
        """Hand events to the observer and poll the jobs until the server thread ends (RunFailed once aborted).

        A job that ended early with too few clients left aborts the roster (`_job_ended_early`). A
        round that waits on another client that does not answer (a frozen job) would hold the
        server thread up to the round timeout; after ABORT_GRACE the run fails with the abort's
        reason instead, and `_finish` stops the jobs and closes the streams, which ends the thread.
        """
        assert self._thread is not None and self._server is not None
        next_poll = 0.0
        aborted: float | None = None  # time.monotonic() when the roster was seen aborted
        while not self._thread.ended.is_set():
            interrupts.check()  # a Ctrl-C some library swallowed (here or before the run) still stops it
            self._drain()
            if self._log is not None and self._log.error is not None:
                self._server.abort(str(file_error(self._log.error)))
            if time.monotonic() >= next_poll:
                self.watcher.poll()
                next_poll = time.monotonic() + self.backend.poll_interval
            reason = self._server.roster.abort_reason
            if reason is not None:
                aborted = aborted or time.monotonic()
                if time.monotonic() - aborted >= ABORT_GRACE:
                    raise RunFailed(reason)
            self._thread.wait(0.1)
        self._drain()

    def _draw_figures(self) -> None:
        """Hand the figures known so far to the plotter (run/plotter.py); write_all collects them."""
        from orchestrator.run import report

        task = self.data.schema.get("task") if self.data.schema else None
        record = self.record
        for name, figure in report.figures(self.history, self.run_id, task, record.calibration, record.scores).items():
            self._plotter.submit(name, figure)

    def _refused(self) -> bool:
        """Whether the run ended as refused input, leaving no run folder (`_finish` removes it).

        Its input check failed or did not end (a Ctrl-C), or, on a backend whose jobs cost nothing
        (`launch_while_checking`: the local ones), a client refused its own data in the statistics
        phase, before the first evaluation (run/inputs.py leaves the rows to the clients). A
        SageMaker run refused there keeps its folder: run.json records the billed jobs.
        """
        if self.data is None:
            return True
        cheap = getattr(self.backend, "launch_while_checking", False)
        return cheap and isinstance(self._server_error, BadInput) and not self.history.rounds

    def _finish(self, status: str, reason: str) -> list[str]:
        """Stop whatever still runs, then write run.json and the reports, whatever happened.

        Neither a second Ctrl-C nor a SIGTERM cuts this short (interrupts.deferred). Returns
        what went wrong here, one line each: jobs that could not be stopped, files not written.
        """
        problems: list[str] = []
        with interrupts.deferred(reraise=False) as received:
            refused = self._refused()
            if refused:  # nothing to show after the one-line error
                self.observer.drop()
            self._stopping = status != "completed"
            if self._server is not None and status != "completed":
                self._server.roster.abort(reason or status)  # waits raise; the streams stay open ...
            unstopped = self.watcher.stop_all(reason or "the run ended")  # ... until the jobs are stopped
            if self._server is not None:  # (a client whose stream closes first fails, and exits at once)
                self._server.stop()
            if self._listener is not None:  # and when Flower's server was never built (a Ctrl-C while it was)
                self._listener.stop()
            served = self._thread.ended if self._thread is not None else None
            if served is not None:  # its last records go to server.log, not to the console given back on release
                served.wait(SERVER_THREAD_TIMEOUT)
            self.warnings.extend(unstopped)
            if unstopped:
                problems.append(f"{'; '.join(unstopped)}; stop it with `fedsage stop --run-id {self.run_id}`")
            self._drain()
            if self._log is not None:
                self._log.release(served)  # a server thread still ending keeps logging to server.log
                if self._log.error is not None:
                    self.warnings.append(f"server.log is incomplete: {file_error(self._log.error)}")
            if self.folder.created and refused and not unstopped:  # nothing half-written
                self.folder.discard()
            elif self.folder.created:
                from orchestrator.run import report, saving

                try:
                    if status != "completed" and saving.has_partial_model(self._server, self.record, self.folder):
                        saving.save_model(self.folder, self.record, self._server, self.data, True, reason or status)
                    summary = self.record.summary(
                        status, reason, self.backend.description, self.watcher, self.folder, self.data
                    )
                    write_json(self.folder.path("run.json"), summary.to_dict())
                    report.write_all(self.folder, self.history, summary, self.record.scores, self._plotter)
                    if status == "completed" and not problems:  # a late Ctrl-C no longer changes the outcome
                        interrupts.settle(received.signals)
                except OSError as exc:  # the reason may already say why (a full disk): then only add what is lost
                    lost = f"the partial model, run.json and the reports were not all written ({exc.strerror})"
                    problems.append(lost if reason else str(file_error(exc)))
            self._plotter.close()
        return problems
