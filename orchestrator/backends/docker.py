"""Docker backend: every training job is a container run by SageMaker's own training toolkit.

`fedsage local --backend docker`. For each CreateTrainingJob request this module plays the
SageMaker platform and nothing else (container.py lays out /opt/ml as SageMaker does):

* one container per job, named after the training job and labelled with the run, client and
  job (`fedsage stop --backend docker` finds leftovers by label), started as SageMaker starts
  one: `<image> train` (the sagemaker-training toolkit of a `fedsage image build` image), the
  request's Environment plus TRAINING_JOB_NAME, /opt/ml mounted (input read-only, each local
  channel mounted at input/data/<channel>, model/ and output/ writable), `algo-1` resolving to
  the container itself, CPU and memory limits of the instance type (or given ones);
* the code location: an s3:// archive is left to the toolkit (it downloads and extracts it); a
  local source.tar.gz (the one `fedsage package` builds for the image's Python) is mounted and
  `sagemaker_submit_directory` points the toolkit at it, which extracts it into /opt/ml/code and
  runs `pip install -r requirements.txt` from the vendored wheels into PIP_TARGET;
* MaxRuntimeInSeconds enforced (SIGTERM, then Stopped / MaxRuntimeExceeded), FailureReason from
  /opt/ml/output/failure (an OOM kill says so), model.tar.gz packed from /opt/ml/model on exit 0;
* no orphans: a stopped or finished container is removed after its log is kept as client.log,
  and a reaper process (docker_runs.py) removes what is left if this process dies.

Installed dependencies are cached per (requirements.txt, image): the first job that installs a
set and exits 0 leaves a copy in the cache; later jobs mount it read-only at PIP_TARGET and set
PIP_DRY_RUN, so the toolkit's pip still resolves and hash-checks every wheel but installs
nothing. pip compiles nothing (PIP_COMPILE=0, plan.py), so the installing job writes the bytecode
of the modules its client imports (PYTHONDONTWRITEBYTECODE emptied) and the cached copy keeps it:
later jobs import as fast as from a compiled install. `deps_cache=None` installs every time, as
SageMaker does.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.backends import COMPLETED, FAILED, IN_PROGRESS, STOPPED, JobStatus, RunJob
from orchestrator.backends.container import (
    HOST,
    FileStorage,
    JobTree,
    Storage,
    check_local_channels,
    file_path,
    lay_out,
    max_runtime_exceeded,
    package_model,
    platform_environment,
    point_toolkit_at,
)
from orchestrator.backends.docker_cache import code_archive, dependency_key, keep_dependencies
from orchestrator.backends.docker_runs import OWNER_LABEL, STOP_GRACE_SECONDS, find_containers
from orchestrator.backends.exits import ExitSignal
from orchestrator.backends.instances import Limits, instance_limits
from orchestrator.backends.process import THREAD_VARIABLES
from orchestrator.backends.toolkit import decode_hyperparameters
from orchestrator.config import ClientSettings, ContainerSettings, Federation
from orchestrator.errors import BadInput, RunFailed
from orchestrator.imagebuild.build import LocalImage
from orchestrator.imagebuild.daemon import CLIENT_LABEL, JOB_LABEL, RUN_LABEL, cache_dir
from orchestrator.plan import DEPENDENCY_TARGET, JobPlacement, TrainingJobRequest, client_of, run_of

log = logging.getLogger(__name__)

SUBMIT_PATH = "/opt/fedsage/submit/source.tar.gz"  # where a local code archive is mounted

EXIT_KILLED = 137  # 128 + SIGKILL: docker kill, or the OOM killer (State.OOMKilled says which)


@dataclass
class _Job:
    tree: JobTree
    container_id: str
    log_path: Path
    started: float
    status: JobStatus
    deps_key: str | None  # the cache key of a job that installs its dependencies itself


class DockerBackend:
    """Runs training jobs as containers of a local training image (see the module docstring).

    `storage` fetches s3:// channels and stores models (default: file:// only); `environment`
    adds platform variables (the tests' moto endpoint and credentials); `limits` overrides the
    instance type's CPUs and memory; `network` is Docker's network mode for the containers.
    """

    name = "docker"
    description = "docker (one container per client, run by SageMaker's training toolkit)"
    poll_interval = 0.5
    launch_while_checking = True  # a local container costs nothing and stops at a signal: run/startup.py
    completion_timeout = 180.0

    def __init__(
        self,
        workdir: Path,
        image: LocalImage,
        *,
        archive: Path | None = None,
        client=None,
        expected_jobs: int = 1,
        storage: Storage | None = None,
        limits: Limits | None = None,
        network: str = "host",
        environment: dict[str, str] | None = None,
        deps_cache: Path | None = None,
    ) -> None:
        from orchestrator.imagebuild.daemon import connect

        self.workdir = Path(workdir)
        self.image = image
        self.archive = archive
        self.client = client or connect()
        self.storage = storage or FileStorage()
        self.limits = limits
        self.network = network
        self.environment = environment or {}
        self.deps_cache = deps_cache
        self.threads_per_job = max(1, (os.cpu_count() or 1) // max(1, expected_jobs))
        self.owner = uuid.uuid4().hex
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._reaper: subprocess.Popen | None = None
        self._exits = ExitSignal()

    @classmethod
    def connect(
        cls,
        workdir: Path,
        expected_jobs: int,
        image: str | None = None,
        framework: str | None = None,
        limits: Limits | None = None,
        cache: bool = True,
        network: str = "host",
    ) -> DockerBackend:
        """The backend of a local run on this machine's daemon, with its image and code archive ready.

        `image` defaults to the latest local build for `framework` (fedsage-sklearn:<framework>);
        the code archive is built (once per client code and lock, in the cache) for the image's
        Python. Raises BadInput when no daemon answers or the image is missing or not a training
        image; RunFailed when the archive's wheels cannot be downloaded.
        """
        from orchestrator.imagebuild.build import alias, inspect_image
        from orchestrator.imagebuild.daemon import connect

        client = connect()
        local = inspect_image(client, image or alias(framework or ContainerSettings().framework_version))
        backend = cls(
            workdir,
            local,
            archive=code_archive(local.python),
            client=client,
            expected_jobs=expected_jobs,
            limits=limits,
            network=network,
            deps_cache=cache_dir() / "deps" if cache else None,
        )
        return backend

    def container_settings(self) -> ContainerSettings:
        """[container] as this image fills it: the framework it emulates and its Python."""
        defaults = ContainerSettings()
        return ContainerSettings(
            framework_version=self.image.framework or defaults.framework_version, python_version=self.image.python
        )

    # -- placement and checks

    def placement(self, client: ClientSettings) -> JobPlacement:
        """The code archive built for the image's Python, the client's output folder, the local image."""
        assert self.archive is not None, "placement needs an archive"
        output = (self.workdir / client.name / "output").resolve().as_uri()
        return JobPlacement(code_uri=self.archive.resolve().as_uri(), output_uri=output, image=self.image.tag)

    def check_python(self, federation: Federation) -> None:
        """BadInput when the federation's wheels (python_version) are not for the image's Python."""
        wanted = federation.container.python_version
        if wanted != self.image.python:
            raise BadInput(
                f"[container] python_version = {wanted!r} (the Python the archive's wheels are built for), but image "
                f"{self.image.tag} runs Python {self.image.python}: set python_version = {self.image.python!r} or "
                "build an image for it with `fedsage image build`"
            )

    def check_inputs(self, federation: Federation, schema: dict[str, Any] | None) -> None:
        """The image must run the wheels' Python, and every channel must be a local folder with a usable header."""
        self.check_python(federation)
        check_local_channels(self.name, federation, schema)

    # -- one job's life

    def launch(self, request: TrainingJobRequest) -> None:
        """Lay out /opt/ml for `request` and start its container (`train`, as SageMaker does)."""
        from docker.errors import APIError

        name = request["TrainingJobName"]
        client_name = client_of(request)
        tree = lay_out(request, self.workdir / client_name / "opt" / "ml", self.storage, mount_local=True)
        volumes = {
            str(tree.root / "input"): {"bind": "/opt/ml/input", "mode": "ro"},
            str(tree.model_dir): {"bind": "/opt/ml/model", "mode": "rw"},
            str(tree.root / "output"): {"bind": "/opt/ml/output", "mode": "rw"},
        }
        volumes |= {str(path): {"bind": f"/opt/ml/input/data/{ch}", "mode": "ro"} for ch, path in tree.mounts.items()}
        volumes |= self._code(tree)
        environment = {**request.get("Environment", {}), **platform_environment(request), **self.environment}
        environment |= {v: str(self.threads_per_job) for v in THREAD_VARIABLES}
        deps_key = self._deps_key(tree)
        cached = self.deps_cache / deps_key if self.deps_cache and deps_key else None
        if cached is not None and cached.is_dir():
            target = request.get("Environment", {}).get("PIP_TARGET", DEPENDENCY_TARGET)
            volumes[str(cached)] = {"bind": target, "mode": "ro"}
            environment["PIP_DRY_RUN"] = "1"  # pip resolves and checks every hash, installs nothing
            deps_key = None
        elif deps_key is not None:  # the job installs a set to be cached: the client's imports leave their
            environment["PYTHONDONTWRITEBYTECODE"] = ""  # bytecode beside it (pip compiles nothing, plan.py)
        limits = self.limits or instance_limits(request.get("ResourceConfig", {}).get("InstanceType", ""))
        cpus = min(limits.cpus, float(os.cpu_count() or 1)) if limits.cpus else None
        self._start_reaper()
        try:
            container = self.client.containers.run(
                self.image.tag,
                ["train"],
                name=name,
                detach=True,
                labels={
                    RUN_LABEL: run_of(request) or "",
                    CLIENT_LABEL: client_name,
                    JOB_LABEL: name,
                    OWNER_LABEL: self.owner,
                },
                network_mode=self.network,
                extra_hosts={HOST: "127.0.0.1"},
                volumes=volumes,
                environment=environment,
                init=True,
                nano_cpus=int(cpus * 1e9) if cpus else None,
                mem_limit=limits.memory,
                memswap_limit=limits.memory,
            )
        except APIError as exc:
            raise RunFailed(f"could not start the container of {name}: {exc.explanation or exc}") from None
        log.debug("launched %s as container %s", name, container.short_id)
        self._exits.watch(name, lambda: self.client.api.wait(container.id))
        with self._lock:
            self._jobs[name] = _Job(
                tree,
                container.id,
                tree.root.parent.parent / "client.log",
                time.monotonic(),
                JobStatus(name, IN_PROGRESS, "Training"),
                deps_key,
            )

    def _code(self, tree: JobTree) -> dict[str, dict[str, str]]:
        """Mount a local code location and point the toolkit at it; an s3:// one the toolkit fetches itself."""
        hyperparameters = tree.request["HyperParameters"]
        uri = decode_hyperparameters(hyperparameters)["sagemaker_submit_directory"]
        if not uri.startswith("file://"):
            return {}
        path = file_path(uri).resolve()
        inside = "/opt/ml/code" if path.is_dir() else SUBMIT_PATH  # a folder is used in place, as SDK local mode does
        point_toolkit_at(tree, inside)
        return {str(path): {"bind": inside, "mode": "ro"}}

    def _deps_key(self, tree: JobTree) -> str | None:
        """The dependency cache key of a job whose code is a local archive (None: not cached)."""
        if self.deps_cache is None:
            return None
        return dependency_key(
            decode_hyperparameters(tree.request["HyperParameters"])["sagemaker_submit_directory"], self.image.id
        )

    def _start_reaper(self) -> None:
        with self._lock:
            if self._reaper is None:
                command = [sys.executable, "-m", "orchestrator.backends.docker_runs", self.owner]
                self._reaper = subprocess.Popen(
                    command,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )

    def _container(self, job: _Job):
        from docker.errors import NotFound

        try:
            return self.client.containers.get(job.container_id)
        except NotFound:
            return None

    def wait_for_change(self, timeout: float) -> None:
        """Block until a job's container exits (a Docker `wait` call per container) or `timeout` seconds pass."""
        self._exits.wait(timeout)

    def poll(self, job_name: str) -> JobStatus:
        """The job's status from its container; a finished container's model is packed and the container removed."""
        with self._lock:
            job = self._jobs[job_name]
            if job.status.terminal:
                return job.status
            container = self._container(job)
            if container is None:
                job.status = JobStatus(job_name, FAILED, "Failed", "its container was removed outside fedsage")
                return job.status
            state = container.attrs["State"]
            if state["Status"] in ("created", "running", "restarting"):
                if max_runtime_exceeded(job.tree.request, job.started):
                    limit = job.tree.request["StoppingCondition"]["MaxRuntimeInSeconds"]
                    self._end(job, container, stop=True)
                    reason = f"MaxRuntimeInSeconds ({limit} s) exceeded"
                    job.status = JobStatus(job_name, STOPPED, "MaxRuntimeExceeded", reason)
                return job.status
            job.status = self._finished(job, container, state)
            return job.status

    def _finished(self, job: _Job, container, state: dict) -> JobStatus:
        name = job.tree.request["TrainingJobName"]
        code = state.get("ExitCode", -1)
        if code == 0:
            try:
                artifact = package_model(job.tree, self.storage)
            except OSError as exc:
                self._end(job, container)
                return JobStatus(name, FAILED, "Failed", f"could not upload the model: {exc}")
            self._keep_dependencies(job, container)
            self._end(job, container)
            return JobStatus(name, COMPLETED, "Completed", model_artifact=artifact)
        self._end(job, container)
        reason = job.tree.failure_reason()
        if state.get("OOMKilled"):
            limit = container.attrs["HostConfig"].get("Memory") or 0
            reason = f"OutOfMemory: the container hit its memory limit ({limit // 2**20} MiB)" + (
                f"; {reason}" if reason else ""
            )
        killed = " (killed)" if code == EXIT_KILLED else ""
        return JobStatus(name, FAILED, "Failed", reason or f"the container exited with code {code}{killed}")

    def _end(self, job: _Job, container, stop: bool = False) -> None:
        """Stop the container if asked (SIGTERM, SIGKILL after the grace period), keep its log, remove it."""
        from docker.errors import APIError

        try:
            if stop:
                container.stop(timeout=STOP_GRACE_SECONDS)
            job.log_path.write_bytes(container.logs(stdout=True, stderr=True))
            container.remove(force=True)
        except APIError as exc:
            log.warning("could not clean up container %s: %s", container.short_id, exc)

    def _keep_dependencies(self, job: _Job, container) -> None:
        """Copy the dependencies a job installed into the cache, once per key (best effort)."""
        if self.deps_cache is not None and job.deps_key is not None:
            target = job.tree.request.get("Environment", {}).get("PIP_TARGET", DEPENDENCY_TARGET)
            keep_dependencies(container, target, self.deps_cache / job.deps_key)

    def stop(self, job_name: str) -> bool:
        """Stop the job's container if it still runs (SIGTERM, then SIGKILL), keep its log, remove it."""
        with self._lock:
            job = self._jobs.get(job_name)
            if job is None or job.status.terminal:
                return False
            container = self._container(job)
            if container is None or container.attrs["State"]["Status"] not in ("created", "running", "restarting"):
                if container is not None:
                    job.status = self._finished(job, container, container.attrs["State"])
                return False
            self._end(job, container, stop=True)
            job.status = JobStatus(job_name, STOPPED, "Stopped", "stopped by fedsage")
            return True

    def logs(self, job_name: str, lines: int = 20) -> list[str]:
        """The last lines of the job's container log (its kept client.log once the container is gone)."""
        job = self._jobs[job_name]
        container = self._container(job)
        if container is not None:
            text = container.logs(stdout=True, stderr=True, tail=lines).decode(errors="replace")
        elif job.log_path.is_file():
            text = job.log_path.read_text(errors="replace")
        else:
            return []
        return text.splitlines()[-lines:]

    def find_jobs(self, run_id: str | None = None) -> list[RunJob]:
        """Every fedsage container on this daemon (of run `run_id` only, if given), running or not."""
        return find_containers(self.client, run_id)

    def containers(self) -> list[str]:
        """The ids of this backend's containers that still exist (for tests and diagnostics)."""
        found = self.client.containers.list(all=True, filters={"label": f"{OWNER_LABEL}={self.owner}"})
        return [container.id for container in found]
