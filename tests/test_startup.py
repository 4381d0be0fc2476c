"""A local run launches its jobs while it reads and checks its inputs (run/startup.py), with real processes.

Order, not time: the injected check waits until every job is launched (a deadlock guard, not a
timing assertion), so a run that checked before it launched would fail the test.
"""

import json
import os
import signal
import threading
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.backends.process_runs import find_processes
from orchestrator.errors import BadInput
from orchestrator.local import LocalOptions, build_local_run
from orchestrator.plan import client_of
from orchestrator.run import inputs as inputs_module
from orchestrator.run import interrupts
from orchestrator.run.events import ServerListening
from orchestrator.run.startup import HeldEvents

CLIENTS = ["client-1", "client-2", "client-3"]
GUARD = 120.0  # seconds a blocked check waits for the launches before it gives up (it never should)


def _csv(folder: Path) -> Path:
    (path,) = folder.glob("*.csv")
    return path


class Order:
    """What happened, in order: every launch, and the injected check's steps (thread-safe)."""

    def __init__(self, run, check=None):
        self.steps: list[object] = []
        self.launched = threading.Event()
        self._lock = threading.Lock()
        backend, launch, check_inputs = run.backend, run.backend.launch, run.backend.check_inputs
        self.run_id = run.run_id

        def launching(request):
            launch(request)
            with self._lock:
                self.steps.append(("launched", client_of(request)))
                if sum(1 for s in self.steps if isinstance(s, tuple) and s[0] == "launched") == len(CLIENTS):
                    self.launched.set()

        def checking(federation, data):
            self.steps.append("check started")
            assert self.launched.wait(GUARD), "the jobs were not launched while the inputs were checked"
            self.steps.append(("running", self._running()))
            try:
                (check or check_inputs)(federation, data)
            finally:
                self.steps.append("check ended")

        backend.launch, backend.check_inputs = launching, checking

    def _running(self) -> list[str]:
        """The clients whose job processes run: a job just started may still be between fork and exec."""
        for _ in range(100):
            running = sorted(job.client for job, _ in find_processes(self.run_id))
            if running == CLIENTS:
                break
            threading.Event().wait(0.05)
        return running

    def index(self, step) -> int:
        return self.steps.index(step)


def test_a_bad_channel_found_while_the_jobs_run_stops_them_and_leaves_nothing(tmp_path, data_copy):
    path = _csv(data_copy / "clients" / "client-2" / "train")
    pd.read_csv(path).drop(columns=["potential_fraud"]).to_csv(path, index=False)
    events = []
    run = build_local_run(LocalOptions(data_dir=data_copy, out=tmp_path / "runs", rounds=1), observer=events.append)
    order = Order(run)

    with pytest.raises(BadInput) as raised:
        run.execute()

    message = str(raised.value)
    assert "client 'client-2' train data" in message and str(path.parent) in message and "\n" not in message
    assert order.index("check ended") > max(order.index(("launched", c)) for c in CLIENTS)
    assert ("running", CLIENTS) in order.steps  # the processes ran while the check read the channels
    assert find_processes(run.run_id) == []  # every job stopped: no process with the run's FEDSAGE_RUN_ID
    assert not (tmp_path / "runs").exists()  # the run folder and the --out it made are gone
    assert events == []  # no "server listening", no "joined" before the one error line


@pytest.mark.parametrize("jobs_cost_nothing", [True, False])
def test_a_bad_cell_refused_by_its_client_stops_the_run_and_only_a_billed_one_keeps_its_folder(
    tmp_path, data_copy, jobs_cost_nothing
):
    """A local run leaves nothing; a run whose backend bills its jobs (SageMaker) keeps run.json as their record."""
    path = _csv(data_copy / "clients" / "client-2" / "train")
    frame = pd.read_csv(path, dtype=str)
    frame.loc[2, "inpatient_share"] = "twelve"  # line 4: found by client-2 in the statistics phase
    frame.to_csv(path, index=False)
    run = build_local_run(LocalOptions(data_dir=data_copy, out=tmp_path / "runs", rounds=1, join_timeout=120))
    run.backend.launch_while_checking = jobs_cost_nothing  # False: checked first, as SageMaker does

    with pytest.raises(BadInput, match=r"client 'client-2' train data \(.*\): column 'inpatient_share' has the non"):
        run.execute()

    assert find_processes(run.run_id) == []
    if jobs_cost_nothing:
        assert not (tmp_path / "runs").exists()
    else:
        summary = json.loads((run.run_dir / "run.json").read_text())
        assert summary["status"] == "failed" and "train.csv line 4" in summary["reason"]


def test_a_good_run_starts_its_jobs_first_and_reads_each_input_once(tmp_path, prepared_dir, monkeypatch):
    reads, heads = Counter(), Counter()

    def counting(counter, read):
        def counted(folder, *args, **kwargs):
            counter[Path(folder).resolve().relative_to(prepared_dir.resolve()).as_posix()] += 1
            return read(folder, *args, **kwargs)

        return counted

    monkeypatch.setattr(inputs_module, "read_channel", counting(reads, inputs_module.read_channel))
    monkeypatch.setattr(inputs_module, "channel_head", counting(heads, inputs_module.channel_head))
    encoded = []
    to_dataset = inputs_module.to_dataset
    monkeypatch.setattr(inputs_module, "to_dataset", lambda *a, **k: encoded.append(a[1]) or to_dataset(*a, **k))
    events = []
    options = LocalOptions(data_dir=prepared_dir, out=tmp_path / "runs", rounds=1, join_timeout=120)
    run = build_local_run(options, observer=events.append)
    order = Order(run)

    outcome = run.execute()

    assert outcome.history.final().round == 1
    assert order.index("check started") < order.index("check ended")
    assert order.index("check ended") > max(order.index(("launched", c)) for c in CLIENTS)
    assert isinstance(events[0], ServerListening)  # held during the check, then passed on in order
    assert list(reads.items()) == [("test.csv", 1)]  # the server reads its test set once and no client's rows
    assert heads == Counter(f"clients/{c}/{ch}" for c in CLIENTS for ch in ("train", "validation"))  # headers once
    assert len(encoded) == 1  # the test set encoded once, with the schema file (the phase's copy adds no work)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_while_the_inputs_are_checked_stops_every_job_and_leaves_nothing(tmp_path, prepared_dir, signum):
    release = threading.Event()
    events = []
    run = build_local_run(LocalOptions(data_dir=prepared_dir, out=tmp_path / "runs", rounds=1), observer=events.append)

    def interrupted_check(federation, data):
        os.kill(os.getpid(), signum)  # the user presses Ctrl-C (or a SIGTERM comes) while the jobs run
        release.wait(GUARD)  # the check goes on until the test ends; the run does not wait for it

    order = Order(run, check=interrupted_check)
    try:
        with pytest.raises(KeyboardInterrupt) as raised:
            run.execute()
    finally:
        release.set()

    assert raised.value.reason == interrupts.REASONS[signum]
    assert ("running", CLIENTS) in order.steps
    assert find_processes(run.run_id) == []
    assert not (tmp_path / "runs").exists()
    assert events == []


def test_held_events_pass_on_in_order_once_released_and_none_once_dropped():
    seen = []
    held = HeldEvents(seen.append)
    held("a")
    held("b")
    assert seen == []
    held.release()
    held("c")
    assert seen == ["a", "b", "c"]
    dropped = HeldEvents(seen.append)
    dropped("d")
    dropped.drop()
    dropped("e")
    assert seen == ["a", "b", "c"]
