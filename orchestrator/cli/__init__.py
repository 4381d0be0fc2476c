"""The `fedsage` command line (Typer + Rich): the app, its commands, and the exit-code mapping.

Exit codes: 0 success, 1 runtime failure (a run that could not finish), 2 bad input (config,
data, arguments), 130 Ctrl-C, 143 SIGTERM (both stop every job the run started and write its
run.json first). Every error is one line on stderr, never a traceback (use --verbose for the
debug log).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Annotated, NoReturn

import click
import typer

from orchestrator import __version__
from orchestrator.cli import data, doctor, image, infra, inspect, package, predict, profile, run, runs
from orchestrator.cli.common import EXIT_INTERRUPTED, console, err_console
from orchestrator.errors import FedsageError
from orchestrator.run import interrupts

app = typer.Typer(
    name="fedsage",
    help="Cross-account federated learning on Amazon SageMaker with Flower.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
_log_handler: logging.Handler | None = None
log = logging.getLogger(__name__)


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


# Each command lives in the module of its group; registered here in the order `--help` lists them.
app.command(epilog=run.LOCAL_EPILOG)(run.local)
app.command(epilog=run.LAUNCH_EPILOG)(run.launch)
app.command(epilog=run.STATUS_EPILOG)(run.status)
app.command(epilog=run.STOP_EPILOG)(run.stop)
app.add_typer(runs.runs_app, name="runs")
app.command("logs", epilog=runs.LOGS_EPILOG)(runs.logs_command)
app.command(epilog=package.PACKAGE_EPILOG)(package.package)
data.data_app.command("profile", epilog=profile.PROFILE_EPILOG)(profile.profile_command)
data.data_app.command("merge", epilog=profile.MERGE_EPILOG)(profile.merge_command)
app.add_typer(data.data_app, name="data")
app.command("predict", epilog=predict.PREDICT_EPILOG)(predict.predict_command)
app.command("inspect", epilog=inspect.INSPECT_EPILOG)(inspect.inspect_command)
app.add_typer(infra.infra_app, name="infra")
app.add_typer(image.image_app, name="image")
app.command("doctor", epilog=doctor.DOCTOR_EPILOG)(doctor.doctor_command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI and map every outcome to one line and an exit code.

    `argv` None (the `fedsage` command, `python -m orchestrator`): this process's own arguments,
    and the process then ends at once (`exit_at_once`). With `argv` (tests, callers in Python):
    SystemExit is raised with the exit code, as click does.
    """
    try:
        _main(argv)
    except SystemExit as exc:
        if argv is None:
            exit_at_once(exc.code)
        raise


def exit_at_once(code: int | str | None) -> NoReturn:
    """End this process with `code` (SystemExit's: None is 0, a text is printed and is 1) without finalisation.

    Every file a command writes is closed by the time it returns (run-folder files are written
    atomically, run/folder.py), so what is skipped is only the interpreter's finalisation of
    every imported module and its last garbage collection: with numpy, pandas, scikit-learn,
    scipy, gRPC and matplotlib loaded it took 0.45 s at load 0 and over 1 s on a busy machine
    (about 1.5 s with Ray's modules too), after the prompt could have returned (issue 15's
    tail; docs/benchmarks.md). What finalisation does that matters is
    done here first: other non-daemon threads are joined, the atexit functions run (logging's
    shutdown flushes server.log, MLflow flushes its queue), and stdout/stderr are flushed.
    The clients end the same way (client_code/train.py `exit_now`).
    """
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        err_console.print(str(code), highlight=False, markup=False)
        status = 1
    with contextlib.suppress(KeyboardInterrupt):
        for thread in threading.enumerate():
            if thread is not threading.main_thread() and not thread.daemon:
                thread.join()
        atexit._run_exitfuncs()  # noqa: SLF001 - the CPython hook interpreter exit calls
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)


def _literal_help(command: click.Command) -> click.Command:
    """Escape Rich markup in every help text of `command` and its subcommands, so "[server] port" shows as written.

    Typer renders help as Rich markup (rich_markup_mode "rich"): a bracketed word such as
    `fedsage[simulation]`, `[default: 5]` or `[tracking] mlflow_uri` would be taken for a style
    tag and vanish. The texts here hold no markup of their own.
    """
    from rich.markup import escape

    command.help = escape(command.help) if command.help else command.help
    for param in command.params:
        if getattr(param, "help", None):
            param.help = escape(param.help)
    for sub in getattr(command, "commands", {}).values():
        _literal_help(sub)
    return command


def _main(argv: list[str] | None) -> None:
    command = _literal_help(typer.main.get_command(app))
    with interrupts.as_interrupts() as received:  # SIGTERM is handled like Ctrl-C
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
            code = EXIT_INTERRUPTED
        except Exception as exc:
            if interrupts.pending() is not None:  # the interrupt, wrapped by a library on its way up
                log.debug("interrupted, raised as %r", exc)
                code = EXIT_INTERRUPTED
            elif isinstance(exc, FedsageError):
                err_console.print(f"error: {exc}", highlight=False, soft_wrap=True, markup=False)
                sys.exit(exc.exit_code)
            else:
                raise
    code = code if isinstance(code, int) else 0  # a command's return value is None when it succeeds
    if code == 0 and interrupts.late():
        err_console.print("note: interrupted after the run had completed; its results are complete", highlight=False)
    if code == EXIT_INTERRUPTED:
        signum = received.signals[0] if received.signals else signal.SIGINT
        what = interrupts.REASONS[signum] if signum == signal.SIGTERM else "interrupted"
        err_console.print(f"{what}: every job this run started was stopped", highlight=False)
        sys.exit(128 + signum)
    sys.exit(code)
