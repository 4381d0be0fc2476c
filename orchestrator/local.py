"""`fedsage local`: the whole federation on this machine, no AWS.

Builds a federation from a prepared-data folder (or prepares a built-in data set into the run
folder and hands it over in memory), checks every channel the way its client will read it,
and runs it on the process backend: one OS process per client, each executing its
CreateTrainingJob request in an emulated SageMaker container.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from client_code.tabular import DataError, read_csv_folder
from orchestrator import config, defaults, tracking
from orchestrator.backends.process import ProcessBackend
from orchestrator.data import datasets, layout
from orchestrator.data.prepare import PrepareOptions, prepare
from orchestrator.errors import BadInput
from orchestrator.run.events import DataPrepared, Observer, ignore
from orchestrator.run.folder import RunFolder, new_run_id
from orchestrator.run.inputs import ServerData, server_data
from orchestrator.run.lifecycle import FederationRun, RunOutcome


@dataclass(frozen=True)
class LocalOptions:
    """The options of `fedsage local`; None takes the default of orchestrator/defaults.py."""

    clients: int | None = None
    rounds: int | None = None
    data_dir: Path | None = None
    dataset: str = defaults.DATASET
    out: Path = Path(defaults.RUNS)
    min_clients: int | None = None
    max_iter: int | None = None
    join_timeout: float | None = None
    round_timeout: float | None = None
    seed: int | None = None
    mlflow: str | None = None  # an MLflow tracking URI, recorded as [tracking] mlflow_uri (orchestrator/tracking.py)

    def given(self, *names: str) -> dict[str, object]:
        """The options among `names` that were set (not None), by name."""
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


SOURCE = "fedsage local"
Settings = tuple[config.RunSettings, config.ModelSettings]  # [federation] and [model], from the options


def _settings(options: LocalOptions) -> Settings:
    """The [federation] and [model] sections the options give, validated before anything is written."""
    run = options.given("rounds", "min_clients", "join_timeout", "round_timeout", "seed")
    return config.build(config.RunSettings, SOURCE, **run), config.build(
        config.ModelSettings, SOURCE, **options.given("max_iter")
    )


def _federation(
    settings: Settings,
    test: Path,
    schema: Path,
    clients: list[layout.ClientFolders],
    mlflow: str | None = None,
) -> config.Federation:
    """The federation a local run executes, validated like a federation.toml."""
    source = SOURCE
    return config.build(
        config.Federation,
        source,
        federation=settings[0],
        model=settings[1],
        tracking=config.build(config.TrackingSettings, source, mlflow_uri=mlflow),
        server=config.build(config.ServerSettings, source, test_data=test, schema_path=schema),
        clients=[
            config.build(
                config.ClientSettings,
                source,
                name=c.name,
                train_uri=c.train.resolve().as_uri(),
                validation_uri=c.validation.resolve().as_uri() if c.validation else None,
            )
            for c in clients
        ],
    )


def _check_min_clients(options: LocalOptions, clients: int) -> None:
    """--min-clients above the number of clients is bad input, named by its option, before anything is written."""
    if options.min_clients is not None and options.min_clients > clients:
        raise BadInput(
            f"--min-clients {options.min_clients} is more than the {clients} clients; lower it or add clients"
        )


def _prepared_folder(options: LocalOptions) -> tuple[list[layout.ClientFolders], Path, Path, ServerData]:
    """A prepared-data folder's clients, test set and schema paths, and the server's data (each file read once)."""
    assert options.data_dir is not None
    prepared = layout.open_prepared(options.data_dir)
    if options.clients is not None and options.clients != len(prepared.clients):
        raise BadInput(
            f"--clients {options.clients} does not match the {len(prepared.clients)} client folders "
            f"in {options.data_dir}; drop --clients or prepare the data again"
        )
    try:
        test = read_csv_folder(prepared.test)
    except DataError as exc:
        raise BadInput(str(exc)) from None
    data = server_data(prepared.schema, test, str(prepared.test))
    return prepared.clients, prepared.test, prepared.root / layout.SCHEMA, data


def _builtin(
    options: LocalOptions,
    settings: Settings,
    folder: RunFolder,
    observer: Observer,
) -> tuple[config.Federation, ServerData]:
    """Generate and split a built-in data set into the new run folder; hand the server's part over in memory."""
    dataset = datasets.get(options.dataset)
    prep = PrepareOptions(
        label=dataset.label,
        clients=options.clients or defaults.CLIENTS,
        categorical=dataset.categorical,
        seed=settings[0].seed,
    )
    folder.create()
    try:
        summary = prepare(dataset.load(prep.seed), prep, folder.path("data"), source=f"built-in:{dataset.name}")
        clients, test = layout.client_folders(summary.out), summary.out / layout.TEST
        federation = _federation(settings, test, summary.out / layout.SCHEMA, clients, options.mlflow)
    except BaseException:  # bad input (or Ctrl-C) before the run starts leaves nothing behind
        shutil.rmtree(folder.root, ignore_errors=True)
        raise
    observer(DataPrepared(dataset.name, summary))
    return federation, server_data(summary.schema, summary.test, str(test))


def build_local_run(options: LocalOptions, observer: Observer = ignore) -> FederationRun:
    """Validate the options and data and set up a run on the process backend, ready to execute.

    Raises BadInput before anything is written; a built-in data set is generated into the new
    run folder only once the options are known to be good, and handed to the run in memory
    (it is not read back: only a --data-dir folder is read and checked here).
    """
    settings = _settings(options)
    if options.data_dir is None:
        datasets.get(options.dataset)  # an unknown name is bad input before anything is written
        _check_min_clients(options, options.clients or defaults.CLIENTS)
    folder = RunFolder.new(options.out, new_run_id())
    folder.check_writable()
    if options.data_dir is not None:
        clients, test, schema, data = _prepared_folder(options)
        _check_min_clients(options, len(clients))
        federation = _federation(settings, test, schema, clients, options.mlflow)
    else:
        federation, data = _builtin(options, settings, folder, observer)
    backend = ProcessBackend(folder.clients, len(federation.clients), code_dir=folder.path("code"))
    if options.data_dir is not None:
        backend.check_inputs(federation, data)
    return FederationRun(federation, data, backend, folder, observer)


def run_local(options: LocalOptions, observer: Observer = ignore) -> RunOutcome:
    """Run a federation locally and return its outcome (see build_local_run).

    With `options.mlflow`, the tracking store is checked first (BadInput, nothing written) and
    the run folder is logged to MLflow once the run has ended (orchestrator/tracking.py).
    """
    tracker = tracking.Tracker.connect(options.mlflow, _settings(options)[0].name) if options.mlflow else None
    return tracking.execute(build_local_run(options, observer), tracker)
