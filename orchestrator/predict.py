"""`fedsage predict`: score raw rows with a federation's model, after the same checks as `fedsage inspect`.

The model file is verified against its checksum and loaded safely (model_file.load_model: model.skops
through skops.io when it lies beside model.joblib, else the allow-list unpickler), whatever its model
family. The input is read as every party reads a channel (client_code/tabular.py: only empty cells
missing, spaces after commas dropped, columns by name in any order, extra columns ignored) and scored
by the Pipeline, which applies the schema's preprocessing itself. The output has the input's rows in
order: for classification `prediction`, then `probability_<class>` for every class (an sgd model
with hinge loss has no probabilities: `score_<class>` columns hold its decision function, which
ranks rows); for regression `prediction` alone. It is written whole or not at all.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from orchestrator.errors import BadInput
from orchestrator.inspect import outputs_of, partial_model, task_of_model
from orchestrator.model_file import estimator_of, load_model


@dataclass(frozen=True)
class Predictions:
    """What `predict_file` wrote: rows, task, classes ([] for regression), positive class, probabilities?, file.

    `partial`: inspect.partial_model's dict when the model is the last good one of a stopped run, else None.
    """

    rows: int
    task: str
    classes: list[Any]
    positive_class: Any
    probabilities: bool
    out: Path
    partial: dict[str, Any] | None = None  # inspect.partial_model: the model is the last good one of a stopped run


def predict_frame(model: Any, frame: pd.DataFrame, where: str, locate=None) -> pd.DataFrame:
    """Score raw rows (text cells) with a loaded fedsage model of any family: the columns of the module docstring.

    Raises BadInput naming every missing column, or the first cell the schema cannot read.
    """
    from sklearn.pipeline import Pipeline

    from client_code.metrics import class_scores
    from client_code.schema import encode, normalise_schema, typed_frame
    from client_code.tabular import DataError

    schema = normalise_schema(model.fedsage_provenance_.get("schema") or {}, "the model's schema")
    needed = [f["name"] for f in schema["features"]]
    missing = [name for name in needed if name not in frame.columns]
    if missing:
        raise BadInput(f"{where} lacks the column(s) {', '.join(missing)} that the model needs; add them")
    pipeline = isinstance(model, Pipeline)
    scorer = model if pipeline else estimator_of(model)  # a bare estimator from an older run: encode the rows here
    try:
        rows = typed_frame(frame, schema, where, locate) if pipeline else encode(frame, schema, where, locate)
    except DataError as exc:
        raise BadInput(str(exc)) from None
    if task_of_model(model) == "regression":
        return pd.DataFrame({"prediction": np.asarray(scorer.predict(rows), dtype=np.float64).reshape(-1)})
    classes = outputs_of(model)
    scores, probabilities = class_scores(scorer, rows, len(classes))
    out = pd.DataFrame({"prediction": np.asarray(classes, dtype=object)[np.argmax(scores, axis=1)]})
    prefix = "probability" if probabilities else "score"
    for i, cls in enumerate(classes):
        out[f"{prefix}_{cls}"] = scores[:, i]
    return out


def predict_file(model_path: Path, input_path: Path, out: Path) -> Predictions:
    """Verify and load the model, score every row of `input_path`, write `out` atomically (see the module docstring).

    Raises BadInput for a model that fails the checks, an unreadable input, missing columns, or an
    existing or unwritable `out`.
    """
    from client_code.tabular import DataError, read_channel
    from orchestrator.run.folder import write_atomic

    out = Path(out)
    if out.exists():
        raise BadInput(f"{out} already exists; choose another --out")
    if not out.parent.is_dir():
        raise BadInput(f"folder {out.parent} does not exist; create it first")
    if not Path(input_path).exists():
        raise BadInput(f"--input {input_path} does not exist; give a CSV file (or a folder of CSV files) of raw rows")
    model, _ = load_model(model_path)
    try:
        frame, info = read_channel(input_path)
    except DataError as exc:
        raise BadInput(str(exc)) from None
    scored = predict_frame(model, frame, str(input_path), info.locate)
    text = io.StringIO()
    scored.to_csv(text, index=False)
    write_atomic(out, text.getvalue())
    task = task_of_model(model)
    probabilities = task != "regression" and any(c.startswith("probability_") for c in scored.columns)
    positive = model.fedsage_provenance_.get("positive_class")
    partial = partial_model(model.fedsage_provenance_, model_path)
    return Predictions(len(scored), task, outputs_of(model), positive, probabilities, out, partial)
