"""What a run ends with: its RunOutcome (for the CLI, the Python API, MLflow tracking), or why it failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.backends import JobStatus
from orchestrator.federation.history import RunHistory
from orchestrator.run.folder import file_error

if TYPE_CHECKING:
    from orchestrator.federation.server import FederationServer
    from orchestrator.run.watcher import JobWatcher


@dataclass
class RunOutcome:
    """What a finished run produced."""

    run_id: str
    run_dir: Path
    history: RunHistory
    model_path: Path
    jobs: dict[str, JobStatus]
    seconds: float
    warnings: list[str] = field(default_factory=list)
    positive_class: Any = None
    calibration: dict[str, Any] = field(default_factory=dict)
    task: str = "binary"  # the schema's: binary, multiclass or regression
    privacy: dict[str, Any] = field(default_factory=dict)  # the privacy spent, with differential privacy on

    @property
    def final_metrics(self) -> dict[str, float]:
        """The server's test-set metrics after the last round."""
        return self.history.final().server


def failure_message(error: BaseException, server: FederationServer | None, watcher: JobWatcher) -> str:
    """Why the server thread ended with `error`, with the failing jobs' reasons; after an abort, its reason (the cause).

    One line for RunFailed: a round that failed names its clients, a join timeout the missing
    ones, each with its job's failure reason (`watcher.reasons`); a full disk names the file.
    """
    from orchestrator.federation.roster import FederationAborted, JoinTimeout  # flwr's: the server imported it
    from orchestrator.federation.strategy import RoundFailed

    if isinstance(error, FederationAborted):
        return str(error)
    if server is not None and server.roster.abort_reason is not None:
        return server.roster.abort_reason
    if isinstance(error, OSError):
        return str(file_error(error))
    names: list[str] = []
    if isinstance(error, RoundFailed):
        names = list(error.clients)
    elif isinstance(error, JoinTimeout) and server is not None:
        names = server.roster.missing()
    reasons = watcher.reasons(names)
    message = str(error) if isinstance(error, RoundFailed | JoinTimeout) else f"server failed: {error}"
    return message + (f"; {reasons}" if reasons else "")
