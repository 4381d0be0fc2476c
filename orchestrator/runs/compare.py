"""Several runs side by side: final test-set metrics, the hyperparameters that differ, and a plot over rounds."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator import defaults
from orchestrator.errors import BadInput
from orchestrator.run.figures import Figure, Line, Panel, render
from orchestrator.run.folder import write_atomic
from orchestrator.runs.listing import RunDetails, show_run

COMPARED = ("loss", "roc_auc", "pr_auc", "f1")  # the metrics the comparison plot draws over rounds


@dataclass(frozen=True)
class Comparison:
    """Several runs side by side.

    `metrics`: metric -> run id -> final value (None where a run has none); `settings`: the
    hyperparameters that differ between the runs ("model.c" -> run id -> value); `plot`: the PNG
    of their test-set metrics over rounds.
    """

    runs: list[RunDetails]
    metrics: dict[str, dict[str, float | None]]
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    plot: Path | None = None


def _differing(runs: list[RunDetails]) -> dict[str, dict[str, Any]]:
    """The hyperparameters whose values differ between the runs (missing counts as None)."""
    settings = {d.info.run_id: d.summary.settings() if d.summary is not None else {} for d in runs}
    names = dict.fromkeys(name for values in settings.values() for name in values)
    table = {name: {run: values.get(name) for run, values in settings.items()} for name in names}
    return {name: row for name, row in table.items() if len({json.dumps(v, default=str) for v in row.values()}) > 1}


def compare_runs(run_ids: list[str], out: Path = Path(defaults.RUNS), plot: Path | None = None) -> Comparison:
    """Compare two or more runs: final test-set metrics side by side, differing hyperparameters, and a plot.

    The plot (PNG) draws each run's test-set loss, ROC-AUC, PR-AUC and F1 over rounds; it goes to
    `plot`, by default `<out>/compare.png` (replaced by the next comparison). BadInput for fewer
    than two distinct runs or a run id that does not exist; OSError if the plot cannot be written.
    """
    ids = list(dict.fromkeys(run_ids))
    if len(ids) < 2:
        raise BadInput("compare needs at least two different run ids; list them with `fedsage runs`")
    runs = [show_run(run_id, out) for run_id in ids]
    names = dict.fromkeys(name for d in runs for name in d.info.final_metrics)
    metrics = {name: {d.info.run_id: d.info.final_metrics.get(name) for d in runs} for name in names}
    target = Path(plot) if plot is not None else Path(out) / "compare.png"
    write_comparison_plot(target, runs)
    return Comparison(runs, metrics, _differing(runs), target)


def write_comparison_plot(path: Path, runs: list[RunDetails]) -> None:
    """The test-set metrics of COMPARED over rounds, one line per run, as a PNG written atomically."""
    panels = []
    for index, metric in enumerate(COMPARED):
        lines = []
        for details in runs:
            rounds = details.history.rounds
            lines.append(Line([r.round for r in rounds], [r.server.get(metric) for r in rounds], details.info.run_id))
        legend = "upper right" if index == 0 else None
        panels.append(Panel(f"test {metric}", "round", lines=lines, legend=legend, legend_size="small"))
    figure = Figure(panels, (4.2 * len(COMPARED), 4.2), f"fedsage: {len(runs)} runs compared")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, render(figure))
