"""The feature schema: how a raw frame becomes the model's feature matrix, the same way for every party.

schema.json, version 2 (statistics.py merges it; `fedsage data prepare` writes it):

```
{"version": 2, "label": "income", "task": "binary" | "multiclass" | "regression", "classes": [...],
 "positive_class": <one of classes, binary only>, "class_counts": {"<class>": n},
 "label_stats": {"count": n, "mean": m, "std": s},       (regression only; its classes are [])
 "min_level_count": 10,
 "features": [{"name": "age", "kind": "numeric", "mean": m, "scale": s},
              {"name": "region", "kind": "categorical", "levels": [...], "other": true}]}
```

Version 1 files (no task, no "other") still load. `preprocessor` turns a schema into a fitted
scikit-learn ColumnTransformer: a StandardScaler per numeric column with the schema's mean and
scale, and a OneHotEncoder per categorical column over the schema's levels, where a value the
schema does not know lands in the "other" column when the schema has one (all zeros otherwise).
Clients, the server and the saved Pipeline all encode through it, so the features a model was
trained on are exactly what the Pipeline computes from raw rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .tabular import (
    DataError,
    Dataset,
    canonical_class,
    canonical_labels,
    check_labels,
    numeric_column,
    read_channel,
    require_label,
    row_at,
)

if TYPE_CHECKING:  # scikit-learn is imported where a transformer is built: reading a schema does not need it
    from sklearn.compose import ColumnTransformer

OTHER = "other"
_SENTINEL = "\x00fedsage-other"  # a placeholder value seen once when fitting, so unknown values become "other"


def normalise_schema(schema: Any, where: str) -> dict[str, Any]:
    """Check a schema's shape and fill what version 1 lacks (task, positive_class); DataError naming `where`."""
    if not isinstance(schema, dict) or not isinstance(schema.get("features"), list):
        raise DataError(f"{where} is not a fedsage feature schema (no 'features' list)")
    for key in ("label", "classes"):
        if key not in schema:
            raise DataError(f"{where} has no {key!r}; prepare the data again or let the statistics phase make one")
    schema = dict(schema)
    if schema.get("task") == "regression":
        schema["classes"], schema["positive_class"] = [], None
    elif not isinstance(schema["classes"], list) or len(schema["classes"]) < 2:
        raise DataError(f"{where}: a classifier needs at least two classes, got {schema['classes']!r}")
    # as the channels read them: "0.0" -> 0, " <=50K" -> "<=50K" (version 1 files kept such spellings)
    classes = canonical_labels(pd.Series([str(c) for c in schema["classes"]], dtype=object)).tolist()
    schema["classes"] = classes
    schema.setdefault("task", "binary" if len(classes) == 2 else "multiclass")
    if schema.get("positive_class") is not None and classes:
        schema["positive_class"] = canonical_class(schema["positive_class"], classes)
    schema.setdefault("positive_class", None)
    features = []
    for feature in schema["features"]:
        if feature.get("kind") not in ("numeric", "categorical") or "name" not in feature:
            raise DataError(f"{where}: feature {feature!r} is neither numeric nor categorical")
        if feature["kind"] == "categorical":
            feature = {**feature, "levels": [str(level).lstrip(" ") for level in feature.get("levels", [])]}
        features.append(feature)
    schema["features"] = features
    return schema


def load_schema(path: Path) -> dict[str, Any]:
    """Read a feature schema (version 1 or 2); DataError naming the file when it is missing or not one."""
    if not Path(path).is_file():
        what = "is a folder" if Path(path).is_dir() else "does not exist"
        raise DataError(f"feature schema {path} {what}; give a schema.json (of `fedsage data prepare` or `data merge`)")
    try:
        schema = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(
            f"{path} is not a readable feature schema ({exc}); restore the file, or write it again with "
            "`fedsage data prepare`"
        ) from None
    return normalise_schema(schema, str(path))


def feature_names(schema: dict[str, Any]) -> list[str]:
    """The model's input names in order: `age`, `region=east`, ..., `region=other` (levels sorted, as encoded)."""
    names: list[str] = []
    for feature in schema["features"]:
        if feature["kind"] == "numeric":
            names.append(feature["name"])
        else:
            names += [f"{feature['name']}={level}" for level in sorted(str(v) for v in feature["levels"])]
            names += [f"{feature['name']}={OTHER}"] if feature.get("other") else []
    return names


def _placeholder(schema: dict[str, Any]) -> pd.DataFrame:
    """A frame that fits the preprocessor's parts to the schema (see `preprocessor`)."""
    categorical = [f for f in schema["features"] if f["kind"] == "categorical"]
    rows = max([2 * len(f["levels"]) + 1 for f in categorical] + [2])
    columns: dict[str, Any] = {}
    for feature in schema["features"]:
        if feature["kind"] == "numeric":
            columns[feature["name"]] = np.arange(rows, dtype=np.float64)
            continue
        levels = [str(level) for level in feature["levels"]]
        if not levels and not feature.get("other"):
            raise DataError(f"categorical feature {feature['name']!r} has no levels and no 'other'; drop the column")
        pad = rows - 2 * len(levels)
        if feature.get("other"):  # sentinels seen once each: infrequent, i.e. the "other" column
            extra = [f"{_SENTINEL}{i}" for i in range(pad)]
        else:
            extra = [levels[i % len(levels)] for i in range(pad)]
        columns[feature["name"]] = np.asarray(levels * 2 + extra, dtype=object)
    return pd.DataFrame(columns)


def preprocessor(schema: dict[str, Any]) -> ColumnTransformer:
    """The schema as a fitted ColumnTransformer: columns selected by name (any order, extra columns ignored).

    One part per feature, in schema order, so the output columns are `feature_names(schema)`:
    a StandardScaler whose mean_/scale_/var_ are the schema's (fitted on a placeholder, then set),
    or a OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=2) fitted on a placeholder
    in which each level appears at least twice and, when the feature has "other", placeholder values
    appear once each: they are the only infrequent category, so every value outside the levels is
    encoded in the "other" column (scikit-learn's OneHotEncoder infrequent categories). The input
    must be `typed_frame`'s (numeric columns as numbers, categorical ones as text).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = []
    for feature in schema["features"]:
        if feature["kind"] == "numeric":
            step: Any = StandardScaler()
        else:
            step = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=2, sparse_output=False)
        parts.append((feature["name"], step, [feature["name"]]))
    transformer = ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)
    transformer.fit(_placeholder(schema))
    for feature in schema["features"]:
        if feature["kind"] == "numeric":
            scaler = transformer.named_transformers_[feature["name"]]
            scaler.mean_ = np.array([float(feature["mean"])])
            scaler.scale_ = np.array([float(feature["scale"])])
            scaler.var_ = scaler.scale_**2
    return transformer


def require_features(frame: pd.DataFrame, schema: dict[str, Any], where: str) -> None:
    """Raise DataError naming `where` and the first feature column of `schema` that `frame` lacks."""
    for feature in schema["features"]:
        if feature["name"] not in frame.columns:
            raise DataError(
                f"{where}: column {feature['name']!r} required by the feature schema is missing; add it to these "
                "files, or prepare the data again so the schema matches them"
            )


def typed_frame(
    frame: pd.DataFrame, schema: dict[str, Any], where: str, locate: Callable[[int], str] | None = None
) -> pd.DataFrame:
    """The schema's columns, numeric ones as float64 and categorical ones as text; DataError naming the fix.

    Refuses a missing column and an empty cell (numeric or categorical: fedsage does not impute).
    """
    require_features(frame, schema, where)
    columns: dict[str, Any] = {}
    for feature in schema["features"]:
        name = feature["name"]
        column = frame[name]
        if feature["kind"] == "numeric":
            columns[name] = numeric_column(column, name, where, locate=locate)
            continue
        if column.isna().any():
            row = int(np.argmax(column.isna().to_numpy()))
            at = row_at(row, locate)
            raise DataError(f"{where}: column {name!r} has an empty cell ({at}); fill it or drop the row")
        columns[name] = column.astype(str).to_numpy(dtype=object)
    return pd.DataFrame(columns, index=frame.index)


def unseen_counts(frame: pd.DataFrame, schema: dict[str, Any]) -> dict[str, int]:
    """Per categorical column, how many cells hold a value outside the schema's levels (only non-zero counts)."""
    counts: dict[str, int] = {}
    for feature in schema["features"]:
        if feature["kind"] == "categorical" and feature["name"] in frame.columns:
            known = {str(level) for level in feature["levels"]}
            n = int((~frame[feature["name"]].astype(str).isin(known)).sum())
            if n:
                counts[feature["name"]] = n
    return counts


def encode(
    frame: pd.DataFrame,
    schema: dict[str, Any],
    where: str = "data",
    locate: Callable[[int], str] | None = None,
    transformer: ColumnTransformer | None = None,
) -> np.ndarray:
    """Raw rows -> the model's feature matrix (rows x len(feature_names)), through `preprocessor(schema)`."""
    transformer = transformer or preprocessor(schema)
    return np.asarray(transformer.transform(typed_frame(frame, schema, where, locate)), dtype=np.float64)


def label_values(
    frame: pd.DataFrame,
    schema: dict[str, Any],
    where: str = "data",
    locate: Callable[[int], str] | None = None,
) -> np.ndarray:
    """The label column as the schema's canonical classes (a regression schema's: float64 numbers).

    Raises DataError naming `where` for a missing label column, an empty or non-numeric
    regression label, or a label outside the schema's classes.
    """
    label = schema["label"]
    require_label(frame, label, where)
    if schema.get("task") == "regression":
        return numeric_column(frame[label], label, where, fix="a regression label is a number", locate=locate)
    classes = list(schema["classes"])
    try:
        y = canonical_labels(frame[label], classes, locate)
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None
    check_labels(y, classes, where, locate)
    return y


def to_dataset(
    frame: pd.DataFrame,
    schema: dict[str, Any],
    where: str = "data",
    locate: Callable[[int], str] | None = None,
) -> Dataset:
    """Turn raw rows (features and label) into a Dataset with the schema's features and canonical labels.

    A regression schema's labels are float64 numbers. Raises DataError naming `where`, the column
    (and row) and the fix for a missing label column, a missing feature column, an empty or
    non-numeric cell, or a label outside the schema's classes (`label_values`, `typed_frame`).
    """
    y = label_values(frame, schema, where, locate)
    X = encode(frame, schema, where, locate)
    return Dataset(X=X, y=y, feature_names=feature_names(schema))


def load_data(channel: Path, schema: dict[str, Any]) -> Dataset:
    """Read a channel folder (every CSV below it) into a Dataset; see to_dataset for what is checked."""
    frame, info = read_channel(channel)
    return to_dataset(frame, schema, str(channel), info.locate)
