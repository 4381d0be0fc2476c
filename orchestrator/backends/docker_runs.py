"""fedsage's containers on a Docker daemon, found and removed by label; and the reaper that removes them.

`find_containers` and `remove_containers` serve `fedsage status` and `fedsage stop` with
`--backend docker`: every container of a run carries its run id as a label, so leftovers are
found whatever happened to the process that started them.

The reaper: `python -m orchestrator.backends.docker_runs OWNER` runs in its own session (so the Ctrl-C of
a terminal does not reach it) and blocks on its standard input, a pipe whose only writer is the
docker backend. The pipe closes when that backend's process exits for any reason - a finished
run, an exception, Ctrl-C, SIGTERM, even SIGKILL - and the reaper then force-removes every
container labelled with OWNER (normally none are left: the run stops and removes its own).
`fedsage stop --backend docker` is the manual counterpart, by run label.
"""

from __future__ import annotations

import contextlib
import sys

from orchestrator.backends import COMPLETED, FAILED, IN_PROGRESS, JobStatus, RunJob
from orchestrator.errors import BadInput
from orchestrator.imagebuild.daemon import CLIENT_LABEL, JOB_LABEL, RUN_LABEL

OWNER_LABEL = "org.fedsage.owner"  # one value per docker backend instance
STOP_GRACE_SECONDS = 10  # docker stop's SIGTERM -> SIGKILL delay


def reap(owner: str) -> int:
    """Force-remove every container labelled OWNER_LABEL=owner; return how many there were."""
    import docker

    client = docker.from_env(timeout=60)
    containers = client.containers.list(all=True, filters={"label": f"{OWNER_LABEL}={owner}"})
    for container in containers:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
    return len(containers)


STATUS_OF_STATE = {"created": IN_PROGRESS, "running": IN_PROGRESS, "restarting": IN_PROGRESS, "paused": IN_PROGRESS}


def find_containers(client, run_id: str | None = None) -> list[RunJob]:
    """The fedsage containers on a daemon, by run label: for `fedsage status` and `stop` with --backend docker."""
    label = f"{RUN_LABEL}={run_id}" if run_id else RUN_LABEL
    found = []
    for container in client.containers.list(all=True, filters={"label": label}):
        labels = container.labels
        state = container.attrs["State"]
        status = STATUS_OF_STATE.get(state["Status"])
        if status is None:
            status = COMPLETED if state.get("ExitCode") == 0 else FAILED
        job = JobStatus(labels.get(JOB_LABEL, container.name), status, state["Status"])
        found.append(RunJob(labels.get(CLIENT_LABEL, "?"), None, labels.get(RUN_LABEL, ""), job))
    return found


def remove_containers(client, run_id: str) -> list[tuple[RunJob, bool]]:
    """Stop and remove every container of a run; each with whether it was still running. BadInput if none."""
    jobs = find_containers(client, run_id)
    if not jobs:
        raise BadInput(f"no containers of run {run_id} on this Docker daemon; see `fedsage status --backend docker`")
    for container in client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"}):
        if container.status in STATUS_OF_STATE:
            container.stop(timeout=STOP_GRACE_SECONDS)
        container.remove(force=True)
    return [(job, job.status.status == IN_PROGRESS) for job in jobs]


def main(argv: list[str]) -> int:
    """Wait for EOF on stdin, then reap the owner's containers (argv: [OWNER])."""
    owner = argv[0]
    sys.stdin.buffer.read()
    try:
        reap(owner)
    except Exception:  # noqa: BLE001 - nobody is left to tell; `fedsage stop` finds leftovers by label
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
