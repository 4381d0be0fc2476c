"""Import, before the rounds, the libraries the end of a run needs, so the tail does not wait for them.

Measured with py-spy on the default job (docs/benchmarks.md): after the last round the server
spent 0.8 s importing skops.io (to write model.skops; skops imports every scikit-learn estimator
to list its trusted types) and 0.2 s importing matplotlib.pyplot, out of a 1.8 s tail.
matplotlib is now imported by the plotter's helper process (run/plotter.py). The run starts one
daemon thread for the rest once its jobs are launched and its inputs checked, while the server
waits for the clients to join: its threads have nothing to do then, whereas during the rounds
the import held the GIL the server's round loop needs (round 2 took 0.48 s instead of 0.15 s).
Python's import lock makes an import the tail needs before the thread is done simply wait for it.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading

log = logging.getLogger(__name__)

# what RunFolder.save_model (client_code/persist.py) and the reports (run/report.py, run/curves.py) import
MODULES = ("skops.io", "sklearn.metrics")  # matplotlib: in the plotter's own process (run/plotter.py)


def _import_all() -> None:
    for name in MODULES:
        with contextlib.suppress(ImportError):  # skops is optional: persist.py writes no model.skops without it
            importlib.import_module(name)
    log.debug("tail libraries imported")


def start() -> threading.Thread:
    """Begin importing MODULES in a daemon thread; return it (joining it is never needed)."""
    thread = threading.Thread(target=_import_all, name="tail-imports", daemon=True)
    thread.start()
    return thread
