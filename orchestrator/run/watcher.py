"""Watching a run's training jobs through its backend: status changes, failures, stopping.

The watcher knows nothing of Flower: it polls the backend, keeps each job's last status, and
reports through callbacks (run events for the console, and `on_ended_early` for the run to
decide whether the federation can go on). Every call is made from the run's main thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from orchestrator.backends import COMPLETED, FAILED, NOT_LAUNCHED, RUNNING, Backend, JobStatus
from orchestrator.plan import TrainingJobRequest
from orchestrator.run.events import JobChanged, JobLog, Observer, Stopping

log = logging.getLogger(__name__)


class JobWatcher:
    """The jobs of one run, by client name, as the backend last reported them."""

    def __init__(
        self,
        backend: Backend,
        emit: Observer,
        on_ended_early: Callable[[str, JobStatus], None] = lambda c, s: None,
        on_running: Callable[[str], None] = lambda c: None,
    ) -> None:
        """`on_ended_early(client, status)`: a job ended before the federation; `on_running(client)`: a job runs.

        `on_running` is called once per job, at the first poll that shows secondary status
        backends.RUNNING (the join timeout counts from the last of these, federation/roster.py).
        """
        self.backend = backend
        self.emit = emit
        self.on_ended_early = on_ended_early
        self.on_running = on_running
        self._seen_running: set[str] = set()
        self.requests: dict[str, TrainingJobRequest] = {}
        self.jobs: dict[str, JobStatus] = {}
        self.federation_done = False  # after the last round, a job that ends is not "early"

    def add(self, client: str, request: TrainingJobRequest) -> None:
        """Watch the job launched for `client`."""
        self.requests[client] = request

    def job_name(self, client: str) -> str | None:
        """The training job name of a client's job, if it was launched."""
        request = self.requests.get(client)
        return request["TrainingJobName"] if request else None

    def status(self, client: str) -> JobStatus | None:
        """The last status seen of a client's job (None before the first poll)."""
        return self.jobs.get(client)

    def running(self) -> list[str]:
        """Clients whose jobs were launched and have not reached a terminal state."""
        return [c for c in self.requests if c not in self.jobs or not self.jobs[c].terminal]

    def ended_badly(self) -> list[str]:
        """Clients whose jobs failed or were stopped."""
        return [c for c, s in self.jobs.items() if s.terminal and s.status != COMPLETED]

    def poll(self) -> None:
        """Refresh every running job; emit JobChanged (and the log of a failed job), call on_ended_early."""
        for client in self.running():
            status = self.backend.poll(self.requests[client]["TrainingJobName"])
            previous = self.jobs.get(client)
            if previous is None or (status.status, status.secondary_status) != (
                previous.status,
                previous.secondary_status,
            ):
                self.jobs[client] = status
                self.emit(JobChanged(client, status))
                if status.status == FAILED:
                    self._show_log(client)
            if status.secondary_status == RUNNING and client not in self._seen_running:
                self._seen_running.add(client)
                self.on_running(client)
            if status.terminal and not self.federation_done and status.status != COMPLETED:
                self.on_ended_early(client, status)

    def _show_log(self, client: str, lines: int = 20) -> None:
        """Emit the last lines of a failed job's log (best effort: logs may lag)."""
        try:
            tail = self.backend.logs(self.requests[client]["TrainingJobName"], lines)
        except Exception as exc:  # noqa: BLE001 - a missing log must not hide the failure itself
            tail = [f"(could not read the job's log: {exc})"]
        if tail:
            self.emit(JobLog(client, tail))

    def wait_all(self, timeout: float, tick: Callable[[], None] = lambda: None) -> list[str]:
        """Poll until every job is terminal or `timeout` seconds pass; return the clients still running.

        Between polls it waits for a job to end (`pause`), not a fixed interval. `tick` runs
        after every poll (the run drains its events there).
        """
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            tick()
            remaining = deadline - time.monotonic()
            if not self.running() or remaining <= 0:
                return self.running()
            self.pause(min(self.backend.poll_interval, remaining))

    def pause(self, seconds: float) -> None:
        """Sleep up to `seconds` between polls, waking as soon as a job ends if the backend can tell.

        Local backends offer `wait_for_change` (backends/exits.py: a thread per job blocks on its
        process or container); others, such as SageMaker's, are polled on their interval.
        """
        wait_for_change = getattr(self.backend, "wait_for_change", None)
        if wait_for_change is None:
            time.sleep(seconds)
        else:
            wait_for_change(seconds)

    def went_on_without(self) -> list[str]:
        """A warning per job that ended badly in a run that still completed (min_clients allowed it)."""
        return [
            f"{describe(client, self.jobs[client])}; the federation went on without it (min_clients allows it)"
            for client in self.ended_badly()
        ]

    def reasons(self, clients: list[str], wait: float = 5.0) -> str:
        """The failure reasons of these clients' jobs, waiting up to `wait` s for dying jobs to report."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            self.poll()
            if all(c not in self.requests or (c in self.jobs and self.jobs[c].terminal) for c in clients):
                break
            time.sleep(0.2)
        return "; ".join(describe(c, self.jobs[c]) for c in clients if c in self.jobs and self.jobs[c].failure_reason)

    def stop_all(self, reason: str) -> list[str]:
        """Stop every running job (SIGTERM/StopTrainingJob through the backend); return warnings for failures."""
        warnings: list[str] = []
        running = self.running()
        if running:
            self.emit(Stopping(reason, running))
        for client in running:
            try:
                self.backend.stop(self.requests[client]["TrainingJobName"])
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                log.error("could not stop %s's job: %s", client, exc)
                warnings.append(f"could not stop client {client!r}'s job: {exc}")
        for client, request in self.requests.items():
            self.jobs[client] = self.backend.poll(request["TrainingJobName"])
        return warnings

    def final_status(self, client: str) -> JobStatus:
        """The client's last status, or NotLaunched if its job was never created."""
        return self.jobs.get(client) or JobStatus(self.job_name(client) or "", NOT_LAUNCHED, "")


def describe(client: str, status: JobStatus) -> str:
    """One line: `client 'x' job failed: <reason>`."""
    return f"client {client!r} job {status.status.lower()}: {status.failure_reason or 'no reason given'}"
