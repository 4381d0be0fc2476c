"""Where client training jobs run. One module per backend, one small interface.

Every backend takes the same TrainingJobRequest (plan.py) and answers the same four calls, so
run.py never branches on the backend:

* `launch(request)`: start the job;
* `poll(job_name)`: its JobStatus, in SageMaker's vocabulary;
* `stop(job_name)`: stop it (idempotent);
* `logs(job_name, lines)`: the last lines of its log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from orchestrator.plan import TrainingJobRequest

IN_PROGRESS = "InProgress"
COMPLETED = "Completed"
FAILED = "Failed"
STOPPING = "Stopping"
STOPPED = "Stopped"
TERMINAL = frozenset({COMPLETED, FAILED, STOPPED})


@dataclass(frozen=True)
class JobStatus:
    """A training job's state, as DescribeTrainingJob reports it."""

    name: str
    status: str
    secondary_status: str
    failure_reason: str | None = None
    model_artifact: str | None = None

    @property
    def terminal(self) -> bool:
        """True once the job can no longer change state."""
        return self.status in TERMINAL


class Backend(Protocol):
    """The interface every backend implements."""

    def launch(self, request: TrainingJobRequest) -> None:
        """Start the training job described by `request`."""

    def poll(self, job_name: str) -> JobStatus:
        """Return the job's current status."""

    def stop(self, job_name: str) -> None:
        """Stop the job if it is still running; do nothing otherwise."""

    def logs(self, job_name: str, lines: int = 20) -> list[str]:
        """Return the last `lines` lines of the job's log."""
