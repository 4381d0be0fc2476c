"""What every `fedsage` command shares: the one console pair and the option definitions used twice or more.

Only Typer and Rich are imported here, so importing the CLI stays fast; commands import the
heavy modules (pandas, scikit-learn, boto3, flwr) inside their bodies.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from orchestrator.entry import EXIT_INTERRUPTED  # noqa: F401 - 128 + SIGINT, as shells report Ctrl-C

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

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
