"""The run's server.log: Flower's and fedsage's log records go to the run folder, not the console."""

from __future__ import annotations

import logging
from pathlib import Path

CAPTURED = ("flwr", "orchestrator")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class ServerLog:
    """Routes the `flwr` and `orchestrator` loggers to a file while a run is on; `release` undoes it.

    Flower's own console handler is detached meanwhile (the console shows the run's progress
    view instead) and put back on release.
    """

    def __init__(self, path: Path) -> None:
        self.handler = logging.FileHandler(path)
        self.handler.setFormatter(logging.Formatter(FORMAT))
        self.handler.setLevel(logging.DEBUG)
        flower = logging.getLogger("flwr")
        self._detached = [h for h in flower.handlers if type(h) is not logging.FileHandler]
        for console in self._detached:
            flower.removeHandler(console)
        for name in CAPTURED:
            logging.getLogger(name).addHandler(self.handler)
        ours = logging.getLogger("orchestrator")
        ours.setLevel(min(ours.getEffectiveLevel(), logging.INFO))

    def release(self) -> None:
        """Detach the file handler, close the file and give Flower its console handler back."""
        for name in CAPTURED:
            logging.getLogger(name).removeHandler(self.handler)
        for console in self._detached:
            logging.getLogger("flwr").addHandler(console)
        self.handler.close()
