"""Where client training jobs run. One module per backend, one small interface.

Every backend takes the same TrainingJobRequest (plan.py) and owns everything about where and
how it runs, so the run (run/lifecycle.py) and the commands never branch on the backend:

* `name`, `description`: how run.json and the console name it;
* `poll_interval`, `completion_timeout`: how often to look at a job (seconds), and how long
  jobs may take to save their models and exit after the last round;
* `placement(client)`: where that client's job takes its code and image from and puts its model;
* `check_inputs(federation, server)`: what the backend can check of the clients' channels
  (local folders are read; S3 is left to the job);
* `launch_while_checking`: whether the run may launch the jobs while it reads and checks its
  inputs (True where a job costs nothing and stops at a signal: process, docker, simulation) or
  must check them before it creates any job (False: SageMaker bills a job from its creation);
  see run/startup.py;
* `launch`, `poll`, `stop`, `logs`: one job's life, in SageMaker's vocabulary;
* `wait_for_change(timeout)` (optional, the local backends): block until one of its jobs ends,
  so the run sees an exit at once instead of one poll interval later (exits.py);
* `find_jobs(run_id)`: the jobs of a run (or of every run) the backend can still see, for
  `fedsage status` and `fedsage stop`.

Every backend passes the request's Environment to the program.

Backends: process.py (one local process per job, started as the training toolkit would start
it), docker.py (one container per job, run by the real toolkit), sagemaker.py (a training job in
each client's account). container.py and toolkit.py hold what the two local backends share: the
SageMaker side of a job, and the toolkit's derivation of the program's arguments and environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from orchestrator.config import ClientSettings, Federation
    from orchestrator.plan import JobPlacement, TrainingJobRequest

# TrainingJobStatus values of DescribeTrainingJob
# (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeTrainingJob.html)
IN_PROGRESS = "InProgress"
COMPLETED = "Completed"
FAILED = "Failed"
STOPPING = "Stopping"
STOPPED = "Stopped"
TERMINAL = frozenset({COMPLETED, FAILED, STOPPED})
# SecondaryStatus once the algorithm's program runs (before it: Starting, Downloading, ...); the join
# timeout counts from the moment the last job reaches it (federation/roster.py)
RUNNING = "Training"
NOT_LAUNCHED = "NotLaunched"  # fedsage's own: the run ended before this client's job was created


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


@dataclass(frozen=True)
class RunJob:
    """One training job of a run, found by `Backend.find_jobs`; `account_id` is None for local backends."""

    client: str
    account_id: str | None
    run_id: str
    status: JobStatus


class Backend(Protocol):
    """The interface every backend implements (see the module docstring)."""

    name: str
    description: str
    poll_interval: float
    completion_timeout: float
    launch_while_checking: bool

    def placement(self, client: ClientSettings) -> JobPlacement:
        """Where this client's job takes its code and image from and puts its model."""

    def check_inputs(self, federation: Federation, schema: dict[str, Any] | None) -> None:
        """Raise BadInput for any client channel this backend can see is unusable (`schema`: the run's, or None)."""

    def launch(self, request: TrainingJobRequest) -> None:
        """Start the training job described by `request`."""

    def poll(self, job_name: str) -> JobStatus:
        """Return the job's current status."""

    def stop(self, job_name: str) -> bool:
        """Stop the job if it is still running (idempotent); return whether a stop was requested."""

    def logs(self, job_name: str, lines: int = 20) -> list[str]:
        """Return the last `lines` lines of the job's log."""

    def find_jobs(self, run_id: str | None = None) -> list[RunJob]:
        """The jobs of run `run_id` (every run if None) that this backend can see."""
