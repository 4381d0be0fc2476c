"""Reproduce, partial models and resume on real federations (process backend, logistic FedAvg; issue 14 part B).

Done when: a run killed at round k (SIGKILL of the orchestrator's process group, or Ctrl-C) and
resumed ends with the same final parameters as an uninterrupted run with the same seed, to 1e-9.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import psutil
import pytest
from cli_runner import run_cli
from federation_support import ctrl_c_after

from orchestrator import api
from orchestrator.run import checkpoint

pytestmark = pytest.mark.slow

ROUNDS = 10
TIMEOUTS = {"join_timeout": 60, "round_timeout": 60}


def _fedsage() -> str:
    return shutil.which("fedsage", path=os.path.dirname(sys.executable)) or shutil.which("fedsage")


def _final(run_dir: Path, rounds: int = ROUNDS) -> dict[str, np.ndarray]:
    return checkpoint.read(checkpoint.path(run_dir, rounds)).parameters


def _assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-9, err_msg=name)


@pytest.fixture(scope="module")
def references(prepared_dir, tmp_path_factory):
    """Uninterrupted runs of ROUNDS rounds on the prepared data (seed 42), one per model kind, made when asked."""
    made = {}

    def reference(model: str = "logistic", extra: tuple[str, ...] = ()):
        if (model, extra) not in made:
            out = tmp_path_factory.mktemp(f"reference-{model}") / "runs"
            args = ["local", "--data-dir", str(prepared_dir), "--out", str(out), "--rounds", str(ROUNDS)]
            args += ["--model", model, *extra] + [f"--{k.replace('_', '-')}={v}" for k, v in TIMEOUTS.items()]
            subprocess.run([_fedsage(), *args], check=True, capture_output=True)
            (made[(model, extra)],) = out.iterdir()
        return made[(model, extra)]

    return reference


@pytest.fixture
def reference(references):
    """The uninterrupted logistic run."""
    return references("logistic")


def test_a_run_repeated_from_its_federation_toml_gives_the_same_model(reference, tmp_path, capsys):
    saved = reference / "federation.toml"
    code, out, _ = run_cli(capsys, "local", "-c", str(saved), "--out", str(tmp_path / "runs"))
    assert code in (0, None)
    assert f"fedsage local: the federation of {saved}" in out and "overridden" not in out
    (again,) = (tmp_path / "runs").iterdir()
    _assert_same(_final(reference), _final(again))

    first, second = (json.loads((d / "run.json").read_text()) for d in (reference, again))
    assert first["provenance"] == second["provenance"]  # the same inputs, code and seed
    provenance = first["provenance"]
    assert provenance["seed"] == 42 and provenance["schema"] != "statistics phase"
    assert all(len(provenance[key]) == 64 for key in ("test_set", "schema", "code"))
    assert sorted(provenance["clients"]) == ["client-1", "client-2", "client-3"]
    assert all(set(d) == {"train", "validation"} for d in provenance["clients"].values())
    assert first["clients"]["client-1"]["digests"] == provenance["clients"]["client-1"]
    model = joblib.load(again / "model.joblib")
    assert model.fedsage_provenance_["inputs"] == second["provenance"]
    assert model.fedsage_provenance_["partial"] is False

    # an option on the command line overrides the file, and the banner says so
    code, out, _ = run_cli(capsys, "local", "-c", str(saved), "--out", str(tmp_path / "more"), "--rounds", "2")
    assert code in (0, None) and "(overridden here: --rounds 2)" in out
    (shorter,) = (tmp_path / "more").iterdir()
    assert json.loads((shorter / "run.json").read_text())["rounds_completed"] == 2


def test_a_stopped_run_keeps_its_last_good_model_marked_partial(prepared_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "runs"
    with pytest.raises(KeyboardInterrupt):
        api.local(data_dir=prepared_dir, out=out, rounds=ROUNDS, observer=ctrl_c_after(2), **TIMEOUTS)
    (run_dir,) = out.iterdir()
    summary = json.loads((run_dir / "run.json").read_text())
    done = summary["rounds_completed"]
    assert summary["status"] == "interrupted" and summary["partial"] is True and 2 <= done < ROUNDS
    model = joblib.load(run_dir / "model.joblib")
    assert model.fedsage_provenance_["partial"] is True
    assert model.fedsage_provenance_["rounds"] == done
    np.testing.assert_array_equal(model[-1].coef_, _final(run_dir, done)["coef"])  # that round's global model
    assert f"- model: **partial**, the global model after round {done}" in (run_dir / "report.md").read_text()
    monkeypatch.setenv("COLUMNS", "200")  # the status on one line (a narrow terminal wraps it)
    code, listing, _ = run_cli(capsys, "runs", "--out", str(out))
    assert "partial model" in listing
    line = f"partial model: the global model after round {done} of {ROUNDS}; the run stopped: interrupted by the user"
    code, shown, err = run_cli(capsys, "inspect", str(run_dir / "model.joblib"))
    assert code == 0 and shown.splitlines()[1].startswith(line), err


def test_a_run_stopped_after_its_last_round_keeps_its_whole_model_not_a_partial_one(prepared_dir, tmp_path):
    out = tmp_path / "runs"
    with pytest.raises(KeyboardInterrupt):
        api.local(data_dir=prepared_dir, out=out, rounds=2, observer=ctrl_c_after(2), **TIMEOUTS)
    (run_dir,) = out.iterdir()
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["status"] == "interrupted" and summary["rounds_completed"] == 2
    assert summary["partial"] is False  # every round asked for is in it: nothing to resume
    model = joblib.load(run_dir / "model.joblib")
    assert model.fedsage_provenance_["partial"] is False and model.fedsage_provenance_["rounds"] == 2
    np.testing.assert_array_equal(model[-1].coef_, _final(run_dir, 2)["coef"])


def _killed_run(data_dir: Path, out: Path, how: signal.Signals, model: str, extra: tuple[str, ...] = ()) -> Path:
    """`fedsage local --model MODEL EXTRA...` in its own process group, stopped by `how` at round 2's checkpoint."""
    process = subprocess.Popen(
        [_fedsage(), "local", "--data-dir", str(data_dir), "--out", str(out), "--rounds", str(ROUNDS)]
        + ["--model", model, *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: SIGKILL takes the orchestrator, as `kill -9 -PGID` would
    )
    clients: list[psutil.Process] = []
    while not list(out.glob("*/checkpoints/round-002.npz")):
        assert process.poll() is None, process.stderr.read()
        clients = psutil.Process(process.pid).children(recursive=True) or clients
        time.sleep(0.02)
    os.killpg(process.pid, how)
    process.wait(timeout=120)
    _, alive = psutil.wait_procs(clients, timeout=30)  # without their server the client jobs end (or are ended)
    for leftover in alive:
        leftover.kill()
    (run_dir,) = out.iterdir()
    return run_dir


MOMENTUM = ("--strategy", "fedavgm", "--strategy-param", "server_momentum=0.9")
CENTRAL_DP = ("--dp", "central", "--clipping-norm", "5", "--noise-multiplier", "0.5")


@pytest.mark.parametrize(
    ("model", "how", "extra"),
    [
        ("logistic", signal.SIGKILL, ()),
        ("logistic", signal.SIGINT, ()),
        ("sgd", signal.SIGKILL, ()),  # its step-size schedule follows the round (client_code/models/sgd.py)
        ("mlp", signal.SIGKILL, ()),  # Adam starts afresh every round; shuffles from the seed
        ("xgboost", signal.SIGKILL, ()),  # FedXgbBagging's booster is strategy state (federation/xgboost.py)
        ("logistic", signal.SIGKILL, MOMENTUM),  # FedAvgM's momentum and weights are state (federation/state.py)
        ("logistic", signal.SIGKILL, CENTRAL_DP),  # the privacy rounds spent go on; the noise is fresh
    ],
    ids=["logistic-sigkill", "logistic-ctrl-c", "sgd-sigkill", "mlp-sigkill", "xgboost-sigkill", "fedavgm", "dp"],
)
def test_a_killed_run_resumed_ends_with_the_uninterrupted_runs_model(
    references, prepared_dir, tmp_path, capsys, model, how, extra
):
    reference = references(model, extra)
    out = tmp_path / "runs"
    stopped = _killed_run(prepared_dir, out, how, model, extra)
    k = checkpoint.read(checkpoint.latest(stopped)).round
    assert 2 <= k < ROUNDS, f"the run was not stopped mid-way (last checkpoint: round {k})"
    if how == signal.SIGINT:
        assert json.loads((stopped / "run.json").read_text())["partial"] is True
    else:
        assert not (stopped / "run.json").exists()  # SIGKILL: nothing but the checkpoints and the files before it

    code, printed, err = run_cli(capsys, "local", "--resume", stopped.name, "--out", str(out))
    assert code in (0, None), err
    assert f"fedsage local: run {stopped.name} resumed from its last checkpoint" in printed
    (resumed,) = [d for d in out.iterdir() if d != stopped]
    summary = json.loads((resumed / "run.json").read_text())
    assert summary["status"] == "completed" and summary["resumed_from"] == {"run_id": stopped.name, "round": k}
    assert summary["rounds_completed"] == ROUNDS
    assert json.loads((resumed / "metrics.json").read_text())["rounds"][0]["round"] == k  # the checkpoint, re-scored
    # every round after the checkpoint, not only the (converging) last one; DP noise is drawn from the
    # operating system's entropy (client_code/privacy.py: a seeded noise could be subtracted by anyone
    # holding the seed), so a DP run continues from the stopped run's own round k, not the reference's
    first = _final(stopped, k) if extra == CENTRAL_DP else _final(reference, k)
    _assert_same(first, _final(resumed, k))
    for r in range(k + 1, ROUNDS + 1) if extra != CENTRAL_DP else ():
        _assert_same(_final(reference, r), _final(resumed, r))
    before, after = (checkpoint.read(checkpoint.path(reference, r)).arrays()[0] for r in (k, k + 1))
    # the rounds compared still move the model (xgboost: the booster grows): equality is no accident
    assert before.shape != after.shape or np.abs(after - before).max() > 1e-6
    provenance = joblib.load(resumed / "model.joblib").fedsage_provenance_
    assert provenance["resumed_from"] == {"run_id": stopped.name, "round": k} and provenance["partial"] is False
    if extra == CENTRAL_DP:  # the privacy spent counts every round, the stopped run's too
        spent, expected = (json.loads((d / "run.json").read_text())["privacy"] for d in (resumed, reference))
        assert spent["rounds"] == ROUNDS and spent["epsilon"] == pytest.approx(expected["epsilon"], rel=1e-12)
