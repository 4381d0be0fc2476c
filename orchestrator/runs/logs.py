"""`fedsage logs`: a run's server.log, or one client's log, read whole or followed as it grows.

The server's log is always the run folder's server.log (the Flower server runs where fedsage
runs). A client's log is `clients/<name>/client.log` in the run folder when its backend runs
jobs on this machine; for a cloud run it is the training job's CloudWatch stream, read through
the SageMaker backend built from the run folder's federation.toml, exactly as `fedsage status`
builds it (every client's kickoff role, the job found by its fedsage:run-id tag).

Following stops by itself when the run is over: a local log once run.json exists (a run writes
it after every job has stopped), a cloud job's once the job has ended and its last lines are read.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import BadInput
from orchestrator.runs.listing import clients_of, run_folder

LOCAL_POLL_SECONDS = 0.5  # a local file: cheap to look at
CLOUD_POLL_SECONDS = 5.0  # GetLogEvents and DescribeTrainingJob per poll, far inside their rate limits
CLOUD_MAX_LINES = 10_000  # GetLogEvents' largest page: a cloud log without --follow shows at most its last lines


@dataclass(frozen=True)
class LogSource:
    """One log of a run: a local file (`path`), or a training job's CloudWatch log (`job_name` via `backend`)."""

    run_dir: Path
    name: str  # "server" or the client's name
    path: Path | None = None
    job_name: str | None = None
    backend: Any = None  # a SageMakerBackend whose kickoff-role session can read the job's log

    @property
    def where(self) -> str:
        """Where the log is read from, for people: a path, or the job's CloudWatch stream."""
        return str(self.path) if self.path is not None else f"CloudWatch log of training job {self.job_name}"


def log_source(
    run_id: str, out: Path, client: str | None = None, connect: Callable[..., Any] | None = None
) -> LogSource:
    """Where run `run_id`'s server log (client None) or client `client`'s log is.

    `connect(federation, run_id)` builds the SageMaker backend for a cloud run (default: the server's
    session from [server] profile/region, every kickoff role assumed, as `fedsage status` does).
    BadInput for a run that does not exist (naming the folder searched), a client the run does not
    have (naming those it has), or a client with no log anywhere.
    """
    folder = run_folder(out, run_id).root
    if client is None:
        return LogSource(folder, "server", path=folder / "server.log")
    clients = clients_of(folder)
    if client not in clients:
        raise BadInput(f"run {run_id} has no client {client!r}; its clients: {', '.join(clients) or 'none'}")
    local = folder / "clients" / client / "client.log"
    if local.exists():
        return LogSource(folder, client, path=local)
    return _cloud_source(folder, run_id, client, connect) or LogSource(folder, client, path=local)


def _cloud_source(folder: Path, run_id: str, client: str, connect: Callable[..., Any] | None) -> LogSource | None:
    """The client's training job in its account, for a run whose federation.toml names client accounts; else None."""
    from orchestrator import config

    federation = config.load(folder / "federation.toml") if (folder / "federation.toml").exists() else None
    if federation is None or not any(c.account_id for c in federation.clients):
        return None  # a local run whose client never started: its log file may still come
    backend = (connect or _connect)(federation, run_id)
    jobs = [job for job in backend.find_jobs(run_id) if job.client == client]
    if not jobs:
        raise BadInput(
            f"no training job of client {client!r} for run {run_id} in account "
            f"{next(c.account_id for c in federation.clients if c.name == client)}; check with `fedsage status`"
        )
    return LogSource(folder, client, job_name=jobs[0].status.name, backend=backend)


def _connect(federation: Any, run_id: str) -> Any:
    """The SageMaker backend with every kickoff role assumed, from the server's own credentials."""
    from orchestrator import launch
    from orchestrator.aws.sessions import server_session

    return launch.connect(federation, server_session(federation.server), run_id)


def read_log(source: LogSource, lines: int | None = None) -> list[str]:
    """The log's lines (the last `lines` when given; a cloud log at most its last CLOUD_MAX_LINES). [] if none yet."""
    if source.path is None:
        return source.backend.logs(source.job_name, min(lines or CLOUD_MAX_LINES, CLOUD_MAX_LINES))
    try:
        with open(source.path, errors="replace") as handle:
            return [line.rstrip("\n") for line in deque(handle, maxlen=lines)]
    except FileNotFoundError:
        return []


def follow_log(
    source: LogSource, lines: int | None = None, sleep: Callable[[float], None] = time.sleep
) -> Iterator[str]:
    """Yield the log's lines (the last `lines` first, when given), then new ones as they come, until the run is over.

    See the module docstring for when it stops; stop earlier by closing the generator (Ctrl-C).
    """
    if source.path is None:
        yield from _follow_cloud(source, lines, sleep)
    else:
        yield from _follow_file(source.path, source.run_dir / "run.json", lines, sleep)


def _follow_file(path: Path, ended: Path, lines: int | None, sleep: Callable[[float], None]) -> Iterator[str]:
    offset, partial, first = 0, b"", True
    while True:
        over = ended.exists()  # looked at first: whatever was written before run.json is read below
        if path.exists():
            with open(path, "rb") as handle:
                handle.seek(offset)
                data = partial + handle.read()
                offset = handle.tell()
            *complete, partial = data.split(b"\n")
            text = [line.decode(errors="replace") for line in complete]
            if first and lines is not None:
                text = text[-lines:] if lines else []
            first = False
            yield from text
        if over:
            if partial:
                yield partial.decode(errors="replace")
            return
        sleep(LOCAL_POLL_SECONDS)


def _follow_cloud(source: LogSource, lines: int | None, sleep: Callable[[float], None]) -> Iterator[str]:
    cursor: dict[str, str] = {}
    first = source.backend.log_since(source.job_name, cursor)
    yield from (first[-lines:] if lines else []) if lines is not None else first
    while True:
        over = source.backend.poll(source.job_name).terminal
        yield from source.backend.log_since(source.job_name, cursor)
        if over:
            return
        sleep(CLOUD_POLL_SECONDS)
