"""The join timeout counts from the last job's start, not from the server's start."""

import threading
import types

import pytest

from orchestrator.federation.roster import JoinTimeout, Roster


def _proxy(name):
    return types.SimpleNamespace(cid=name)


def _waiter(roster, needed):
    outcome = {}

    def wait():
        try:
            roster.wait_for_all(needed)
            outcome["result"] = "joined"
        except JoinTimeout as exc:
            outcome["result"] = exc

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread, outcome


def test_no_deadline_runs_while_jobs_are_being_launched():
    roster = Roster(["a", "b"], wait_timeout=0.01, emit=lambda event: None)
    thread, outcome = _waiter(roster, needed=2)
    thread.join(0.5)  # 50x the join timeout: a clock started at the wait would have ended it
    assert thread.is_alive() and not outcome
    assert roster.join_deadline() is None
    roster.register(_proxy("a"))
    roster.register(_proxy("b"))
    thread.join(60)
    assert outcome == {"result": "joined"}


def test_the_deadline_follows_the_last_job_start():
    roster = Roster(["a", "b"], wait_timeout=30.0, emit=lambda event: None)
    roster.jobs_launched()
    launched = roster.join_deadline()
    roster.job_running("a")
    assert roster.join_deadline() == launched  # b has not started: the launches' clock
    roster.job_running("b")
    assert roster.join_deadline() > launched  # counted from b's start
    assert roster.not_started() == []


def test_a_gone_job_counts_as_started():
    roster = Roster(["a", "b"], wait_timeout=30.0, emit=lambda event: None)
    roster.jobs_launched()
    roster.job_running("a")
    roster.mark_gone("b")
    assert roster.not_started() == []
    assert roster._last_start is not None


def test_a_job_that_never_runs_ends_the_wait_and_is_named():
    roster = Roster(["a", "b"], wait_timeout=0.05, emit=lambda event: None)
    thread, outcome = _waiter(roster, needed=2)
    roster.register(_proxy("a"))
    roster.job_running("a")
    roster.jobs_launched()
    thread.join(60)
    assert isinstance(outcome["result"], JoinTimeout)
    assert str(outcome["result"]) == (
        "1 of 2 clients joined within 0.05 s (need 2); missing: b (jobs never running: b)"
    )


@pytest.mark.slow
def test_a_slow_job_start_does_not_use_up_the_join_timeout(prepared_dir, tmp_path):
    """The last job starts 12 s after the server with a 10 s join timeout: the run still completes."""
    from orchestrator.backends import COMPLETED
    from orchestrator.local import LocalOptions, build_local_run
    from orchestrator.run.lifecycle import FederationRun

    built = build_local_run(
        LocalOptions(data_dir=prepared_dir, out=tmp_path / "runs", rounds=1, join_timeout=10, round_timeout=60)
    )
    backend = built.backend
    release = threading.Event()

    class SlowStart:
        def __getattr__(self, name):
            return getattr(backend, name)

        def launch(self, request):
            if request["TrainingJobName"].endswith("client-3"):
                release.wait(12)  # a slow provisioning: no event ever sets it
            backend.launch(request)

    run = FederationRun(built.federation, built.inputs, SlowStart(), built.folder)
    outcome = run.execute()
    assert {c: j.status for c, j in outcome.jobs.items()} == dict.fromkeys(
        ["client-1", "client-2", "client-3"], COMPLETED
    )
