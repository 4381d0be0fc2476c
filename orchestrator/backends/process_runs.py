"""fedsage's local client processes, found and stopped by their environment: `fedsage status`/`stop --backend process`.

Every job the process backend starts carries its run id (RUN_ID_ENVIRONMENT) and its
TRAINING_JOB_NAME in its environment, and is the leader of its own process group (its own
session). So the processes of a run are found whatever happened to the `fedsage` process that
started them (a SIGKILL, a crashed terminal): `find_processes` reads /proc/<pid>/environ of every
process of this user (Linux; the kernel lets a user read only its own processes' environment) and
keeps the group leaders with that run id; `stop_processes` ends each group as the backend does
(SIGTERM, then SIGKILL after a grace period).

A client whose server is gone also stops by itself: before it joined, after its connect timeout
(defaults.CONNECT_TIMEOUT); after it joined, as soon as its connection breaks. A frozen process
(SIGSTOP) does neither, and is what this module is for.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from orchestrator.backends import IN_PROGRESS, JobStatus, RunJob
from orchestrator.errors import BadInput

RUN_ID_ENVIRONMENT = "FEDSAGE_RUN_ID"  # set by backends/process.py in every job's environment
STOP_GRACE_SECONDS = 5.0
PROC = Path("/proc")


def _environment(pid: int) -> dict[str, str]:
    """The environment a process started with (empty if it is gone or not this user's)."""
    try:
        raw = (PROC / str(pid) / "environ").read_bytes()
    except OSError:  # gone, or another user's process
        return {}
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return {key.decode(errors="replace"): value.decode(errors="replace") for key, _, value in pairs}


def find_processes(run_id: str | None = None) -> list[tuple[RunJob, int]]:
    """The client jobs of run `run_id` (every run if None) running on this machine, each with its process id.

    Only a job's own process (its group leader) is listed, not the processes it started. Returns
    an empty list where /proc does not exist (not Linux).
    """
    found = []
    pids = sorted(int(p.name) for p in PROC.iterdir() if p.name.isdigit()) if PROC.is_dir() else []
    for pid in pids:
        environment = _environment(pid)
        owner = environment.get(RUN_ID_ENVIRONMENT)
        if owner is None or (run_id is not None and owner != run_id):
            continue
        with contextlib.suppress(OSError):
            if os.getpgid(pid) != pid:
                continue
            job = environment.get("TRAINING_JOB_NAME", f"pid {pid}")
            client = job.split(f"-{owner}-", 1)[-1]
            found.append((RunJob(client, None, owner, JobStatus(job, IN_PROGRESS, f"running (pid {pid})")), pid))
    return found


def stop_processes(run_id: str) -> list[RunJob]:
    """Stop every client process of a run (SIGTERM to its group, SIGKILL after a grace period); return their jobs.

    BadInput if the run has no process on this machine.
    """
    jobs = find_processes(run_id)
    if not jobs:
        raise BadInput(f"no client processes of run {run_id} on this machine; see `fedsage status --backend process`")
    for _, pid in jobs:
        _signal(pid, signal.SIGTERM)
        _signal(pid, signal.SIGCONT)  # a frozen (SIGSTOP) process only acts on SIGTERM once it runs again
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while time.monotonic() < deadline and any(_alive(pid) for _, pid in jobs):
        time.sleep(0.1)
    for _, pid in jobs:
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
    return [job for job, _ in jobs]


def _signal(group: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (a zombie only waits for its parent to reap it)."""
    try:
        state = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
