"""Issue 10, items 1 and 2: tokens stay out of arguments and files; a token admitted twice stops the run.

Real federations on 127.0.0.1 with the clients as OS processes (the process backend); the
impostor is a FederationClient in a thread of this process holding a token read from a client's
request - what a local user who could read the token would do.
"""

import json
import threading
from pathlib import Path

import psutil
import pytest
from federation_support import client_for, join

from client_code import transport
from orchestrator.errors import RunFailed
from orchestrator.local import LocalOptions, build_local_run
from orchestrator.plan import client_of
from orchestrator.run.events import ClientJoined, ClientLeft, RoundFinished

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")]

IMPOSTOR = "client 'client-2' presented its token twice: possible impostor; the run stops"


def _options(data_dir, tmp_path, **overrides):
    values = {"data_dir": data_dir, "out": tmp_path / "runs", "rounds": 3, "join_timeout": 60, "round_timeout": 60}
    return LocalOptions(**{**values, **overrides})


class Launches:
    """Records every request the backend launches (with its token) and lets a test act on the run's events."""

    def __init__(self, run, on_event=None):
        self.requests = {}
        self.on_event = on_event
        original = run.backend.launch

        def launch(request):
            self.requests[client_of(request)] = request
            original(request)

        run.backend.launch = launch
        run.observer.observer = self  # behind the run's HeldEvents (run/startup.py), which releases after the check

    def __call__(self, event):
        if self.on_event is not None:
            self.on_event(event)

    def token(self, client):
        return self.requests[client]["Environment"]["FEDSAGE_CLIENT_TOKEN"]


def _impostor(launches, client, errors):
    """Join as `client` with its stolen token from this process (in a thread); keep what it met."""

    def run():
        try:
            join(client_for(launches.requests[client]), launches.requests[client], token=launches.token(client))
        except (transport.ServerRefused, transport.ServerUnreachable) as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_tokens_are_never_in_process_arguments_or_in_any_file_left_behind(prepared_dir, tmp_path):
    """Item 1: /proc/<pid>/cmdline of every client process, and every file of the run folder."""
    seen = {}
    run = build_local_run(_options(prepared_dir, tmp_path, rounds=1))

    def look(event):
        if isinstance(event, ClientJoined) and not seen:
            for process in run.backend.processes().values():
                for p in [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]:
                    seen[p.pid] = " ".join(p.cmdline())

    launches = Launches(run, look)
    outcome = run.execute()
    tokens = [launches.token(c) for c in ("client-1", "client-2", "client-3")]
    assert len(set(tokens)) == 3 and all(len(t) == 64 for t in tokens)
    assert seen and all(t not in cmdline for t in tokens for cmdline in seen.values())
    assert all("--client-name" in cmdline for cmdline in seen.values() if "fedsage_client.py" in cmdline)
    files = [p for p in Path(outcome.run_dir).rglob("*") if p.is_file()]
    assert any(p.name == "hyperparameters.json" for p in files) and any(p.parent.name == "requests" for p in files)
    leaking = [str(p) for p in files for t in tokens if t.encode() in p.read_bytes()]
    assert leaking == []


def test_a_second_connection_with_an_admitted_token_stops_the_run_as_a_possible_impostor(prepared_dir, tmp_path):
    """Items 1 and 2: client-2's token presented while client-2 is connected fails the run loudly, by name."""
    errors = []
    run = build_local_run(_options(prepared_dir, tmp_path, rounds=50))
    threads = []

    def steal(event):
        if isinstance(event, RoundFinished) and event.record.round == 1 and not threads:
            threads.append(_impostor(launches, "client-2", errors))

    launches = Launches(run, steal)
    with pytest.raises(RunFailed, match=IMPOSTOR):
        run.execute()
    threads[0].join(30)
    assert errors and isinstance(errors[0], transport.ServerRefused)  # refused before any message, then the run stops
    assert "already admitted in this run" in str(errors[0])
    summary = json.loads((run.run_dir / "run.json").read_text())
    assert summary["status"] == "failed" and summary["reason"] == IMPOSTOR
    (refused,) = summary["refused_connections"]
    assert refused["claimed_name"] == "client-2" and refused["reason"] == IMPOSTOR
    assert IMPOSTOR in (run.run_dir / "report.md").read_text()
    assert summary["rounds_completed"] < 50


def test_a_name_that_left_is_not_admitted_again_and_the_run_does_not_go_on(prepared_dir, tmp_path):
    """Item 2: with --min-clients 2, client-2 dies; its token, presented again, is refused and fails the run."""
    errors = []
    run = build_local_run(_options(prepared_dir, tmp_path, rounds=60, min_clients=2))
    state = {}

    def kill_then_steal(event):
        if isinstance(event, RoundFinished) and event.record.round == 1 and "killed" not in state:
            job = next(j for j in run.backend.processes() if j.endswith("client-2"))
            run.backend.processes()[job].kill()
            state["killed"] = event.record.round
        elif isinstance(event, ClientLeft) and event.name == "client-2" and "thread" not in state:
            state["thread"] = _impostor(launches, "client-2", errors)

    launches = Launches(run, kill_then_steal)
    with pytest.raises(RunFailed, match=IMPOSTOR):
        run.execute()
    state["thread"].join(30)
    assert errors and isinstance(errors[0], transport.ServerRefused)
    assert "already admitted in this run" in str(errors[0])
    summary = json.loads((run.run_dir / "run.json").read_text())
    assert summary["status"] == "failed" and summary["reason"] == IMPOSTOR
    assert summary["clients"]["client-2"]["status"] == "Failed"
    assert [r["claimed_name"] for r in summary["refused_connections"]] == ["client-2"]
    # the model's provenance can never say client-2 trained after it left: no model was saved
    assert not (run.run_dir / "model.joblib").exists()


def test_a_real_client_refused_because_an_impostor_got_in_first_stops_the_run(prepared_dir, tmp_path):
    """Item 1: an impostor holding client-2's token joins before the real client-2, which is refused: the run stops."""
    errors = []
    run = build_local_run(_options(prepared_dir, tmp_path, rounds=50))
    real_launch = run.backend.launch
    threads = []

    def impostor_first(request):
        if client_of(request) == "client-2":
            # the run listens before it builds Flower's server (federation/listener.py): calls wait there
            # and are served in the order they came, so the impostor's call is made to come first
            arrived = threading.Event()
            deferred = run._listener._handler
            service = deferred.service

            def noting(details):
                arrived.set()
                return service(details)

            deferred.service = noting
            threads.append(_impostor(launches, "client-2", errors))
            assert arrived.wait(60)  # its Join reached the server before the real job exists
        real_launch(request)

    run.backend.launch = impostor_first
    launches = Launches(run)
    with pytest.raises(RunFailed, match=IMPOSTOR):
        run.execute()
    threads[0].join(30)
    summary = json.loads((run.run_dir / "run.json").read_text())
    assert summary["status"] == "failed" and summary["reason"] == IMPOSTOR
    (refused,) = summary["refused_connections"]
    assert refused["claimed_name"] == "client-2" and refused["reason"] == IMPOSTOR
    # the impostor may have trained while the real job started; the run never finishes, no model is saved
    assert summary["rounds_completed"] < 50 and not (run.run_dir / "model.joblib").exists()
