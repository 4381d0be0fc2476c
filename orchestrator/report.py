"""A run's metrics history -> metrics.json, metrics.csv, metrics.png and report.md."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from orchestrator.federation.history import RunHistory

SERVER_METRICS = ("loss", "accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc")
CLIENT_METRICS = ("num_examples", "train_loss", "train_accuracy", "fit_seconds", "val_loss", "val_accuracy")


def _clients(history: RunHistory) -> list[str]:
    return sorted({name for record in history.rounds for name in record.clients})


def write_metrics_json(path: Path, history: RunHistory, info: dict[str, Any]) -> None:
    """Every round's server and client metrics, with the run's summary information."""
    payload = {**info, **history.to_dict()}
    path.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def write_metrics_csv(path: Path, history: RunHistory) -> None:
    """One row per round: server.<metric> columns, then <client>.<metric> columns."""
    clients = _clients(history)
    header = ["round", "seconds", *(f"server.{m}" for m in SERVER_METRICS)]
    header += [f"{c}.{m}" for c in clients for m in CLIENT_METRICS]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for record in history.rounds:
            row: list[Any] = [record.round, f"{record.seconds:.3f}"]
            row += [record.server.get(m, "") for m in SERVER_METRICS]
            row += [record.clients.get(c, {}).get(m, "") for c in clients for m in CLIENT_METRICS]
            writer.writerow(row)


def write_metrics_plot(path: Path, history: RunHistory, title: str) -> None:
    """Test-set metrics and per-client losses over rounds, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [r.round for r in history.rounds]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    axes[0].plot(rounds, [r.server.get("loss") for r in history.rounds], marker="o")
    axes[0].set(title="Test log loss (server)", xlabel="round", ylabel="log loss")
    for metric in ("roc_auc", "pr_auc", "f1", "accuracy"):
        axes[1].plot(rounds, [r.server.get(metric, math.nan) for r in history.rounds], marker="o", label=metric)
    axes[1].set(title="Test metrics (server)", xlabel="round", ylim=(0, 1.02))
    axes[1].legend(loc="lower right")
    for client in _clients(history):
        trained = [r for r in history.rounds if "train_loss" in r.clients.get(client, {})]
        axes[2].plot(
            [r.round for r in trained], [r.clients[client]["train_loss"] for r in trained], marker="o", label=client
        )
    axes[2].set(title="Local training loss (clients)", xlabel="round", ylabel="log loss")
    if _clients(history):
        axes[2].legend(loc="upper right")
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.set_xticks(rounds)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def write_report(path: Path, history: RunHistory, info: dict[str, Any]) -> None:
    """A Markdown summary: what ran, the final and per-round test metrics, the clients, the files."""
    final = history.final() if history.rounds else None
    lines = [
        f"# fedsage run {info['run_id']}",
        "",
        f"- status: **{info['status']}**" + (f" ({info['reason']})" if info.get("reason") else ""),
        f"- backend: {info['backend']}; rounds completed: {max(0, len(history.rounds) - 1)} of {info['rounds']}",
        f"- wall time: {info['seconds']:.1f} s",
        f"- versions: {', '.join(f'{k} {v}' for k, v in info['versions'].items())}",
        "",
    ]
    if final is not None:
        lines += ["## Final test-set metrics (server)", "", "| metric | round 0 | final |", "|---|---|---|"]
        first = history.rounds[0]
        lines += [f"| {m} | {_fmt(first.server.get(m))} | {_fmt(final.server.get(m))} |" for m in SERVER_METRICS]
        lines += ["", "## Per round", "", "| round | seconds | " + " | ".join(SERVER_METRICS) + " |"]
        lines += ["|---" * (len(SERVER_METRICS) + 2) + "|"]
        for r in history.rounds:
            lines.append(
                f"| {r.round} | {r.seconds:.2f} | " + " | ".join(_fmt(r.server.get(m)) for m in SERVER_METRICS) + " |"
            )
        lines.append("")
    lines += ["## Clients", "", "| client | examples (last round) | job status | model artifact |", "|---|---|---|---|"]
    for name, client in info["clients"].items():
        reason = f" ({client['failure_reason']})" if client.get("failure_reason") else ""
        examples, artifact = client.get("num_examples") or "", client.get("model_artifact") or ""
        lines.append(f"| {name} | {examples} | {client.get('status', '')}{reason} | {artifact} |")
    lines += ["", "## Files", ""]
    lines += [f"- `{name}`: {what}" for name, what in info["files"].items()]
    if info.get("warnings"):
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in info["warnings"]]
    path.write_text("\n".join(lines) + "\n")


def write_all(run_dir: Path, history: RunHistory, info: dict[str, Any]) -> None:
    """Write metrics.json, metrics.csv, metrics.png (when there is a round) and report.md."""
    write_metrics_json(run_dir / "metrics.json", history, info)
    write_metrics_csv(run_dir / "metrics.csv", history)
    if history.rounds:
        write_metrics_plot(run_dir / "metrics.png", history, f"fedsage run {info['run_id']}")
    write_report(run_dir / "report.md", history, info)
