"""The runs under a runs folder: list, show, compare, and read their logs (`fedsage runs`, `fedsage logs`).

Modules: listing.py (RunInfo, RunDetails: run folders read back, older and unfinished ones too),
compare.py (Comparison: final metrics side by side, differing hyperparameters, a plot),
logs.py (server.log and each client's log: local files, or CloudWatch through the backend).
They read run folders only (run/folder.py's RunSummary and metrics.json), never a live run.
"""

from orchestrator.runs.compare import Comparison, compare_runs
from orchestrator.runs.listing import RunDetails, RunInfo, list_runs, run_folder, show_run
from orchestrator.runs.logs import LogSource, follow_log, log_source, read_log

__all__ = [
    "Comparison",
    "LogSource",
    "RunDetails",
    "RunInfo",
    "compare_runs",
    "follow_log",
    "list_runs",
    "log_source",
    "read_log",
    "run_folder",
    "show_run",
]
