"""The feature schema: how a raw frame becomes the model's feature matrix, the same way for every party."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .tabular import DataError, Dataset, normalise_labels, numeric_column, read_csv_folder


def load_schema(path: Path) -> dict[str, Any]:
    """Read a feature schema written by `fedsage data prepare`."""
    try:
        schema = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not a readable feature schema ({exc})") from None
    if not isinstance(schema, dict) or "features" not in schema:
        raise DataError(f"{path} is not a fedsage feature schema (no 'features' list)")
    return schema


def apply_schema(frame: pd.DataFrame, schema: dict[str, Any], where: str) -> tuple[np.ndarray, list[str]]:
    """Turn raw feature columns into the model's feature matrix, exactly as every party does.

    Numeric columns are centred and scaled with the schema's parameters; categorical columns are
    one-hot encoded over the schema's levels (an unseen level encodes as all zeros). The output
    column order is the schema's, whatever the order in the file.
    """
    blocks: list[np.ndarray] = []
    names: list[str] = []
    for feature in schema["features"]:
        name = feature["name"]
        if name not in frame.columns:
            raise DataError(f"{where}: column {name!r} required by the feature schema is missing")
        column = frame[name]
        if feature["kind"] == "categorical":
            levels = [str(level) for level in feature["levels"]]
            text = column.astype(str).to_numpy()
            blocks.append(np.stack([(text == level) for level in levels], axis=1).astype(float))
            names.extend(f"{name}={level}" for level in levels)
        else:
            values = numeric_column(column, name, where)
            blocks.append(((values - feature["mean"]) / feature["scale"]).reshape(-1, 1))
            names.append(name)
    return np.hstack(blocks), names


def load_data(
    channel: Path,
    label_column: str,
    classes: list[Any] | None = None,
    schema: dict[str, Any] | None = None,
) -> Dataset:
    """Load a channel folder of CSV files into a Dataset the model can train or be scored on.

    See `to_dataset` for what is checked; raises DataError naming the folder, the column and the fix.
    """
    return to_dataset(read_csv_folder(channel), label_column, classes, schema, str(channel))


def to_dataset(
    frame: pd.DataFrame,
    label_column: str,
    classes: list[Any] | None = None,
    schema: dict[str, Any] | None = None,
    where: str = "data",
) -> Dataset:
    """Turn a raw frame (features and label) into a Dataset.

    With a feature schema the schema decides the features; without one every column other than
    the label is a feature and must be numeric. Labels are checked against `classes` when given.
    A problem raises DataError naming `where`, the column and the fix.
    """
    if label_column not in frame.columns:
        raise DataError(
            f"{where}: label column {label_column!r} not found (columns: "
            f"{', '.join(map(str, frame.columns[:8]))}{', ...' if frame.shape[1] > 8 else ''}); "
            "pass the right --label-column"
        )
    y = normalise_labels(frame[label_column], classes, where)
    features = frame.drop(columns=[label_column])
    if schema is not None:
        X, names = apply_schema(features, schema, where)
    else:
        if features.shape[1] == 0:
            raise DataError(f"{where}: there are no feature columns besides the label")
        names = [str(name) for name in features.columns]
        X = np.column_stack([numeric_column(features[n], n, where) for n in features.columns])
    return Dataset(X=X, y=y, feature_names=names)
