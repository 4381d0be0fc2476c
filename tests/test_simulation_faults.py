"""How `fedsage local --backend simulation` ends, as a user meets it: the real CLI in a subprocess.

SIGTERM and Ctrl-C end it like the process backend (tests/test_run_faults.py): the documented exit
code, one line on stderr, run.json `interrupted`; and whatever the end, no process of Ray's node
(ray::ClientAppActor, raylet, gcs_server, its agents) is left. Each run gets a session of its own,
so every process it started - Ray's too, orphaned or not - is found by its session id.
"""

import os
import signal
import subprocess
from pathlib import Path

import psutil
import pytest
from test_run_faults import LocalRun, _fedsage, _one_line

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        __import__("importlib.util").util.find_spec("ray") is None,
        reason="the simulation backend needs Ray: pip install 'fedsage[simulation]'",
    ),
]

RAY_NAMES = ("ray::", "raylet", "gcs_server")


class SimulationRun(LocalRun):
    """`fedsage local --backend simulation` on the prepared data in a session of its own; the test drives it.

    LocalRun's run_dir and summary; its own start, output and end (no client processes: Ray's).
    """

    def __init__(self, cwd: Path, data_dir: Path, rounds: int, wait_for: str | None = None) -> None:
        self.out = cwd / "runs"
        self.process = subprocess.Popen(
            [_fedsage(), "local", "--backend", "simulation", "--data-dir", str(data_dir), "--out", str(self.out)]
            + ["--rounds", str(rounds)],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own session and process group, as a terminal gives a command
        )
        self.ray: list[psutil.Process] = []
        self.lines: list[str] = []  # stdout read so far
        if wait_for is not None:
            self.read_until(wait_for)
            self.ray = [p for p in psutil.Process(self.process.pid).children(recursive=True) if _is_ray(p)]
            assert any("raylet" in " ".join(p.cmdline()) for p in self.ray), self.ray  # Ray's node runs

    def read_until(self, prefix: str) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            if line.startswith(prefix):
                return
        raise AssertionError(f"fedsage ended before printing {prefix!r}")

    def finish(self) -> tuple[int, list[str], str]:
        """Wait for the exit; return the exit code, stderr's lines and stdout. No process of the run may remain."""
        out, err = self.process.communicate(timeout=180)
        left = self.leftovers()
        for process in left:  # clean up for the next test before failing
            process.kill()
        assert not left, f"processes of the run left running: {[(p.pid, p.info['cmdline']) for p in left]}"
        _, alive = psutil.wait_procs(self.ray, timeout=0)
        assert not alive, f"Ray processes of the run left running: {alive}"
        return self.process.returncode, err.strip().splitlines(), "".join(self.lines) + out

    def leftovers(self) -> list[psutil.Process]:
        """Processes of the run's session or with its FEDSAGE_RUN_ID in their environment, still running."""
        run_ids = {p.name for p in self.out.iterdir()} if self.out.exists() else set()
        started = psutil.Process().create_time()
        left = []
        for process in psutil.process_iter(["pid", "cmdline", "create_time"]):
            try:
                if process.info["create_time"] < started or process.status() == psutil.STATUS_ZOMBIE:
                    continue
                ours = os.getsid(process.pid) == self.process.pid  # Ray's processes too, orphaned or not
                tagged = process.environ().get("FEDSAGE_RUN_ID") in run_ids
            except (psutil.Error, ProcessLookupError):
                continue
            if ours or tagged:
                left.append(process)
        return left


def _is_ray(process: psutil.Process) -> bool:
    try:
        command = " ".join(process.cmdline())
    except psutil.Error:
        return False
    return any(name in command for name in RAY_NAMES)


@pytest.mark.parametrize(
    ("signum", "code", "line", "reason"),
    [
        (signal.SIGTERM, 143, "terminated (SIGTERM): every job this run started was stopped", "terminated (SIGTERM)"),
        (signal.SIGINT, 130, "interrupted: every job this run started was stopped", "interrupted by the user (Ctrl-C)"),
    ],
    ids=["sigterm", "ctrl-c"],
)
def test_a_signal_stops_the_run_and_every_ray_process(tmp_path, prepared_dir, signum, code, line, reason):
    """SIGTERM to fedsage (as `kill` sends it), Ctrl-C to its process group (as a terminal sends it)."""
    run = SimulationRun(tmp_path, prepared_dir, rounds=200, wait_for="round 1/200")
    if signum == signal.SIGINT:
        os.killpg(run.process.pid, signum)  # Ray's processes get it too
    else:
        run.process.send_signal(signum)
    exit_code, err, _ = run.finish()
    assert exit_code == code
    assert _one_line(err) == line  # no Ray stack dump, Flower advice or "SIGTERM handler is not set"
    summary = run.summary()
    assert (summary["status"], summary["reason"]) == ("interrupted", reason)
    assert {c["status"] for c in summary["clients"].values()} == {"Stopped"}
    assert summary["rounds_completed"] >= 1
    assert "Traceback" not in (run.run_dir / "server.log").read_text()  # nor Flower's "simulation crashed"


def test_a_completed_run_leaves_no_ray_process(tmp_path, prepared_dir):
    run = SimulationRun(tmp_path, prepared_dir, rounds=2, wait_for="round 1/2")
    exit_code, err, out = run.finish()
    assert (exit_code, err) == (0, [])
    assert "server ready for 3 virtual clients in this process (no port, no TLS)" in out
    assert "listening on" not in out
    summary = run.summary()
    assert summary["status"] == "completed"
    assert {c["status"] for c in summary["clients"].values()} == {"Completed"}
    assert "SIGTERM handler is not set" in (run.run_dir / "server.log").read_text()  # Ray's records: there
