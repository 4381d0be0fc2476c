"""Reading a channel's CSV files as real exports are written: the error type, the Dataset, labels, numbers.

Shared by the client (inside its training job) and the server (its test set), so a channel means
the same rows and the same values on both sides of the federation:

* every `*.csv` file below the folder is read, recursively and in sorted order (SageMaker copies
  the whole S3 prefix, and Spark or Hive write `month=2024-02/part-00001.csv`); hidden files and
  folders (`.x`) and markers such as `_SUCCESS` or `.crc` files are ignored;
* columns are matched by name, in any order, and their names are stripped of spaces;
* every cell is read as text after the spaces that follow a comma (`skipinitialspace`, as the UCI
  Adult export writes them); only a truly empty cell is missing, so `NA` (North America), `None`
  and `null` are values;
* labels are canonical (`canonical_labels`): `0.0`/`1.0` and `0`/`1` are the classes 0 and 1,
  `-1`/`+1` are -1 and 1, any other label is its text.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


class DataError(ValueError):
    """A data file or channel that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class Dataset:
    """A feature matrix with its labels, as the model sees them (X: rows x features, float64)."""

    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]

    def __len__(self) -> int:
        """Number of rows (examples)."""
        return len(self.y)


@dataclass(frozen=True)
class ChannelInfo:
    """Where a channel's rows came from: each file read (relative to the channel) with its row count."""

    folder: str
    files: list[tuple[str, int]] = field(default_factory=list)
    digest: str = ""  # tree_digest of the files read: what the run's provenance records for this channel

    @property
    def rows(self) -> int:
        """Data rows read, over every file."""
        return sum(rows for _, rows in self.files)

    def locate(self, row: int) -> str:
        """`file line N` of the 0-based row `row` of the concatenated frame (line 1 is the header)."""
        for name, rows in self.files:
            if row < rows:
                return f"{name} line {row + 2}"
            row -= rows
        return f"row {row}"

    def describe(self) -> str:
        """How much was read, e.g. `3 files, 246 rows`, for a log line."""
        count = len(self.files)
        return f"{count} file{'s' if count != 1 else ''}, {self.rows:,} rows"


def _ignored(relative: Path) -> bool:
    """Hidden files and folders, and Spark/Hive markers (`_SUCCESS`, `_temporary/`), are not data."""
    return any(part.startswith((".", "_")) for part in relative.parts)


def channel_files(folder: Path) -> list[Path]:
    """Every CSV file below `folder` (or `folder` itself if it is a file), sorted; DataError if there is none."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"{folder} does not exist; point to a folder of CSV files")
    if folder.is_file():
        return [folder]
    files = sorted(p for p in folder.rglob("*.csv") if p.is_file() and not _ignored(p.relative_to(folder)))
    if not files:
        raise DataError(f"{folder} holds no .csv files (searched every subfolder); put the data in CSV files")
    return files


def tree_digest(base: Path, files: list[Path]) -> str:
    """sha256 (hex) over `files`, sorted: each one's path relative to `base` (POSIX), NUL, its bytes, NUL.

    The same files under the same names give the same digest wherever the folder lies; OSError if
    a file cannot be read.
    """
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: Path(p).relative_to(base).as_posix()):
        digest.update(Path(path).relative_to(base).as_posix().encode() + b"\0")
        digest.update(Path(path).read_bytes() + b"\0")
    return digest.hexdigest()


def read_csv_file(path: Path, rows: int | None = None) -> pd.DataFrame:
    """One CSV file as text cells (see the module docstring); DataError for an empty or unreadable file.

    `rows`: read the header and at most this many data rows (None: all of them).
    """
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], skipinitialspace=True, nrows=rows)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty; it needs a header row and data rows") from None
    except UnicodeDecodeError:  # pandas' position is within its read buffer: find the byte in the file
        raise DataError(f"{path} is not UTF-8 text ({non_utf8(Path(path).read_bytes())}); save it as UTF-8") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{path} is not a readable CSV file ({_parser_problem(exc)})") from None
    if not isinstance(frame.index, pd.RangeIndex):  # pandas took the first column as an index: line 2 is too long
        raise DataError(
            f"{path} line 2 has more fields than its header's {frame.shape[1]}; give every line the header's "
            "fields (quote a value that holds a comma)"
        )
    frame.columns = [str(name).strip() for name in frame.columns]
    duplicated = frame.columns[frame.columns.duplicated()]
    if len(duplicated):
        raise DataError(f"{path} has the column {duplicated[0]!r} twice; give every column its own name")
    return frame


def non_utf8(data: bytes) -> str:
    """Where `data` stops being UTF-8: `byte 0xe9 on line 12` (lines from 1); "" if it is UTF-8."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return f"byte 0x{data[exc.start]:02x} on line {line}"
    return ""


def _parser_problem(exc: Exception) -> str:
    """Pandas' C parser error as one line with the fix; its "row N" of an open quote counts from 0."""
    text = str(exc).strip().splitlines()[0].removeprefix("Error tokenizing data. C error: ")
    quote = re.search(r"EOF inside string starting at row (\d+)", text)
    if quote:
        return f"a quote opened on line {int(quote.group(1)) + 1} never closes; close it or remove it"
    return f"{text}; give every line the header's fields (quote a value that holds a comma)"


def read_channel(folder: Path) -> tuple[pd.DataFrame, ChannelInfo]:
    """Read every CSV file of a channel into one frame of text cells, with where its rows came from.

    The files must hold the same columns (in any order); the frame has the first file's order.
    Raises DataError naming the file and the fix for a missing folder, no CSV file, an unreadable
    file, different columns, or no data rows.
    """
    folder = Path(folder)
    files = channel_files(folder)
    base = folder if folder.is_dir() else folder.parent
    data, counts = _read_files(folder, files, None)
    info = ChannelInfo(
        str(folder), [(path.relative_to(base).as_posix(), n) for path, n in zip(files, counts, strict=True)]
    )
    return data, replace(info, digest=tree_digest(base, files))


def channel_head(folder: Path) -> pd.DataFrame:
    """A channel's columns and the first data row of each of its files (text cells), without reading the rest.

    What a channel's header alone can show (run/inputs.py checks local channels with it before the
    clients read them): the same DataError as `read_channel` for a missing folder, no CSV file, an
    unreadable header, files with different columns, or no data rows; not a bad cell further down.
    """
    return _read_files(Path(folder), channel_files(folder), 1)[0]


def _read_files(folder: Path, files: list[Path], rows: int | None) -> tuple[pd.DataFrame, list[int]]:
    """`files` (read_csv_file, at most `rows` data rows each) as one frame in the first file's column order."""
    frames: list[pd.DataFrame] = []
    for path in files:
        frame = read_csv_file(path, rows)
        if frames:
            expected = list(frames[0].columns)
            if set(frame.columns) != set(expected):
                missing = sorted(set(expected) - set(frame.columns))
                extra = sorted(set(frame.columns) - set(expected))
                detail = "; ".join(
                    [f"missing {', '.join(missing)}"] * bool(missing) + [f"extra {', '.join(extra)}"] * bool(extra)
                )
                raise DataError(f"{path} has different columns from {files[0]} ({detail}); align the files")
            frame = frame[expected]
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if data.empty:
        raise DataError(f"{folder} has a header but no data rows")
    return data, [len(frame) for frame in frames]


def read_csv_folder(folder: Path) -> pd.DataFrame:
    """The rows of a channel folder (or one CSV file) as text cells; see read_channel."""
    return read_channel(folder)[0]


def _not_integral(text: pd.Series) -> np.ndarray:
    """Which values are not numbers with a zero fractional part (bool per value)."""
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return ~np.isfinite(numbers) | (np.mod(np.nan_to_num(numbers, nan=0.5), 1) != 0)


def row_at(row: int, locate: Any = None) -> str:
    """Where the 0-based data row `row` is: `locate(row)` ("part-1.csv line 7"), else "row N" (N its line)."""
    return locate(row) if locate else f"row {row + 2}"


def canonical_labels(labels: pd.Series, classes: list[Any] | None = None, locate: Any = None) -> np.ndarray:
    """Labels as the federation compares them: integers when every label is an integral number, else text.

    With `classes` (the federation's), the classes decide: integer classes read every label as an
    integer, text classes as its stripped text. Without them the labels decide. So `0.0`/`1.0`
    become 0/1 and `-1`/`+1` become -1/1, and any text label survives unchanged (JSON end to end).
    Returns `label_array`'s array. Raises DataError for an empty label or, with integer classes, a
    label that is not an integer, at `locate(row)` ("test.csv line 7"; default "row N", N its line);
    the caller names the file.
    """
    if labels.isna().any():
        row = int(np.argmax(labels.isna().to_numpy()))
        raise DataError(f"the label column has an empty value ({row_at(row, locate)}); drop or fill those rows")
    text = labels.astype(str).str.strip()
    bad = _not_integral(text)
    as_int = all(isinstance(c, int | np.integer) for c in classes) if classes else not bad.any()
    if not as_int:
        return label_array(text.tolist())
    if bad.any():
        row = int(np.argmax(bad))
        at = f" ({locate(row)})" if locate else ""
        raise DataError(
            f"label value {text.iloc[row]!r} is not one of the classes {classes}{at}; relabel or drop the row"
        )
    return label_array([int(float(v)) for v in text])


def label_array(values: list[Any]) -> np.ndarray:
    """Labels as scikit-learn takes them: an int64 array for integer classes, else an object array of text."""
    if all(isinstance(v, int | np.integer) for v in values):
        return np.asarray(values, dtype=np.int64)
    return np.asarray([str(v) for v in values], dtype=object)


def canonical_class(value: Any, classes: list[Any] | None = None) -> Any:
    """One label (from a file, a config or a CLI option) as canonical_labels would give it."""
    return canonical_labels(pd.Series([str(value)], dtype=object), classes).tolist()[0]


def sort_classes(classes: list[Any]) -> list[Any]:
    """Classes in the federation's order: numbers numerically, text lexicographically."""
    return sorted(classes, key=lambda c: (isinstance(c, str), c))


def check_labels(values: np.ndarray, classes: list[Any], where: str, locate: Any = None) -> None:
    """Raise DataError naming `where` (and the row, with `locate`) when a label is not one of `classes`."""
    outside = ~pd.Series(values).isin(classes).to_numpy()
    if outside.any():
        row = int(np.argmax(outside))
        at = f" ({locate(row)})" if locate else ""
        raise DataError(
            f"{where}: label value {values.tolist()[row]!r} is not one of the federation's classes {classes}{at}; "
            "relabel the data or prepare it again"
        )


def require_label(frame: pd.DataFrame, label: str, where: str) -> None:
    """Raise DataError naming `where`, its first columns and the fix when `frame` has no column `label`."""
    if label not in frame.columns:
        names = [str(column) for column in frame.columns]
        close = difflib.get_close_matches(label.lower(), [name.lower() for name in names], n=1, cutoff=0.8)
        if close:  # e.g. another case: named first, whatever its place among the columns
            guess = next(name for name in names if name.lower() == close[0])
            raise DataError(
                f"{where}: label column {label!r} not found; did you mean {guess!r}? (names are case-sensitive; "
                "[data] label, --label)"
            )
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise DataError(
            f"{where}: label column {label!r} not found (columns: {shown}); add it to these files, or name the "
            "column that holds the label ([data] label, --label)"
        )


def numeric_column(
    column: pd.Series,
    name: str,
    where: str,
    fix: str = "encode it as a number or declare the column categorical",
    locate: Any = None,
    numbers: pd.Series | None = None,
) -> np.ndarray:
    """Return a column as float64, or raise DataError naming the first bad value, its row and `fix`.

    Empty cells and infinities are refused too: the model and the schema's scaling need finite
    numbers (no imputation). `locate(row)` names a row ("part-1.csv line 7"); default: its line number.
    `numbers`: `pd.to_numeric(column, errors="coerce")` when the caller has it already (parsing
    text is most of the cost).
    """
    numeric = pd.to_numeric(column, errors="coerce") if numbers is None else numbers
    bad = numeric.isna() & column.notna()
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise DataError(
            f"{where}: column {name!r} has the non-numeric value {column.iloc[row]!r} ({row_at(row, locate)}); {fix}"
        )
    values = numeric.to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        row = int(np.argmax(np.isnan(values)))
        raise DataError(
            f"{where}: column {name!r} has an empty cell ({row_at(row, locate)}); fill it or drop the row "
            "(fedsage does not impute)"
        )
    if not np.all(np.isfinite(values)):
        row = int(np.argmax(~np.isfinite(values)))
        raise DataError(
            f"{where}: column {name!r} has the infinite value {str(column.iloc[row])!r} ({row_at(row, locate)}); "
            "replace it with a finite number or drop the row"
        )
    return values


def feature_fingerprint(feature_names: list[str]) -> str:
    """Short digest of the ordered feature names, so parties can check they mean the same thing."""
    return hashlib.sha256("\x1f".join(feature_names).encode()).hexdigest()[:16]
