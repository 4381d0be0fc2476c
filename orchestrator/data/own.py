"""`data prepare --schema`: one owner's own file, checked against a shared schema and split, nothing pooled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from client_code.schema import to_dataset
from client_code.tabular import DataError
from orchestrator.data import layout
from orchestrator.data.prepare import PartSummary, label_counts, write_channel, write_whole
from orchestrator.data.split import STRATUM, split_client, strata
from orchestrator.errors import BadInput


def prepare_own(
    frame: pd.DataFrame, schema: dict[str, Any], out: Path, validation_size: float = 0.2, seed: int = 42
) -> list[PartSummary]:
    """One owner's file alone: checked against the shared schema, split into out/train and out/validation.

    Nothing is pooled or repartitioned and nothing is resampled. Raises BadInput, with nothing
    written, when `out` is not empty or the file does not fit the schema (columns, empty cells, labels).
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInput(f"output folder {out} already exists and is not empty; choose a new --out")
    if not 0 <= validation_size < 1:
        raise BadInput(f"--validation-size must be in [0, 1), got {validation_size}")
    label, classes = schema["label"], list(schema["classes"])
    try:
        dataset = to_dataset(frame, schema, "input")
    except DataError as exc:
        raise BadInput(str(exc)) from None
    frame = frame.reset_index(drop=True)
    frame[label] = dataset.y
    by = label
    if schema.get("task") == "regression":
        frame[STRATUM], by = strata(frame, label), STRATUM
    train, validation = split_client(frame, by, validation_size, seed)
    if by == STRATUM:
        train = train.drop(columns=[STRATUM])
        validation = validation.drop(columns=[STRATUM]) if validation is not None else None
    parts = [PartSummary("own", "train", len(train), label_counts(train, label, classes))]
    if validation is not None:
        parts.append(PartSummary("own", "validation", len(validation), label_counts(validation, label, classes)))

    def write(staging: Path) -> None:
        write_channel(staging, layout.TRAIN, train)
        if validation is not None:
            write_channel(staging, layout.VALIDATION, validation)

    write_whole(out, write)
    return parts
