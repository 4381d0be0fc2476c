"""Split one tabular data set the way separate accounts would hold it, and prepare each part.

Order matters and is fixed:

1. hold out the server's test set first (stratified), so nothing downstream touches it;
2. partition the rest over the clients;
3. split each client's part into train and validation (stratified where possible);
4. fit the feature schema on the clients' training rows (numeric centring and scaling,
   categorical levels, label classes);
5. balance each client's training split with SMOTE, per client, never across clients, and
   never the validation or test sets.

The result is written to a temporary folder and renamed into place, so a failure leaves
nothing half-written.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from client_code import utils
from orchestrator.data import layout
from orchestrator.errors import BadInput

log = logging.getLogger(__name__)

Partitioner = Callable[[pd.DataFrame, str, int, np.random.Generator], list[np.ndarray]]


@dataclass(frozen=True)
class PrepareOptions:
    """How to split and prepare a data set (the options of `fedsage data prepare`)."""

    label: str
    clients: int = 3
    test_size: float = 0.2
    validation_size: float = 0.2
    smote: bool = True
    smote_ratio: float = 1.0
    seed: int = 42
    categorical: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    client_names: tuple[str, ...] = ()

    def names(self) -> list[str]:
        """Client names: the given ones, or client-1 .. client-N."""
        return list(self.client_names) or [f"client-{i + 1}" for i in range(self.clients)]


@dataclass
class PartSummary:
    """Rows and class counts of one written part (a client split or the test set)."""

    name: str
    split: str
    rows: int
    class_counts: dict[str, int]
    rows_before_smote: int | None = None


@dataclass
class PrepareSummary:
    """What `prepare` wrote, for the table the CLI prints and for manifest.json."""

    out: Path
    label: str
    classes: list[Any]
    features: int
    parts: list[PartSummary] = field(default_factory=list)


def partition_iid(frame: pd.DataFrame, label: str, clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Deal the rows of each class evenly over the clients (stratified IID partition)."""
    parts: list[list[int]] = [[] for _ in range(clients)]
    offset = 0
    for _, index in sorted(frame.groupby(label).indices.items(), key=lambda kv: str(kv[0])):
        shuffled = rng.permutation(index)
        for i, chunk in enumerate(np.array_split(shuffled, clients)):
            parts[(i + offset) % clients].extend(chunk.tolist())
        offset += len(shuffled) % clients
    return [np.sort(np.asarray(p, dtype=int)) for p in parts]


def build_schema(frame: pd.DataFrame, label: str, categorical: tuple[str, ...], classes: list[Any]) -> dict[str, Any]:
    """Fit the feature schema on training rows: numeric mean/scale, categorical levels, classes."""
    features = []
    for name in frame.columns:
        if name == label:
            continue
        if name in categorical:
            levels = sorted({str(v) for v in frame[name].dropna().unique()})
            features.append({"name": name, "kind": "categorical", "levels": levels})
        else:
            values = frame[name].to_numpy(dtype=np.float64)
            scale = float(values.std())
            features.append({"name": name, "kind": "numeric", "mean": float(values.mean()), "scale": scale or 1.0})
    return {"version": 1, "label": label, "classes": classes, "features": features}


def check_frame(frame: pd.DataFrame, options: PrepareOptions) -> list[Any]:
    """Validate the input before anything is written; return the sorted class list."""
    label = options.label
    if frame.empty:
        raise BadInput("the input has a header but no rows; give a CSV file with data")
    if label not in frame.columns:
        raise BadInput(f"label column {label!r} not found; choose one of: {', '.join(map(str, frame.columns))}")
    if frame[label].isna().any():
        raise BadInput(f"label column {label!r} has empty values; drop or fill those rows")
    for name in (*options.categorical, *options.drop):
        if name not in frame.columns or name == label:
            raise BadInput(f"column {name!r} given to --categorical/--drop is not a feature column")
    for name in frame.columns:
        if name == label or name in options.categorical:
            continue
        numeric = pd.to_numeric(frame[name], errors="coerce")
        if (numeric.isna() & frame[name].notna()).any():
            raise BadInput(
                f"column {name!r} is not numeric; declare it with --categorical {name} "
                f"or leave it out with --drop {name}"
            )
        if numeric.isna().any():
            raise BadInput(f"column {name!r} has missing values; fill or drop those rows first")
    counts = frame[label].value_counts()
    if len(counts) < 2:
        raise BadInput(
            f"label column {label!r} has a single class ({counts.index[0]!r}); a classifier needs at least two"
        )
    too_few = counts[counts < 2 * options.clients]
    if not too_few.empty:
        raise BadInput(
            f"class {too_few.index[0]!r} has only {too_few.iloc[0]} rows, too few for a test set "
            f"and {options.clients} clients; use fewer clients or more data"
        )
    if not 0 < options.test_size < 1 or not 0 <= options.validation_size < 1:
        raise BadInput("--test-size must be in (0, 1) and --validation-size in [0, 1)")
    if options.smote_ratio <= 0 or options.smote_ratio > 1:
        raise BadInput(f"--smote-ratio must be in (0, 1], got {options.smote_ratio}")
    values = sorted(counts.index.tolist(), key=lambda v: (str(type(v)), v))
    return [v.item() if hasattr(v, "item") else v for v in values]


def _split(frame: pd.DataFrame, label: str, size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split rows in two, stratified by label where every class has enough rows."""
    counts = frame[label].value_counts()
    stratify = frame[label] if counts.min() >= 2 and round(size * len(frame)) >= len(counts) else None
    first, second = train_test_split(frame, test_size=size, random_state=seed, stratify=stratify)
    return first.sort_index(), second.sort_index()


def smote_balance(train: pd.DataFrame, label: str, schema: dict[str, Any], ratio: float, seed: int) -> pd.DataFrame:
    """Oversample the minority classes of one client's training split with SMOTE.

    Rows are encoded with the feature schema (the same `apply_schema` every party uses:
    scaled numerics, one-hot categoricals), SMOTE interpolates in that space, and only the
    synthetic rows are mapped back to raw units: numeric columns unscaled (integer columns
    rounded), each categorical column set to the level with the largest interpolated weight,
    i.e. the level of the nearer parent row. Original rows are kept exactly as they were.
    Each minority class is raised to `ratio` times the majority count; a class with fewer
    than two rows cannot be interpolated and is left as it is.
    """
    from imblearn.over_sampling import SMOTE

    counts = train[label].value_counts()
    target = int(ratio * counts.max())
    strategy = {cls: target for cls, n in counts.items() if 2 <= n < target}
    if not strategy:
        return train
    k = int(min(5, min(counts[cls] for cls in strategy) - 1))
    encoded, _ = utils.apply_schema(train, schema, "training split")
    sampler = SMOTE(sampling_strategy=strategy, k_neighbors=k, random_state=seed)
    resampled, labels = sampler.fit_resample(encoded, train[label].to_numpy())
    synthetic, synthetic_labels = resampled[len(train) :], labels[len(train) :]

    columns: dict[str, Any] = {}
    offset = 0
    for feature in schema["features"]:
        name = feature["name"]
        if feature["kind"] == "categorical":
            block = synthetic[:, offset : offset + len(feature["levels"])]
            columns[name] = np.asarray(feature["levels"], dtype=object)[block.argmax(axis=1)]
            offset += len(feature["levels"])
        else:
            values = synthetic[:, offset] * feature["scale"] + feature["mean"]
            integer = pd.api.types.is_integer_dtype(train[name])
            columns[name] = np.round(values).astype(train[name].dtype) if integer else values
            offset += 1
    columns[label] = synthetic_labels
    extra = pd.DataFrame(columns)[list(train.columns)].astype(train.dtypes.to_dict())
    return pd.concat([train, extra], ignore_index=True)


def _class_counts(frame: pd.DataFrame, label: str, classes: list[Any]) -> dict[str, int]:
    counts = frame[label].value_counts()
    return {str(c): int(counts.get(c, 0)) for c in classes}


def prepare(
    frame: pd.DataFrame,
    options: PrepareOptions,
    out: Path,
    partition: Partitioner = partition_iid,
    source: str = "",
) -> PrepareSummary:
    """Split, balance and write `frame` as a prepared-data folder at `out` (see layout)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise BadInput(f"output folder {out} already exists and is not empty; choose a new --out")
    frame = frame.drop(columns=list(options.drop))
    classes = check_frame(frame, options)
    label = options.label
    rng = np.random.default_rng(options.seed)

    rest, test = _split(frame, label, options.test_size, options.seed)
    parts = partition(rest, label, options.clients, rng)
    names = options.names()
    splits: list[tuple[str, pd.DataFrame, pd.DataFrame | None]] = []
    for name, index in zip(names, parts, strict=True):
        part = rest.iloc[index]
        if part.empty:
            raise BadInput(f"the partition left client {name!r} with no rows; use fewer clients or another partition")
        if options.validation_size > 0 and len(part) >= 4:
            train, validation = _split(part, label, options.validation_size, options.seed)
        else:
            train, validation = part, None
        splits.append((name, train, validation))

    schema = build_schema(pd.concat([s[1] for s in splits]), label, options.categorical, classes)
    summary = PrepareSummary(out=out, label=label, classes=classes, features=len(schema["features"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        layout.write_json(staging / layout.SCHEMA, schema)
        test.to_csv(staging / layout.TEST, index=False)
        summary.parts.append(PartSummary("server", "test", len(test), _class_counts(test, label, classes)))
        for name, train, validation in splits:
            before = len(train)
            if options.smote:
                train = smote_balance(train, label, schema, options.smote_ratio, options.seed)
            _write_channel(staging, name, layout.TRAIN, train, schema)
            summary.parts.append(
                PartSummary(
                    name, "train", len(train), _class_counts(train, label, classes), before if options.smote else None
                )
            )
            if validation is not None:
                _write_channel(staging, name, layout.VALIDATION, validation, schema)
                summary.parts.append(
                    PartSummary(name, "validation", len(validation), _class_counts(validation, label, classes))
                )
        layout.write_json(staging / layout.MANIFEST, _manifest(summary, options, source))
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summary


def _write_channel(root: Path, client: str, channel: str, frame: pd.DataFrame, schema: dict[str, Any]) -> None:
    folder = layout.client_folder(root, client) / channel
    folder.mkdir(parents=True)
    frame.to_csv(folder / f"{channel}.csv", index=False)
    layout.write_json(folder / layout.SCHEMA, schema)


def _manifest(summary: PrepareSummary, options: PrepareOptions, source: str) -> dict[str, Any]:
    return {
        "source": source,
        "label": summary.label,
        "classes": summary.classes,
        "options": {k: v for k, v in options.__dict__.items() if k != "client_names"},
        "parts": [part.__dict__ for part in summary.parts],
    }
