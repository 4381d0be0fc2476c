"""`fedsage local`: the whole federation on this machine, no AWS.

Builds a federation from a prepared-data folder (or prepares a built-in data set into the run
folder), validates every channel the way its client will read it, and runs it on the local
backend: one OS process per client, each executing its CreateTrainingJob request in an
emulated SageMaker container.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import client_code
from orchestrator import config
from orchestrator.backends.local import LocalBackend
from orchestrator.data import datasets, layout
from orchestrator.data.prepare import PrepareOptions, PrepareSummary, prepare
from orchestrator.errors import BadInput
from orchestrator.plan import JobPlacement
from orchestrator.run import FederationRun, Observer, RunOutcome, check_local_channels, load_server_data, new_run_id


@dataclass(frozen=True)
class DataPrepared:
    """Event: the built-in data set was generated and split into the run folder."""

    dataset: str
    summary: PrepareSummary


@dataclass(frozen=True)
class LocalOptions:
    """The options of `fedsage local`."""

    clients: int | None = None
    rounds: int = 5
    data_dir: Path | None = None
    dataset: str = datasets.DEFAULT
    out: Path = Path("runs")
    min_clients: int | None = None
    max_iter: int = 10
    join_timeout: float = 120.0
    round_timeout: float = 300.0
    seed: int = 42


DEFAULT_CLIENTS = 3
LOCAL_IMAGE = "local-process"  # the local backend runs this machine's Python, not an image


def _federation(options: LocalOptions, prepared: layout.PreparedData) -> config.Federation:
    """The federation a local run executes, validated like a federation.toml."""
    return config.parse(
        {
            "federation": {
                "rounds": options.rounds,
                "min_clients": options.min_clients,
                "join_timeout": options.join_timeout,
                "round_timeout": options.round_timeout,
                "seed": options.seed,
            },
            "model": {"max_iter": options.max_iter},
            "server": {"test_data": str(prepared.test), "schema": str(prepared.root / layout.SCHEMA)},
            "clients": [
                {
                    "name": c.name,
                    "train_uri": c.train.resolve().as_uri(),
                    **({"validation_uri": c.validation.resolve().as_uri()} if c.validation else {}),
                }
                for c in prepared.clients
            ],
        },
        source="fedsage local",
    )


def _check_options(options: LocalOptions) -> None:
    if options.clients is not None and options.clients < 1:
        raise BadInput(f"--clients must be at least 1, got {options.clients}")
    if options.rounds < 1:
        raise BadInput(f"--rounds must be at least 1, got {options.rounds}")
    if options.data_dir is None:
        datasets.get(options.dataset)


def build_local_run(options: LocalOptions, observer: Observer = lambda event: None) -> FederationRun:
    """Validate the options and data and set up a run on the local backend, ready to execute.

    Raises BadInput before anything is written (a built-in data set is generated into the new
    run folder only once the options are known to be good).
    """
    _check_options(options)
    run_id = new_run_id()
    run_dir = Path(options.out) / run_id
    if options.data_dir is not None:
        prepared = layout.open_prepared(options.data_dir)
        if options.clients is not None and options.clients != len(prepared.clients):
            raise BadInput(
                f"--clients {options.clients} does not match the {len(prepared.clients)} client folders "
                f"in {options.data_dir}; drop --clients or prepare the data again"
            )
    else:
        dataset = datasets.get(options.dataset)
        prep = PrepareOptions(
            label=dataset.label,
            clients=options.clients or DEFAULT_CLIENTS,
            categorical=dataset.categorical,
            seed=options.seed,
        )
        summary = prepare(dataset.load(options.seed), prep, run_dir / "data", source=f"built-in:{dataset.name}")
        observer(DataPrepared(dataset.name, summary))
        prepared = layout.open_prepared(run_dir / "data")
    federation = _federation(options, prepared)
    server_data = load_server_data(federation)
    check_local_channels(federation, server_data)

    clients_dir = run_dir / "clients"
    return FederationRun(
        federation=federation,
        server_data=server_data,
        backend=LocalBackend(clients_dir, expected_jobs=len(federation.clients)),
        backend_name="local (one process per client)",
        run_id=run_id,
        run_dir=run_dir,
        placements={
            c.name: JobPlacement(
                code_uri=Path(client_code.__file__).parent.as_uri(),
                output_uri=(clients_dir / c.name / "output").resolve().as_uri(),
                image=LOCAL_IMAGE,
            )
            for c in federation.clients
        },
        observer=observer,
    )


def run_local(options: LocalOptions, observer: Observer = lambda event: None) -> RunOutcome:
    """Run a federation locally and return its outcome (see build_local_run)."""
    return build_local_run(options, observer).execute()
