"""Waking a run when one of its local jobs ends, instead of polling on a timer.

A local backend starts one daemon thread per job that blocks until the job's process or
container ends (`Popen.wait`, the Docker Engine's `POST /containers/{id}/wait`) and then sets
one flag. The run's watcher sleeps on that flag (`wait_for_change`) between polls, so it sees an
exit at once rather than up to one poll interval later; the interval remains the longest sleep,
which keeps MaxRuntimeInSeconds enforced.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class ExitSignal:
    """One flag set whenever a watched job ends; `wait` blocks until it is set or a timeout passes."""

    def __init__(self) -> None:
        self._ended = threading.Event()

    def watch(self, name: str, wait: Callable[[], object]) -> None:
        """Call `wait()` (blocks until the job `name` ends) in a daemon thread, then set the flag.

        An exception from `wait` (a daemon that went away) also sets the flag: the next poll
        finds out what happened.
        """

        def waiter() -> None:
            try:
                wait()
            except Exception as exc:  # noqa: BLE001 - the poll that follows reports the job's state
                log.debug("waiting for %s ended with %s", name, exc)
            self._ended.set()

        threading.Thread(target=waiter, name=f"wait-{name}", daemon=True).start()

    def wait(self, timeout: float) -> bool:
        """Block until some job ended since the last call, or `timeout` seconds; True if one did.

        The flag is cleared before returning, so the caller must poll every job afterwards: an
        exit that happens after the clear sets the flag again and is never lost.
        """
        ended = self._ended.wait(timeout)
        self._ended.clear()
        return ended
