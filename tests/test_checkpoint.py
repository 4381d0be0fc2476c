"""Reproduce and resume without a federation: checkpoints, the saved federation.toml, -c overrides, refusals."""

import json
import random
from pathlib import Path

import numpy as np
import pytest
from cli_runner import assert_bad_input, run_cli

from orchestrator import config, overrides
from orchestrator.errors import BadInput
from orchestrator.federation.resumed import Resumed
from orchestrator.run import checkpoint
from orchestrator.run.folder import ClientSummary, RunSummary, write_json


class Momentum:
    """A strategy with state, as FedAvgM's momentum would be (the checkpoint_state / restore_state contract)."""

    def __init__(self) -> None:
        self.velocity = np.zeros(3)
        self.steps = 0
        self.calls: list[tuple[str, int]] = []

    def checkpoint_state(self):
        return {"velocity": self.velocity, "steps": self.steps}

    def restore_state(self, state):
        self.velocity, self.steps = state["velocity"], int(state["steps"])

    def __getattr__(self, name):  # configure_fit, aggregate_fit, ... record the round they are called for
        if name.startswith(("configure_", "aggregate_", "evaluate")):
            return lambda server_round, *args: self.calls.append((name, server_round))
        raise AttributeError(name)


PARAMETERS = {"coef": np.arange(6.0).reshape(1, 6), "intercept": np.array([0.25])}


def test_a_checkpoint_holds_parameters_round_strategy_and_random_state(tmp_path):
    strategy = Momentum()
    strategy.velocity, strategy.steps = np.array([1.0, -2.0, 0.5]), 4
    random.seed(3)
    np.random.seed(5)
    path = checkpoint.write(tmp_path, 4, PARAMETERS, strategy)
    expected = (random.random(), np.random.random())  # what the generators give next after the checkpoint

    assert path == tmp_path / "checkpoints" / "round-004.npz"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # written atomically: no temp file left
    with np.load(path, allow_pickle=False) as raw:  # earlier readers keep finding the named parameters
        np.testing.assert_array_equal(raw["coef"], PARAMETERS["coef"])
    loaded = checkpoint.read(path)
    assert loaded.round == 4
    assert list(loaded.parameters) == ["coef", "intercept"]
    np.testing.assert_array_equal(loaded.arrays()[1], PARAMETERS["intercept"])

    resumed_strategy = Momentum()
    random.seed(99)
    resumed = Resumed(resumed_strategy, loaded)
    np.testing.assert_array_equal(resumed_strategy.velocity, [1.0, -2.0, 0.5])
    assert resumed_strategy.steps == 4
    assert (random.random(), np.random.random()) == expected
    # Flower's round r is the run's round 4 + r; its round 0 re-scores the checkpoint as round 4
    resumed.evaluate(0, None)
    resumed.configure_fit(1, None, None)
    resumed.aggregate_fit(1, [], [])
    assert resumed_strategy.calls == [("evaluate", 4), ("configure_fit", 5), ("aggregate_fit", 5)]


def test_a_stateless_strategy_stores_no_state_and_an_old_checkpoint_still_reads(tmp_path):
    checkpoint.write(tmp_path, 1, PARAMETERS, object())
    assert checkpoint.read(checkpoint.path(tmp_path, 1)).strategy_state == {}
    old = tmp_path / "old" / "round-007.npz"  # what fedsage wrote before: the named parameters only
    old.parent.mkdir()
    np.savez(old, **PARAMETERS)
    loaded = checkpoint.read(old)
    assert (loaded.round, loaded.rng, list(loaded.parameters)) == (7, None, ["coef", "intercept"])


def test_state_a_strategy_cannot_restore_is_refused(tmp_path):
    checkpoint.write(tmp_path, 2, PARAMETERS, Momentum())
    with pytest.raises(BadInput, match="holds strategy state .*steps, velocity.* that object cannot restore"):
        Resumed(object(), checkpoint.read(checkpoint.path(tmp_path, 2)))


def test_latest_is_the_highest_round(tmp_path):
    assert checkpoint.latest(tmp_path) is None
    for r in (0, 2, 10):
        checkpoint.write(tmp_path, r, PARAMETERS)
    assert checkpoint.latest(tmp_path).name == "round-010.npz"


def _federation(tmp_path: Path, inside: Path) -> config.Federation:
    (inside / "data").mkdir(parents=True)
    (inside / "data" / "test.csv").write_text("x,y\n1,0\n")
    outside = tmp_path / "elsewhere" / "schema.json"
    outside.parent.mkdir()
    outside.write_text("{}")
    return config.parse(
        {
            "server": {"test_data": str(inside / "data" / "test.csv"), "schema": str(outside)},
            "clients": [{"name": n, "train_uri": (inside / "data").as_uri()} for n in ("a", "b")],
        }
    )


def test_the_saved_federation_toml_finds_the_same_files_from_anywhere(tmp_path, monkeypatch):
    run_dir = tmp_path / "runs" / "run-1"
    federation = _federation(tmp_path, run_dir)
    saved = run_dir / "federation.toml"
    saved.write_text(federation.to_toml(run_dir))
    text = saved.read_text()
    assert 'test_data = "data/test.csv"' in text  # inside the run folder: relative to it
    assert f'schema = "{tmp_path / "elsewhere" / "schema.json"}"' in text  # outside: absolute
    monkeypatch.chdir(tmp_path / "elsewhere")
    loaded = config.load(Path("../runs/run-1/federation.toml"))
    assert loaded.server.test_data.resolve() == (run_dir / "data" / "test.csv").resolve()
    assert loaded.server.schema_path == tmp_path / "elsewhere" / "schema.json"


def test_options_override_the_file_before_it_is_validated_and_data_options_are_refused(tmp_path):
    federation = _federation(tmp_path, tmp_path / "run")
    saved = tmp_path / "f.toml"
    saved.write_text(federation.to_toml(tmp_path))

    def load(**given):
        return config.load(saved, lambda data, source: overrides.apply(data, given, source))

    changed = load(rounds=7, seed=3, max_iter=4)
    assert (changed.federation.rounds, changed.federation.seed, changed.model.max_iter) == (7, 3, 4)
    assert changed.clients == federation.clients
    assert load(model="mlp").model.kind == "mlp"
    with pytest.raises(BadInput, match="--data-dir cannot be combined with -c: .*f.toml names the clients"):
        load(data_dir=tmp_path)
    with pytest.raises(BadInput, match=r"f.toml with --rounds: --rounds 0: Input should be greater than"):
        load(rounds=0)
    with pytest.raises(BadInput, match=r"f.toml with --model: --model forest is not a model kind"):
        load(model="forest")
    # a bad value of the file that an option replaces is never validated: the option mends it
    saved.write_text(saved.read_text().replace("seed = 42", "seed = -1"))
    with pytest.raises(BadInput, match=r"f.toml: federation.seed = -1: Input should be greater than or equal to 0"):
        config.load(saved)
    assert load(seed=1).federation.seed == 1


def _stopped_run(out: Path, run_id: str, *, rounds_done: int, asked: int = 5) -> Path:
    """A run folder as a stopped run leaves it: federation.toml and checkpoints of rounds 0..rounds_done."""
    folder = out / run_id
    federation = _federation(out.parent, folder)
    federation.federation.rounds = asked
    (folder / "federation.toml").write_text(federation.to_toml(folder))
    for r in range(rounds_done + 1):
        checkpoint.write(folder, r, PARAMETERS)
    return folder


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (lambda out: None, "run folder {out}/run-1 does not exist; check the run id with `fedsage runs`"),
        (
            lambda out: (_stopped_run(out, "run-1", rounds_done=0) / "checkpoints" / "round-000.npz").unlink(),
            "run run-1 has no checkpoint",
        ),
        (
            lambda out: (_stopped_run(out, "run-1", rounds_done=2) / "federation.toml").write_text("[federation]\n"),
            "run run-1's configuration no longer loads: ",
        ),
        (
            lambda out: _stopped_run(out, "run-1", rounds_done=5),
            "run run-1 already has 5 rounds and asks for 5; nothing to",
        ),
    ],
)
@pytest.mark.parametrize("command", ["local", "launch"])
def test_resume_refusals_are_one_line(capsys, tmp_path, prepare, message, command):
    out = tmp_path / "runs"
    out.mkdir()
    prepare(out)
    assert_bad_input(
        capsys, command, "--resume", "run-1", "--out", str(out), message=message.format(out=out), folder=tmp_path
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seed", "3"], "--seed cannot be changed when resuming"),
        (["-c", "federation.toml"], "-c and --resume cannot be combined"),
    ],
)
def test_resume_keeps_the_runs_own_settings(capsys, tmp_path, args, message):
    out = tmp_path / "runs"
    _stopped_run(out, "run-1", rounds_done=2)
    assert_bad_input(capsys, "local", "--resume", "run-1", "--out", str(out), *args, message=message, folder=tmp_path)


def test_fedsage_runs_shows_a_partial_model_and_where_a_run_resumed(capsys, tmp_path):
    out = tmp_path / "runs"
    runs = (("a-stopped", True, {}), ("b-resumed", False, {"run_id": "a-stopped", "round": 3}))
    for run_id, partial, resumed in runs:
        summary = RunSummary(
            run_id=run_id,
            status="interrupted" if partial else "completed",
            reason="interrupted" if partial else "",
            backend="local",
            rounds=5,
            seconds=1.0,
            peak_memory_mb=None,
            versions={},
            clients={"client-1": ClientSummary("job", "Stopped")},
            rounds_completed=3 if partial else 5,
            partial=partial,
            resumed_from=resumed,
        )
        (out / run_id).mkdir(parents=True)
        write_json(out / run_id / "run.json", summary.to_dict())
    code, listing, _ = run_cli(capsys, "runs", "--out", str(out), "--json")
    assert code in (0, None)
    runs = {r["run_id"]: r for r in json.loads(listing)}
    assert (runs["a-stopped"]["partial"], runs["a-stopped"]["rounds_completed"]) == (True, 3)
    code, shown, _ = run_cli(capsys, "runs", "show", "a-stopped", "--out", str(out))
    assert "interrupted, partial model (round 3)" in shown
    code, shown, _ = run_cli(capsys, "runs", "show", "b-resumed", "--out", str(out))
    assert "resumed  run a-stopped after round 3" in shown
