"""`fedsage local`, `launch`, `status` and `stop`: run a federation and find its jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click
import typer

from orchestrator import defaults
from orchestrator.cli import banners
from orchestrator.cli.common import (
    STARTED,
    MlflowOption,
    OutOption,
    config_option,
    console,
    err_console,
)
from orchestrator.errors import BadInput
from orchestrator.text import plural

LOCAL_EPILOG = (
    "Examples:\n\n"
    "  fedsage local                          # 3 clients x 5 rounds on built-in data\n\n"
    "  fedsage local --clients 5 --rounds 10\n\n"
    "  fedsage local --dataset breast-cancer\n\n"
    "  fedsage local --dataset diabetes --model linear   # regression, exact federated ridge\n\n"
    "  fedsage local --model mlp --max-iter 5\n\n"
    "  fedsage local --data-dir prepared/     # folders from `fedsage data prepare`\n\n"
    "  fedsage local --data-dir owners/ --label potential_fraud   # raw exports: statistics phase\n\n"
    "  fedsage local --backend docker         # each client in a container, through SageMaker's toolkit\n\n"
    "  fedsage local -c runs/ID/federation.toml   # repeat a run (options given here override the file)\n\n"
    "  fedsage local --resume ID              # continue a stopped run from its last checkpoint\n\n"
    "  fedsage local --backend simulation --clients 100   # virtual clients (Flower's Simulation Engine)"
)


def local(
    clients: Annotated[
        int | None,
        typer.Option(
            help=f"Number of clients (default {defaults.CLIENTS}; with --data-dir, its client folders).", min=1
        ),
    ] = None,
    rounds: Annotated[
        int | None,
        typer.Option(help=f"Federated rounds [default: {defaults.ROUNDS}; linear 1, xgboost 20].", min=1),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Prepared data folder (from `fedsage data prepare`) instead of a built-in data set."),
    ] = None,
    dataset: Annotated[
        str, typer.Option(help="Built-in data set: synthetic-fraud, breast-cancer or diabetes (regression).")
    ] = defaults.DATASET,
    out: OutOption = Path(defaults.RUNS),
    min_clients: Annotated[
        int | None, typer.Option(help="Let rounds go on with this many clients if others fail (default: all).", min=1)
    ] = None,
    model: Annotated[
        str, typer.Option(help="Model family: logistic, sgd, mlp, linear (regression) or xgboost.")
    ] = "logistic",
    max_iter: Annotated[
        int | None,
        typer.Option(
            help=f"Local solver iterations (epochs for sgd and mlp) per round [default: {defaults.MAX_ITER}].", min=1
        ),
    ] = None,
    join_timeout: Annotated[
        float, typer.Option(help="Seconds every client has to join, counted from the last job's start.", min=1)
    ] = defaults.JOIN_TIMEOUT,
    round_timeout: Annotated[
        float, typer.Option(help="Seconds a client may take for one round.", min=1)
    ] = defaults.ROUND_TIMEOUT,
    seed: Annotated[int, typer.Option(help="Seed for data generation, splitting and the model.")] = defaults.SEED,
    balance: Annotated[
        str | None,
        typer.Option(
            help=f"Class balancing in each client's job: smote, class_weight or none [default: {defaults.BALANCE}; "
            "none for xgboost and a regression label]."
        ),
    ] = None,
    smote_ratio: Annotated[
        float | None,
        typer.Option(
            help=f"SMOTE target: minority rows as a share of the majority class [default: {defaults.SMOTE_RATIO}]."
        ),
    ] = None,
    positive_class: Annotated[
        str | None, typer.Option(help="The class binary metrics score (default: the minority class).")
    ] = None,
    label: Annotated[
        str | None,
        typer.Option(help="With a --data-dir of raw exports (no schema.json): the label column of every client."),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(help="binary, multiclass or regression (default: inferred from the label, announced)."),
    ] = None,
    backend: Annotated[
        str,
        typer.Option(
            click_type=click.Choice(["process", "docker", "simulation"]),
            help="process: one process per client; docker: one container per client, run by SageMaker's "
            "training toolkit in a `fedsage image build` image; simulation: virtual clients in Flower's "
            'Simulation Engine, for many clients (pip install "fedsage[simulation]").',
        ),
    ] = defaults.BACKEND,
    image: Annotated[
        str | None, typer.Option(help="docker: the training image (default fedsage-sklearn:<framework>).")
    ] = None,
    cpus: Annotated[
        float | None, typer.Option(help="docker: CPUs per container (default the instance type's vCPUs).", min=0.01)
    ] = None,
    memory: Annotated[
        str | None, typer.Option(help="docker: memory per container, e.g. 4g (default the instance type's).")
    ] = None,
    dependency_cache: Annotated[
        bool,
        typer.Option(help="docker: reuse dependencies an earlier job installed from the same wheels and image."),
    ] = True,
    network: Annotated[
        str, typer.Option(help="docker: the containers' network: host, none, or a network's name (README: Docker).")
    ] = "host",
    bind_address: Annotated[
        str | None,
        typer.Option(help="Address the server listens on and the clients dial (default 127.0.0.1)."),
    ] = None,
    mlflow: MlflowOption = None,
    strategy: Annotated[
        str | None,
        typer.Option(help="Aggregation strategy: fedavg, fedprox, fedmedian, krum, ... (README: Strategies)."),
    ] = None,
    strategy_param: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY=VALUE", help="A parameter of --strategy, e.g. num_malicious_clients=1 (repeat)."),
    ] = None,
    update_norm_factor: Annotated[
        float | None,
        typer.Option(
            help=f"Reject updates this many times the others' median norm, 0: off [default: "
            f"{defaults.UPDATE_NORM_FACTOR:g}]."
        ),
    ] = None,
    dp: Annotated[
        str | None,
        typer.Option(click_type=click.Choice(["central", "local"]), help="Differential privacy (README: Privacy)."),
    ] = None,
    clipping_norm: Annotated[float | None, typer.Option(help="DP: the L2 norm every update is clipped to.")] = None,
    noise_multiplier: Annotated[float | None, typer.Option(help="DP: noise sd as a multiple of the norm.")] = None,
    delta: Annotated[float | None, typer.Option(help="DP: the delta of (epsilon, delta).")] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="A federation.toml to run (a run folder's repeats that run); options given override it.",
        ),
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(metavar="RUN_ID", help="Continue this stopped run (under --out) from its last checkpoint."),
    ] = None,
) -> None:
    """Run a whole federation on this machine, no AWS: one process (or container) per client.

    Each client runs its CreateTrainingJob request as the SageMaker container would (its own
    /opt/ml tree, SM_* environment, hyperparameters as arguments; the program is fedsage_client.py,
    which runs client_code/train.py), connecting over TLS to a Flower server on 127.0.0.1. With
    --backend docker the real training toolkit runs it.
    """
    given = dict(locals())  # every option above, by the name LocalOptions gives it
    from orchestrator import api
    from orchestrator.cli.progress import RunView, print_outcome
    from orchestrator.config.model import default_rounds

    rounds = rounds or default_rounds(model)  # for the banner: the model kind's default when not given

    if config is not None or resume is not None:  # the file's values, but for the options given here
        context = click.get_current_context()
        source = click.core.ParameterSource.COMMANDLINE
        given = {name: value for name, value in given.items() if context.get_parameter_source(name) == source}
    given["strategy_parameters"] = _key_values(given.pop("strategy_param", None), "--strategy-param")
    mode = given.pop("dp", None)
    privacy: dict[str, object] = {"mode": mode} if mode else {}
    for key in ("clipping_norm", "noise_multiplier", "delta"):
        value = given.pop(key, None)
        if value is not None and not dp and config is None and resume is None:
            raise BadInput(f"--{key.replace('_', '-')} sets differential privacy; add --dp central or --dp local")
        privacy |= {key: value} if value is not None else {}
    given["privacy"] = privacy or None
    if config is not None or resume is not None:
        given = {name: value for name, value in given.items() if value is not None}
        banner = banners.file_banner(config, resume, given)
    else:
        banner = banners.local_banner(clients, rounds, model, data_dir, dataset)
    with RunView(console, banner) as view:
        outcome = api.local(observer=view, **given)
    print_outcome(console, outcome, STARTED)


def _key_values(pairs: list[str] | None, option: str) -> dict[str, float] | None:
    """KEY=VALUE texts as {key: number}; BadInput naming the option for a malformed pair or a key given twice."""
    values: dict[str, float] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if key.strip() in values:
            raise BadInput(f"{option} {key.strip()} is given twice; keep one {option} {key.strip()}=VALUE")
        try:
            values[key.strip()] = float(text) if "." in text or "e" in text.lower() else int(text)
        except ValueError:
            sep = ""
        if not sep or not key.strip():
            raise BadInput(f"{option} {pair!r} is not KEY=NUMBER, e.g. {option} num_malicious_clients=1")
    return values or None


LAUNCH_EPILOG = (
    "Examples:\n\n"
    "  fedsage launch -c federation.toml --dry-run   # the exact requests, per account; no AWS call\n\n"
    "  fedsage launch -c federation.toml"
)


def launch(
    config: Annotated[Path | None, config_option()] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the requests per account; make no AWS call.")
    ] = False,
    out: OutOption = Path(defaults.RUNS),
    mlflow: Annotated[
        str | None,
        typer.Option(metavar="URI", help="Log the run to this MLflow tracking URI instead of [tracking] mlflow_uri."),
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(metavar="RUN_ID", help="Continue this stopped run (under --out) from its last checkpoint."),
    ] = None,
) -> None:
    """Run the federation: one SageMaker training job in each client account, the Flower server here.

    Preflight first (roles assumable with their ExternalId, images, SageMaker limits), then the
    server starts, every job is created through its client's kickoff role, and the run is watched
    until every job has completed. Ctrl-C or a failure stops every job this run created. With
    --resume, the stopped run's own federation.toml is launched again from its last checkpoint.
    """
    from orchestrator import config as config_module
    from orchestrator import launch as launching
    from orchestrator import tracking
    from orchestrator.run import resume as resuming

    if (config is None) == (resume is None):
        raise click.UsageError("give either --config / -c or --resume RUN_ID")
    point = resuming.find(out, resume) if resume is not None else None
    federation = point.federation if point is not None else config_module.load(config)
    if mlflow is not None:
        experiment = federation.tracking.experiment
        federation.tracking = config_module.build(
            config_module.TrackingSettings, "--mlflow", mlflow_uri=mlflow, experiment=experiment
        )
    if dry_run:
        console.print_json(launching.dry_run_json(federation))
        err_console.print(f"the feature schema will come from {launching.schema_source(federation)}")
        return
    from orchestrator.aws.sessions import server_session
    from orchestrator.cli.progress import RunView, print_outcome

    tracker = tracking.tracker_for(federation)
    session = server_session(federation.server)
    accounts, rounds = plural(len(federation.clients), "client account"), plural(federation.federation.rounds, "round")
    resumed = f", resuming run {resume} after round {point.checkpoint.round}" if point is not None else ""
    console.print(f"[bold]fedsage launch[/]: {accounts} x {rounds}{resumed}")
    with RunView(console) as view:
        run = launching.build_launch(federation, session, out, observer=view, resume=point)
        for warning in run.warnings:
            console.print(f"[yellow]warning: {warning}[/]")
        outcome = tracking.execute(run, tracker)
    print_outcome(console, outcome, STARTED)


def _backend(config: Path, run_id: str | None):
    """The SageMaker backend of a config, with every kickoff role assumed (for status and stop)."""
    from orchestrator import config as config_module
    from orchestrator import launch as launching
    from orchestrator.aws.sessions import server_session

    federation = config_module.load(config)
    return launching.connect(federation, server_session(federation.server), run_id)


def _local_backend(backend: str, config: Path | None) -> bool:
    """True for --backend docker or process (no config needed); a SageMaker status or stop needs -c."""
    if backend in ("docker", "process"):
        return True
    if config is None:
        raise click.UsageError(
            "Missing option '--config' / '-c' (or use --backend docker or process for this machine's clients)"
        )
    return False


def _local_jobs(backend: str, run_id: str | None):
    """The client jobs of `fedsage local` on this machine: containers by label, or processes by their environment."""
    if backend == "process":
        from orchestrator.backends.process_runs import find_processes

        return [job for job, _ in find_processes(run_id)]
    from orchestrator.backends.docker_runs import find_containers
    from orchestrator.imagebuild.daemon import connect

    return find_containers(connect(), run_id)


OptionalAccountsConfig = Annotated[
    Path | None, config_option("naming the client accounts and kickoff roles (sagemaker)")
]
BackendOption = Annotated[
    str,
    typer.Option(
        click_type=click.Choice(["sagemaker", "docker", "process"]),
        help="sagemaker: training jobs in the client accounts (needs -c); docker: this machine's containers; "
        "process: this machine's client processes.",
    ),
]

STATUS_EPILOG = (
    "Examples:\n\n  fedsage status -c federation.toml\n\n"
    "  fedsage status -c federation.toml --run-id 20261121-101500-a1b2\n\n"
    "  fedsage status --backend docker        # containers of `fedsage local --backend docker`\n\n"
    "  fedsage status --backend process       # client processes of `fedsage local`"
)


def status(
    config: OptionalAccountsConfig = None,
    run_id: Annotated[str | None, typer.Option(help="Only this run's jobs (default: every run).")] = None,
    backend: BackendOption = "sagemaker",
) -> None:
    """Show the training jobs of a run (or of every run) in every client account, or this machine's containers."""
    from rich.table import Table

    if _local_backend(backend, config):
        jobs = _local_jobs(backend, run_id)
    else:
        jobs = _backend(config, run_id).find_jobs(run_id)
    table = Table(title=f"training jobs of {'run ' + run_id if run_id else 'every run'}", title_justify="left")
    for column in ("run", "client", "account", "job", "status", "detail"):  # the run id is copied: never cut
        widest = max((len(job.run_id) for job in jobs), default=3) if column == "run" else None
        table.add_column(column, overflow="fold", no_wrap=column == "run", min_width=widest)
    for job in jobs:
        s = job.status
        table.add_row(
            job.run_id,
            job.client,
            job.account_id or "local",
            s.name,
            f"{s.status} ({s.secondary_status})",
            s.failure_reason or s.model_artifact or "",
        )
    console.print(table if jobs else "no fedsage training jobs found in the client accounts")


STOP_EPILOG = (
    "Examples:\n\n  fedsage stop -c federation.toml --run-id 20261121-101500-a1b2\n\n"
    "  fedsage stop --backend docker --run-id 20261121-101500-a1b2   # leftover containers, by label\n\n"
    "  fedsage stop --backend process --run-id 20261121-101500-a1b2  # leftover client processes"
)


def stop(
    run_id: Annotated[str, typer.Option(help="The run whose jobs to stop (see fedsage status).")],
    config: OptionalAccountsConfig = None,
    backend: BackendOption = "sagemaker",
) -> None:
    """Stop every still-running training job of a run, in every client account (or its local containers)."""
    from orchestrator import launch as launching

    if backend == "process":
        from orchestrator.backends.process_runs import stop_processes

        for job in stop_processes(run_id):
            console.print(f"  {job.client} {job.status.name} ({job.status.secondary_status}): stopped")
        return
    if _local_backend(backend, config):
        from orchestrator.backends.docker_runs import remove_containers
        from orchestrator.imagebuild.daemon import connect

        for job, running in remove_containers(connect(), run_id):
            what = "stopped and removed" if running else f"removed ({job.status.secondary_status})"
            console.print(f"  {job.client} {job.status.name}: {what}")
        return
    for job, stopped in launching.stop_run(_backend(config, run_id), run_id):
        what = "stop requested" if stopped else f"already {job.status.status.lower()}"
        console.print(f"  {job.client} ({job.account_id}) {job.status.name}: {what}")
