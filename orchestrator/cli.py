"""The `fedsage` command line (Typer + Rich).

Exit codes: 0 success, 1 runtime failure (a run that could not finish), 2 bad input (config,
data, arguments). Every error is one line on stderr, never a traceback (use --verbose for the
debug log).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console

from orchestrator import __version__
from orchestrator.data.commands import data_app
from orchestrator.doctor import DOCTOR_EPILOG, doctor_command
from orchestrator.errors import FedsageError
from orchestrator.infra import infra_app
from orchestrator.inspect import EPILOG as INSPECT_EPILOG
from orchestrator.inspect import inspect_command

app = typer.Typer(
    name="fedsage",
    help="Cross-account federated learning on Amazon SageMaker with Flower.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

EXIT_INTERRUPTED = 130
_log_handler: logging.Handler | None = None


def _version(value: bool) -> None:
    if value:
        console.print(f"fedsage {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Print debug logs on stderr.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """fedsage: train one model over data held in separate AWS accounts, without moving it."""
    global _log_handler
    root = logging.getLogger()
    if _log_handler is not None:  # one handler per process, on the current stderr
        root.removeHandler(_log_handler)
    _log_handler = logging.StreamHandler(sys.stderr)
    _log_handler.setLevel(logging.DEBUG if verbose else logging.WARNING)
    _log_handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(_log_handler)
    if verbose:
        root.setLevel(logging.DEBUG)


@app.command(
    epilog=(
        "Examples:\n\n"
        "  fedsage local                          # 3 clients x 5 rounds on built-in data\n\n"
        "  fedsage local --clients 5 --rounds 10\n\n"
        "  fedsage local --dataset breast-cancer\n\n"
        "  fedsage local --data-dir prepared/     # folders from `fedsage data prepare`"
    )
)
def local(
    clients: Annotated[
        int | None, typer.Option(help="Number of clients (default 3; with --data-dir, its client folders).", min=1)
    ] = None,
    rounds: Annotated[int, typer.Option(help="Federated rounds.", min=1)] = 5,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Prepared data folder (from `fedsage data prepare`) instead of a built-in data set."),
    ] = None,
    dataset: Annotated[
        str, typer.Option(help="Built-in data set: synthetic-fraud or breast-cancer.")
    ] = "synthetic-fraud",
    out: Annotated[Path, typer.Option(help="Folder that receives the run folder <run-id>/.")] = Path("runs"),
    min_clients: Annotated[
        int | None, typer.Option(help="Let rounds go on with this many clients if others fail (default: all).", min=1)
    ] = None,
    max_iter: Annotated[int, typer.Option(help="Local solver iterations per round.", min=1)] = 10,
    join_timeout: Annotated[float, typer.Option(help="Seconds to wait for all clients to join.", min=1)] = 120.0,
    round_timeout: Annotated[float, typer.Option(help="Seconds a client may take for one round.", min=1)] = 300.0,
    seed: Annotated[int, typer.Option(help="Seed for data generation and splitting.")] = 42,
) -> None:
    """Run a whole federation on this machine, no AWS: one process per client.

    Each client runs client_code/train.py exactly as the SageMaker container would (its own
    /opt/ml tree, SM_* environment, hyperparameters as arguments), connecting over TLS to a
    Flower server on 127.0.0.1.
    """
    from orchestrator.local import LocalOptions, run_local
    from orchestrator.progress import RunView, print_outcome

    options = LocalOptions(
        clients=clients,
        rounds=rounds,
        data_dir=data_dir,
        dataset=dataset,
        out=out,
        min_clients=min_clients,
        max_iter=max_iter,
        join_timeout=join_timeout,
        round_timeout=round_timeout,
        seed=seed,
    )
    source = f"data in {data_dir}" if data_dir else f"built-in data set '{dataset}'"
    console.print(
        f"[bold]fedsage local[/]: {clients or ('all' if data_dir else 3)} clients x {rounds} rounds on {source}"
    )
    with RunView(console) as view:
        outcome = run_local(options, observer=view)
    print_outcome(console, outcome)


ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="The federation.toml to use.")]


@app.command(
    epilog=(
        "Examples:\n\n"
        "  fedsage launch -c federation.toml --dry-run   # the exact requests, per account; no AWS call\n\n"
        "  fedsage launch -c federation.toml"
    )
)
def launch(
    config: ConfigOption,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the requests per account; make no AWS call.")
    ] = False,
    out: Annotated[Path, typer.Option(help="Folder that receives the run folder <run-id>/.")] = Path("runs"),
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
        return
    from orchestrator.aws.sessions import server_session
    from orchestrator.progress import RunView, print_outcome

    session = server_session(federation.server)
    console.print(
        f"[bold]fedsage launch[/]: {len(federation.clients)} client accounts x {federation.federation.rounds} rounds"
    )
    with RunView(console) as view:
        outcome = launching.launch(federation, session, out, observer=view)
    print_outcome(console, outcome)


def _client_sessions(config: Path, run_id: str | None):
    from orchestrator import config as config_module
    from orchestrator import launch as launching
    from orchestrator.aws.sessions import server_session

    federation = config_module.load(config)
    federation.require_launchable()
    return federation, launching.client_sessions(federation, server_session(federation.server), run_id or "status")


@app.command(
    epilog=(
        "Examples:\n\n  fedsage status -c federation.toml\n\n"
        "  fedsage status -c federation.toml --run-id 20261121-101500-a1b2"
    )
)
def status(
    config: ConfigOption,
    run_id: Annotated[str | None, typer.Option(help="Only this run's jobs (default: every run).")] = None,
) -> None:
    """Show the training jobs of a run (or of every run) in every client account."""
    from rich.table import Table

    from orchestrator import launch as launching

    federation, made = _client_sessions(config, run_id)
    jobs = launching.find_jobs(federation, made, run_id)
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


@app.command(epilog="Example:\n\n  fedsage stop -c federation.toml --run-id 20261121-101500-a1b2")
def stop(
    config: ConfigOption,
    run_id: Annotated[str, typer.Option(help="The run whose jobs to stop (see fedsage status).")],
) -> None:
    """Stop every still-running training job of a run, in every client account."""
    from orchestrator import launch as launching

    federation, made = _client_sessions(config, run_id)
    for job, stopped in launching.stop_run(federation, made, run_id):
        what = "stop requested" if stopped else f"already {job.status.status.lower()}"
        console.print(f"  {job.client} ({job.account_id}) {job.status.name}: {what}")


@app.command(
    epilog=(
        "Examples:\n\n"
        "  fedsage package                                   # dist/source.tar.gz with vendored wheels\n\n"
        "  fedsage package --upload -c federation.toml --client hospital-a\n\n"
        "  fedsage package --relock --python-version 3.12    # refresh the dependency lock"
    )
)
def package(
    out: Annotated[Path, typer.Option(help="Where to write the archive.")] = Path("dist/source.tar.gz"),
    python_version: Annotated[str, typer.Option(help="The container's Python version.")] = "3.12",
    wheels: Annotated[
        bool, typer.Option("--wheels/--no-wheels", help="Vendor every dependency (for jobs without PyPI access).")
    ] = True,
    relock: Annotated[bool, typer.Option(help="Re-resolve requirements.txt into the hash-pinned lock first.")] = False,
    upload: Annotated[bool, typer.Option(help="Put the archive at each client's code_uri (needs -c).")] = False,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="The federation.toml with the clients' code_uri.")
    ] = None,
    client: Annotated[str | None, typer.Option(help="With --upload: only this client (default: all).")] = None,
) -> None:
    """Build source.tar.gz: the client code with its dependencies as wheels, reproducibly.

    The same commit always gives the same bytes, so a data owner can rebuild the archive and
    compare the printed sha256 before trusting it. --upload uses the caller's credentials (the
    client's `profile` if the config sets one).
    """
    from orchestrator import package as packaging

    if upload and config is None:
        raise click.UsageError("--upload needs --config/-c to know the clients' code_uri")
    if relock:
        lock = packaging.relock(python_version)
        console.print(f"[green]✓[/] wrote {lock}")
    with console.status("downloading wheels and building the archive" if wheels else "building the archive"):
        built = packaging.build(out, python_version, vendor_wheels=wheels)
    console.print(f"[green]✓[/] {built.path}: {built.files} files ({built.wheels} wheels), {built.size / 1e6:.1f} MB")
    console.print(f"  sha256          {built.sha256}")
    console.print(f"  content sha256  {built.content_sha256}  (of the uncompressed tar; independent of gzip)")
    if upload:
        from orchestrator import config as config_module
        from orchestrator.aws import sessions
        from orchestrator.aws.s3 import upload_file

        federation = config_module.load(config)
        targets = [c for c in federation.clients if client in (None, c.name)]
        if not targets:
            raise click.BadParameter(f"no client named {client!r} in {config}", param_hint="--client")
        for target in targets:
            if not target.code_uri:
                raise click.BadParameter(f"client {target.name!r} has no code_uri in {config}", param_hint="--config")
            upload_file(sessions.data_owner_session(target), built.path, target.code_uri)
            console.print(f"  uploaded to {target.code_uri} ({target.name})")


# Command groups kept in their own modules (each imports only Typer at load time, so `fedsage`
# starts fast); registered last so `--help` lists them after the run commands.
app.add_typer(data_app, name="data")
app.command("inspect", epilog=INSPECT_EPILOG)(inspect_command)
app.add_typer(infra_app, name="infra")
app.command("doctor", epilog=DOCTOR_EPILOG)(doctor_command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI and map every outcome to one line and an exit code."""
    command = typer.main.get_command(app)
    try:
        # Typer returns exit codes in this mode (Ctrl-C becomes 130) instead of raising them.
        code = command.main(args=argv, prog_name="fedsage", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.UsageError as exc:
        if not exc.format_message():  # no arguments at all: the help was printed
            sys.exit(2)
        name = exc.ctx.command_path if exc.ctx else "fedsage"
        err_console.print(
            f"error: {exc.format_message()} (see '{name} --help')", highlight=False, soft_wrap=True, markup=False
        )
        sys.exit(2)
    except (KeyboardInterrupt, click.exceptions.Abort):
        err_console.print("interrupted: every job this run started was stopped", highlight=False)
        sys.exit(EXIT_INTERRUPTED)
    except FedsageError as exc:
        err_console.print(f"error: {exc}", highlight=False, soft_wrap=True, markup=False)
        sys.exit(exc.exit_code)
    if code == EXIT_INTERRUPTED:
        err_console.print("interrupted: every job this run started was stopped", highlight=False)
    sys.exit(code if isinstance(code, int) else 0)
