"""Split one tabular data set the way separate accounts would hold it, and prepare each part.

Order matters and is fixed:

1. hold out the server's test set first (stratified), so nothing downstream touches it;
2. partition the rest over the clients (`partition.py`: iid, dirichlet, quantity, column,
   class lists), checking every client gets rows of every class;
3. split each client's part into train and validation (stratified where possible, never
   leaving a class out of the training split);
4. compute the feature schema from the clients' training rows with the same code the
   statistics phase runs (client_code/statistics.py: numeric means and scales, inferred column
   kinds, levels seen at least k times, classes and their counts, the positive class).

A regression label (declared with `task`, or inferred as the statistics phase infers it) has no
classes: the test set, the partitions and the validation splits are stratified by quintiles of
the label instead (split.STRATA bins), so `dirichlet:` skews the label's distribution between clients;
class lists need classes and are refused.

Nothing is resampled here: class balancing happens inside each training job, after encoding
(docs/adr/0004-resampling-in-the-job.md), so the prepared files describe the raw data.
Labels are written canonical (`0.0` -> 0). Everything is checked before anything is written,
and the result is written to a temporary folder and renamed into place, so a failure leaves
nothing half-written. own.py's `prepare_own` is the one-owner variant: one owner's file checked
against a shared schema and split into its own train and validation channels, nothing pooled.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from client_code.statistics import (
    compute_statistics,
    infer_task,
    label_statistics,
    merge_statistics,
    name_levels,
    reveal_levels,
)
from client_code.tabular import DataError, canonical_labels, sort_classes
from orchestrator import defaults
from orchestrator.data import layout, partition
from orchestrator.data.options import PartSummary, PrepareOptions, PrepareSummary
from orchestrator.data.split import STRATA, STRATUM, split_client, split_rows, strata
from orchestrator.errors import BadInput
from orchestrator.paths import output_folder

log = logging.getLogger(__name__)

UNASSIGNED = "unassigned"


def label_task(frame: pd.DataFrame, options: PrepareOptions) -> str:
    """The task of the input's label: `options.task`, else inferred as the statistics phase infers it.

    BadInput for a label column that is missing or has empty values, or a regression label that is text.
    """
    if options.label not in frame.columns:
        raise BadInput(f"label column {options.label!r} not found; choose one of: {_columns_hint(frame)}")
    if frame[options.label].isna().any():
        raise BadInput(f"label column {options.label!r} has empty values; drop or fill those rows")
    try:
        summary = label_statistics(frame[options.label].astype(str), options.task, "input")
    except DataError as exc:
        raise BadInput(str(exc)) from None
    return infer_task({"input": summary}, options.task)


def pooled_schema(
    train: pd.DataFrame, options: PrepareOptions, task: str | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The schema of pooled training rows, by the statistics phase's own code (one owner holding them all).

    `task` (default options.task) None infers it. Returns the schema and the text columns inferred
    categorical; BadInput for an identifier-like text column, a column mixing numbers and text, or
    a positive class that is not a class.
    """
    task = task or options.task
    try:
        statistics = compute_statistics(
            train, options.label, "prepare", options.categorical, options.drop, options.max_levels, "input", task=task
        )
        merged = merge_statistics(
            {"input": statistics},
            options.label,
            min_level_count=options.min_level_count,
            max_levels=options.max_levels,
            categorical=options.categorical,
            positive_class=options.positive_class,
            task=task,
        )
        hashes = {f["name"]: f["level_hashes"] for f in merged["features"] if f["kind"] == "categorical"}
        return name_levels(merged, reveal_levels(train, "prepare", hashes)), merged["inferred"]
    except DataError as exc:
        raise BadInput(str(exc)) from None


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (for messages and JSON)."""
    return value.item() if hasattr(value, "item") else value


def _columns_hint(frame: pd.DataFrame) -> str:
    shown = ", ".join(map(str, frame.columns[:12]))
    return shown + (f", ... ({frame.shape[1]} columns)" if frame.shape[1] > 12 else "")


def check_frame(frame: pd.DataFrame, options: PrepareOptions, clients: int, task: str = "") -> list[Any]:
    """Validate the input (labels canonical, `--drop` columns still in) for `clients` clients; return the classes.

    Checks, before anything is written: rows present, the label exists with no empty values and
    (classification) at least two classes, `--categorical`/`--drop` name feature columns, every
    class (regression: every stratum of the label) has enough rows for a test set and the
    clients, and the numeric options are in range. Column kinds and empty cells are checked with
    the schema (`pooled_schema`). A regression label has no classes: returns [].
    """
    label = options.label
    if frame.empty:
        raise BadInput("the input has a header but no rows; give a CSV file with data")
    if label not in frame.columns:
        raise BadInput(f"label column {label!r} not found; choose one of: {_columns_hint(frame)}")
    if frame[label].isna().any():
        raise BadInput(f"label column {label!r} has empty values; drop or fill those rows")
    for flag, names in (("--categorical", options.categorical), ("--drop", options.drop)):
        for name in names:
            if name not in frame.columns or name == label:
                raise BadInput(
                    f"column {name!r} given to {flag} is not a feature column; choose from {_columns_hint(frame)}"
                )
    kept = [name for name in frame.columns if name != label and name not in options.drop]
    if not kept:
        raise BadInput("no feature columns are left besides the label; drop fewer columns")
    if task == "regression" and options.partition.startswith("classes"):
        raise BadInput(f"label {label!r} is a regression label (no classes): class lists need classes; use --partition")
    if task == "regression" and len(frame) < 2 * STRATA * clients:
        raise BadInput(
            f"{len(frame)} rows are too few for a test set and {clients} clients; use fewer clients or more data"
        )
    counts = frame[label].value_counts()
    if len(counts) < 2:
        raise BadInput(
            f"label column {label!r} has a single class ({_plain(counts.index[0])!r}); a classifier needs at least two"
        )
    if task == "regression":
        counts = pd.Series(dtype=int)  # no classes: the strata are checked when they are cut
    too_few = counts[counts < 2 * clients]
    if not too_few.empty:
        raise BadInput(
            f"class {_plain(too_few.index[0])!r} has only {too_few.iloc[0]} rows, too few for a test set "
            f"and {clients} clients; use fewer clients or more data"
        )
    if not 0 < options.test_size < 1 or not 0 <= options.validation_size < 1:
        raise BadInput("--test-size must be in (0, 1) and --validation-size in [0, 1)")
    if options.min_class_rows < 1:
        raise BadInput(f"--min-class-rows must be at least 1, got {options.min_class_rows}")
    if task == "regression":
        return []
    classes = sort_classes([_plain(v) for v in counts.index])
    if options.partition.startswith("classes"):
        for cls in classes:
            if "," in str(cls) or "/" in str(cls):
                raise BadInput(f"class {cls!r} of {label!r} contains ',' or '/', which --classes lists use; relabel it")
    return classes


def label_counts(frame: pd.DataFrame, label: str, classes: list[Any]) -> dict[str, int]:
    """Rows of each class, by class text (every class a key; {} for a regression label's [] classes)."""
    counts = frame[label].value_counts()
    return {str(c): int(counts.get(c, 0)) for c in classes}


def prepare(
    frame: pd.DataFrame,
    options: PrepareOptions,
    out: Path,
    source: str = "",
    progress: Callable[[str], None] = lambda step: None,
) -> PrepareSummary:
    """Split and write `frame` (text cells or typed columns) as a prepared-data folder at `out` (see layout).

    Raises BadInput, with nothing written, for anything the user can fix: bad options, an
    unknown or single-class label, an identifier-like text column, empty cells, a partition that
    leaves a client without rows of some class. `progress` hears each step, for a status line.
    A test set without rows of some class is a warning (`summary.warnings`): its AUCs are undefined.
    """
    out = output_folder(out, "--out")
    if out.exists() and any(out.iterdir()):
        raise BadInput(f"output folder {out} already exists and is not empty; choose a new --out")
    scheme = options.scheme()
    label = options.label
    frame = frame.reset_index(drop=True)
    task = label_task(frame, options) if not frame.empty else ""
    if task != "regression" and label in frame.columns and not frame.empty and not frame[label].isna().any():
        try:
            frame[label] = canonical_labels(frame[label])
        except DataError as exc:
            raise BadInput(f"label column {label!r}: {exc}") from None
    if label in frame.columns and not frame.empty:
        names = partition.client_names(scheme, frame, label, options.clients, options.client_names, defaults.CLIENTS)
    else:
        names = options.names()
    if len(names) < defaults.MIN_CLIENTS:  # one owner's own data is prepared with a shared schema instead
        given = f"--clients {len(names)}" if options.clients is not None else f"partition {scheme} makes 1 client"
        fix = "use --clients 2 or more" if options.clients is not None else "partition into 2 or more clients"
        own = "(a data owner preparing only its own file: --schema shared.json --input own.csv)"
        raise BadInput(defaults.too_few_clients(given, f"{fix} {own}"))
    classes = check_frame(frame, options, len(names), task)
    pooled_schema(frame, options, task)  # column kinds, empty cells, the positive class: refused before any split
    rng = np.random.default_rng(options.seed)
    by = label  # what splits and partitions stratify by: the label's classes, or a regression label's strata
    if task == "regression":
        frame[STRATUM], by = strata(frame, label), STRATUM
    groups = classes or sorted(frame[by].unique().tolist())

    progress("holding out the test set")
    rest, test = split_rows(frame, by, options.test_size, options.seed)
    progress(f"partitioning {len(rest):,} rows over {len(names)} clients ({scheme})")
    parts = partition.deal(scheme, rest, by, groups, len(names), rng, options.min_class_rows)
    if classes:
        partition.check_coverage(scheme, rest, label, classes, names, parts, options.min_class_rows)
    else:
        partition.check_coverage(scheme, rest, by, [], names, parts, options.min_class_rows)
    dealt = np.zeros(len(rest), dtype=bool)
    dealt[np.concatenate(parts)] = True
    unassigned = rest.iloc[~dealt]
    splits = [
        (name, *split_client(rest.iloc[index], by, options.validation_size, options.seed))
        for name, index in zip(names, parts, strict=True)
    ]
    leave_out = [*options.drop, *([STRATUM] if by == STRATUM else [])]
    test, unassigned = test.drop(columns=leave_out), unassigned.drop(columns=leave_out)
    splits = [
        (name, train.drop(columns=leave_out), validation.drop(columns=leave_out) if validation is not None else None)
        for name, train, validation in splits
    ]

    progress("computing the feature schema")
    schema, inferred = pooled_schema(pd.concat([s[1] for s in splits]), options, task)
    summary = PrepareSummary(
        out=out,
        label=label,
        classes=classes,
        schema=schema,
        test=test.reset_index(drop=True),
        partition=str(scheme),
        inferred=inferred,
        warnings=test_set_warnings(test, label, classes),
    )

    def write(staging: Path) -> None:
        layout.write_json(staging / layout.SCHEMA, schema)
        test.to_csv(staging / layout.TEST, index=False)
        summary.parts.append(PartSummary("server", "test", len(test), label_counts(test, label, classes)))
        for name, train, validation in splits:
            progress(f"writing {name}")
            write_channel(layout.client_folder(staging, name), layout.TRAIN, train)
            summary.parts.append(PartSummary(name, "train", len(train), label_counts(train, label, classes)))
            if validation is not None:
                write_channel(layout.client_folder(staging, name), layout.VALIDATION, validation)
                summary.parts.append(
                    PartSummary(name, "validation", len(validation), label_counts(validation, label, classes))
                )
        if len(unassigned):
            summary.parts.append(
                PartSummary(UNASSIGNED, "not used", len(unassigned), label_counts(unassigned, label, classes))
            )
        layout.write_json(staging / layout.MANIFEST, _manifest(summary, options, source))

    write_whole(out, write)
    return summary


def write_whole(out: Path, write: Callable[[Path], None]) -> None:
    """Run `write(folder)` on a temporary folder beside `out`, then rename it to `out`: whole or not at all."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        write(staging)
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_channel(root: Path, channel: str, frame: pd.DataFrame) -> None:
    """One channel folder: `root/<channel>/<channel>.csv` (raw rows; the clients get the schema from the server)."""
    folder = root / channel
    folder.mkdir(parents=True)
    frame.to_csv(folder / f"{channel}.csv", index=False)


def test_set_warnings(test: pd.DataFrame, label: str, classes: list[Any]) -> list[str]:
    """A warning per class the test set lacks: its ROC-AUC/PR-AUC would be undefined."""
    present = {str(v) for v in test[label]}
    return [
        f"the server's test set has no rows of class {cls!r}: ROC-AUC/PR-AUC are undefined; use a larger --test-size"
        for cls in classes
        if str(cls) not in present
    ]


def _manifest(summary: PrepareSummary, options: PrepareOptions, source: str) -> dict[str, Any]:
    return {
        "source": source,
        "label": summary.label,
        "classes": summary.classes,
        "partition": summary.partition,
        "inferred_categorical": summary.inferred,
        "warnings": summary.warnings,
        "options": {k: v for k, v in asdict(options).items() if k != "client_names"},
        "parts": [asdict(part) for part in summary.parts],
    }
