"""Issue 10, item 9: a client that misses a round deadline is out for the rest of the run, by name.

The frozen client is a real FederationClient in a thread of this process (tests/federation_support.py)
that stops answering in round 2 - what a SIGSTOPped job looks like to the server - until the test
lets it go after the run. Real loopback federation, the other clients in-process too.
"""

import json
import threading

import pytest
from federation_support import InProcessClients, run_with

from client_code.client import FederationClient
from orchestrator.errors import RunFailed
from orchestrator.federation.transport import DEADLINE_MISSED
from orchestrator.local import LocalOptions, build_local_run
from orchestrator.run.events import ClientLeft

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")]

ROUNDS = 4
ROUND_TIMEOUT = 8  # seconds: ample for one in-process round on the test data, short for a test that waits it out


def _frozen_in_round(round_number: int, release: threading.Event) -> type[FederationClient]:
    class Frozen(FederationClient):
        """Stops answering from its fit of `round_number` on until `release` is set (at most two minutes)."""

        def fit(self, parameters, config):
            if int(config.get("server_round", 0)) >= round_number:
                release.wait(120)
            return super().fit(parameters, config)

    return Frozen


def _run(data_dir, tmp_path, release, left, **federation):
    """The run, client-3 frozen from round 2; `release` is set (the thread may end) once client-3 is out."""
    run = build_local_run(
        LocalOptions(data_dir=data_dir, out=tmp_path / "runs", rounds=ROUNDS, join_timeout=60, round_timeout=60)
    )
    clients = {"client-1": FederationClient, "client-2": FederationClient, "client-3": _frozen_in_round(2, release)}
    sections = {"federation": {"round_timeout": ROUND_TIMEOUT, **federation}}
    observer = run.observer

    def watch(event):
        if isinstance(event, ClientLeft):
            left.append(event)
            release.set()
        observer(event)

    return run_with(run, InProcessClients(run.backend, clients), observer=watch, **sections)


def test_a_frozen_client_is_out_for_the_rest_of_the_run_and_named(prepared_dir, tmp_path):
    """min_clients 2 of 3: client-3 misses round 2's deadline, is disconnected and never asked again."""
    release, left = threading.Event(), []
    run = _run(prepared_dir, tmp_path, release, left, min_clients=2)
    try:
        outcome = run.execute()
    finally:
        release.set()
    about_3 = [w for w in outcome.warnings if "client 'client-3'" in w or "client-3" in w]
    assert about_3 and all("round 2" in w for w in about_3 if "round" in w), outcome.warnings
    assert any(DEADLINE_MISSED in w for w in about_3), outcome.warnings
    assert [e.reason for e in left if e.name == "client-3"] == [DEADLINE_MISSED]
    rounds = {r.round: r for r in outcome.history.rounds}
    assert set(rounds) == set(range(ROUNDS + 1))
    assert "num_examples" in rounds[1].clients["client-3"]
    for later in range(2, ROUNDS + 1):  # never sampled again: no update, no evaluation
        assert "client-3" not in rounds[later].clients, rounds[later].clients
        assert {"client-1", "client-2"} <= set(rounds[later].clients)
    summary = json.loads((outcome.run_dir / "run.json").read_text())
    assert summary["status"] == "completed"


def test_a_frozen_client_fails_the_round_when_too_few_remain(prepared_dir, tmp_path):
    """Every client required (the default): round 2 fails, naming client-3 and why."""
    release, left = threading.Event(), []
    run = _run(prepared_dir, tmp_path, release, left)
    try:
        with pytest.raises(RunFailed, match="client-3") as failure:
            run.execute()
    finally:
        release.set()
    assert "round 2" in str(failure.value) and "deadline" in str(failure.value)
    summary = json.loads((run.run_dir / "run.json").read_text())
    assert summary["status"] == "failed" and summary["rounds_completed"] == 1
    assert "client-3" in summary["reason"]
    assert [e.reason for e in left if e.name == "client-3"] == [DEADLINE_MISSED]
