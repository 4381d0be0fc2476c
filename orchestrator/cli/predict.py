"""`fedsage predict`: score a CSV file of raw rows with a run's model (orchestrator/predict.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.common import console, err_console

PREDICT_EPILOG = (
    "Examples:\n\n  fedsage predict runs/<run-id>/model.joblib --input new_claims.csv --out predictions.csv"
)


def predict_command(
    model: Annotated[
        Path,
        typer.Argument(help="A model.joblib written by a fedsage run, of any model family (its .sha256 beside it)."),
    ],
    input_: Annotated[Path, typer.Option("--input", help="A CSV file (or folder) of raw rows, with header.")],
    out: Annotated[
        Path, typer.Option(help="CSV file to write: prediction (and probability_<class> for classification) per row.")
    ],
) -> None:
    """Score raw rows with a federation's model: checksum verified, loaded safely, rows in input order.

    The model is a Pipeline that applies the run's feature schema itself (scaling, one-hot levels,
    unknown values as "other"), so the input needs only the columns the model was trained on, in
    any order; extra columns are ignored.
    """
    from orchestrator.predict import predict_file

    result = predict_file(model, input_, out)
    if result.partial is not None:
        from orchestrator.inspect import partial_line

        err_console.print(f"warning: {partial_line(result.partial)}", highlight=False, markup=False)
    if result.task == "regression":
        scored = f"scored {result.rows:,} rows (regression: prediction per row)"
    else:
        positive = f"; positive class {result.positive_class}" if result.positive_class is not None else ""
        kind = "" if result.probabilities else "; no probabilities: score_<class> is the decision function"
        scored = f"scored {result.rows:,} rows (classes {result.classes}{positive}{kind})"
    console.print(f"[green]✓[/] {scored}; written to [bold]{out}[/]")
