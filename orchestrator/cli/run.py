"""`fedsage local`, `launch`, `status` and `stop`: run a federation and find its jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator import defaults
from orchestrator.cli.common import ConfigOption, OutOption, config_option, console, err_console

LOCAL_EPILOG = (
    "Examples:\n\n"
    "  fedsage local                          # 3 clients x 5 rounds on built-in data\n\n"
    "  fedsage local --clients 5 --rounds 10\n\n"
    "  fedsage local --dataset breast-cancer\n\n"
    "  fedsage local --dataset diabetes --model linear   # regression, exact federated ridge\n\n"
    "  fedsage local --model mlp --max-iter 5\n\n"
    "  fedsage local --data-dir prepared/     # folders from `fedsage data prepare`\n\n"
    "  fedsage local --data-dir owners/ --label potential_fraud   # raw exports: statistics phase"
)


def local(
    clients: Annotated[
        int | None,
        typer.Option(
            help=f"Number of clients (default {defaults.CLIENTS}; with --data-dir, its client folders).", min=1
        ),
    ] = None,
    rounds: Annotated[int, typer.Option(help="Federated rounds.", min=1)] = defaults.ROUNDS,
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
        float, typer.Option(help="Seconds to wait for all clients to join.", min=1)
    ] = defaults.JOIN_TIMEOUT,
    round_timeout: Annotated[
        float, typer.Option(help="Seconds a client may take for one round.", min=1)
    ] = defaults.ROUND_TIMEOUT,
    seed: Annotated[int, typer.Option(help="Seed for data generation, splitting and the model.")] = defaults.SEED,
    balance: Annotated[
        str | None,
        typer.Option(
            help=f"Class balancing in each client's job: smote, class_weight or none [default: {defaults.BALANCE}; "
            "none for a regression label]."
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
) -> None:
    """Run a whole federation on this machine, no AWS: one process per client.

    Each client runs its training job's program (fedsage_client.py, which runs client_code/train.py)
    exactly as the SageMaker container would (its own /opt/ml tree, SM_* environment,
    hyperparameters as arguments), connecting over TLS to a Flower server on 127.0.0.1.
    """
    from orchestrator.cli.progress import RunView, print_outcome
    from orchestrator.local import LocalOptions, run_local

    options = LocalOptions(
        clients=clients,
        rounds=rounds,
        data_dir=data_dir,
        dataset=dataset,
        out=out,
        min_clients=min_clients,
        model=model,
        max_iter=max_iter,
        join_timeout=join_timeout,
        round_timeout=round_timeout,
        seed=seed,
        balance=balance,
        smote_ratio=smote_ratio,
        positive_class=positive_class,
        label=label,
        task=task,
    )
    source = f"data in {data_dir}" if data_dir else f"built-in data set '{dataset}'"
    console.print(
        f"[bold]fedsage local[/]: {clients or ('all' if data_dir else defaults.CLIENTS)} clients x {rounds} rounds "
        f"of a {model} model on {source}"
    )
    with RunView(console) as view:
        outcome = run_local(options, observer=view)
    print_outcome(console, outcome)


LAUNCH_EPILOG = (
    "Examples:\n\n"
    "  fedsage launch -c federation.toml --dry-run   # the exact requests, per account; no AWS call\n\n"
    "  fedsage launch -c federation.toml"
)


def launch(
    config: ConfigOption,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the requests per account; make no AWS call.")
    ] = False,
    out: OutOption = Path(defaults.RUNS),
) -> None:
    """Run the federation: one SageMaker training job in each client account, the Flower server here.

    Preflight first (roles assumable with their ExternalId, images, SageMaker limits), then the
    server starts, every job is created through its client's kickoff role, and the run is watched
    until every job has completed. Ctrl-C or a failure stops every job this run created.
    """
    from orchestrator import config as config_module
    from orchestrator import launch as launching

    federation = config_module.load(config)
    if dry_run:
        console.print_json(launching.dry_run_json(federation))
        err_console.print(f"the feature schema will come from {launching.schema_source(federation)}")
        return
    from orchestrator.aws.sessions import server_session
    from orchestrator.cli.progress import RunView, print_outcome

    session = server_session(federation.server)
    console.print(
        f"[bold]fedsage launch[/]: {len(federation.clients)} client accounts x {federation.federation.rounds} rounds"
    )
    with RunView(console) as view:
        run = launching.build_launch(federation, session, out, observer=view)
        for warning in run.warnings:
            console.print(f"[yellow]warning: {warning}[/]")
        outcome = run.execute()
    print_outcome(console, outcome)


def _backend(config: Path, run_id: str | None):
    """The SageMaker backend of a config, with every kickoff role assumed (for status and stop)."""
    from orchestrator import config as config_module
    from orchestrator import launch as launching
    from orchestrator.aws.sessions import server_session

    federation = config_module.load(config)
    return launching.connect(federation, server_session(federation.server), run_id)


STATUS_EPILOG = (
    "Examples:\n\n  fedsage status -c federation.toml\n\n"
    "  fedsage status -c federation.toml --run-id 20261121-101500-a1b2"
)


def status(
    config: Annotated[Path, config_option("naming the client accounts and kickoff roles")],
    run_id: Annotated[str | None, typer.Option(help="Only this run's jobs (default: every run).")] = None,
) -> None:
    """Show the training jobs of a run (or of every run) in every client account."""
    from rich.table import Table

    jobs = _backend(config, run_id).find_jobs(run_id)
    table = Table(title=f"training jobs of {'run ' + run_id if run_id else 'every run'}", title_justify="left")
    for column in ("run", "client", "account", "job", "status", "detail"):
        table.add_column(column, overflow="fold")
    for job in jobs:
        s = job.status
        table.add_row(
            job.run_id,
            job.client,
            job.account_id,
            s.name,
            f"{s.status} ({s.secondary_status})",
            s.failure_reason or s.model_artifact or "",
        )
    console.print(table if jobs else "no fedsage training jobs found in the client accounts")


STOP_EPILOG = "Example:\n\n  fedsage stop -c federation.toml --run-id 20261121-101500-a1b2"


def stop(
    config: Annotated[Path, config_option("naming the client accounts and kickoff roles")],
    run_id: Annotated[str, typer.Option(help="The run whose jobs to stop (see fedsage status).")],
) -> None:
    """Stop every still-running training job of a run, in every client account."""
    from orchestrator import launch as launching

    for job, stopped in launching.stop_run(_backend(config, run_id), run_id):
        what = "stop requested" if stopped else f"already {job.status.status.lower()}"
        console.print(f"  {job.client} ({job.account_id}) {job.status.name}: {what}")
