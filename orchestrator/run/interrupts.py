"""Ctrl-C and SIGTERM: both stop a run the same way, and stopping is never cut short.

* `as_interrupts()`: while active, SIGINT and SIGTERM raise `Interrupted` (a KeyboardInterrupt
  that knows its signal) in the main thread, so `finally` blocks run: every job is stopped and
  run.json written. A service manager's or `kill`'s SIGTERM is thus handled like Ctrl-C instead of
  ending the process with its jobs still running. A signal that comes while the main thread is
  inside an import is raised once the import is over (`_importing`): raised in importlib's own
  code it could leave the import lock held, and every other importing thread hung.
* `deferred()`: while active, the signals are recorded instead of raised. The run stops its jobs
  and writes its results inside it, so a second Ctrl-C (or a SIGTERM after a Ctrl-C) cannot leave a
  job running or run.json unwritten.

* `check()`: raises again an interrupt whose exception some library swallowed, so it is not lost
  (the run calls it before it creates anything, and while it waits); where Python itself swallows
  it (a weakref callback, `__del__`), nothing is printed.
* `pending()`: the signal of such an interrupt, for the CLI to report an exception some library
  made of it (pydantic-core's schema build wraps it in a SchemaError) as the interrupt it was.
* `settle()`: once a run has completed and written run.json, a signal is recorded (`late()`), not
  raised: the process exits 0 like its files say, with a note, instead of 130.

Signals can only be handled in the main thread (Python's `signal` module); elsewhere both are
no-ops. A signal the process was started with ignored (SIG_IGN, e.g. `nohup`) stays ignored.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from types import FrameType

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)
REASONS = {signal.SIGINT: "interrupted by the user (Ctrl-C)", signal.SIGTERM: "terminated (SIGTERM)"}


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; `reason` says which, `exit_code` is 128 + the signal number (as shells report)."""

    def __init__(self, signum: int) -> None:
        super().__init__(REASONS[signum])
        self.signum = signum

    @property
    def reason(self) -> str:
        """One line for run.json: which signal stopped the run."""
        return REASONS[self.signum]

    @property
    def exit_code(self) -> int:
        """128 + the signal number: 130 for Ctrl-C, 143 for SIGTERM."""
        return 128 + self.signum


def handled(error: KeyboardInterrupt) -> str:
    """The interrupt `error` is being handled (it is no longer pending, `check`); return why the run stopped.

    The reason is the signal's, or Ctrl-C's for a plain KeyboardInterrupt.
    """
    _pending.clear()
    return error.reason if isinstance(error, Interrupted) else REASONS[signal.SIGINT]


def check() -> None:
    """Raise Interrupted again for a signal whose exception was swallowed before it could stop the run.

    A signal handler's exception is raised wherever the main thread is, and some code swallows it:
    C extensions calling back into Python print "Exception ignored in: ..." and go on (seen with
    pydantic building a regex-constrained field while the CLI started), as does any broad
    `except`. The run calls this at its safe points (run/lifecycle.py), so such a Ctrl-C or
    SIGTERM still stops it, one poll later, instead of being lost.
    """
    if _pending:
        raise Interrupted(_pending[0])


def pending() -> int | None:
    """The signal number of an interrupt raised and not yet handled (see `check`), or None.

    An exception the CLI receives while one is pending is that interrupt, swallowed or wrapped on
    its way up: pydantic-core, building a validator when a Ctrl-C arrives during the imports,
    re-raises it as `SchemaError(... Interrupted: ...)`.
    """
    return _pending[0] if _pending else None


_handled: list[int] = []  # every signal the handlers below took, in order (they run in the main thread only)
_late: list[int] = []  # the signals that came once the run's results were complete (settle())
_pending: list[int] = []  # raised as Interrupted, not yet handled by the run (`handled`, `check`)
_redelivered: set[int] = set()  # signals sent again because they came during an import (`_redeliver`)
_depth = [0]  # how many as_interrupts() are active (the CLI's, and the run's inside it)
_settled = [False]  # whether they are, since the innermost as_interrupts() was entered


@dataclass(frozen=True)
class Received:
    """The signals handled since a context below was entered, in order, nested contexts' included."""

    start: int = field(default_factory=lambda: len(_handled))

    @property
    def signals(self) -> list[int]:
        """SIGINT/SIGTERM numbers, first first."""
        return _handled[self.start :]


@contextmanager
def _handling(handler) -> Iterator[None]:
    """Install `handler` for SIGINT and SIGTERM (main thread only, ignored signals left alone); restore after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    for signum, old in previous.items():
        if old is not signal.SIG_IGN:
            signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)


REDELIVERY_DELAY = 0.05  # seconds between tries to raise a signal that came during an import


def _importing(frame: FrameType | None) -> bool:
    """Whether the main thread, interrupted at `frame`, is inside Python's import machinery.

    An exception raised there can skip importlib's release of its locks: seen in review, an
    Interrupted raised in `_get_module_lock`'s weakref callback left the global import lock held,
    and the next import of another thread (the input check's) and of the main thread waited on
    each other forever. The import machinery's frames come from the frozen importlib modules.
    """
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib._bootstrap"):
            return True
        frame = frame.f_back
    return False


def _redeliver(signum: int) -> None:
    """Send `signum` to this process again in REDELIVERY_DELAY s: it is raised once no import is running.

    A module's import takes at most about a second here (flwr, pandas), so the interrupt is late
    by that much at most, and never lost.
    """
    _redelivered.add(signum)
    timer = threading.Timer(REDELIVERY_DELAY, os.kill, (os.getpid(), signum))
    timer.daemon = True
    timer.start()


def _count(signum: int) -> bool:
    """Record `signum` as handled (`_handled`); False, recording nothing, if it is one `_redeliver` sent again."""
    if signum in _redelivered:  # counted when it first came
        _redelivered.discard(signum)
        return False
    _handled.append(signum)
    return True


@contextmanager
def as_interrupts() -> Iterator[Received]:
    """While active, SIGINT and SIGTERM raise Interrupted in the main thread; yields what arrived."""
    received = Received()
    _settled[0] = False
    _late.clear()
    if not _depth[0]:  # the outermost (the CLI's): a swallowed interrupt before the run stays pending inside it
        _pending.clear()

    def interrupt(signum: int, frame: FrameType | None) -> None:
        _count(signum)
        if _settled[0]:  # nothing is left to stop, and run.json says completed: the process must agree
            _late.append(signum)
            log.info("%s after the run completed: its results are complete", REASONS[signum])
            return
        if _importing(frame):  # raised in importlib's own code it could leave the import lock held
            _redeliver(signum)
            return
        _pending.append(signum)
        raise Interrupted(signum)

    outermost = not _depth[0]
    _depth[0] += 1
    try:
        with _handling(interrupt), _quiet_unraisable() if outermost else nullcontext():
            yield received
    finally:
        _depth[0] -= 1


@contextmanager
def _quiet_unraisable() -> Iterator[None]:
    """While active, an Interrupted that Python can only ignore is not printed: it is pending (`check`).

    A handler's exception raised inside a weakref callback or a `__del__` (seen: importlib's module
    lock callback while the CLI imported a command's libraries) cannot propagate; Python prints
    "Exception ignored in: ..." with a traceback (sys.unraisablehook) and goes on. The interrupt is
    already recorded as pending, and the run's next safe point raises it again, so the traceback
    only broke the promise of one line. Other unraisable exceptions go to the previous hook.
    """
    previous = sys.unraisablehook

    def hook(unraisable: sys.UnraisableHookArgs) -> None:
        if isinstance(unraisable.exc_value, Interrupted):
            log.debug("%s raised in %r, where Python ignores it: pending", unraisable.exc_value, unraisable.object)
            return
        previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


@contextmanager
def deferred(reraise: bool = True) -> Iterator[Received]:
    """While active, SIGINT and SIGTERM are recorded, not raised; yields what arrived.

    On leaving without an exception, the first recorded signal is raised as Interrupted when
    `reraise` is true (a Ctrl-C is never lost), and dropped otherwise (the caller is already
    stopping, or has finished).
    """
    received = Received()

    def record(signum: int, frame: object) -> None:
        if not _count(signum):
            return
        log.info("%s while stopping: the jobs are stopped and the results written first", REASONS[signum])

    with _handling(record):
        yield received
    if reraise and received.signals:
        raise Interrupted(received.signals[0])


def settle(earlier: list[int] | None = None) -> None:
    """The run completed and its run.json says so: from now on SIGINT and SIGTERM are recorded, not raised.

    A completed run stays completed: an interrupt in its last instant (or `earlier` ones, that came
    while it was writing its results) must not make the process exit 130 while its files say
    completed. `late()` lists them; entering as_interrupts() again (a new run) ends this.
    """
    _settled[0] = True
    _late.extend(earlier or [])


def late() -> list[int]:
    """The signals that came after a run completed (settle()), first first, for the CLI's note."""
    return list(_late)
