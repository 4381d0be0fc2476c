"""Real federations on 127.0.0.1: a Flower server, one OS process per client, real training."""

import json
import os
import signal

import joblib
import numpy as np
import pandas as pd
import psutil
import pytest

from client_code.metrics import classification_metrics
from client_code.schema import load_data
from orchestrator.backends import COMPLETED, FAILED, IN_PROGRESS, JobStatus
from orchestrator.errors import RunFailed
from orchestrator.local import LocalOptions, build_local_run
from orchestrator.run.events import RoundFinished
from orchestrator.run.lifecycle import FederationRun

pytestmark = pytest.mark.slow


def _options(data_dir, tmp_path, **overrides):
    values = {"data_dir": data_dir, "out": tmp_path / "runs", "rounds": 3, "join_timeout": 60, "round_timeout": 60}
    return LocalOptions(**{**values, **overrides})


def _assert_no_process_left(run):
    for process in run.backend.processes().values():
        assert process.returncode is not None
        assert not psutil.pid_exists(process.pid) or psutil.Process(process.pid).status() == psutil.STATUS_ZOMBIE


def test_three_clients_three_rounds(prepared_dir, prepared, tmp_path, fit_results, assert_run_outputs):
    run = build_local_run(_options(prepared_dir, tmp_path))
    outcome = run.execute()

    # every client process exited 0 by itself, and uploaded its model
    assert {c: j.status for c, j in outcome.jobs.items()} == dict.fromkeys(
        ["client-1", "client-2", "client-3"], COMPLETED
    )
    assert [p.returncode for p in run.backend.processes().values()] == [0, 0, 0]
    _assert_no_process_left(run)

    # the global model of each round is the example-weighted average of what the clients returned
    for rnd in (1, 2, 3):
        updates = fit_results[rnd]
        assert sorted(updates) == ["client-1", "client-2", "client-3"]
        total = sum(n for _, n in updates.values())
        expected = [sum(params[i] * n for params, n in updates.values()) / total for i in (0, 1)]
        checkpoint = np.load(outcome.run_dir / "checkpoints" / f"round-{rnd:03d}.npz")
        np.testing.assert_allclose(checkpoint["coef"], expected[0], rtol=1e-12)
        np.testing.assert_allclose(checkpoint["intercept"], expected[1], rtol=1e-12)
        # and the updates really differ per client: the average is not trivially one of them
        assert not np.allclose(updates["client-1"][0][0], updates["client-2"][0][0])

    # the server's test metrics after the last round beat round 0
    first, last = outcome.history.rounds[0].server, outcome.final_metrics
    assert [r.round for r in outcome.history.rounds] == [0, 1, 2, 3]
    assert first["roc_auc"] == 0.5 and last["roc_auc"] > 0.8
    assert last["loss"] < first["loss"] and last["pr_auc"] > first["pr_auc"] and last["f1"] > first["f1"]

    # model.joblib is a Pipeline that scores raw rows with no fedsage import, carries its provenance,
    # and holds the last checkpoint's parameters with the intercept prior-corrected (King & Zeng)
    raw = pd.read_csv(prepared.test)
    test = load_data(prepared.test, prepared.schema)
    model = joblib.load(outcome.model_path)
    assert set(model.predict(raw)) <= {0, 1}
    assert classification_metrics(model[-1], test)["roc_auc"] == pytest.approx(last["roc_auc"])
    np.testing.assert_allclose(model.predict_proba(raw), model[-1].predict_proba(test.X), atol=1e-12)
    provenance = model.fedsage_provenance_
    assert provenance["run_id"] == outcome.run_id and provenance["rounds"] == 3
    assert provenance["feature_names"] == test.feature_names and provenance["classes"] == [0, 1]
    assert provenance["positive_class"] == 1
    assert {n: c["num_examples"] for n, c in provenance["clients"].items()} == {
        n: u[1] for n, u in fit_results[3].items()
    }
    assert set(provenance["versions"]) >= {"flwr", "scikit-learn"} and provenance["final_metrics"] == last
    checkpoint = np.load(outcome.run_dir / "checkpoints" / "round-003.npz")
    np.testing.assert_array_equal(model[-1].coef_, checkpoint["coef"])
    true, trained = provenance["prior"]["true"], provenance["prior"]["trained"]
    offset = np.log(true["1"] / true["0"]) - np.log(trained["1"] / trained["0"])
    np.testing.assert_allclose(model[-1].intercept_, checkpoint["intercept"] + offset)
    assert trained["0"] == trained["1"]  # SMOTE in every job raised the minority to the majority
    # probabilities refer to the true prior again: the mean prediction is close to the test set's rate
    assert model.predict_proba(raw)[:, 1].mean() == pytest.approx(raw["potential_fraud"].mean(), abs=0.03)

    # each client saved the final global model too, prior-corrected the same way
    for name in ("client-1", "client-2", "client-3"):
        client_model = joblib.load(outcome.run_dir / "clients" / name / "opt" / "ml" / "model" / "model.joblib")
        np.testing.assert_allclose(client_model[-1].coef_, model[-1].coef_)
        np.testing.assert_allclose(client_model[-1].intercept_, model[-1].intercept_)

    # the run folder holds everything the report promises
    assert_run_outputs(outcome.run_dir)
    assert json.loads((outcome.run_dir / "run.json").read_text())["status"] == "completed"
    request = json.loads((outcome.run_dir / "requests" / "client-1.json").read_text())
    assert request["Environment"]["FEDSAGE_CLIENT_TOKEN"] == "***"


def _kill_client_after_round_one(run_holder, name):
    def observer(event):
        if isinstance(event, RoundFinished) and event.record.round == 1:
            run = run_holder[0]
            job = next(j for j in run.backend.processes() if j.endswith(name))
            os.kill(run.backend.processes()[job].pid, signal.SIGKILL)

    return observer


def test_a_client_that_dies_mid_run_fails_the_run_by_name(prepared_dir, tmp_path):
    holder = []
    run = build_local_run(_options(prepared_dir, tmp_path, rounds=5), _kill_client_after_round_one(holder, "client-2"))
    holder.append(run)
    with pytest.raises(RunFailed, match="client 'client-2'") as failure:
        run.execute()
    assert "\n" not in str(failure.value)
    assert "client 'client-2' job failed: killed by SIGKILL" in str(failure.value)  # not its log's last lines
    _assert_no_process_left(run)
    status = json.loads((run.run_dir / "run.json").read_text())
    assert status["status"] == "failed" and "client-2" in status["reason"]
    assert status["clients"]["client-2"]["status"] == FAILED
    assert (run.run_dir / "metrics.json").is_file()  # the rounds that did finish are kept


def test_a_client_that_dies_mid_run_is_tolerated_when_min_clients_allows(prepared_dir, tmp_path):
    holder = []
    run = build_local_run(
        _options(prepared_dir, tmp_path, rounds=4, min_clients=2), _kill_client_after_round_one(holder, "client-2")
    )
    holder.append(run)
    outcome = run.execute()
    assert outcome.jobs["client-2"].status == FAILED
    assert outcome.jobs["client-1"].status == outcome.jobs["client-3"].status == COMPLETED
    assert any("client-2" in w for w in outcome.warnings)
    assert "client-2" not in outcome.history.final().clients
    assert outcome.final_metrics["roc_auc"] > 0.8
    _assert_no_process_left(run)


class _NeverStarts:
    """Wraps the process backend and never starts one client's job, as if its account were stuck."""

    def __init__(self, backend, client):
        self.backend, self.client, self.skipped = backend, client, set()

    def __getattr__(self, name):  # name, timings, placement, check_inputs: the wrapped backend's
        return getattr(self.backend, name)

    def launch(self, request):
        if request["TrainingJobName"].endswith(self.client):
            self.skipped.add(request["TrainingJobName"])
            return
        self.backend.launch(request)

    def poll(self, name):
        return JobStatus(name, IN_PROGRESS, "Pending") if name in self.skipped else self.backend.poll(name)

    def stop(self, name):
        return name not in self.skipped and self.backend.stop(name)

    def logs(self, name, lines=20):
        return []


def test_a_client_that_never_joins_fails_the_run_after_the_join_timeout(prepared_dir, tmp_path):
    built = build_local_run(_options(prepared_dir, tmp_path, join_timeout=8))
    run = FederationRun(built.federation, built.inputs, _NeverStarts(built.backend, "client-3"), built.folder)
    with pytest.raises(
        RunFailed,
        match=r"2 of 3 clients joined within 8 s \(need 3\); missing: client-3 \(jobs never running: client-3\)",
    ):
        run.execute()
    _assert_no_process_left(run)


def test_a_run_uses_the_operators_own_ca_and_its_clients_connect(prepared_dir, tmp_path):
    import base64

    from orchestrator.config import TlsSettings
    from orchestrator.federation import tls

    material = tls.generate(["127.0.0.1"])
    for name, pem in (("ca.pem", material.ca_certificate), ("server.pem", material.server_certificate)):
        (tmp_path / name).write_bytes(pem)
    (tmp_path / "server.key").write_bytes(material.server_key)
    run = build_local_run(_options(prepared_dir, tmp_path, rounds=1))
    run.federation.server.tls = TlsSettings(
        ca_certificate=tmp_path / "ca.pem", certificate=tmp_path / "server.pem", private_key=tmp_path / "server.key"
    )
    outcome = run.execute()
    assert {j.status for j in outcome.jobs.values()} == {COMPLETED}  # every client trusted the given CA
    for name in ("client-1", "client-2", "client-3"):
        request = json.loads((outcome.run_dir / "requests" / f"{name}.json").read_text())
        sent = base64.b64decode(json.loads(request["HyperParameters"]["root-certificate"]))
        assert sent == material.ca_certificate
    assert b"PRIVATE KEY" not in b"".join(p.read_bytes() for p in outcome.run_dir.rglob("*.json"))
