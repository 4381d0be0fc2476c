"""Faults of a running `fedsage local`, as a user meets them: the real CLI in a subprocess (issue 10).

Signals (items 5, 7), a client dying while others are connected (item 16) and a disk that fills up
mid-run (item 4, on a small tmpfs: needs root, skipped elsewhere). In every case: the documented
exit code, one line on stderr, run.json when the disk allows it, every file present complete,
and no client process left.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import joblib
import psutil
import pytest
from conftest import fill
from federation_support import job_processes

from orchestrator.run import checkpoint

pytestmark = pytest.mark.slow


def _fedsage() -> str:
    return shutil.which("fedsage", path=os.path.dirname(sys.executable)) or shutil.which("fedsage")


class LocalRun:
    """`fedsage local` on the prepared data, 200 rounds, in its own process; the test drives it."""

    def __init__(self, cwd: Path, data_dir: Path, out: Path, *options: str) -> None:
        self.out = out
        self.process = subprocess.Popen(
            [_fedsage(), "local", "--data-dir", str(data_dir), "--out", str(out), "--rounds", "200", *options],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.read_until("round 1/200")
        self.clients = job_processes(self.process.pid)
        assert len(self.clients) == 3
        self.children = psutil.Process(self.process.pid).children(recursive=True)  # the plotter too

    def read_until(self, prefix: str) -> None:
        for line in self.process.stdout:
            if line.startswith(prefix):
                return
        raise AssertionError(f"fedsage ended before printing {prefix!r}")

    def finish(self) -> tuple[int, list[str]]:
        """Wait for the exit; return the exit code and stderr's lines. No client process may remain."""
        self.rest, err = self.process.communicate(timeout=120)  # stdout after what read_until read
        _, alive = psutil.wait_procs(self.children, timeout=10)
        for process in alive:
            process.kill()
        assert not alive, f"client processes left running: {alive}"
        return self.process.returncode, err.strip().splitlines()

    @property
    def run_dir(self) -> Path:
        (run_dir,) = self.out.iterdir()
        return run_dir

    def summary(self) -> dict:
        return json.loads((self.run_dir / "run.json").read_text())


def _one_line(lines: list[str]) -> str:
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0] and "GrpcBridgeClosed" not in lines[0]
    return lines[0]


def test_sigterm_is_handled_like_ctrl_c(tmp_path, prepared_dir):
    """Item 7: every job stopped, run.json and the report written, exit 143 (128 + SIGTERM)."""
    run = LocalRun(tmp_path, prepared_dir, tmp_path / "runs")
    run.process.send_signal(signal.SIGTERM)
    code, err = run.finish()
    assert code == 143
    assert _one_line(err) == "terminated (SIGTERM): every job this run started was stopped"
    summary = run.summary()
    assert (summary["status"], summary["reason"]) == ("interrupted", "terminated (SIGTERM)")
    assert {c["status"] for c in summary["clients"].values()} == {"Stopped"}
    assert "status: **interrupted** (terminated (SIGTERM))" in (run.run_dir / "report.md").read_text()
    # the round the stop cut short is not reported as the clients' fault (their streams closed for the stop)
    assert "left out" not in run.rest and not [w for w in summary["warnings"] if "left out" in w]


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM])
def test_a_second_signal_while_a_job_is_slow_to_stop(tmp_path, prepared_dir, second):
    """Item 5: Ctrl-C, then Ctrl-C (or SIGTERM) again while a frozen job is being stopped."""
    run = LocalRun(tmp_path, prepared_dir, tmp_path / "runs")
    run.clients[0].suspend()  # SIGSTOP: it cannot act on SIGTERM, so stopping it takes the grace period
    run.process.send_signal(signal.SIGINT)
    run.read_until("stopping 3 job(s)")
    run.process.send_signal(second)
    code, err = run.finish()
    assert code == 130  # the first signal decides
    assert _one_line(err) == "interrupted: every job this run started was stopped"
    summary = run.summary()
    assert summary["status"] == "interrupted"
    assert summary["clients"]["client-1"]["status"] == "Stopped"  # the frozen one too
    assert (
        "while stopping: the jobs are stopped and the results written first" in (run.run_dir / "server.log").read_text()
    )


def test_a_client_that_dies_with_others_connected_is_one_line(tmp_path, prepared_dir):
    """Item 16: the run aborts with two clients connected; no gRPC or Flower traceback anywhere."""
    run = LocalRun(tmp_path, prepared_dir, tmp_path / "runs")
    run.clients[1].kill()
    code, err = run.finish()
    assert code == 1
    line = _one_line(err)
    assert line.startswith("error: ") and "client-" in line
    summary = run.summary()
    assert summary["status"] == "failed"
    assert "Traceback" not in (run.run_dir / "server.log").read_text()
    # it stopped after round 1 at least: the last good global model is kept, marked partial
    assert summary["partial"] is True and summary["rounds_completed"] >= 1
    assert joblib.load(run.run_dir / "model.joblib").fedsage_provenance_["partial"] is True


def test_a_dead_client_fails_the_run_at_once_while_another_does_not_answer(tmp_path, prepared_dir):
    """Review of issue 15: one client frozen (SIGSTOP), another killed; the round waited on the frozen one.

    With every client needed, the run cannot go on once the job is known dead: it fails with that
    job's reason instead of waiting out the round timeout (an hour here; `finish` waits 120 s).
    """
    import signal

    run = LocalRun(tmp_path, prepared_dir, tmp_path / "runs", "--round-timeout", "3600")
    run.clients[2].send_signal(signal.SIGSTOP)
    run.clients[0].kill()
    code, err = run.finish()
    assert code == 1
    line = _one_line(err)
    # the run's abort, or the server's next round finding it gone: either way the dead job's reason
    assert line.startswith("error: ") and "job failed: killed by SIGKILL" in line
    assert run.summary()["status"] == "failed"


def test_a_run_whose_reader_went_away_still_stops_every_job_and_writes_run_json(tmp_path, prepared_dir):
    """`fedsage local | head`, a closed terminal: the console's pipe closes mid-run (found at the end of issue 15).

    Rich's next print raised BrokenPipeError in the run's stopping: no run.json, and a job that
    does not answer (here frozen) was left running. The console now goes quiet instead.
    """
    import signal

    run = LocalRun(tmp_path, prepared_dir, tmp_path / "runs")
    run.clients[2].send_signal(signal.SIGSTOP)  # the round waits on it: nothing ends by itself
    run.process.stdout.close()  # the reader goes away
    run.process.send_signal(signal.SIGTERM)
    assert run.process.wait(timeout=120) == 143
    _, alive = psutil.wait_procs(run.children, timeout=10)
    for process in alive:
        process.kill()
    assert not alive, f"client processes left running: {alive}"
    assert run.summary()["status"] == "interrupted"


def test_a_disk_that_fills_up_mid_run(tmp_path, prepared_dir, small_disk):
    """Item 4, on a 40 MiB tmpfs (the run needs 32 MiB free to start) that the test fills after round 1."""
    disk = small_disk("disk", "40m")
    run = LocalRun(tmp_path, prepared_dir, disk / "runs")
    fill(disk)
    code, err = run.finish()
    assert code == 1
    line = _one_line(err)
    assert line.startswith("error: could not write ") and "No space left on device; free space on that disk" in line
    run_dir = run.run_dir
    leftovers = [p for p in run_dir.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".staging-")]
    assert leftovers == []
    for path in run_dir.rglob("*.json"):  # run.json (if it fit), the requests, the client configs
        assert path.stat().st_size > 0, path
        json.loads(path.read_text())
    checkpoints = sorted((run_dir / "checkpoints").glob("round-*.npz"))
    assert checkpoints  # round 0 and 1 were written before the disk filled up
    for path in checkpoints:
        assert list(checkpoint.read(path).parameters) == ["coef", "intercept"]
    if (run_dir / "model.joblib").exists():  # the partial model only if it fit whole, its checksum first
        assert (run_dir / "model.joblib.sha256").exists()
    if (run_dir / "run.json").exists():
        assert run.summary()["status"] == "failed"
