"""A run's history and summary -> metrics.json, metrics.csv, metrics.png, calibration.png, test_curves.png, report.md.

Every file is written atomically (run/folder.py). `fmt` is the one number format of the
console, the report and `fedsage inspect`. report.md names files relative to the run folder, so
the folder can be moved or shared and its links still work. The metrics shown are the task's
(client_code.metrics.METRICS: classification or regression); every client's local-only and
federated scores on its own validation data, and the gain, are in metrics.json ("client_gain"),
report.md and the plot.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from client_code.metrics import GAIN_METRICS, METRICS
from orchestrator.config.base import name_order
from orchestrator.federation.history import RunHistory
from orchestrator.run.curves import TestScores
from orchestrator.run.figures import Figure, Line, Panel
from orchestrator.run.folder import RunFolder, RunSummary, write_atomic, write_json
from orchestrator.run.plotter import Plotter
from orchestrator.text import fmt, privacy

SERVER_METRICS = METRICS["binary"]  # a classification run's; server_metrics(task) for any task
CLIENT_METRICS = ("num_examples", "train_loss", "train_accuracy", "fit_seconds", "val_loss", "val_accuracy")


def server_metrics(task: str | None) -> tuple[str, ...]:
    """The test-set metrics of a task, in display order (classification when the task is not known)."""
    return METRICS.get(task or "binary", SERVER_METRICS)


def client_metrics(task: str | None) -> tuple[str, ...]:
    """The per-client columns of metrics.csv: fit and evaluation metrics, then local-only and federated scores."""
    gains = GAIN_METRICS.get(task or "binary", {})
    return CLIENT_METRICS + tuple(f"{kind}_{m}" for m in gains for kind in ("local", "federated"))


def _clients(history: RunHistory) -> list[str]:
    return sorted({name for record in history.rounds for name in record.clients}, key=name_order)


def relative(location: str | None, root: Path) -> str:
    """A file:// URI or path inside the run folder `root` as a path relative to it; anything else (s3://) unchanged."""
    if not location:
        return ""
    path = Path(unquote(urlparse(location).path)) if location.startswith("file://") else Path(location)
    try:
        return path.resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return location


def setting(value: Any) -> str:
    """A hyperparameter for people: "unset" for None (the default applies), floats as short as they go (300, 0.5)."""
    if value is None:
        return "unset"
    return f"{value:g}" if isinstance(value, float) else str(value)


def write_metrics_json(path: Path, history: RunHistory, summary: RunSummary) -> None:
    """Every round's server and client metrics, with the run's summary and each client's gain (null: undefined)."""
    gains = {"client_gain": history.client_gains(summary.task)} if summary.task else {}
    write_json(path, {**summary.to_dict(), **gains, **history.to_dict()})


def write_metrics_csv(path: Path, history: RunHistory, task: str | None = None) -> None:
    """One row per round: server.<metric> columns, then <client>.<metric> columns (the task's metrics)."""
    clients = _clients(history)
    metrics, per_client = server_metrics(task), client_metrics(task)
    header = ["round", "seconds", *(f"server.{m}" for m in metrics)]
    header += [f"{c}.{m}" for c in clients for m in per_client]
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    for record in history.rounds:
        row: list[Any] = [record.round, f"{record.seconds:.3f}"]
        row += [record.server.get(m, "") for m in metrics]
        row += [record.clients.get(c, {}).get(m, "") for c in clients for m in per_client]
        writer.writerow(row)
    write_atomic(path, text.getvalue())


def metrics_figure(history: RunHistory, title: str, task: str | None = None) -> Figure:
    """metrics.png: the test loss and metrics (server), each client's training loss and its gain over local-only."""
    regression = task == "regression"
    rounds = [r.round for r in history.rounds]
    loss_name = "mean squared error" if regression else "log loss"
    clients = _clients(history)
    loss = Line(rounds, [r.server.get("loss") for r in history.rounds])
    metrics = [
        Line(rounds, [r.server.get(metric) for r in history.rounds], label=metric)
        for metric in (("r2",) if regression else ("roc_auc", "pr_auc", "f1", "accuracy"))
    ]
    training = []
    for client in clients:
        trained = [r for r in history.rounds if "train_loss" in r.clients.get(client, {})]
        training.append(Line([r.round for r in trained], [r.clients[client]["train_loss"] for r in trained], client))
    key = next(iter(GAIN_METRICS.get(task or "binary", {})), "roc_auc")  # roc_auc, or rmse for regression
    higher = GAIN_METRICS.get(task or "binary", {}).get(key, True)
    gains = []
    for client in clients:
        scored = [r for r in history.rounds if f"local_{key}" in r.clients.get(client, {})]
        values = [r.clients[client][f"federated_{key}"] - r.clients[client][f"local_{key}"] for r in scored]
        gains.append(Line([r.round for r in scored], [v if higher else -v for v in values], client))
    legend = "upper right" if clients else None
    panels = [
        Panel(f"Test {loss_name} (server)", "round", loss_name, [loss], xticks=rounds),
        Panel(
            "Test metrics (server)",
            "round",
            lines=metrics,
            ylim=(None, 1.02) if regression else (0, 1.02),
            xticks=rounds,
            legend="lower right",
        ),
        Panel("Local training loss (clients)", "round", loss_name, training, xticks=rounds, legend=legend),
        Panel(
            f"Gain over local-only ({key}, own validation data)",
            "round",
            f"{key} gain",
            gains,
            xticks=rounds,
            hline=0,
            legend="lower right" if clients else None,
        ),
    ]
    return Figure(panels, (20, 4.2), title)


def _test_set_lines(test_set: dict[str, Any]) -> list[str]:
    """The final model on the test set: its confusion matrix (true x predicted) and the curves' plot."""
    classes = test_set["classes"]
    positive = test_set.get("positive_class")
    lines = [
        "## The final model on the test set",
        "",
        f"{test_set['rows']:,} rows"
        + (f"; positive class {positive}" if positive is not None else "")
        + f"; predicted class: {test_set['decision']}.",
        "",
        "| true \\ predicted | " + " | ".join(str(c) for c in classes) + " |",
        "|---" * (len(classes) + 1) + "|",
    ]
    lines += [
        f"| {c} | " + " | ".join(f"{n:,}" for n in row) + " |"
        for c, row in zip(classes, test_set["confusion_matrix"], strict=True)
    ]
    return [*lines, "", "![confusion matrix, ROC and precision-recall curves](test_curves.png)", ""]


def calibration_figure(calibration: dict[str, Any], title: str) -> Figure:
    """calibration.png: the observed share of the positive class against the mean predicted probability."""
    bins = calibration["bins"]
    lines = [
        Line([0, 1], [0, 1], "perfectly calibrated", marker=None, linestyle="--", color="grey"),
        Line(bins["predicted"], bins["observed"], "final model"),
    ]
    xlabel = f"mean predicted probability of {calibration['positive_class']!s}"
    panel = Panel(title, xlabel, "observed share", lines, xlim=(0, 1), ylim=(0, 1), legend="upper left")
    return Figure([panel], (5.5, 5))


def _data_lines(summary: RunSummary) -> list[str]:
    """The report's data section: positive class, statistics phase, calibration, unseen values."""
    lines: list[str] = []
    if summary.model:
        hidden = {"kind"} | ({"balance", "smote_ratio"} if summary.task == "regression" else set())  # no classes
        keys = ", ".join(f"{k} {v}" for k, v in summary.model.items() if k not in hidden)
        lines.append(f"- model: **{summary.model.get('kind')}** ({keys}); task: {summary.task or 'not known yet'}")
    if summary.positive_class is not None:
        lines.append(f"- positive class: **{summary.positive_class}** (precision, recall, F1, ROC-AUC, PR-AUC, Brier)")
    stats = summary.statistics
    if stats:
        inferred = ", ".join(stats.get("inferred_categorical") or []) or "none"
        counts = ""
        if stats.get("class_counts"):
            raw, trained = stats.get("class_counts"), stats.get("trained_counts")
            counts = f"; raw training class counts: {raw}, trained (balanced): {trained}"
        lines.append(
            f"- statistics phase: {stats['seconds']:.2f} s; schema from the {stats['schema']}; inferred categorical: "
            f"{inferred}{counts}"
        )
    cal = summary.calibration
    if cal and "positive_class" in cal:
        lines.append(
            f"- calibration on the test set: mean predicted probability of {cal['positive_class']} "
            f"{fmt(cal['mean_predicted'])}, observed rate {fmt(cal['observed'])}"
        )
    unseen = [
        (name, channel, column, n)
        for name, client in summary.clients.items()
        for channel, columns in client.unseen.items()
        for column, n in columns.items()
    ] + [("server", "test", column, n) for column, n in summary.unseen.items()]
    if unseen:
        lines += ["", "## Values outside the schema's levels (encoded as 'other')", ""]
        lines += ["| party | channel | column | cells |", "|---|---|---|---|"]
        lines += [f"| {name} | {channel} | {column} | {n} |" for name, channel, column, n in unseen]
    if cal.get("bins"):
        lines += ["", "## Calibration (final model, test set)", "", "| mean predicted | observed | rows |"]
        lines += ["|---|---|---|"]
        bins = cal["bins"]
        lines += [
            f"| {fmt(p)} | {fmt(o)} | {n} |"
            for p, o, n in zip(bins["predicted"], bins["observed"], bins["rows"], strict=False)
        ]
    return lines + ([""] if lines else [])


def _privacy_lines(summary: RunSummary) -> list[str]:
    """The privacy spent, when the run used differential privacy: what it covers and how it was computed."""
    budget = summary.privacy
    if not budget:
        return []
    return [f"- differential privacy, {privacy(budget)}; {budget['adjacency']}; {budget['accountant']}"]


def _gain_lines(history: RunHistory, task: str | None) -> list[str]:
    """The report's table of what each client gains: local-only vs federated on its own validation data."""
    gains = history.client_gains(task or "binary")
    if not gains:
        return []
    metrics = list(GAIN_METRICS.get(task or "binary", {}))
    lines = [
        "## What each client gains (its own validation data; gain > 0: the federated model is better)",
        "",
        "| client | " + " | ".join(f"{m} local | {m} federated | {m} gain" for m in metrics) + " |",
        "|---" * (1 + 3 * len(metrics)) + "|",
    ]
    for name, scores in gains.items():
        cells = [
            f"{fmt(scores[m]['local'])} | {fmt(scores[m]['federated'])} | {fmt(scores[m]['gain'])}" for m in metrics
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _resume_lines(summary: RunSummary) -> list[str]:
    """Whether the model is partial, the run a resumed run continued, and the seed and input digests."""
    lines = []
    if summary.partial:
        lines.append(
            f"- model: **partial**, the global model after round {summary.rounds_completed} (the run stopped "
            f"there); `fedsage local --resume {summary.run_id}` (or `launch --resume`) continues it"
        )
    if summary.resumed_from:
        lines.append(f"- resumed from run {summary.resumed_from['run_id']} after round {summary.resumed_from['round']}")
    digests = {k: v for k, v in summary.provenance.items() if k != "clients"}
    if digests:
        lines.append("- provenance: " + ", ".join(f"{k} {v}" for k, v in digests.items()))
    return lines


def write_report(path: Path, history: RunHistory, summary: RunSummary) -> None:
    """A Markdown summary: what ran, its hyperparameters, the test metrics and curves, the clients, the files."""
    final = history.final() if history.rounds else None
    metrics = server_metrics(summary.task)
    lines = [
        f"# fedsage run {summary.run_id}",
        "",
        f"- status: **{summary.status}**" + (f" ({summary.reason})" if summary.reason else ""),
        f"- backend: {summary.backend}; rounds completed: {summary.rounds_completed or 0} of {summary.rounds}",
        *_resume_lines(summary),
        f"- wall time: {summary.seconds:.1f} s",
        f"- versions: {', '.join(f'{k} {v}' for k, v in summary.versions.items())}",
        *_privacy_lines(summary),
        *_data_lines(summary),
        "",
    ]
    if final is not None:
        lines += ["## Final test-set metrics (server)", "", "| metric | round 0 | final |", "|---|---|---|"]
        first = history.rounds[0]
        lines += [f"| {m} | {fmt(first.server.get(m))} | {fmt(final.server.get(m))} |" for m in metrics]
        lines += ["", "## Per round", "", "| round | seconds | " + " | ".join(metrics) + " |"]
        lines += ["|---" * (len(metrics) + 2) + "|"]
        for r in history.rounds:
            lines.append(f"| {r.round} | {r.seconds:.2f} | " + " | ".join(fmt(r.server.get(m)) for m in metrics) + " |")
        lines += ["", "![metrics over rounds](metrics.png)", ""]
        lines += _gain_lines(history, summary.task)
    if summary.test_set:
        lines += _test_set_lines(summary.test_set)
    if summary.hyperparameters:
        lines += ["## Hyperparameters", "", "| setting | value |", "|---|---|"]
        lines += [f"| {name} | {setting(value)} |" for name, value in summary.settings().items()] + [""]
    lines += ["## Clients", "", "| client | files, rows read | examples (last round) | job status | model artifact |"]
    lines += ["|---|---|---|---|---|"]
    for name, client in summary.clients.items():
        reason = f" ({client.failure_reason})" if client.failure_reason else ""
        examples, artifact = client.num_examples or "", relative(client.model_artifact, path.parent)
        read = ", ".join(f"{ch}: {client.files.get(ch, 0)} file(s), {n:,} rows" for ch, n in client.rows.items())
        lines.append(f"| {name} | {read} | {examples} | {client.status}{reason} | {artifact} |")
    lines += ["", "## Files", ""]
    lines += [f"- `{name}`: {what}" for name, what in summary.files.items()]
    if summary.warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in summary.warnings]
    if summary.refused_connections:
        lines += [
            "",
            "## Refused connections",
            "",
            "| time (UTC) | peer | claimed client | reason |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r['time']} | {r['peer']} | {r['claimed_name'] or ''} | {r['reason']} |"
            for r in summary.refused_connections
        ]
    write_atomic(path, "\n".join(lines) + "\n")


def outputs(
    history: RunHistory, calibration: dict[str, Any] | None = None, scores: TestScores | None = None
) -> tuple[str, ...]:
    """The files `write_all` writes for this history, calibration and final scores (run.json is written beside them)."""
    plot = ("metrics.png",) if history.rounds else ()
    curve = ("calibration.png",) if (calibration or {}).get("bins") else ()
    curves = ("test_curves.png",) if scores is not None else ()
    return ("run.json", "metrics.json", "metrics.csv", *plot, *curve, *curves, "report.md")


def figures(
    history: RunHistory,
    run_id: str,
    task: str | None,
    calibration: dict[str, Any] | None = None,
    scores: TestScores | None = None,
) -> dict[str, Figure]:
    """The run's figures (run/figures.py) by file name.

    metrics.png needs a round; calibration.png the final model's `calibration` (with bins);
    test_curves.png its `scores` on the test set.
    """
    drawn: dict[str, Figure] = {}
    if history.rounds:
        drawn["metrics.png"] = metrics_figure(history, f"fedsage run {run_id}", task)
    if (calibration or {}).get("bins"):
        drawn["calibration.png"] = calibration_figure(calibration, f"calibration, run {run_id}")
    if scores is not None:
        drawn["test_curves.png"] = scores.figure(f"fedsage run {run_id}: the final model on the test set")
    return drawn


def write_all(
    folder: RunFolder,
    history: RunHistory,
    summary: RunSummary,
    scores: TestScores | None = None,
    plotter: Plotter | None = None,
) -> None:
    """Write metrics.json, metrics.csv, the figures (`figures`) and report.md.

    `plotter`: the run's helper process (run/plotter.py), which may have drawn the figures
    already; None draws them here.
    """
    write_metrics_json(folder.path("metrics.json"), history, summary)
    write_metrics_csv(folder.path("metrics.csv"), history, summary.task)
    plotter = plotter or Plotter()
    for name, figure in figures(history, summary.run_id, summary.task, summary.calibration, scores).items():
        write_atomic(folder.path(name), plotter.png(name, figure))
    write_report(folder.path("report.md"), history, summary)
