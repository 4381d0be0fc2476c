"""Reading a channel's CSV files: the error type, the Dataset, labels, numeric columns, feature fingerprints.

Shared by the client (inside its training job) and the server (its test set): a channel means
the same rows and the same values on both sides of the federation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


class DataError(ValueError):
    """A data file or channel that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class Dataset:
    """A feature matrix with its labels, as the model sees them."""

    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]

    def __len__(self) -> int:
        """Number of rows (examples)."""
        return len(self.y)


def parse_classes(text: str) -> list[Any]:
    """Parse a comma-separated class list ("0,1" or "no,yes"); integers stay integers."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    try:
        return [int(item) for item in items]
    except ValueError:
        return items


def format_classes(classes: list[Any]) -> str:
    """Format classes for a hyperparameter, the inverse of parse_classes."""
    for item in classes:
        if "," in str(item):
            raise ValueError(f"class label {item!r} contains a comma, which cannot be passed on")
    return ",".join(str(item) for item in classes)


def normalise_labels(labels: pd.Series, classes: list[Any] | None, where: str) -> np.ndarray:
    """Turn a label column into an array comparable with the federation's class list."""
    if labels.isna().any():
        raise DataError(f"{where}: the label column has empty values; drop or fill those rows")
    values = labels.to_numpy()
    if classes is None:
        return values
    if all(isinstance(c, int) for c in classes):
        numeric = pd.to_numeric(labels, errors="coerce")
        if numeric.isna().any() or not np.all(np.equal(np.mod(numeric, 1), 0)):
            raise DataError(f"{where}: labels must be the integers {classes}")
        values = numeric.astype(np.int64).to_numpy()
    else:
        values = labels.astype(str).to_numpy()
    unknown = sorted(set(np.unique(values).tolist()) - set(classes), key=str)
    if unknown:
        raise DataError(
            f"{where}: label value {unknown[0]!r} is not one of the federation's classes "
            f"{classes}; relabel the data or prepare it again"
        )
    return values


def read_csv_folder(folder: Path) -> pd.DataFrame:
    """Read every CSV file of a channel folder (or a single CSV file) into one frame.

    SageMaker copies a channel's S3 prefix into a folder, which may hold several files; they
    must share the same columns.
    """
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"{folder} does not exist; point to a folder of CSV files")
    files = [folder] if folder.is_file() else sorted(folder.glob("*.csv"))
    if not files:
        raise DataError(f"{folder} holds no .csv files; put the data in CSV files with a header")
    frames = []
    for path in files:
        try:
            frame = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            raise DataError(f"{path} is empty; it needs a header row and data rows") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            first_line = str(exc).strip().splitlines()[0]
            raise DataError(f"{path} is not a readable CSV file ({first_line})") from None
        if frames and list(frame.columns) != list(frames[0].columns):
            raise DataError(f"{path} has different columns from {files[0].name}; align the files")
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if data.empty:
        raise DataError(f"{folder} has a header but no data rows")
    return data


def numeric_column(
    column: pd.Series, name: str, where: str, fix: str = "encode it as a number or declare the column categorical"
) -> np.ndarray:
    """Return a column as float64, or raise DataError naming the first bad value, its row and `fix`.

    Empty cells and infinities are refused too: the model and the schema's scaling need finite numbers.
    """
    numeric = pd.to_numeric(column, errors="coerce")
    bad = numeric.isna() & column.notna()
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise DataError(
            f"{where}: column {name!r} has the non-numeric value {column.iloc[row]!r} (row {row + 2}); {fix}"
        )
    if numeric.isna().any():
        raise DataError(f"{where}: column {name!r} has missing values; fill or drop those rows")
    values = numeric.to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise DataError(f"{where}: column {name!r} has infinite values; replace them first")
    return values


def feature_fingerprint(feature_names: list[str]) -> str:
    """Short digest of the ordered feature names, so parties can check they mean the same thing."""
    return hashlib.sha256("\x1f".join(feature_names).encode()).hexdigest()[:16]
