"""A run's start: its inputs read and checked while its jobs start, where the backend allows it.

Checking a run's inputs takes about a second of its start on this machine: each local channel's
header (run/inputs.py `check_local_channels`, milliseconds: the rows are their clients' to read),
then the server's test set, read (with pandas' import) and checked for the schema's columns; a
local run encodes it (with scikit-learn's import) in its server thread after the statistics phase,
while the clients read their own rows. A client job of a local backend needs seconds to import
its libraries before it reads anything, so the run launches the jobs first and checks its inputs
meanwhile (measured in docs/benchmarks.md, issue 15).

Whether it may is the backend's to say, by its `launch_while_checking` attribute
(backends/__init__.py), so the run never branches on the backend's name:

* True for the local backends (process, docker, simulation): a job costs nothing, and stopping
  it takes a signal, so jobs started for inputs that turn out bad are simply stopped;
* False for SageMaker: a training job is billed from its creation and takes minutes to stop, so
  the inputs are checked before any job is created (`fedsage launch` checks its test set even
  before it assumes the client accounts' roles).

Whatever the order, bad input stays bad input: one line, exit 2, nothing half-written. Until the
check has passed the run holds its events (`HeldEvents`: the console prints no banner, no
"server listening" or "joined" line before the error); a check that fails, or a Ctrl-C before it
passed, stops every job and removes the run folder (run/lifecycle.py `_finish`). A client that
refuses its own rows in the statistics phase (a bad cell, a file it cannot parse) ends the run the
same way, after the "joined" lines (`FederationRun._refused`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Union

from orchestrator.run.events import Observer, RunEvent
from orchestrator.threads import Worker

if TYPE_CHECKING:
    from orchestrator.run.inputs import ServerData

# checked already, or a function that reads and checks them (the run imports no data library before its launch)
Inputs = Union["ServerData", Callable[[], "ServerData"]]  # noqa: UP007 - a string in `|` is not a type
JOIN_STEP = 0.1  # seconds between looks at the checking thread, so that SIGINT/SIGTERM reach the main thread


class HeldEvents:
    """An observer that holds events until `release()` (then passes them on, in order) or `drop()` (then none)."""

    def __init__(self, observer: Observer, held: bool = True) -> None:
        """`held=False`: pass every event on at once (a run whose inputs were checked before it was set up)."""
        self.observer = observer
        self._held: list[RunEvent] | None = [] if held else None
        self._dropped = False
        self._lock = threading.Lock()

    def __call__(self, event: RunEvent) -> None:
        """Pass `event` on, keep it for later, or forget it, as the run's check stands."""
        with self._lock:
            if self._dropped:
                return
            if self._held is not None:
                self._held.append(event)
                return
        self.observer(event)

    def release(self) -> None:
        """The inputs are good: pass on what was held, and every later event at once."""
        with self._lock:
            held, self._held = self._held or [], None
        for event in held:
            self.observer(event)

    def drop(self) -> None:
        """The run was refused before it started: forget what was held and every later event."""
        with self._lock:
            self._held, self._dropped = None, True


def begin(inputs: Inputs, backend: object) -> InputCheck | None:
    """The run's input check: None for inputs checked already, else an InputCheck, not started.

    The caller starts it in a thread once the jobs are launched when `while_launching(backend)`;
    otherwise it calls `result()` first, before it creates anything.
    """
    if not callable(inputs):
        return None
    return InputCheck(inputs)


def while_launching(backend: object) -> bool:
    """Whether the run may launch its jobs before its inputs are checked (a backend without the attribute may not)."""
    return bool(getattr(backend, "launch_while_checking", False))


class InputCheck:
    """Reads and checks a run's inputs, in a thread of its own (`start`) or in the caller's (`result` alone)."""

    def __init__(self, inputs: Callable[[], ServerData]) -> None:
        """`inputs`: reads and checks everything; returns the server's data or raises BadInput."""
        self._inputs = inputs
        self._data: ServerData | None = None
        self._error: BaseException | None = None
        self._thread: Worker | None = None

    def _run(self) -> None:
        try:
            self._data = self._inputs()
        except BaseException as exc:  # noqa: BLE001 - raised again by `result` in the main thread
            self._error = exc

    def start(self) -> None:
        """Begin checking in a daemon thread (it holds no resource a Ctrl-C would have to release).

        The run starts it once its jobs are launched: the check imports pandas and scikit-learn and
        reads the test set, which in the same process would slow the launch (Python's GIL).
        """
        self._thread = Worker(self._run, "input-check", daemon=True)
        self._thread.start()

    def result(self) -> ServerData:
        """The checked server data, once the check has ended; raises what the check raised (BadInput).

        Without `start`, checks here. The wait wakes every JOIN_STEP seconds, so a Ctrl-C or SIGTERM
        interrupts it (run/interrupts.py); it waits on the thread's `ended` Event (threads.py).
        """
        if self._thread is None:
            self._run()
        else:
            while not self._thread.ended.is_set():
                self._thread.wait(JOIN_STEP)
        if self._error is not None:
            raise self._error
        assert self._data is not None
        return self._data
