"""Events the federation server emits while it runs; run.py turns them into progress."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.federation.history import RoundRecord


@dataclass(frozen=True)
class ClientJoined:
    """An admitted client connected."""

    name: str
    connected: int
    expected: int


@dataclass(frozen=True)
class ClientLeft:
    """A connected client's stream closed."""

    name: str


@dataclass(frozen=True)
class ClientRefused:
    """A connection was refused (no valid token, or a name already connected)."""

    peer: str
    reason: str


@dataclass(frozen=True)
class UpdateRejected:
    """A client's update failed validation or never arrived, and was left out of the average."""

    round: int
    name: str
    reason: str


@dataclass(frozen=True)
class RoundFinished:
    """A round was aggregated and evaluated on the test set (round 0: the initial model)."""

    record: RoundRecord
    rounds: int


FederationEvent = ClientJoined | ClientLeft | ClientRefused | UpdateRejected | RoundFinished
