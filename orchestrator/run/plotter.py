"""Draw a run's figures in a helper process, on the core the end of a run leaves idle (issue 15's tail).

After the last round the clients exit and the run's own process has one job left on one core:
save the model, write run.json and the reports, and draw three figures with matplotlib, which is
most of it (about 0.3 CPU-seconds for the default job; docs/benchmarks.md). `Plotter.start`
(called once the jobs are launched and the inputs checked, run/lifecycle.py) starts `python -m
orchestrator.run.plotter`, which imports matplotlib then, in its own process, and waits.
`submit` hands it a figure as soon as the figure's numbers are known (metrics.png at the last
round; the curves once the model is saved), and `png` returns the bytes, drawn there while this
process writes everything else. The run folder writes them (atomically, run/folder.py), so the
helper writes no file.

The helper imports only run/figures.py (matplotlib, numpy); figures travel as pickles over its
stdin (a writer thread, so a figure larger than the pipe never holds up the run) and come back
over its stdout (a reader thread, so a large PNG never blocks the helper). It runs in its own
session (Ctrl-C reaches `fedsage` only) and ends when its stdin closes: at `close`, or when
`fedsage` dies however it dies, so it never outlives the run. Without it (not started, failed,
gone) `png` draws in this process: the files are the same.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from typing import IO, Any

from orchestrator.run.figures import Figure, render

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">Q")  # each message: its length, then a pickle
CLOSE_TIMEOUT = 5.0


def _send(stream: IO[bytes], value: Any) -> None:
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    """The next message, or raise EOFError when the stream ends."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        raise EOFError
    return pickle.loads(payload)  # noqa: S301 - our own parent or child process, over its pipe


class _Pending:
    """A submitted figure: its pickled form (to match a later request) and, once drawn, its PNG or error."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.done = threading.Event()
        self.png: bytes | None = None


class Plotter:
    """Draws Figures in a helper process once `start` has run; in this process otherwise (see the module docstring)."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._pending: dict[str, _Pending] = {}  # by figure name (file name), in the order submitted
        self._outbox: queue.Queue[tuple[_Pending, Figure] | None] = queue.Queue()  # for the writer thread
        self._queue: list[_Pending] = []  # sent, waiting for the helper's answer, in order
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the helper process (idempotent); if it cannot start, figures are drawn in this process."""
        if self._process is not None:
            return
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "orchestrator.run.plotter"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            log.debug("plotter not started: %s", exc)
            return
        for target, name in ((self._write, "plotter-writer"), (self._read, "plotter-reader")):
            thread = threading.Thread(target=target, args=(self._process,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _write(self, process: subprocess.Popen) -> None:
        """Send each submitted figure to the helper, in order (a figure larger than the pipe waits here)."""
        stdin = process.stdin
        assert stdin is not None
        while (item := self._outbox.get()) is not None:
            pending, figure = item
            with self._lock:
                self._queue.append(pending)
            try:
                _send(stdin, figure)
            except OSError:  # the helper is gone: the reader releases what waits
                break
        with contextlib.suppress(OSError):
            stdin.close()  # the helper ends

    def _read(self, process: subprocess.Popen) -> None:
        """Hand each answer of the helper to the figure waiting for it, in order; at its end, release them all."""
        assert process.stdout is not None
        try:
            while True:
                png = _receive(process.stdout)
                with self._lock:
                    pending = self._queue.pop(0)
                pending.png = png if isinstance(png, bytes) else None  # None: the helper failed; drawn here
                pending.done.set()
        except (EOFError, OSError, pickle.UnpicklingError, IndexError):
            pass
        finally:
            with self._lock:
                for pending in self._queue:
                    pending.done.set()
                self._queue.clear()

    def submit(self, name: str, figure: Figure) -> None:
        """Have the helper draw `figure` (for the file `name`) now, if it runs; `png` collects it."""
        process = self._process
        if process is None or process.poll() is not None or process.stdin is None:
            return
        key = pickle.dumps(figure, protocol=pickle.HIGHEST_PROTOCOL)
        if name in self._pending and self._pending[name].key == key:
            return  # already on its way
        pending = _Pending(key)
        self._pending[name] = pending
        self._outbox.put((pending, figure))

    def png(self, name: str, figure: Figure) -> bytes:
        """`figure` as PNG bytes: the helper's drawing if it was submitted as is and drawn, else drawn here."""
        pending = self._pending.pop(name, None)
        if pending is not None and pending.key == pickle.dumps(figure, protocol=pickle.HIGHEST_PROTOCOL):
            while not pending.done.wait(0.1):
                if self._process is None or self._process.poll() is not None:  # gone: released, or drawn here
                    break
            if pending.png is not None:
                return pending.png
        return render(figure)

    def close(self) -> None:
        """End the helper (its stdin closes; killed if it does not end within CLOSE_TIMEOUT seconds); idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        self._outbox.put(None)  # the writer closes the helper's stdin after what it is sending
        try:
            process.wait(CLOSE_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for thread in self._threads:
            thread.join(CLOSE_TIMEOUT)
        if process.stdout is not None:
            process.stdout.close()


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """The helper's loop: draw every Figure read from `requests`, answer with its PNG (None if drawing failed)."""
    from orchestrator.run.figures import pyplot

    pyplot()  # import matplotlib now, while the rounds run, not when the first figure comes
    while True:
        try:
            figure = _receive(requests)
        except EOFError:
            os._exit(0)  # nothing to finalise: no file is open, every answer was flushed
        try:
            png: bytes | None = render(figure)
        except Exception:  # noqa: BLE001 - the parent draws it again and reports the error
            png = None
        _send(answers, png)


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
