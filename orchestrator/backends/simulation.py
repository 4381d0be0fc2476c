"""Simulation backend: every client is a virtual client of Flower's Simulation Engine, in Ray actors.

For many clients on one machine (`fedsage local --backend simulation`, the optional extra
`fedsage[simulation]`): no process, TLS stream or import per client, so 100 clients take about
as long and as much memory as a few. The clients run the same client code as in a training job
(client_code.train's argument parsing and channel loading, client_code.client's NumPyClient, the
statistics phase, the resampling), on the hyperparameters of the same CreateTrainingJob request,
and the server side is the same roster, statistics phase, validating strategy and test-set
evaluation. What differs: the Simulation Engine owns the round loop, so the run's server is the
adapter of federation/simulation.py, and a job here is virtual: it runs from its launch until
the federation ends, has no log and no model artifact (the run folder has the federation's
model), and cannot fail on its own.

Channels must be local folders (file:// URIs), read before the run starts, as for the process
backend.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from orchestrator.backends import COMPLETED, IN_PROGRESS, RUNNING, STOPPED, JobStatus, RunJob
from orchestrator.backends.container import check_local_channels
from orchestrator.config import ClientSettings, Federation
from orchestrator.errors import BadInput
from orchestrator.plan import JobPlacement, TrainingJobRequest, client_of, run_of

if TYPE_CHECKING:
    from orchestrator.federation.server import FederationServer

IMAGE = "flower-simulation"  # no image: virtual clients in this machine's Python
INSTALL = 'pip install "fedsage[simulation]"'


def check_installed() -> None:
    """BadInput naming the extra to install when Ray (Flower's Simulation Engine) is missing."""
    from importlib.util import find_spec

    if find_spec("ray") is None:
        raise BadInput(f"--backend simulation needs Flower's Simulation Engine (Ray): {INSTALL}")


class SimulationBackend:
    """Virtual training jobs run by the Simulation Engine (see the module docstring)."""

    name = "simulation"
    description = "simulation (virtual clients in Flower's Simulation Engine)"
    poll_interval = 0.5
    launch_while_checking = True  # launching records the request; the engine starts with the server
    completion_timeout = 30.0

    def __init__(self, workdir_uri: str) -> None:
        """`workdir_uri`: a file:// folder named as the jobs' output location (nothing is written there)."""
        self.workdir_uri = workdir_uri.rstrip("/")
        self.requests: dict[str, TrainingJobRequest] = {}  # by job name, in launch order
        self._status: dict[str, JobStatus] = {}
        self._ended = threading.Event()
        self._lock = threading.Lock()

    def placement(self, client: ClientSettings) -> JobPlacement:
        """No code or image to fetch: the virtual client runs the installed client_code."""
        return JobPlacement(
            code_uri=f"{self.workdir_uri}/code", output_uri=f"{self.workdir_uri}/{client.name}", image=IMAGE
        )

    def check_inputs(self, federation: Federation, schema: dict[str, Any] | None) -> None:
        """Check every client's channels by their headers; BadInput for one that is not a usable local folder."""
        check_local_channels(self.name, federation, schema)

    def federation_server(self, *args, **kwargs) -> FederationServer:
        """The run's server: the Simulation Engine adapter (federation/simulation.py) over these jobs' requests."""
        from orchestrator.federation.simulation import SimulatedServer

        return SimulatedServer(self, *args, **kwargs)

    def launch(self, request: TrainingJobRequest) -> None:
        """Record the request; its virtual client starts when the Simulation Engine does."""
        name = request["TrainingJobName"]
        with self._lock:
            self.requests[name] = request
            self._status[name] = JobStatus(name, IN_PROGRESS, RUNNING)

    def ended(self, status: str = COMPLETED) -> None:
        """The federation is over: every job still running ends with `status` (Completed, or Stopped)."""
        with self._lock:
            for name, job in self._status.items():
                if not job.terminal:
                    self._status[name] = JobStatus(
                        name, status, status, None if status == COMPLETED else "the run ended"
                    )
        self._ended.set()

    def wait_for_change(self, timeout: float) -> None:
        """Block until the federation ends (every job with it) or `timeout` seconds pass."""
        self._ended.wait(timeout)

    def poll(self, job_name: str) -> JobStatus:
        """The virtual job's status."""
        with self._lock:
            return self._status[job_name]

    def stop(self, job_name: str) -> bool:
        """Mark the job Stopped (the engine stops with the run's server); True if it was running."""
        with self._lock:
            job = self._status[job_name]
            if job.terminal:
                return False
            self._status[job_name] = JobStatus(job_name, STOPPED, "Stopped", "stopped by fedsage")
            return True

    def logs(self, job_name: str, lines: int = 20) -> list[str]:
        """Virtual clients log into the run's server.log; a job has no log of its own."""
        return []

    def find_jobs(self, run_id: str | None = None) -> list[RunJob]:
        """The virtual jobs of this backend (run `run_id` only, if given)."""
        with self._lock:
            found = [RunJob(client_of(r), None, run_of(r) or "", self._status[n]) for n, r in self.requests.items()]
        return [job for job in found if run_id is None or job.run_id == run_id]
