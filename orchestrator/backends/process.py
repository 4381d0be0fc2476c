"""Process backend: every training job is an OS process, started as SageMaker's toolkit would start it.

The default backend of `fedsage local`. Each job gets `<workdir>/<client>/` holding its /opt/ml
tree (`opt/ml/`, laid out by container.py as SageMaker lays it out) and its log (`client.log`).
The program gets the arguments and environment the training toolkit would give it (toolkit.py:
the image's variables, the request's Environment, TRAINING_JOB_NAME, the SM_* variables) and
runs in the code directory; its dependencies are this machine's, so no requirements are
installed. MaxRuntimeInSeconds is enforced as SageMaker does (SIGTERM, then Stopped with
MaxRuntimeExceeded). Processes start in their own session, so stopping a job stops everything it
started, and `stop` escalates from SIGTERM to SIGKILL after a grace period. Its placement runs
this checkout's client_code with this machine's Python; its channels must be local folders
(file:// URIs), which `check_inputs` reads while the processes start (run/startup.py). Every job's environment
names its run, so `fedsage stop --backend process` finds the processes of a run whose `fedsage`
process died (process_runs.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.backends import COMPLETED, FAILED, IN_PROGRESS, STOPPED, JobStatus, RunJob, toolkit
from orchestrator.backends.container import (
    FileStorage,
    JobTree,
    Storage,
    check_local_channels,
    lay_out,
    max_runtime_exceeded,
    package_model,
    platform_environment,
    point_toolkit_at,
    unpack_code,
)
from orchestrator.backends.exits import ExitSignal
from orchestrator.backends.process_runs import RUN_ID_ENVIRONMENT
from orchestrator.config import ClientSettings, Federation
from orchestrator.images import IMAGE_ENV
from orchestrator.package import code_entries
from orchestrator.plan import JobPlacement, TrainingJobRequest, client_of, run_of

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 5.0
IMAGE = "local-process"  # no image: this machine's Python runs the program


@dataclass
class _Job:
    tree: JobTree
    process: subprocess.Popen
    log_path: Path
    status: JobStatus
    started: float


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class ProcessBackend:
    """Runs training jobs as local processes (the default backend of `fedsage local`).

    In SageMaker every job has its instance to itself; here the jobs share this machine, so
    each one gets an equal share of the cores for its numeric libraries' threads. Without
    that, three clients with one BLAS thread per core on two cores run five times slower.
    """

    name = "process"
    description = "local (one process per client)"
    poll_interval = 0.5
    launch_while_checking = True  # a process costs nothing and stops at a signal: run/startup.py
    completion_timeout = 120.0

    def __init__(
        self, workdir: Path, expected_jobs: int = 1, storage: Storage | None = None, code_dir: Path | None = None
    ) -> None:
        """Jobs go to `workdir`/<client>/; `code_dir` receives the client code the jobs run (placement needs it).

        `storage` fetches channels and code and stores models (default: file:// URIs only);
        `expected_jobs` sizes each job's share of the cores.
        """
        self.workdir = Path(workdir)
        self.code_dir = Path(code_dir) if code_dir is not None else None
        self.storage = storage or FileStorage()
        self.threads_per_job = max(1, (os.cpu_count() or 1) // max(1, expected_jobs))
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._exits = ExitSignal()

    def placement(self, client: ClientSettings) -> JobPlacement:
        """Run this checkout's client code with no image; the model goes to the client's folder under the workdir."""
        assert self.code_dir is not None, "placement needs a code_dir"
        output = (self.workdir / client.name / "output").resolve().as_uri()
        return JobPlacement(code_uri=self.code_dir.resolve().as_uri(), output_uri=output, image=IMAGE)

    def _write_code(self) -> None:
        """Lay out the code location once, the way `fedsage package` lays out the archive (without wheels)."""
        if self.code_dir is None or self.code_dir.is_dir():
            return
        staging = self.code_dir.with_name(f".{self.code_dir.name}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            for name, content in code_entries().items():
                (staging / name).parent.mkdir(parents=True, exist_ok=True)
                (staging / name).write_bytes(content)
            staging.rename(self.code_dir)
        finally:  # a failed copy (a full disk) leaves nothing half-written
            shutil.rmtree(staging, ignore_errors=True)

    def check_inputs(self, federation: Federation, schema: dict[str, Any] | None) -> None:
        """Check every client's channels by their headers; BadInput for one that is not a usable local folder."""
        check_local_channels(self.name, federation, schema)

    def find_jobs(self, run_id: str | None = None) -> list[RunJob]:
        """The jobs this backend launched (run `run_id` only, if given)."""
        with self._lock:
            jobs = list(self._jobs.values())
        found = [RunJob(client_of(job.tree.request), None, run_of(job.tree.request) or "", job.status) for job in jobs]
        return [job for job in found if run_id is None or job.run_id == run_id]

    def job_dir(self, request: TrainingJobRequest) -> Path:
        """The folder of one client's job: its /opt/ml tree and its log."""
        return self.workdir / client_of(request)

    def environment(self, tree: JobTree) -> dict[str, str]:
        """The program's environment: this machine's (no SM_*), the image's, the request's, SageMaker's, the toolkit's.

        The image's /opt/ml paths point into the job's tree; each job's numeric libraries get
        an equal share of the cores unless the thread variables are set already. The run id
        (RUN_ID_ENVIRONMENT) lets `fedsage stop --backend process` find the job if fedsage dies.
        """
        image = {k: v.replace("/opt/ml", str(tree.root), 1) for k, v in IMAGE_ENV.items()}
        start = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
        start |= image | tree.request.get("Environment", {}) | platform_environment(tree.request)
        start[RUN_ID_ENVIRONMENT] = run_of(tree.request) or ""
        start |= {v: str(self.threads_per_job) for v in THREAD_VARIABLES if v not in os.environ}
        return toolkit.program_environment(tree.root, start, os.cpu_count() or 1)

    def launch(self, request: TrainingJobRequest) -> None:
        """Lay out /opt/ml for `request`, unpack its code, and start its program as the toolkit would."""
        name = request["TrainingJobName"]
        with self._lock:
            self._write_code()
        folder = self.job_dir(request)
        tree = lay_out(request, folder / "opt" / "ml", self.storage)
        code_uri = toolkit.decode_hyperparameters(request["HyperParameters"])["sagemaker_submit_directory"]
        unpack_code(tree, self.storage, code_uri)
        point_toolkit_at(tree, str(tree.code_dir))
        log_path = folder / "client.log"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                toolkit.program_command(sys.executable, tree.root),
                cwd=tree.code_dir,
                env=self.environment(tree),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        log.debug("launched %s as pid %d", name, process.pid)
        self._exits.watch(name, process.wait)
        with self._lock:
            self._jobs[name] = _Job(tree, process, log_path, JobStatus(name, IN_PROGRESS, "Training"), time.monotonic())

    def wait_for_change(self, timeout: float) -> None:
        """Block until a job's process exits (a Popen.wait thread per job) or `timeout` seconds pass."""
        self._exits.wait(timeout)

    def poll(self, job_name: str) -> JobStatus:
        """Report the job; on a clean exit, upload model.tar.gz first, as SageMaker does.

        A job past its MaxRuntimeInSeconds is stopped (SIGTERM, then SIGKILL) and reported
        Stopped with secondary status MaxRuntimeExceeded, as SageMaker reports it.
        """
        with self._lock:
            job = self._jobs[job_name]
            if job.status.terminal:
                return job.status
            code = job.process.poll()
            if code is None:
                if max_runtime_exceeded(job.tree.request, job.started):
                    self._terminate(job)
                    limit = job.tree.request["StoppingCondition"]["MaxRuntimeInSeconds"]
                    reason = f"MaxRuntimeInSeconds ({limit} s) exceeded"
                    job.status = JobStatus(job_name, STOPPED, "MaxRuntimeExceeded", reason)
                return job.status
            job.status = self._finished(job, code)
            return job.status

    def _finished(self, job: _Job, code: int) -> JobStatus:
        name = job.tree.request["TrainingJobName"]
        if code == 0:
            try:
                artifact = package_model(job.tree, self.storage)
            except OSError as exc:
                return JobStatus(name, FAILED, "Failed", f"could not upload the model: {exc}")
            return JobStatus(name, COMPLETED, "Completed", model_artifact=artifact)
        reason = job.tree.failure_reason()
        if reason is None and code < 0:  # a signal's end: the log's last lines are not its cause
            reason = f"killed by {_signal_name(-code)}"
        elif reason is None:
            tail = " | ".join(self._tail(job.log_path, 3))
            reason = f"exited with code {code}" + (f": {tail}" if tail else "")
        return JobStatus(name, FAILED, "Failed", reason)

    def stop(self, job_name: str) -> bool:
        """Terminate the job's process group: SIGTERM, then SIGKILL after a grace period; True if it ran."""
        with self._lock:
            job = self._jobs.get(job_name)
            if job is None or job.status.terminal:
                return False
            if job.process.poll() is not None:
                job.status = self._finished(job, job.process.returncode)
                return False
            self._terminate(job)
            job.status = JobStatus(job_name, STOPPED, "Stopped", "stopped by fedsage")
            return True

    @staticmethod
    def _terminate(job: _Job) -> None:
        """SIGTERM the job's process group, SIGKILL it after the grace period."""
        _signal_group(job.process, signal.SIGTERM)
        try:
            job.process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            _signal_group(job.process, signal.SIGKILL)
            job.process.wait()

    def logs(self, job_name: str, lines: int = 20) -> list[str]:
        """The last lines of the job's log file."""
        return self._tail(self._jobs[job_name].log_path, lines)

    def processes(self) -> dict[str, subprocess.Popen]:
        """The process of every job launched so far, by job name (for tests and diagnostics)."""
        return {name: job.process for name, job in self._jobs.items()}

    @staticmethod
    def _tail(path: Path, lines: int) -> list[str]:
        try:
            with open(path, errors="replace") as handle:
                return [line.rstrip("\n") for line in deque(handle, maxlen=lines)]
        except FileNotFoundError:
            return []


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _signal_name(signum: int) -> str:
    """SIGKILL for 9 (Popen's returncode is minus the signal that ended the process); "signal N" if unknown."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
