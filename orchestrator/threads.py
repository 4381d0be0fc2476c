"""Threads whose end can be waited for safely while Ctrl-C and SIGTERM arrive.

On CPython 3.11, `Thread.join()` (and `is_alive()` after it) cannot be trusted in a thread that a
signal handler interrupts: when the handler raises (Ctrl-C's KeyboardInterrupt, run/interrupts.py
`Interrupted`) inside join(), threading.py `_wait_for_tstate_lock` takes its bpo-45274 branch, finds
the lock held and calls `_stop()`, which marks the thread ended for good while it still runs. The
run then released the console while its server thread was still logging a round.

`Worker` is a thread that sets its `ended` Event when its target returns or raises; callers wait on
that Event (`wait`), in short steps where a signal must be able to interrupt them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Worker(threading.Thread):
    """A thread that sets `ended` (a threading.Event) as its target returns or raises; wait on it, not join()."""

    def __init__(self, target: Callable[[], object], name: str, daemon: bool) -> None:
        """`target`: what the thread runs (its exceptions are the target's to catch); `name`, `daemon`: Thread's."""
        super().__init__(target=target, name=name, daemon=daemon)
        self.ended = threading.Event()

    def run(self) -> None:
        """Run the target, then set `ended`, whatever it raised."""
        try:
            super().run()
        finally:
            self.ended.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to `timeout` seconds (None: for ever) for the thread to end; True once it has."""
        return self.ended.wait(timeout)
