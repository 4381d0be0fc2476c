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
from orchestrator.errors import FedsageError

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
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.DEBUG if verbose else logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
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
    with RunView(console, clients or 3, rounds) as view:
        outcome = run_local(options, observer=view)
    print_outcome(console, outcome)


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
