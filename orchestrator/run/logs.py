"""The run's server.log: Flower's, gRPC's and fedsage's log records go to the run folder, not the console.

While a run is on, these loggers write to server.log and, unless --verbose asked for debug logs
on stderr, stop there: the console shows the run's progress view and, at the end, one line. A
log file cannot be written atomically (it grows while the run goes on); when it can no longer be
written (a full disk), it keeps what was written, stops, and says why through `error`, instead
of printing a traceback for every record (logging's default).
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

CAPTURED = ("flwr", "grpc", "orchestrator", "ray")
CONSOLED = ("flwr", "ray")  # those with a console handler of their own (Flower's; Ray's, added by `import ray`)
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _StoppingFileHandler(logging.FileHandler):
    """A FileHandler that stops at its first failed write and keeps the error (logging's default prints it)."""

    error: OSError | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.error is None:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        failure = sys.exc_info()[1]
        self.error = failure if isinstance(failure, OSError) else OSError(str(failure))


class ServerLog:
    """Routes the CAPTURED loggers to a file while a run is on; `release` undoes it.

    Flower's and Ray's own console handlers are detached meanwhile and put back on release; unless the root
    logger is at DEBUG (--verbose), the captured loggers do not propagate to the console either.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.handler = _StoppingFileHandler(path)
        self.handler.setFormatter(logging.Formatter(FORMAT))
        self.handler.setLevel(logging.DEBUG)
        self._detached: list[tuple[logging.Logger, logging.Handler]] = []
        self.detach_consoles()
        echo = logging.getLogger().isEnabledFor(logging.DEBUG)
        self._propagate = {name: logging.getLogger(name).propagate for name in CAPTURED}
        for name in CAPTURED:
            logger = logging.getLogger(name)
            logger.addHandler(self.handler)
            logger.propagate = logger.propagate and echo
        ours = logging.getLogger("orchestrator")
        ours.setLevel(min(ours.getEffectiveLevel(), logging.INFO))

    def detach_consoles(self) -> None:
        """Detach the console handlers of CONSOLED loggers; again once their library is imported (idempotent).

        Flower adds its console handler when `flwr` is first imported, which a run does after it
        has launched its jobs (run/lifecycle.py `_serve_clients`), after this log began.
        """
        for logger in map(logging.getLogger, CONSOLED):
            for handler in list(logger.handlers):
                if type(handler) is not logging.FileHandler and handler is not self.handler:
                    logger.removeHandler(handler)
                    self._detached.append((logger, handler))

    @property
    def error(self) -> OSError | None:
        """Why server.log stopped being written (a full disk), naming the file; None while it is complete."""
        failure = self.handler.error
        return None if failure is None else OSError(failure.errno, failure.strerror, str(self.path))

    def release(self, writer_done: threading.Event | None = None) -> None:
        """Detach the file handler, close the file and give the console its handlers back.

        `writer_done`: set when a thread that may still log has ended (the run's server thread, still
        finishing a round after its jobs were stopped). Until then its records keep going to
        server.log, never to the console: the release happens when it is set, in a daemon thread.
        """
        if writer_done is not None and not writer_done.is_set():
            threading.Thread(target=self._release_after, args=(writer_done,), name="server-log", daemon=True).start()
            return
        self._release()

    def _release_after(self, writer_done: threading.Event) -> None:
        writer_done.wait()
        self._release()

    def _release(self) -> None:
        for name, propagate in self._propagate.items():
            logging.getLogger(name).removeHandler(self.handler)
            logging.getLogger(name).propagate = propagate
        for logger, console in self._detached:
            logger.addHandler(console)
        try:
            self.handler.close()
        except OSError as exc:  # the last buffered lines could not be written
            self.handler.error = self.handler.error or exc
