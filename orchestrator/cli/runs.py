"""`fedsage runs` (list, show, compare) and `fedsage logs`: the runs under --out, read from their run folders."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator import defaults
from orchestrator.cli.common import console
from orchestrator.errors import BadInput

RUNS_EPILOG = (
    "Examples:\n\n"
    "  fedsage runs                                   # every run under runs/\n\n"
    "  fedsage runs show 20261121-101500-a1b2\n\n"
    "  fedsage runs compare 20261121-101500-a1b2 20261121-103000-c3d4   # writes runs/compare.png\n\n"
    "  fedsage runs track 20261121-101500-a1b2 --mlflow file:///tmp/mlruns   # log it to MLflow\n\n"
    "  fedsage runs --out elsewhere/ --json"
)
LOGS_EPILOG = (
    "Examples:\n\n"
    "  fedsage logs 20261121-101500-a1b2                      # server.log\n\n"
    "  fedsage logs 20261121-101500-a1b2 --client client-2   # the client's log (CloudWatch for a cloud run)\n\n"
    "  fedsage logs 20261121-101500-a1b2 --follow            # until the run ends; Ctrl-C stops following"
)
SHOWN_METRICS = ("roc_auc", "pr_auc", "f1", "loss")  # the final metrics `fedsage runs` lists
LIST_COLUMNS = ("run", "started", "backend", "clients", "rounds", "status")  # a narrow terminal shows fewer
WRAPPED = ("started", "status")  # the columns of `fedsage runs` that wrap in a narrow terminal; no other is cut

runs_app = typer.Typer(
    help="List, show and compare the runs under a runs folder.",
    epilog=RUNS_EPILOG,
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode="rich",
)
RunsOut = Annotated[Path, typer.Option(help="The folder holding the run folders.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def _when(info: Any, short: bool = False) -> str:
    """When a run started, in local time (`short`: without the year, for narrow tables)."""
    return (
        info.started_at.astimezone().strftime("%m-%d %H:%M" if short else "%Y-%m-%d %H:%M") if info.started_at else ""
    )


def _min_width(column: str, cells: list[str]) -> int:
    """The narrowest a column of `fedsage runs` may get, in characters: its widest cell, or longest word if it wraps.

    The run id users copy and the numbers are never cut; a WRAPPED column breaks between words.
    """
    texts = [column, *cells]
    if column in WRAPPED:
        texts = [word for text in texts for word in text.split()]
    return max(map(len, texts))


def _status(status: str, text: str | None = None) -> str:
    style = {"completed": "green", "failed": "red", "interrupted": "yellow"}.get(status, "yellow")
    return f"[{style}]{text or status}[/]"


@runs_app.callback()
def runs_list(
    ctx: typer.Context,
    out: RunsOut = Path(defaults.RUNS),
    json_output: JsonOption = False,
) -> None:
    """List the runs under --out: id, start, backend, clients, rounds done/asked, status, final test metrics."""
    if ctx.invoked_subcommand is not None:
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from orchestrator.runs import list_runs
    from orchestrator.text import fmt

    runs = list_runs(out)
    if json_output:
        _json([asdict(info) for info in runs])
        return
    if not runs:
        console.print(f"no runs in {out}; start one with `fedsage local`", highlight=False)
        return
    # the widest layout the terminal holds; --json has everything
    wide, medium = console.width >= 120, console.width >= 72
    metrics = SHOWN_METRICS if wide else SHOWN_METRICS[:2] if medium else ()
    columns = (
        LIST_COLUMNS if wide else ("run", "started", "rounds", "status") if medium else ("run", "rounds", "status")
    )
    rows = []
    for info in runs:
        row = {
            "run": info.run_id,
            "started": _when(info, short=not wide),
            "backend": info.backend.split(" (")[0],
            "clients": str(len(info.clients)),
            "rounds": f"{info.rounds_completed}/{info.rounds if info.rounds is not None else '?'}",
            "status": _status(info.status, info.status_text()),
        }
        rows.append([*(row[c] for c in columns), *(fmt(info.final_metrics.get(m)) for m in metrics)])
    table = Table(title=f"runs in {out}", title_justify="left", box=box.SIMPLE_HEAD)
    for i, column in enumerate((*columns, *metrics)):
        table.add_column(
            column,
            justify="right" if column in metrics or column in ("clients", "rounds") else "left",
            no_wrap=column not in WRAPPED,
            overflow="fold",
            min_width=_min_width(column, [Text.from_markup(row[i]).plain for row in rows]),
        )
    for row in rows:
        table.add_row(*row)
    console.print(table, soft_wrap=False)  # the console's soft wrap would let the table overshoot by a column


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="The run's id (its folder's name; see `fedsage runs`).")],
    out: RunsOut = Path(defaults.RUNS),
    json_output: JsonOption = False,
) -> None:
    """Show one run: status, timings, final metrics against round 0, hyperparameters, clients, files."""
    from orchestrator.runs import show_run

    details = show_run(run_id, out)
    if json_output:
        _json(
            {
                "info": asdict(details.info),
                "summary": details.summary.to_dict() if details.summary else None,
                **details.history.to_dict(),
            }
        )
        return
    _render_run(details)


def _render_run(details: Any) -> None:
    from rich.table import Table

    from orchestrator.run.report import relative, setting
    from orchestrator.text import fmt

    info, summary, history = details.info, details.summary, details.history
    reason = f": {info.reason}" if info.reason else ""
    console.print(f"[bold]run {info.run_id}[/]  {_status(info.status, info.status_text())}{reason}")
    if info.resumed_from:
        resumed = info.resumed_from
        console.print(f"  resumed  run {resumed['run_id']} after round {resumed['round']}", highlight=False)
    console.print(f"  folder   {info.folder}", highlight=False)
    console.print(f"  started  {_when(info)}; backend {info.backend or 'unknown'}", highlight=False)
    wall = f"; {info.seconds:.1f} s" if info.seconds is not None else ""
    console.print(f"  rounds   {info.rounds_completed} of {info.rounds}{wall}", highlight=False)
    if history.rounds:
        table = Table(title="test-set metrics (server)", title_justify="left")
        table.add_column("metric")
        table.add_column("round 0", justify="right")
        table.add_column(f"round {history.final().round}", justify="right")
        for name in history.final().server:
            table.add_row(name, fmt(history.rounds[0].server.get(name)), fmt(history.final().server.get(name)))
        console.print(table)
    if summary is None:
        return
    if summary.hyperparameters:
        settings = ", ".join(f"{k} {setting(v)}" for k, v in summary.settings().items())
        console.print(f"  settings {settings}", highlight=False)
    if summary.test_set:
        matrix = summary.test_set["confusion_matrix"]
        console.print(f"  confusion matrix on the test set (rows true, columns predicted): {matrix}", highlight=False)
    if summary.tracking:
        console.print("  MLflow   " + ", ".join(f"{k} {v}" for k, v in summary.tracking.items()), highlight=False)
    for name, client in summary.clients.items():
        reason = f" ({client.failure_reason})" if client.failure_reason else ""
        examples = f", {client.num_examples:,} examples" if client.num_examples else ""
        artifact = f", model {relative(client.model_artifact, info.folder)}" if client.model_artifact else ""
        console.print(
            f"  client {name}: {client.status}{reason}{examples}; job {client.job_name}{artifact}", highlight=False
        )
    for warning in summary.warnings:
        console.print(f"[yellow]warning: {warning}[/]", highlight=False)
    console.print("  files    " + ", ".join(summary.files), highlight=False)


@runs_app.command("compare")
def runs_compare(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids.")],
    out: RunsOut = Path(defaults.RUNS),
    plot: Annotated[
        Path | None, typer.Option(help="Where the PNG of the metrics over rounds goes (default: <out>/compare.png).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Compare runs: final test-set metrics side by side, the settings that differ, and a plot of their curves."""
    from orchestrator.run.folder import file_error
    from orchestrator.run.report import setting
    from orchestrator.runs import compare_runs
    from orchestrator.text import fmt

    if plot is not None:
        from orchestrator.paths import output_file

        output_file(plot, "--plot", "compare.png")
    try:
        comparison = compare_runs(run_ids, out, plot)
    except OSError as exc:  # the plot could not be written
        raise file_error(exc) from None
    ids = [d.info.run_id for d in comparison.runs]
    if json_output:
        _json({"runs": ids, "metrics": comparison.metrics, "settings": comparison.settings, "plot": comparison.plot})
        return
    from rich.table import Table

    table = Table(title="final test-set metrics (server)", title_justify="left")
    table.add_column("")
    for run_id in ids:
        table.add_column(run_id, justify="right")
    table.add_row("status", *(d.info.status for d in comparison.runs))
    table.add_row("rounds", *(f"{d.info.rounds_completed}/{d.info.rounds}" for d in comparison.runs))
    for name, values in comparison.metrics.items():
        table.add_row(name, *(fmt(values[run_id]) for run_id in ids))
    if comparison.settings:
        table.add_section()
        for name, values in comparison.settings.items():
            table.add_row(name, *(setting(values[run_id]) for run_id in ids))
    console.print(table)
    console.print(f"[green]✓[/] plot of the metrics over rounds: [bold]{comparison.plot}[/]")


@runs_app.command("track")
def runs_track(
    run_id: Annotated[str, typer.Argument(help="The run's id (see `fedsage runs`).")],
    mlflow: Annotated[str, typer.Option("--mlflow", metavar="URI", help="The MLflow tracking URI to log the run to.")],
    experiment: Annotated[str, typer.Option(help="The MLflow experiment.")] = "fedsage",
    out: RunsOut = Path(defaults.RUNS),
) -> None:
    """Log a run that has ended to MLflow: params, per-round metrics, the model, the report and plots.

    What `--mlflow` on `fedsage local` and `launch` does at the end of a run, for an earlier run or
    one whose logging failed. Needs fedsage[mlflow].
    """
    from orchestrator.runs import run_folder
    from orchestrator.tracking import Tracker

    folder = run_folder(out, run_id)
    if not folder.path("run.json").exists():
        raise BadInput(f"run {run_id} has no run.json yet (still going on, or killed): only a run that ended is logged")
    tracker = Tracker.connect(mlflow, experiment)
    mlflow_run = tracker.log_run(folder.root)
    console.print(f"[green]✓[/] run {run_id} logged to MLflow at {mlflow}: experiment {experiment}, run {mlflow_run}")


def logs_command(
    run_id: Annotated[str, typer.Argument(help="The run's id (see `fedsage runs`).")],
    client: Annotated[str | None, typer.Option(help="A client's log instead of the server's.")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until the run ends.")] = False,
    lines: Annotated[
        int | None, typer.Option(help="Only the last N lines (then, with --follow, new ones).", min=0)
    ] = None,
    out: RunsOut = Path(defaults.RUNS),
) -> None:
    """Print a run's server log, or one client's (from the run folder, or CloudWatch for a cloud run)."""
    from orchestrator.runs import follow_log, log_source, read_log

    source = log_source(run_id, out, client)
    if not follow:
        for line in read_log(source, lines):
            console.print(line, markup=False, highlight=False)
        return
    try:
        for line in follow_log(source, lines):
            console.print(line, markup=False, highlight=False)
    except KeyboardInterrupt:  # Ctrl-C (or SIGTERM) is how one stops following: nothing else to stop
        return
