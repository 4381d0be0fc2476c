"""What every `fedsage` command shares: the one console pair and the option definitions used twice or more.

Only Typer and Rich are imported here, so importing the CLI stays fast; commands import the
heavy modules (pandas, scikit-learn, boto3, flwr) inside their bodies.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from orchestrator.entry import EXIT_INTERRUPTED  # noqa: F401 - 128 + SIGINT, as shells report Ctrl-C


class _ReaderMayGo:
    """sys.stdout or sys.stderr as it is at each write; once its reader has gone (EPIPE), writes are dropped.

    `fedsage local | head`, or a log collector that exits, closes the pipe the console
    writes to. Rich's next print raised BrokenPipeError inside the run's progress and its stopping
    (seen: no run.json, and a frozen job left running); a run's outcome does not depend on anyone
    reading it, so the console goes quiet instead and the run ends as it would have.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self.gone = False

    def _stream(self):
        stream = getattr(sys, self._name)
        return getattr(stream, "rich_proxied_file", stream)  # under Rich's Live display: the stream it wraps

    def __getattr__(self, attribute: str):  # isatty, fileno, encoding, ...: the stream's own
        if attribute == "rich_proxied_file":  # Rich would write past this wrapper
            raise AttributeError(attribute)
        return getattr(self._stream(), attribute)

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self._stream().write(text)
            except BrokenPipeError:
                self.gone = True
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self._stream().flush()
            except BrokenPipeError:
                self.gone = True


console = Console(file=_ReaderMayGo("stdout"), soft_wrap=True)
err_console = Console(file=_ReaderMayGo("stderr"), soft_wrap=True)

STARTED = time.monotonic()  # when the command started (this module is imported first): "finished in" counts from here


def config_option(purpose: str = "to use") -> typer.models.OptionInfo:
    """The --config/-c option, with what this command reads from the file: "naming the clients" -> its help."""
    return typer.Option("--config", "-c", help=f"The federation.toml {purpose}.")


ConfigOption = Annotated[Path, config_option()]
OutOption = Annotated[Path, typer.Option(help="Folder that receives the run folder <run-id>/.")]


def items(values: list[str] | None) -> tuple[str, ...]:
    """Repeated or comma-separated option values, in order: ["a,b", "c"] -> ("a", "b", "c")."""
    return tuple(item.strip() for value in values or [] for item in value.split(",") if item.strip())


MlflowOption = Annotated[
    str | None,
    typer.Option(
        "--mlflow",
        metavar="URI",
        help="Log the run to this MLflow tracking URI (needs fedsage[mlflow]); e.g. file:///tmp/mlruns.",
    ),
]
