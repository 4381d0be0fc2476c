"""Every event a run emits, in one place: the federation server's, the run's and the data preparation's.

The server thread and the run's main loop emit these; the console view (cli/progress.py) and
tests observe them. Events are plain frozen dataclasses: nothing here does I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.federation.history import RoundRecord

if TYPE_CHECKING:
    from orchestrator.backends import JobStatus


# ---------------------------------------------------------------- the Flower server (federation/)


@dataclass(frozen=True)
class ClientJoined:
    """An admitted client connected; `connected` of `expected` clients are connected now."""

    name: str
    connected: int
    expected: int


@dataclass(frozen=True)
class ClientLeft:
    """A connected client's stream closed; `reason` when the server closed it (e.g. a missed round deadline)."""

    name: str
    reason: str = ""


@dataclass(frozen=True)
class ClientRefused:
    """A connection was refused (no valid token, or a token presented a second time: a possible impostor).

    `claimed_name`: the client whose token it presented (None without a valid token); `time`:
    when, in UTC (ISO 8601).
    """

    peer: str
    reason: str
    claimed_name: str | None = None
    time: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))


@dataclass(frozen=True)
class UpdateRejected:
    """A client's update failed validation or never arrived, and was left out of the average."""

    round: int
    name: str
    reason: str


@dataclass(frozen=True)
class PrivacySpent:
    """A round was released under differential privacy; `budget` is the privacy spent so far.

    `budget`: federation/privacy.py PrivacyBudget.to_dict() (mode, epsilon, delta, rounds, ...).
    """

    round: int
    budget: dict[str, Any]


@dataclass(frozen=True)
class StatisticsDone:
    """The statistics phase ended: the schema's `source`, its feature count, inferred columns, seconds.

    `task` is the schema's task; `task_note` says why when it was inferred from the label ("" otherwise).
    """

    source: str
    features: int
    inferred: list[str]
    positive_class: Any
    seconds: float
    task: str = ""
    task_note: str = ""


@dataclass(frozen=True)
class RunWarning:
    """Something the user should know that does not stop the run (it also goes to run.json and report.md)."""

    message: str


@dataclass(frozen=True)
class RoundFinished:
    """A round was aggregated and evaluated on the test set (round 0: the initial model)."""

    record: RoundRecord
    rounds: int


# ---------------------------------------------------------------- the run (run/, backends/)


@dataclass(frozen=True)
class DataPrepared:
    """A built-in data set was generated and split; `summary` is data.prepare's PrepareSummary."""

    dataset: str
    summary: Any


@dataclass(frozen=True)
class ServerListening:
    """The server is up; `clients` clients will dial `address` (HOST:PORT).

    With `virtual`, nothing listens: the clients are virtual clients of Flower's Simulation
    Engine in this process (the simulation backend), with no port or TLS.
    """

    address: str
    clients: int
    virtual: bool = False


@dataclass(frozen=True)
class JobChanged:
    """A training job changed state."""

    client: str
    status: JobStatus


@dataclass(frozen=True)
class JobLog:
    """The last lines of a failed job's log (local file or CloudWatch, read through the backend)."""

    client: str
    lines: list[str]


@dataclass(frozen=True)
class Stopping:
    """The run is stopping every job it started (`jobs`, by client name), because of `reason`."""

    reason: str
    jobs: list[str]


FederationEvent = (
    ClientJoined
    | ClientLeft
    | ClientRefused
    | UpdateRejected
    | PrivacySpent
    | StatisticsDone
    | RunWarning
    | RoundFinished
)
RunEvent = FederationEvent | DataPrepared | ServerListening | JobChanged | JobLog | Stopping
Observer = Callable[[RunEvent], None]


def ignore(event: RunEvent) -> None:
    """The default observer: drop the event."""
