"""`fedsage doctor`: check roles, network paths, image and data of every account; print the report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from orchestrator.cli.common import config_option, console

if TYPE_CHECKING:  # loaded when the command runs, so `fedsage --help` stays fast
    from orchestrator.doctor.findings import Check

DOCTOR_EPILOG = (
    "Examples:\n\n  fedsage doctor -c federation.toml\n\n  AWS_PROFILE=fl-server fedsage doctor -c federation.toml"
)


def doctor_command(
    config_path: Annotated[Path, config_option("of the federation to check")],
) -> None:
    """Check roles, network paths, image and data of every account before a run; exit 1 if anything fails."""
    from orchestrator import config
    from orchestrator.aws import sessions
    from orchestrator.doctor.checks import diagnose

    federation = config.load(config_path)
    with console.status("checking the server and client accounts"):
        checks = diagnose(federation, sessions.server_session(federation.server))
    report(checks)
    if any(check.status == "fail" for check in checks):
        raise typer.Exit(code=1)


def report(checks: list[Check]) -> None:
    """Print the pass/fail table (failures with their fix) and a one-line summary."""
    from rich.table import Table

    table = Table(show_lines=False, expand=False)
    for column in ("check", "for", "result", "detail / fix"):
        table.add_column(column, overflow="fold")
    colours = {"pass": "green", "fail": "red", "warn": "yellow"}
    for check in checks:
        text = check.detail + (f"\nfix: {check.fix}" if check.fix else "")
        table.add_row(check.name, check.subject, f"[{colours[check.status]}]{check.status}[/]", text)
    console.print(table)
    failed = sum(c.status == "fail" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    summary = f"{len(checks) - failed - warned} passed, {failed} failed, {warned} to check by the data owner"
    console.print(f"[bold]{summary}[/]", highlight=False)
