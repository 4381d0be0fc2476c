"""Shared fixtures: small prepared data sets and helpers to run real federations on loopback."""

import os
import shutil
from pathlib import Path

os.environ["FLWR_TELEMETRY_ENABLED"] = "0"  # no network beyond 127.0.0.1, ever

import pytest

from orchestrator.data import layout
from orchestrator.data.prepare import PrepareOptions, prepare
from orchestrator.data.synth import LABEL, generate_fraud


@pytest.fixture(scope="session")
def fraud_frame():
    """4,000 synthetic providers: big enough to learn, small enough to be quick."""
    return generate_fraud(rows=4000, seed=7)


@pytest.fixture(scope="session")
def prepared_dir(tmp_path_factory, fraud_frame) -> Path:
    """A prepared-data folder with 3 clients (read-only: copy it before changing it)."""
    out = tmp_path_factory.mktemp("prepared") / "data"
    prepare(fraud_frame, PrepareOptions(label=LABEL, clients=3, categorical=("region",), seed=7), out)
    return out


@pytest.fixture
def data_copy(prepared_dir, tmp_path) -> Path:
    """A private copy of the prepared data that a test may break."""
    target = tmp_path / "data"
    shutil.copytree(prepared_dir, target)
    return target


@pytest.fixture
def prepared(prepared_dir) -> layout.PreparedData:
    return layout.open_prepared(prepared_dir)


RUN_OUTPUTS = (
    "model.joblib",
    "model.joblib.sha256",
    "metrics.json",
    "metrics.csv",
    "metrics.png",
    "report.md",
    "run.json",
    "federation.toml",
    "server.log",
)


@pytest.fixture
def assert_run_outputs():
    """Check a finished run folder holds every file the run promises."""

    def check(run_dir: Path) -> None:
        for name in RUN_OUTPUTS:
            assert (run_dir / name).is_file(), name

    return check
