"""The client manager: which clients this run expects, who is connected, bounded waiting.

Flower's SimpleClientManager waits up to a day for clients and knows them only by random ids.
The roster knows the run's client names (connections are registered under them by the
transport), reports joins and departures as events, and waits at most the join timeout, so a
missing client fails the run with its name instead of hanging it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flwr.server.client_manager import SimpleClientManager
from flwr.server.client_proxy import ClientProxy

from orchestrator.run.events import ClientJoined, ClientLeft, FederationEvent


class FederationAborted(RuntimeError):
    """The run was aborted (Ctrl-C, a failed job, a stop request)."""


class JoinTimeout(RuntimeError):
    """Not enough clients joined in time."""


class Roster(SimpleClientManager):
    """SimpleClientManager with named clients, events, a wait limit and an abort switch."""

    def __init__(self, expected: list[str], wait_timeout: float, emit: Callable[[FederationEvent], None]) -> None:
        super().__init__()
        self.expected = list(expected)
        self.wait_timeout = wait_timeout
        self._emit = emit
        self._abort_reason: str | None = None
        self._gone: set[str] = set()

    def register(self, client: ClientProxy) -> bool:
        """Admit a connection registered under its client name; refuse a second one."""
        with self._cv:
            if self._abort_reason is not None or not super().register(client):
                return False
            connected = len(self.clients)
        self._emit(ClientJoined(client.cid, connected, len(self.expected)))
        return True

    def unregister(self, client: ClientProxy) -> None:
        """Forget a connection whose stream closed."""
        with self._cv:
            known = self.clients.get(client.cid) is client
            if known:
                super().unregister(client)
        if known:
            self._emit(ClientLeft(client.cid))

    def wait_for(self, num_clients: int, timeout: float | None = None) -> bool:
        """Wait until `num_clients` are connected, at most the wait timeout; raise if aborted."""
        deadline = time.monotonic() + (self.wait_timeout if timeout is None else timeout)
        with self._cv:
            while len(self.clients) < num_clients:
                self.check_aborted()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cv.wait(remaining)
            self.check_aborted()
            return True

    def wait_for_all(self, needed: int) -> None:
        """Wait for every expected client (up to the wait timeout), then require `needed` of them.

        Clients marked gone (their job already failed) are not waited for. Raises JoinTimeout
        naming the missing clients when fewer than `needed` joined.
        """
        deadline = time.monotonic() + self.wait_timeout
        with self._cv:
            while any(n not in self.clients and n not in self._gone for n in self.expected):
                self.check_aborted()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cv.wait(remaining)
            self.check_aborted()
            if len(self.clients) < needed:
                raise JoinTimeout(
                    f"{len(self.clients)} of {len(self.expected)} clients joined within "
                    f"{self.wait_timeout:g} s (need {needed}); missing: {', '.join(self.missing())}"
                )

    def mark_gone(self, name: str) -> None:
        """Stop waiting for a client whose job ended before it joined."""
        with self._cv:
            self._gone.add(name)
            self._cv.notify_all()

    def missing(self) -> list[str]:
        """Expected clients that are not connected now."""
        return [name for name in self.expected if name not in self.clients]

    def abort(self, reason: str) -> None:
        """Make every current and future wait raise FederationAborted."""
        with self._cv:
            self._abort_reason = reason
            self._cv.notify_all()

    def check_aborted(self) -> None:
        """Raise FederationAborted if the run was aborted."""
        if self._abort_reason is not None:
            raise FederationAborted(self._abort_reason)
