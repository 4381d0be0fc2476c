"""A run's figures as plain data, and the one function that draws them (matplotlib, Agg backend).

The reports (run/report.py: metrics.png, calibration.png; run/curves.py: test_curves.png) and
`fedsage runs compare` describe each figure as a `Figure`: panels side by side, each with its
lines (and, for a confusion matrix, its cells). `render` turns one into PNG bytes. The split
lets a figure be drawn in another process (run/plotter.py) that imports nothing but matplotlib
and numpy: every number is computed where the data is (scikit-learn's curves in run/curves.py).

Layout uses fixed margins in inches (room for tick labels, axis labels and titles) instead of
`tight_layout`, which draws each figure an extra time to measure its text: a third of the
drawing time (0.16 of 0.48 CPU-seconds for the default job's three figures; docs/benchmarks.md).
PNGs are written at 110 dpi with zlib level 1 (0.03 s less per figure than PIL's default 6).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

DPI = 110
PNG_COMPRESSION = 1


@dataclass(frozen=True)
class Line:
    """One plotted series: `x` and `y` of equal length (None in `y`: a gap)."""

    x: list[float]
    y: list[float | None]
    label: str | None = None
    marker: str | None = "o"
    linestyle: str = "-"
    color: str | None = None
    drawstyle: str = "default"  # "steps-post" for a precision-recall curve, as scikit-learn draws it


@dataclass(frozen=True)
class Matrix:
    """A confusion matrix: `cells[i][j]` rows of true class i predicted as class j, with the class `labels`."""

    cells: list[list[int]]
    labels: list[str]


@dataclass(frozen=True)
class Panel:
    """One axes: title, axis labels and limits, lines (or a matrix), a horizontal reference line, a legend place."""

    title: str
    xlabel: str = ""
    ylabel: str = ""
    lines: list[Line] = field(default_factory=list)
    matrix: Matrix | None = None
    xlim: tuple[float | None, float | None] | None = None
    ylim: tuple[float | None, float | None] | None = None
    xticks: list[float] | None = None
    hline: float | None = None
    legend: str | None = None  # matplotlib's `loc`; None: no legend
    legend_size: str = "medium"
    grid: bool = True
    aspect: str = "auto"  # "equal" for ROC and precision-recall curves, as scikit-learn draws them


@dataclass(frozen=True)
class Figure:
    """Panels side by side in a figure of `size` inches (width, height), under an optional `title`."""

    panels: list[Panel]
    size: tuple[float, float]
    title: str | None = None


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (files only, no display), imported when a figure is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _layout(fig: Any, columns: int, title: bool) -> None:
    """Fixed margins in inches, as fractions of the figure (see the module docstring)."""
    width, height = fig.get_size_inches()
    left, right, gap = 0.85, 0.25, 0.95  # inches: y tick labels and y label; the right edge; between axes
    axis_width = (width - left - right - gap * (columns - 1)) / columns
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=0.65 / height,
        top=1 - (0.85 if title else 0.45) / height,
        wspace=gap / axis_width if columns > 1 else 0.2,
    )


def _draw_matrix(axis: Any, matrix: Matrix) -> None:
    """Cells as an image with their counts, as scikit-learn's ConfusionMatrixDisplay draws them (no colour bar)."""
    import numpy as np

    cells = np.asarray(matrix.cells)
    image = axis.imshow(cells, interpolation="nearest", cmap="viridis")
    cmap_min, cmap_max = image.cmap(0), image.cmap(1.0)
    middle = (cells.max() + cells.min()) / 2.0
    for (i, j), value in np.ndenumerate(cells):
        axis.text(j, i, f"{value:d}", ha="center", va="center", color=cmap_max if value < middle else cmap_min)
    ticks = list(range(len(matrix.labels)))
    axis.set(xticks=ticks, yticks=ticks, xticklabels=matrix.labels, yticklabels=matrix.labels)
    axis.set_ylim(len(matrix.labels) - 0.5, -0.5)


def _draw_panel(axis: Any, panel: Panel) -> None:
    if panel.matrix is not None:
        _draw_matrix(axis, panel.matrix)
    for line in panel.lines:
        y = [float("nan") if v is None else v for v in line.y]
        axis.plot(
            line.x,
            y,
            marker=line.marker,
            linestyle=line.linestyle,
            color=line.color,
            label=line.label,
            drawstyle=line.drawstyle,
        )
    if panel.hline is not None:
        axis.axhline(panel.hline, color="grey", linewidth=0.8)
    axis.set(title=panel.title, xlabel=panel.xlabel, ylabel=panel.ylabel)
    if panel.xlim is not None:
        axis.set_xlim(*panel.xlim)
    if panel.ylim is not None:
        axis.set_ylim(*panel.ylim)
    if panel.xticks is not None:
        axis.set_xticks(panel.xticks)
    if panel.legend is not None and any(line.label for line in panel.lines):
        axis.legend(loc=panel.legend, fontsize=panel.legend_size)
    if panel.grid:
        axis.grid(alpha=0.3)
    axis.set_aspect(panel.aspect)


def render(figure: Figure) -> bytes:
    """Draw `figure` and return it as PNG bytes (DPI dots per inch)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(figure.panels), figsize=figure.size, squeeze=False)
    try:
        for axis, panel in zip(axes[0], figure.panels, strict=True):
            _draw_panel(axis, panel)
        if figure.title:
            fig.suptitle(figure.title)
        _layout(fig, len(figure.panels), bool(figure.title))
        image = io.BytesIO()
        fig.savefig(image, format="png", dpi=DPI, pil_kwargs={"compress_level": PNG_COMPRESSION})
    finally:
        plt.close(fig)
    return image.getvalue()
