"""The client manager: which clients this run expects, who is connected, bounded waiting.

Flower's SimpleClientManager waits up to a day for clients and knows them only by random ids.
The roster knows the run's client names (connections are registered under them by the
transport), reports joins and departures as events, and waits at most the join timeout, so a
missing client fails the run with its name instead of hanging it.

A name is admitted once per run (`claim`): a second connection under it - while its client is
connected, or after it left, or after its job ended - is refused by the transport as a possible
impostor. So a client that left, or that missed a round deadline and was disconnected, is out for
the rest of the run. The one exception is a connection that ended before the server sent it
anything: its client has not joined, and connects again (transport.py `_LiveCall`).
Once the rounds started (`start_rounds`) nobody is waited for any more: sampling takes whoever is
connected, and a round with too few clients fails at once.

The join timeout counts from the start of the last job. The run tells the roster when every job
has been launched (`jobs_launched`) and when each client's job is running (`job_running`: its
backend first reports SageMaker's secondary status Training) or has ended (`mark_gone`). The
wait ends `wait_timeout` seconds after the last job started; a job that is still not running
`wait_timeout` seconds after the launches ends it then, so a job that never starts cannot hang
the run. Launching 100 local processes, or minutes of SageMaker provisioning, never eat into
the time a client has to start its program and join.
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
        self._claimed: set[str] = set()
        self._departures: dict[str, str] = {}
        self._rounds_started = False
        self._running: set[str] = set()
        self._launched: float | None = None  # time.monotonic() when every job had been launched
        self._last_start: float | None = None  # ... and when the last of them was running (or gone)

    def claim(self, name: str) -> bool:
        """Admit `name` for this run: True the first time, False ever after (a reused token) or once its job ended."""
        with self._cv:
            if name in self._claimed or name in self._gone:
                return False
            self._claimed.add(name)
            return True

    def release(self, name: str) -> None:
        """Give `name`'s claim back: its call ended before it was sent anything (transport.py `_LiveCall`)."""
        with self._cv:
            self._claimed.discard(name)

    def note_departure(self, name: str, reason: str) -> None:
        """Remember why a client's connection is about to end (e.g. it missed a round deadline)."""
        with self._cv:
            self._departures[name] = reason

    def departure(self, name: str) -> str | None:
        """Why a client that is no longer connected left, if the server knows; None otherwise."""
        with self._cv:
            if name in self.clients:
                return None
            return self._departures.get(name, "its connection closed" if name in self._claimed else None)

    def start_rounds(self) -> None:
        """The rounds begin: from now on `wait_for` does not wait (a name that left never comes back)."""
        with self._cv:
            self._rounds_started = True

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
            reason = self._departures.get(client.cid, "")
        if known:
            self._emit(ClientLeft(client.cid, reason))

    def wait_for(self, num_clients: int, timeout: float | None = None) -> bool:
        """Wait until `num_clients` are connected, at most the wait timeout; raise if aborted.

        Once the rounds started it does not wait at all: whoever is connected is all there will be.
        """
        wait = self.wait_timeout if timeout is None else timeout
        deadline = time.monotonic() + (0.0 if self._rounds_started else wait)
        with self._cv:
            while len(self.clients) < num_clients:
                self.check_aborted()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cv.wait(remaining)
            self.check_aborted()
            return True

    def jobs_launched(self) -> None:
        """Every job has been launched: the join clock runs from now until the last job runs, then from then."""
        with self._cv:
            self._launched = time.monotonic()
            self._note_starts()

    def job_running(self, name: str) -> None:
        """A client's job is running (its backend says so)."""
        with self._cv:
            self._running.add(name)
            self._note_starts()

    def _note_starts(self) -> None:
        """Note the moment no expected job is waiting to start any more (call with the lock held)."""
        if self._last_start is None and all(n in self._running or n in self._gone for n in self.expected):
            self._last_start = time.monotonic()
        self._cv.notify_all()

    def not_started(self) -> list[str]:
        """Expected clients whose jobs were never reported running (nor ended)."""
        return [n for n in self.expected if n not in self._running and n not in self._gone]

    def join_deadline(self) -> float | None:
        """time.monotonic() when the join wait ends; None before the launches are done (module docstring)."""
        if self._launched is None:
            return None
        return max(self._launched, self._last_start or self._launched) + self.wait_timeout

    def wait_for_all(self, needed: int) -> None:
        """Wait for every expected client, then require `needed` of them.

        The wait ends at the latest `wait_timeout` seconds after the last job started (see the
        module docstring, `join_deadline`); until every job is launched it is ended only by an
        abort (Ctrl-C, a failed launch or job). Clients marked gone (their job already failed) are not waited for.
        Raises JoinTimeout naming the missing clients when fewer than `needed` joined.
        """
        with self._cv:
            while any(n not in self.clients and n not in self._gone for n in self.expected):
                self.check_aborted()
                deadline = self.join_deadline()
                if deadline is None:
                    self._cv.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cv.wait(remaining)
            self.check_aborted()
            if len(self.clients) < needed:
                raise JoinTimeout(
                    f"{len(self.clients)} of {len(self.expected)} clients joined within "
                    f"{self.wait_timeout:g} s (need {needed}); missing: {', '.join(self.missing())}"
                    + (f" (jobs never running: {', '.join(self.not_started())})" if self.not_started() else "")
                )

    def mark_gone(self, name: str) -> None:
        """Stop waiting for a client whose job ended before it joined."""
        with self._cv:
            self._gone.add(name)
            self._note_starts()

    def missing(self) -> list[str]:
        """Expected clients that are not connected now."""
        return [name for name in self.expected if name not in self.clients]

    def abort(self, reason: str) -> None:
        """Make every current and future wait raise FederationAborted; the first reason given is kept (the cause).

        What follows an abort (a refused client's job failing, the run's own clean-up) aborts
        again, and must not replace the cause in the run's message.
        """
        with self._cv:
            self._abort_reason = self._abort_reason or reason
            self._cv.notify_all()

    @property
    def abort_reason(self) -> str | None:
        """Why the run was aborted (`abort`), or None: the cause of whatever failed after it."""
        return self._abort_reason

    def check_aborted(self) -> None:
        """Raise FederationAborted if the run was aborted."""
        if self._abort_reason is not None:
            raise FederationAborted(self._abort_reason)
