"""Issue 10, item 8: `fedsage status/stop --backend process` find a run's client processes by FEDSAGE_RUN_ID.

Stand-in jobs are `sleep` processes started as the process backend starts a job: its own session
(group leader), with the run id and the job name in its environment - found with no help from the
process that started them, as after a SIGKILL of `fedsage local`.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_runner import run_cli

from orchestrator.backends.process_runs import RUN_ID_ENVIRONMENT, find_processes, stop_processes
from orchestrator.errors import BadInput

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds processes through /proc (Linux)")


def _job(run_id: str, client: str) -> subprocess.Popen:
    """A stand-in job, returned once it runs `sleep` (before its exec, /proc shows the parent's environment)."""
    environment = {**os.environ, RUN_ID_ENVIRONMENT: run_id, "TRAINING_JOB_NAME": f"fedsage-{run_id}-{client}"}
    job = subprocess.Popen(["sleep", "600"], env=environment, start_new_session=True)
    while not Path(f"/proc/{job.pid}/cmdline").read_bytes().startswith(b"sleep"):
        time.sleep(0.01)
    return job


def test_a_runs_processes_are_found_by_run_id_and_stopped_even_when_frozen():
    run, other = "20261130-999999-aaaa", "20261130-999999-bbbb"
    jobs = [_job(run, "client-1"), _job(run, "client-2"), _job(other, "client-1")]
    try:
        os.kill(jobs[1].pid, signal.SIGSTOP)  # a frozen client: only SIGKILL or SIGCONT + SIGTERM end it
        found = {job.client: pid for job, pid in find_processes(run)}
        assert found == {"client-1": jobs[0].pid, "client-2": jobs[1].pid}
        assert {pid for _, pid in find_processes()} >= {p.pid for p in jobs}
        stopped = stop_processes(run)
        assert sorted(job.client for job in stopped) == ["client-1", "client-2"]
        assert jobs[0].wait(10) is not None and jobs[1].wait(10) is not None
        assert jobs[2].poll() is None  # another run's process is left alone
        assert find_processes(run) == []
        with pytest.raises(BadInput, match=f"no client processes of run {run} on this machine"):
            stop_processes(run)
    finally:
        for job in jobs:
            job.kill()
            job.wait()


@pytest.mark.slow
def test_after_a_sigkill_of_fedsage_local_its_clients_are_found_and_stopped_by_run_id(
    prepared_dir, tmp_path, capsys, monkeypatch
):
    """Item 8 end to end: `fedsage local` dies (SIGKILL) with its clients running; status and stop find them."""
    out = tmp_path / "runs"
    fedsage = shutil.which("fedsage", path=os.path.dirname(sys.executable))
    command = [fedsage, "local", "--data-dir", str(prepared_dir), "--out", str(out), "--rounds", "500"]
    orchestrator = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run_id = None
        while run_id is None or len(find_processes(run_id)) < 3:
            assert orchestrator.poll() is None, "fedsage local ended before its three clients ran"
            run_id = next((d.name for d in out.iterdir()), None) if out.is_dir() else None
            time.sleep(0.05)
        orchestrator.kill()  # no cleanup can run: the clients (each in its own session) live on
        orchestrator.wait()
        monkeypatch.setenv("COLUMNS", "250")  # the table shows whole run ids
        code, listing, _ = run_cli(capsys, "status", "--backend", "process")
        assert code in (0, None) and run_id in listing
        code, said, _ = run_cli(capsys, "stop", "--backend", "process", "--run-id", run_id)
        assert code in (0, None) and "client-1" in said and "client-3" in said
        assert find_processes(run_id) == []
    finally:
        orchestrator.kill()
        for _, pid in find_processes(run_id) if run_id else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
