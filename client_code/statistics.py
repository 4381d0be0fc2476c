"""Federated feature statistics: what each data owner computes on its own rows, and their merge into a schema.

A client computes, from its raw training rows and nothing else (`compute_statistics`):

* the row count and the count of every (canonical) label, unless the label is a regression
  label (a number with more than REGRESSION_DISTINCT distinct values, or any non-integral one,
  or the run declared the task "regression"), whose values are never counted: a numeric label
  sends its count, mean and M2 instead ("label_moments");
* per numeric column: count, mean, M2 (the sum of squared deviations from the mean), min, max;
* per text column: the count of every distinct value, keyed by HMAC-SHA256(salt, value) (first 16
  bytes, hex), so the server sees how often a value occurs but not which value it is.

The server merges them (`merge_statistics`): numeric means and population standard deviations
(ddof=0) with the parallel formula of Chan, Golub & LeVeque (1979, "Updating formulae and a
pairwise algorithm for computing sample variances"), equal to the pooled ones up to rounding;
features in column-name order; column kinds (declared categorical/drop win; numbers at every
client -> numeric; text with few distinct values -> categorical, announced; text with many ->
refused as an identifier); the task (declared, else inferred: regression when any owner's label
is continuous or the owners' integral labels together have more than REGRESSION_DISTINCT values,
binary for two classes, multiclass otherwise); classes and their counts, or for regression the
label's mean and standard deviation. A text level is kept when it occurs at
least k (`min_level_count`) times over the whole federation; only kept levels' names are then
asked from a client that holds them (`reveal_levels`), every other value folds into one "other"
level, so a rare value never crosses an account boundary by name. `name_levels` completes the
schema (version 2, see schema.py).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from .tabular import (
    DataError,
    canonical_class,
    canonical_labels,
    numeric_column,
    require_label,
    row_at,
    sort_classes,
)

SCHEMA_VERSION = 2
REGRESSION_DISTINCT = 20  # a numeric label with more distinct values (or a non-integral one) is a regression label
CLASSIFICATION_TASKS = ("binary", "multiclass")


def level_hash(salt: str, value: str) -> str:
    """HMAC-SHA256 of a level under the run's salt, first 16 bytes as hex (RFC 2104 keyed hash)."""
    return hmac.new(salt.encode(), str(value).encode(), hashlib.sha256).hexdigest()[:32]


def _numbers(column: pd.Series) -> pd.Series | None:
    """The column parsed as numbers (pd.to_numeric; empty cells NaN) when every non-empty cell is one, else None.

    Infinities count as numbers: numeric_column then refuses them by name. Parsed once, for both.
    """
    numbers = pd.to_numeric(column, errors="coerce")
    return numbers if bool((numbers.notna() | column.isna()).all()) else None


def label_statistics(labels: pd.Series, task: str | None, where: str, locate: Any = None) -> dict[str, Any]:
    """What an owner tells about its label: {"label_counts": {class as text: n}} and/or {"label_moments": {...}}.

    A numeric label sends its moments (count, mean, M2; not its extremes). Its value counts are
    sent unless it is a regression label (the module docstring); text labels always send counts.
    Raises DataError naming `where` (and the row: `locate(row)`) for an empty label, or a non-numeric
    value when `task` is regression.
    """
    try:
        canonical = canonical_labels(labels, locate=locate) if task != "regression" else None
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None
    numbers = pd.to_numeric(labels.astype(str).str.strip(), errors="coerce")
    answer: dict[str, Any] = {}
    if numbers.notna().all():
        values = numeric_column(labels, str(labels.name), where, fix="a regression label is a number", locate=locate)
        mean = float(values.mean())
        answer["label_moments"] = {"count": len(values), "mean": mean, "m2": float(((values - mean) ** 2).sum())}
        continuous = bool(np.any(np.mod(values, 1) != 0)) or len(np.unique(values)) > REGRESSION_DISTINCT
    elif task == "regression":
        bad = labels[numbers.isna()].iloc[0]
        raise DataError(f"{where}: label value {bad!r} is not a number; a regression label is numeric ([data] task)")
    else:
        continuous = False
    if task in CLASSIFICATION_TASKS or (task is None and not continuous):
        if canonical is None:
            canonical = canonical_labels(labels)
        counts = pd.Series(canonical).value_counts()
        answer["label_counts"] = {str(k): int(v) for k, v in counts.items()}
    return answer


def compute_statistics(
    frame: pd.DataFrame,
    label: str,
    salt: str,
    categorical: tuple[str, ...] | list[str] = (),
    drop: tuple[str, ...] | list[str] = (),
    max_levels: int = 50,
    where: str = "data",
    locate: Callable[[int], str] | None = None,
    task: str | None = None,
) -> dict[str, Any]:
    """One owner's aggregate statistics of its raw rows (text cells, as tabular.read_channel gives them).

    Returns a JSON-ready dict: {"rows", "label_counts": {class as text: n} and/or "label_moments":
    {"count", "mean", "m2"} (label_statistics; `task` None infers), "columns": {name:
    {"numeric": true, "count", "mean", "m2", "min", "max"} or {"numeric": false, "distinct", "levels":
    {hash: n}}}}. A text column with more than `max_levels` distinct values (not declared categorical)
    sends its distinct count only: it cannot be categorical. Columns in `drop` are left out. Raises
    DataError naming `where`, the column, the row and the fix for a missing label column or an empty cell.
    """
    require_label(frame, label, where)
    summary = label_statistics(frame[label], task, where, locate)
    columns: dict[str, Any] = {}
    for name in frame.columns:
        if name == label or name in drop:
            continue
        column = frame[name]
        numbers = _numbers(column) if name not in categorical else None
        if numbers is not None:
            values = numeric_column(column, name, where, locate=locate, numbers=numbers)
            mean = float(values.mean())
            columns[name] = {
                "numeric": True,
                "count": len(values),
                "mean": mean,
                "m2": float(((values - mean) ** 2).sum()),
                "min": float(values.min()),
                "max": float(values.max()),
            }
            continue
        if column.isna().any():
            row = int(np.argmax(column.isna().to_numpy()))
            at = row_at(row, locate)
            raise DataError(f"{where}: column {name!r} has an empty cell ({at}); fill it or drop the row")
        levels = column.value_counts()
        entry: dict[str, Any] = {"numeric": False, "distinct": len(levels)}
        if name in categorical or len(levels) <= max_levels:
            entry["levels"] = {level_hash(salt, value): int(n) for value, n in levels.items()}
        columns[name] = entry
    return {"rows": len(frame), **summary, "columns": columns}


def reveal_levels(frame: pd.DataFrame, salt: str, hashes: dict[str, list[str]]) -> dict[str, dict[str, str]]:
    """The names of the asked level hashes this owner holds: {column: {hash: value}} (others are not named)."""
    revealed: dict[str, dict[str, str]] = {}
    for column, wanted in hashes.items():
        if column not in frame.columns:
            continue
        asked = set(wanted)
        for value in frame[column].dropna().unique():
            digest = level_hash(salt, value)
            if digest in asked:
                revealed.setdefault(column, {})[digest] = str(value)
    return revealed


def _chan(parts: list[dict[str, Any]]) -> tuple[int, float, float]:
    """(count, mean, M2) of the union of parts, by Chan, Golub & LeVeque's pairwise update."""
    n, mean, m2 = 0, 0.0, 0.0
    for part in parts:
        nb, mb, m2b = int(part["count"]), float(part["mean"]), float(part["m2"])
        if nb == 0:
            continue
        total = n + nb
        delta = mb - mean
        mean += delta * nb / total
        m2 += m2b + delta * delta * n * nb / total
        n = total
    return n, mean, m2


def infer_task(statistics: dict[str, dict[str, Any]], declared: str | None = None) -> str:
    """The federation's task: `declared`, else regression or binary/multiclass by the module docstring's rule."""
    if declared:
        return declared
    parts = list(statistics.values())
    numeric = all("label_moments" in s for s in parts)
    if any("label_counts" not in s for s in parts):
        return "regression"
    distinct = {key for s in parts for key in s["label_counts"]}
    if numeric and len(distinct) > REGRESSION_DISTINCT:
        return "regression"
    return "binary" if len(distinct) == 2 else "multiclass"


def _classes(statistics: dict[str, dict[str, Any]]) -> tuple[list[Any], dict[Any, int]]:
    """The federation's canonical classes and their raw counts, from every owner's label counts."""
    keys = sorted({key for stats in statistics.values() for key in stats["label_counts"]})
    classes = sort_classes(list(dict.fromkeys(canonical_labels(pd.Series(keys, dtype=object)).tolist())))
    totals: dict[Any, int] = dict.fromkeys(classes, 0)
    for stats in statistics.values():
        for key, n in stats["label_counts"].items():
            totals[canonical_class(key, classes)] += int(n)
    return classes, totals


def choose_positive(
    classes: list[Any], counts: dict[Any, int], given: Any = None, tie_break: dict[Any, int] | None = None
) -> Any:
    """The positive class of a binary task: `given` (canonicalised), else the minority class of `counts`.

    When the counts tie (training data balanced before it reached fedsage), the minority of
    `tie_break` (the server's test set) decides, then the last class. Returns None for multiclass
    tasks. Raises DataError when `given` is not one of the classes.
    """
    if given is not None and given != "":
        value = canonical_class(given, classes)
        if value not in classes:
            raise DataError(f"positive class {given!r} is not one of the classes {classes}; choose one of them")
        return value
    if len(classes) != 2:
        return None
    tie_break = tie_break or {}
    return min(reversed(classes), key=lambda c: (counts.get(c, 0), tie_break.get(c, 0)))


def merge_statistics(
    statistics: dict[str, dict[str, Any]],
    label: str,
    *,
    min_level_count: int,
    max_levels: int,
    categorical: tuple[str, ...] | list[str] = (),
    positive_class: Any = None,
    task: str | None = None,
) -> dict[str, Any]:
    """Merge every owner's statistics (by owner name) into a schema whose kept levels are still hashes.

    Returns the schema (see the module docstring) with, per categorical feature, "level_hashes"
    (kept hashes) and "holders" ({hash: owner that holds it}); `name_levels` replaces them by names.
    "inferred" lists the text columns inferred categorical; "task_inferred" says whether the task
    was inferred (not declared by `task`). Raises DataError naming the column (and the owners) for:
    columns that differ between owners, a column with numbers at some owners and text at others, a
    text column with too many distinct values (an identifier), fewer than two classes, a
    classification task over a label whose owners sent no counts, a regression label that is text.
    """
    names = sorted(statistics)
    column_sets = {name: list(stats["columns"]) for name, stats in statistics.items()}
    first = names[0]
    for name in names[1:]:
        missing = [c for c in column_sets[first] if c not in column_sets[name]]
        extra = [c for c in column_sets[name] if c not in column_sets[first]]
        if missing or extra:
            column = (missing or extra)[0]
            has, lacks = (first, name) if missing else (name, first)
            raise DataError(
                f"column {column!r} is in {has}'s data but not in {lacks}'s; give every owner the same "
                f"columns or leave it out with --drop {column} ([data] drop)"
            )
    resolved = infer_task(statistics, task)
    label_part: dict[str, Any]
    if resolved == "regression":
        if not all("label_moments" in s for s in statistics.values()):
            raise DataError(
                f"label {label!r} holds text at some owner: a regression label is numeric; check [data] task"
            )
        n, mean, m2 = _chan([statistics[name]["label_moments"] for name in names])
        label_part = {
            "classes": [],
            "positive_class": None,
            "label_stats": {"count": n, "mean": mean, "std": float(np.sqrt(m2 / n))},
        }
    else:
        if not all("label_counts" in s for s in statistics.values()):
            raise DataError(f"label {label!r} is continuous at some owner; it cannot be a {resolved} label")
        classes, counts = _classes(statistics)
        if len(classes) < 2:
            raise DataError(f"label {label!r} has a single class ({classes[0]!r}) over the federation; need two")
        label_part = {
            "classes": classes,
            "positive_class": choose_positive(classes, counts, positive_class),
            "class_counts": {str(c): counts[c] for c in classes},
        }
    rows = sum(int(s["rows"]) for s in statistics.values())
    features: list[dict[str, Any]] = []
    inferred: list[str] = []
    for column in sorted(column_sets[first]):  # by name: whichever owner answers first, the same schema
        parts = {name: statistics[name]["columns"][column] for name in names}
        numeric = [name for name, part in parts.items() if part["numeric"]]
        if len(numeric) == len(names):
            n, mean, m2 = _chan(list(parts.values()))
            scale = float(np.sqrt(m2 / n)) if n else 0.0
            features.append({"name": column, "kind": "numeric", "mean": mean, "scale": scale or 1.0})
            continue
        if numeric and column not in categorical:
            text = next(name for name in names if name not in numeric)
            raise DataError(
                f"column {column!r} holds numbers at {numeric[0]} but text at {text}; fix {text}'s values that are "
                f"not numbers, or declare it categorical ([data] categorical = [{column!r}] in federation.toml, "
                f"or --categorical {column} with `fedsage data prepare`)"
            )
        totals: dict[str, int] = {}
        holders: dict[str, tuple[int, str]] = {}
        complete = all("levels" in part for part in parts.values())
        for name, part in parts.items():
            for digest, n in part.get("levels", {}).items():
                totals[digest] = totals.get(digest, 0) + int(n)
                if n > holders.get(digest, (0, ""))[0]:
                    holders[digest] = (int(n), name)
        distinct = len(totals) if complete else max(int(p["distinct"]) for p in parts.values())
        if column not in categorical:
            if not complete or distinct > max_levels or distinct > rows / 2:
                shown = f"{distinct:,}" if complete or len(parts) == 1 else f"more than {max_levels}"
                raise DataError(
                    f"column {column!r} has {shown} distinct text values in {rows:,} rows: it looks like an "
                    f"identifier; leave it out with --drop {column} ([data] drop)"
                )
            inferred.append(column)
        kept = sorted(d for d, n in totals.items() if n >= min_level_count)
        features.append(
            {
                "name": column,
                "kind": "categorical",
                "level_hashes": kept,
                "holders": {d: holders[d][1] for d in kept},
                "other": True,
                "folded_values": len(totals) - len(kept),
            }
        )
    return {
        "version": SCHEMA_VERSION,
        "label": label,
        "task": resolved,
        **label_part,
        "min_level_count": min_level_count,
        "features": features,
        "inferred": inferred,
        "task_inferred": task is None,
    }


def reveal_requests(merged: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    """Which owner to ask for which kept hashes: {owner: {column: [hash, ...]}} (one holder per hash)."""
    requests: dict[str, dict[str, list[str]]] = {}
    for feature in merged["features"]:
        for digest, owner in feature.get("holders", {}).items():
            requests.setdefault(owner, {}).setdefault(feature["name"], []).append(digest)
    return requests


def name_levels(merged: dict[str, Any], revealed: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The finished schema: kept hashes replaced by their revealed names (sorted); DataError if one is missing."""
    features = []
    for feature in merged["features"]:
        if feature["kind"] != "categorical":
            features.append(feature)
            continue
        names = revealed.get(feature["name"], {})
        missing = [d for d in feature["level_hashes"] if d not in names]
        if missing:
            raise DataError(
                f"column {feature['name']!r}: {len(missing)} kept level(s) were not named by their holders; "
                "ask them to answer the reveal request"
            )
        levels = sorted(names[d] for d in feature["level_hashes"])
        features.append({"name": feature["name"], "kind": "categorical", "levels": levels, "other": True})
    schema = {k: v for k, v in merged.items() if k not in ("features", "inferred", "task_inferred")}
    schema["features"] = features
    return schema
