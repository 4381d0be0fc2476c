"""The simulation backend: the same clients, server, validation and run folder through Flower's Simulation Engine."""

import json

import numpy as np
import pytest

from orchestrator.backends import COMPLETED
from orchestrator.backends.simulation import SimulationBackend
from orchestrator.errors import BadInput
from orchestrator.local import LocalOptions, build_local_run


def _options(prepared_dir, tmp_path, backend, **overrides):
    values = {
        "data_dir": prepared_dir,
        "out": tmp_path / backend,
        "rounds": 3,
        "seed": 5,
        "join_timeout": 120,
        "round_timeout": 120,
        "backend": backend,
    }
    return LocalOptions(**{**values, **overrides})


def test_without_ray_the_backend_names_the_extra(prepared_dir, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(
        BadInput, match=r'needs Flower\'s Simulation Engine \(Ray\): pip install "fedsage\[simulation\]"'
    ):
        build_local_run(_options(prepared_dir, tmp_path, "simulation"))
    assert not (tmp_path / "simulation").exists()  # nothing written


def test_a_federation_toml_with_the_simulation_backend_runs_on_it(prepared_dir, tmp_path):
    """-c federation.toml (and --resume, which reads the run's saved one) honour [local] backend = "simulation"."""
    federation = build_local_run(_options(prepared_dir, tmp_path, "simulation")).federation
    path = tmp_path / "federation.toml"
    path.write_text(federation.to_toml())
    run = build_local_run(LocalOptions(config=path, out=tmp_path / "again"))
    assert run.federation.local.backend == "simulation"
    assert isinstance(run.backend, SimulationBackend)
    assert not (tmp_path / "again").exists() or not any((tmp_path / "again").iterdir())  # nothing written yet


def test_virtual_jobs_run_until_the_federation_ends(tmp_path):
    backend = SimulationBackend((tmp_path / "clients").as_uri())
    backend.launch({"TrainingJobName": "fedsage-run-a", "Tags": []})
    assert backend.poll("fedsage-run-a").secondary_status == "Training"
    backend.ended()
    assert backend.poll("fedsage-run-a").status == COMPLETED
    assert backend.stop("fedsage-run-a") is False


@pytest.mark.slow
def test_simulation_equals_the_process_backend(prepared_dir, tmp_path):
    pytest.importorskip("ray", reason="the simulation backend needs Ray: pip install 'fedsage[simulation]'")
    finals, outcomes = {}, {}
    for backend in ("process", "simulation"):
        run = build_local_run(_options(prepared_dir, tmp_path, backend))
        outcomes[backend] = run.execute()
        finals[backend] = run._server.final_parameters()

    assert len(finals["process"]) == len(finals["simulation"])
    for ours, theirs in zip(finals["simulation"], finals["process"], strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)
    simulated, process = outcomes["simulation"], outcomes["process"]
    assert len(simulated.history.rounds) == len(process.history.rounds) == 4  # round 0 and 3 rounds
    for ours, theirs in zip(simulated.history.rounds, process.history.rounds, strict=True):
        assert ours.server == pytest.approx(theirs.server, abs=1e-9)
    assert {c: j.status for c, j in simulated.jobs.items()} == dict.fromkeys(
        ["client-1", "client-2", "client-3"], COMPLETED
    )
    summary = json.loads((simulated.run_dir / "run.json").read_text())
    assert summary["status"] == "completed"
    assert summary["backend"].startswith("simulation")
    assert (simulated.run_dir / "model.joblib").is_file() and (simulated.run_dir / "report.md").is_file()
    # every client answered the statistics phase and trained every round, under its own name
    assert sorted(simulated.history.final().clients) == ["client-1", "client-2", "client-3"]


@pytest.mark.slow
def test_a_ray_node_stops_whole_and_the_next_one_starts_after_it():
    """The node's processes (raylet, gcs_server, agents, an actor's worker) are gone once it is stopped."""
    pytest.importorskip("ray", reason="the simulation backend needs Ray: pip install 'fedsage[simulation]'")
    import psutil
    import ray

    from orchestrator.backends.ray_node import RayNode

    @ray.remote(num_cpus=1)
    class Echo:
        def echo(self, value):
            return value

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    trees = []
    for _ in range(2):  # the second starts once the first is stopped: Ray's driver is one per process
        node = RayNode(1)
        with node.running():
            assert ray.get(Echo.remote().echo.remote(7)) == 7
            trees.append([p for p in psutil.Process().children(recursive=True) if p.pid not in before])
            assert {"raylet", "gcs_server"} <= {p.name() for p in trees[-1]}
        assert node.wait(60)
        _, alive = psutil.wait_procs(trees[-1], timeout=0)
        assert alive == []
    assert not ray.is_initialized()
