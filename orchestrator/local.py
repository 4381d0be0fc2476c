"""`fedsage local`: the whole federation on this machine, no AWS.

Builds a federation from a prepared-data folder (or prepares a built-in data set into the run
folder and hands it over in memory), checks every channel the way its client will read it
(while the jobs start: run/startup.py), and runs it on the process backend (one OS process per
client, started as SageMaker's training toolkit would start it) or the docker backend
(`--backend docker`: one container per client, run by the real toolkit in a local training image
from `fedsage image build`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator import config, defaults, overrides, tracking
from orchestrator.backends.process import ProcessBackend
from orchestrator.config.strategy import check, strategy_parameters
from orchestrator.data import datasets, layout
from orchestrator.data.cache import prepared_builtin
from orchestrator.data.options import PrepareOptions
from orchestrator.errors import BadInput
from orchestrator.run import resume
from orchestrator.run.events import DataPrepared, Observer, ignore
from orchestrator.run.folder import RunFolder, new_run_id
from orchestrator.run.lifecycle import FederationRun, RunOutcome
from orchestrator.run.startup import Inputs

if TYPE_CHECKING:
    from orchestrator.backends import Backend
    from orchestrator.backends.docker import DockerBackend
    from orchestrator.backends.simulation import SimulationBackend
    from orchestrator.run.inputs import ServerData


@dataclass(frozen=True)
class LocalOptions:
    """The options of `fedsage local`; None takes the default of orchestrator/defaults.py."""

    clients: int | None = None
    rounds: int | None = None
    data_dir: Path | None = None
    dataset: str = defaults.DATASET
    out: Path = Path(defaults.RUNS)
    min_clients: int | None = None
    model: str | None = None
    max_iter: int | None = None
    join_timeout: float | None = None
    round_timeout: float | None = None
    seed: int | None = None
    balance: str | None = None
    smote_ratio: float | None = None
    positive_class: str | None = None
    label: str | None = None
    task: str | None = None
    backend: str | None = None
    image: str | None = None
    cpus: float | None = None
    memory: str | None = None
    dependency_cache: bool | None = None
    network: str | None = None
    bind_address: str | None = None
    mlflow: str | None = None  # an MLflow tracking URI, recorded as [tracking] mlflow_uri (orchestrator/tracking.py)
    strategy: str | None = None  # [federation] strategy
    strategy_parameters: dict[str, float] | None = None  # its [strategy] table, by Flower's names
    update_norm_factor: float | None = None  # [federation] update_norm_factor (0: off)
    privacy: dict[str, object] | None = None  # the [privacy] table: mode, clipping_norm, noise_multiplier, delta
    config: Path | None = None  # a federation.toml (a run's saved one) to run (orchestrator/overrides.py)
    resume: str | None = None  # the id of a stopped run under `out` to continue (run/resume.py)

    def __post_init__(self) -> None:
        """Accept str paths from Python callers: data_dir and out become Paths."""
        for name in ("data_dir", "out", "config"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))

    @classmethod
    def of(cls, options: LocalOptions | None = None, **fields: object) -> LocalOptions:
        """`options` (default: all defaults) with `fields` replaced; BadInput naming a field that does not exist."""
        unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            known = ", ".join(f.name for f in dataclasses.fields(cls))
            raise BadInput(f"unknown option {unknown[0]!r} of a local run; the options are: {known}")
        return dataclasses.replace(options or cls(), **fields)

    def given(self, *names: str) -> dict[str, object]:
        """The options among `names` that were set (not None), by name."""
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def overrides(self) -> dict[str, Any]:
        """With `config` or `resume`: the options that replace the file's values (a non-default data set too)."""
        given = self.given(*overrides.TARGETS, *overrides.TABLES, "clients", "data_dir")
        return given | ({"dataset": self.dataset} if self.dataset != defaults.DATASET else {})


SOURCE = "fedsage local"
OPTIONS = {"kind": "--model", "mode": "--dp"}  # config keys whose option has another name (the rest: --key-name)
Settings = tuple[config.RunSettings, Any, config.DataSettings]  # from the options ([model] is a union)
Placement = tuple[config.LocalSettings, config.ContainerSettings]  # [local], and [container] from the image


def _settings(options: LocalOptions) -> Settings:
    """The [federation], [model] and [data] sections the options give, validated before anything is written."""
    run = options.given(
        "rounds", "min_clients", "join_timeout", "round_timeout", "seed", "strategy", "update_norm_factor"
    )
    model = {
        ("kind" if k == "model" else k): v
        for k, v in options.given("model", "max_iter", "balance", "smote_ratio").items()
    }
    data = options.given("positive_class", "label", "task")
    return (
        config.build(config.RunSettings, SOURCE, options=_options(run), **run),
        config.build(config.model_settings, SOURCE, options=_options(model), **model),
        config.build(config.DataSettings, SOURCE, options=_options(data), **data),
    )


def _options(values: dict[str, object]) -> dict[str, str]:
    """The command-line option of each key in `values` ({"kind": "--model", "max_iter": "--max-iter"})."""
    return {key: OPTIONS.get(key, "--" + key.replace("_", "-")) for key in values}


def _federation(
    settings: Settings,
    test: Path,
    schema: Path | None,
    clients: list[layout.ClientFolders],
    placement: Placement,
    mlflow: str | None = None,
    strategy: dict[str, float] | None = None,
    privacy: dict[str, object] | None = None,
) -> config.Federation:
    """The federation a local run executes, validated like a federation.toml (`strategy`: its [strategy] table)."""
    source = SOURCE
    return config.build(
        config.Federation,
        source,
        federation=settings[0],
        model=settings[1],
        data=settings[2],
        local=placement[0],
        container=placement[1],
        tracking=config.build(config.TrackingSettings, source, mlflow_uri=mlflow),
        strategy=dict(strategy or {}),
        privacy=config.build(config.PrivacySettings, source, **(privacy or {})),
        server=config.build(
            config.ServerSettings, source, test_data=test, schema_path=schema, **placement[0].server_address()
        ),
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


def _check_clients(options: LocalOptions, settings: Settings, clients: int) -> None:
    """--min-clients, the strategy's parameters and privacy against the number of clients, before anything is written.

    BadInput naming the option (clients, min_clients) or the config key (config/strategy.py `check`).
    """
    if clients < defaults.MIN_CLIENTS:
        given = f"data folder {options.data_dir} has 1 client folder" if options.data_dir else f"--clients {clients}"
        fix = (
            "prepare it with --clients 2 or more"
            if options.data_dir
            else f"use --clients {defaults.MIN_CLIENTS} or more"
        )
        raise BadInput(defaults.too_few_clients(given, fix))
    if options.min_clients is not None and options.min_clients > clients:
        raise BadInput(
            f"--min-clients {options.min_clients} is more than the {clients} clients; lower it or add clients"
        )
    run = settings[0]
    privacy = config.build(
        config.PrivacySettings, SOURCE, options=_options(options.privacy or {}), **(options.privacy or {})
    )
    try:
        parameters = strategy_parameters(run.strategy, dict(options.strategy_parameters or {}))
        check(run.strategy, parameters, privacy, clients, run.min_clients)
    except ValueError as exc:
        raise BadInput(f"{SOURCE}: {exc}") from None


def _prepared_folder(
    options: LocalOptions,
) -> tuple[list[layout.ClientFolders], Path, Path | None]:
    """A data folder's clients, and its test set and schema paths (schema None: the statistics phase computes one).

    A folder without schema.json (the owners' raw exports) needs --label: the statistics phase
    computes the schema. The schema and the test set are read when the run checks its inputs
    (run/startup.py), while its jobs start.
    """
    assert options.data_dir is not None
    prepared = layout.open_prepared(options.data_dir, require_schema=False, read_schema=False)
    schema = prepared.root / layout.SCHEMA
    if not schema.is_file() and options.label is None:
        raise BadInput(
            f"data folder {options.data_dir} has no {layout.SCHEMA}: give --label so the statistics phase can "
            "compute the schema from the clients' data, or prepare it with `fedsage data prepare`"
        )
    if options.clients is not None and options.clients != len(prepared.clients):
        raise BadInput(
            f"--clients {options.clients} does not match the {len(prepared.clients)} client folders "
            f"in {options.data_dir}; drop --clients or prepare the data again"
        )
    return prepared.clients, prepared.test, schema if schema.is_file() else None


def _builtin(
    options: LocalOptions,
    settings: Settings,
    placement: Placement,
    folder: RunFolder,
    observer: Observer,
) -> tuple[config.Federation, Inputs]:
    """Generate and split a built-in data set into the new run folder (or copy it from the cache).

    The server's part is handed over in memory when it was just generated; either way it is
    encoded by the run's input check, while the jobs start (run/startup.py).
    """
    dataset = datasets.get(options.dataset)
    prep = PrepareOptions(
        label=dataset.label,
        clients=options.clients or defaults.CLIENTS,
        categorical=dataset.categorical,
        seed=settings[0].seed,
        positive_class=options.positive_class,
        task=settings[2].task,
    )
    folder.create()
    try:
        summary = prepared_builtin(dataset, prep, folder.path("data"))
        clients, test = layout.client_folders(summary.out), summary.out / layout.TEST
        federation = _federation(
            settings,
            test,
            summary.out / layout.SCHEMA,
            clients,
            placement,
            options.mlflow,
            options.strategy_parameters,
            options.privacy,
        )
        federation.check_task(summary.schema)  # e.g. --model linear on a classification label
    except BaseException:  # bad input (or Ctrl-C) before the run starts leaves nothing behind
        folder.discard()
        raise
    observer(DataPrepared(dataset.name, summary))
    if summary.test is None:  # copied from the cache: the run's input check reads it, while the jobs start
        return federation, partial(_read_test_set, test, summary.schema)
    from orchestrator.run.inputs import server_data

    return federation, partial(server_data, summary.schema, summary.test, str(test), encode=False)


def _read_test_set(test: Path, schema: dict[str, Any] | None, label: str | None = None) -> ServerData:
    """run/inputs.py `read_server_data`, imported here: the data stack is not needed before the jobs' launch.

    The rows are checked against the schema's columns (without a schema: for the `label` column)
    here and encoded by the server thread after the statistics phase, while the clients read
    theirs (run/inputs.py `server_data`).
    """
    from orchestrator.run.inputs import read_server_data

    return read_server_data(test, schema, encode=False, label=label)  # encoded by the server thread


def _checked(
    federation: config.Federation, backend: Backend, schema: Callable[[], dict[str, Any] | None], test: Path
) -> Inputs:
    """The run's input check (run/startup.py): the `schema` (file), the task, every channel's header, the `test` set.

    Runs while the jobs start (the local backends' `launch_while_checking`); BadInput for a schema
    the model cannot learn (e.g. --model linear on a classification label), or for a test set or
    channel that is unusable, naming the client and the file. The headers come first: they take
    milliseconds, the test set's reading and encoding (with scikit-learn's import) about a second.
    """

    def check() -> ServerData:
        known = schema()  # (run/inputs.py server_schema)
        if known is not None:
            federation.check_task(known)
        backend.check_inputs(federation, known)
        return _read_test_set(test, known, federation.data.label)

    return check


def _server_schema(federation: config.Federation) -> dict[str, Any] | None:
    """run/inputs.py `server_schema`, imported when the check runs (as `_read_test_set`)."""
    from orchestrator.run.inputs import server_schema

    return server_schema(federation)


def _docker(clients: int, local: config.LocalSettings, folder: RunFolder) -> DockerBackend:
    """The docker backend of a run: daemon, image and code archive checked before anything is written."""
    from orchestrator.backends.docker import DockerBackend
    from orchestrator.backends.instances import Limits, parse_memory

    limits = None
    if local.cpus or local.memory:
        limits = Limits(local.cpus, parse_memory(local.memory) if local.memory else None)
    return DockerBackend.connect(
        folder.clients,
        clients,
        image=local.image,
        framework=config.ContainerSettings().framework_version,
        limits=limits,
        cache=local.dependency_cache,
        network=local.network,
    )


def _simulation(local: config.LocalSettings, folder: RunFolder) -> SimulationBackend | None:
    """The simulation backend for --backend simulation (None for the others); BadInput naming the extra without Ray."""
    if local.backend != "simulation":
        return None
    from orchestrator.backends.simulation import SimulationBackend, check_installed

    check_installed()
    return SimulationBackend(folder.clients.resolve().as_uri())


def build_local_run(options: LocalOptions, observer: Observer = ignore) -> FederationRun:
    """Validate the options and data and set up a run on the process or docker backend, ready to execute.

    Raises BadInput before anything is written (for docker also: no daemon, no image); a
    built-in data set is generated into the new run folder only once the options are known to
    be good, and handed to the run in memory (it is not read back). A --data-dir folder's test
    set and channels are read and checked by the run while its jobs start (`_checked`,
    run/startup.py): bad input found there still ends it with nothing left behind.
    """
    if options.config is not None or options.resume is not None:
        return _from_file(options, observer)
    settings = _settings(options)
    local = config.build(
        config.LocalSettings,
        SOURCE,
        **options.given("backend", "image", "cpus", "memory", "dependency_cache", "network", "bind_address"),
    )
    if options.data_dir is None:
        dataset = datasets.get(options.dataset)  # an unknown name is bad input before anything is written
        options = replace(options, task=options.task or dataset.task)
    settings = _settings(options)
    if options.data_dir is None:
        _check_clients(options, settings, options.clients or defaults.CLIENTS)
    if local.backend == "simulation":
        from orchestrator.backends.simulation import check_installed

        check_installed()  # BadInput naming the extra, before anything is written
    folder = RunFolder.new(options.out, new_run_id())
    folder.check_writable()
    docker = _docker(options.clients or defaults.CLIENTS, local, folder) if local.backend == "docker" else None
    container = docker.container_settings() if docker else config.ContainerSettings()
    placement = (local, container)
    inputs: Inputs
    if options.data_dir is not None:
        clients, test, schema_path = _prepared_folder(options)
        _check_clients(options, settings, len(clients))
        federation = _federation(
            settings,
            test,
            schema_path,
            clients,
            placement,
            options.mlflow,
            options.strategy_parameters,
            options.privacy,
        )
    else:
        federation, inputs = _builtin(options, settings, placement, folder, observer)
    backend = (
        docker
        or _simulation(local, folder)
        or ProcessBackend(folder.clients, len(federation.clients), code_dir=folder.path("code"))
    )
    if options.data_dir is not None:  # the schema file is read by the check, as -c's is
        inputs = _checked(federation, backend, partial(_server_schema, federation), test)
    return FederationRun(federation, inputs, backend, folder, observer)


# what --resume may change: how long the run goes on, where its jobs run, where it is logged
RESUME_OPTIONS = frozenset(
    {"rounds", "join_timeout", "round_timeout", "mlflow", "backend", "image", "cpus", "memory", "dependency_cache"}
    | {"network", "bind_address"}
)


def _from_file(options: LocalOptions, observer: Observer) -> FederationRun:
    """A run of a federation.toml (`config`) or the continuation of a stopped run (`resume`), with the overrides.

    BadInput before anything is written: -c with --resume, an option that chooses the data,
    an option --resume cannot change (the model, the seed, ...), and whatever run/resume.py
    refuses; the data checks run while the jobs start (`_checked`), leaving nothing behind either.
    """
    given = options.overrides()
    point = None
    if options.resume is not None:
        if options.config is not None:
            raise BadInput("-c and --resume cannot be combined: --resume runs the stopped run's own federation.toml")
        fixed = next((name for name in given if name not in RESUME_OPTIONS), None)
        if fixed is not None:
            raise BadInput(
                f"{overrides.option_name(fixed)} cannot be changed when resuming: the run goes on with its own "
                "data, model and seed; drop the option (or start a new run with -c and the option)"
            )
        source = f"run {options.resume}'s federation.toml"
        point = resume.find(options.out, options.resume, lambda data, _: overrides.apply(data, given, source))
        federation = point.federation
    else:
        assert options.config is not None
        federation = config.load(options.config, lambda data, source: overrides.apply(data, given, source))
    folder = RunFolder.new(options.out, new_run_id())
    folder.check_writable()
    local = federation.local
    docker = _docker(len(federation.clients), local, folder) if local.backend == "docker" else None
    backend = (
        docker
        or _simulation(local, folder)
        or ProcessBackend(folder.clients, len(federation.clients), code_dir=folder.path("code"))
    )
    inputs = _checked(federation, backend, partial(_server_schema, federation), federation.server.test_data)
    return FederationRun(federation, inputs, backend, folder, observer, resume=point)


def run_local(options: LocalOptions, observer: Observer = ignore) -> RunOutcome:
    """Run a federation locally and return its outcome (see build_local_run).

    With `options.mlflow` (or, for -c and --resume, the file's [tracking]), the tracking store is
    checked first (BadInput, nothing written) and the run folder is logged to MLflow once the run
    has ended (orchestrator/tracking.py).
    """
    if options.config is not None or options.resume is not None:
        run = build_local_run(options, observer)  # writes nothing before it executes
        return tracking.execute(run, tracking.tracker_for(run.federation))
    tracker = tracking.Tracker.connect(options.mlflow, _settings(options)[0].name) if options.mlflow else None
    return tracking.execute(build_local_run(options, observer), tracker)
