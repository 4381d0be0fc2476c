"""`fedsage inspect`: verify a model of any family, show it as Rich tables (orchestrator/inspect.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.cli.common import console
from orchestrator.text import fmt, plural

INSPECT_EPILOG = (
    "Examples:\n\n"
    "  fedsage inspect runs/<run-id>/model.joblib\n\n"
    "  fedsage inspect runs/<run-id>/model.joblib --test prepared/test.csv\n\n"
    "  fedsage inspect runs/<run-id>/model.joblib --json > model.json\n\n"
    "  fedsage inspect model.tar.gz               # a client's copy, as its training job uploaded it"
)


def render(console: Any, report: dict[str, Any]) -> None:
    """The report as Rich text and tables: model, provenance, clients, metrics, then the family's own tables."""
    from rich.markup import escape
    from rich.table import Table

    from orchestrator.config.base import name_order
    from orchestrator.inspect import partial_line

    model, provenance = report["model"], report["provenance"]
    console.print(f"[bold]{report['path']}[/]  sha256 {report['sha256'][:16]}... [green]checksum verified[/]")
    if report.get("partial"):  # before anything else: every number below is of an unfinished federation
        console.print(f"[bold yellow]{escape(partial_line(report['partial']))}[/]")
    if model["task"] == "regression":
        target = model["target"]
        learned = f"regression of {target['label']} (mean {fmt(target['mean'])}, std {fmt(target['std'])})"
    else:
        positive = f", positive class {model['positive_class']}" if model.get("positive_class") is not None else ""
        learned = f"{model['task']}, {len(model['classes'])} classes {model['classes']}{positive}"
    console.print(f"  {model['type']}: {model['family']} family, {learned}, {model['n_features']} features")
    shown = {k: v for k, v in model.items() if k not in _HEADLINE and not isinstance(v, dict)}
    console.print("  " + ", ".join(f"{k} {_value(v)}" for k, v in shown.items()))
    if provenance["saved_by"] == "server":
        console.print(
            f"  run {provenance['run_id']} ({provenance['created_at']}), {plural(provenance['rounds'], 'round')}, "
            f"label {provenance['label']}"
        )
    else:
        console.print(
            f"  the copy of the global model saved by client {provenance['saved_by']} after "
            f"{plural(provenance['rounds'], 'round')} (the run folder's model.joblib has the full provenance)"
        )
    if provenance["versions"]:
        console.print("  versions: " + ", ".join(f"{k} {v}" for k, v in provenance["versions"].items()))
    if provenance["clients"]:
        clients = Table(title="clients", title_justify="left")
        for column in ("client", "examples", "last round"):
            clients.add_column(column, justify="left" if column == "client" else "right")
        for name, info in sorted(provenance["clients"].items(), key=lambda item: name_order(item[0])):
            clients.add_row(name, f"{info.get('num_examples', 0):,}", str(info.get("last_round", "")))
        console.print(clients)
    test = report.get("test")
    if report["final_metrics"] or test:
        _print_metrics(console, report["final_metrics"], test)
    for table in report["tables"].values():
        _print_table(console, table)
    for note in report["notes"]:
        console.print(f"[yellow]note: {note}[/]")


_HEADLINE = ("type", "family", "task", "classes", "positive_class", "target", "n_features")


def _value(value: Any) -> str:
    """A model field for people: a number to 4 significant digits (C 1, alpha 1e-05, intercept -3.345), lists too.

    Metrics keep fmt's 4 decimals; a setting such as C = 1e-5 would read 0.0000 with them.
    """
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and value and all(isinstance(v, float) for v in value):
        return "[" + ", ".join(f"{v:.4g}" for v in value) + "]"
    return str(value)


def _print_table(console: Any, table: dict[str, Any]) -> None:
    """One of the family's tables ({"title", "rows": [{column: value}]}): text left, numbers right."""
    from rich.table import Table

    rows = table["rows"]
    shown = Table(title=table["title"], title_justify="left")
    columns = list(rows[0]) if rows else []
    for column in columns:
        numeric = isinstance(rows[0][column], int | float)
        shown.add_column(column.replace("_", " "), justify="right" if numeric else "left")
    for row in rows:
        shown.add_row(*(f"{row[c]:+.4f}" if isinstance(row[c], float) else str(row[c]) for c in columns))
    console.print(shown)


def _print_metrics(console: Any, final: dict[str, Any], test: dict[str, Any] | None) -> None:
    """Recorded end-of-run metrics, and the recomputed ones beside them."""
    from rich.table import Table

    metrics = Table(title="metrics", title_justify="left")
    metrics.add_column("metric")
    metrics.add_column("end of run (server test set)", justify="right")
    if test:
        metrics.add_column(f"{test['file']} ({test['rows']:,} rows)", justify="right")
    for name in dict.fromkeys([*final, *(test["metrics"] if test else {})]):
        row = [name, fmt(final.get(name))]
        if test:
            row.append(fmt(test["metrics"].get(name)))
        metrics.add_row(*row)
    console.print(metrics)


def inspect_command(
    model: Annotated[
        Path,
        typer.Argument(
            help="A model.joblib written by a fedsage run (its .sha256 beside it), or a client job's model.tar.gz."
        ),
    ],
    test: Annotated[
        Path | None, typer.Option(help="A CSV file with the label column: recompute the metrics on it.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    top: Annotated[
        int, typer.Option(help="Rows of each ranked table: largest coefficients, inputs or split gains.", min=0)
    ] = 10,
) -> None:
    """Show what a federation's model is, where it came from, what it learned and how well it scores.

    Every model family: coefficients (logistic, sgd, linear), layers (mlp) or trees (xgboost).
    The file is checked against the checksum the run wrote before it is unpickled, and only the
    classes a fedsage model is made of may be loaded: unpickling runs code.
    """
    from orchestrator.inspect import inspect_model

    report = inspect_model(model, test, top)
    if json_output:
        typer.echo(json.dumps(report, indent=2))
        return
    render(console, report)
