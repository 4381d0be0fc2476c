"""Model and data helpers shared by the client (inside SageMaker) and the server (fedsage).

This module is the single home of everything that must mean the same thing on both sides of
the federation: which arrays make up the model's parameters and in which order, how a CSV
channel becomes a feature matrix (the feature schema), how predictions are scored, and how a
model is written to disk. The orchestrator imports it from here; it never keeps a copy.

It depends only on numpy, pandas, scikit-learn and joblib, so it runs unchanged in the
SageMaker scikit-learn container.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

try:
    from .constants import CHECKSUM_SUFFIX, PENALTIES, SCHEMA_FILE  # noqa: F401 - SCHEMA_FILE re-exported
except ImportError:  # run as a script inside the SageMaker container (flat /opt/ml/code)
    from constants import CHECKSUM_SUFFIX, PENALTIES, SCHEMA_FILE  # type: ignore[no-redef]  # noqa: F401


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


# --------------------------------------------------------------------------- model


def make_model(
    penalty: str = "l2",
    c: float = 1.0,
    l1_ratio: float = 0.5,
    max_iter: int = 10,
    seed: int = 0,
) -> LogisticRegression:
    """Build the LogisticRegression every party trains, warm-started from the global model.

    `penalty` keeps the familiar names (l2, l1, elasticnet, none) and is translated to the
    `l1_ratio`/`C` parameters scikit-learn uses since 1.8, so the model is configured the same
    way on every scikit-learn version fedsage supports. `max_iter` is the number of local solver
    iterations per federated round.
    """
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {', '.join(PENALTIES)}, got {penalty!r}")
    solver = "lbfgs"
    ratio = 0.0
    if penalty == "l1":
        solver, ratio = "saga", 1.0
    elif penalty == "elasticnet":
        solver, ratio = "saga", l1_ratio
    return LogisticRegression(
        C=np.inf if penalty == "none" else c,
        l1_ratio=ratio,
        solver=solver,
        max_iter=max_iter,
        warm_start=True,
        random_state=seed,
    )


def parameter_shapes(n_features: int, n_classes: int) -> list[tuple[int, ...]]:
    """Shapes of [coef, intercept] for a LogisticRegression over this many features and classes.

    Binary problems have a single row of coefficients; multiclass problems one row per class.
    """
    rows = 1 if n_classes == 2 else n_classes
    return [(rows, n_features), (rows,)]


def get_model_parameters(model: LogisticRegression) -> list[np.ndarray]:
    """Return the model's parameters as the list of arrays exchanged with the server."""
    return [np.array(model.coef_, dtype=np.float64), np.array(model.intercept_, dtype=np.float64)]


def set_model_params(model: LogisticRegression, params: list[np.ndarray]) -> LogisticRegression:
    """Load [coef, intercept] into the model in place, checking they fit its classes and features."""
    if len(params) != 2:
        raise ValueError(f"expected 2 parameter arrays (coef, intercept), got {len(params)}")
    coef, intercept = (np.asarray(p, dtype=np.float64) for p in params)
    expected = parameter_shapes(coef.shape[-1], len(model.classes_))
    if coef.ndim != 2 or coef.shape[0] != expected[0][0] or intercept.shape != expected[1]:
        raise ValueError(
            f"parameters of shape {coef.shape} and {intercept.shape} do not fit a model with "
            f"{len(model.classes_)} classes"
        )
    model.coef_ = coef.copy()
    model.intercept_ = intercept.copy()
    model.n_features_in_ = coef.shape[1]
    return model


def set_initial_params(model: LogisticRegression, n_features: int, classes: list[Any]) -> LogisticRegression:
    """Give an unfitted model zero parameters of the right shapes so it can predict and warm-start.

    Every party starts from the same zero model: it predicts equal probabilities for every class,
    which is the round-0 baseline the server evaluates.
    """
    if len(classes) < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {classes!r}")
    model.classes_ = np.array(classes)
    coef_shape, intercept_shape = parameter_shapes(n_features, len(classes))
    model.coef_ = np.zeros(coef_shape)
    model.intercept_ = np.zeros(intercept_shape)
    model.n_features_in_ = n_features
    return model


def fit_local(model: LogisticRegression, data: Dataset) -> LogisticRegression:
    """Run the model's local solver iterations on `data`, starting from its current parameters.

    A few iterations per round rarely converge; that is expected in federated training, so the
    convergence warning is silenced. The data must contain every class of the federation,
    otherwise scikit-learn would change the shape of the parameters.
    """
    present = set(np.unique(data.y).tolist())
    missing = [c for c in model.classes_.tolist() if c not in present]
    if missing:
        raise DataError(
            f"training data has no rows of class {', '.join(map(str, missing))}; every client "
            "needs examples of every class: repartition the data (e.g. a larger Dirichlet alpha)"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(data.X, data.y)
    return model


# --------------------------------------------------------------------------- labels


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


def _normalise_labels(labels: pd.Series, classes: list[Any] | None, where: str) -> np.ndarray:
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


# --------------------------------------------------------------------------- data


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
    y = _normalise_labels(frame[label_column], classes, where)
    features = frame.drop(columns=[label_column])
    if schema is not None:
        X, names = apply_schema(features, schema, where)
    else:
        if features.shape[1] == 0:
            raise DataError(f"{where}: there are no feature columns besides the label")
        names = [str(name) for name in features.columns]
        X = np.column_stack([numeric_column(features[n], n, where) for n in features.columns])
    return Dataset(X=X, y=y, feature_names=names)


def feature_fingerprint(feature_names: list[str]) -> str:
    """Short digest of the ordered feature names, so parties can check they mean the same thing."""
    return hashlib.sha256("\x1f".join(feature_names).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- scoring


def classification_metrics(model: LogisticRegression, data: Dataset) -> dict[str, float]:
    """Score a model on a data set: log loss, accuracy, precision, recall, F1, ROC-AUC, PR-AUC.

    Binary problems score the positive class (the second class); multiclass problems use macro
    averages and one-vs-rest AUCs. Metrics that are undefined on this data (an AUC when only one
    class is present) are NaN rather than an error.
    """
    classes = model.classes_
    proba = model.predict_proba(data.X)
    predicted = classes[np.argmax(proba, axis=1)]
    binary = len(classes) == 2
    average = "binary" if binary else "macro"
    pos = {"pos_label": classes[1]} if binary else {}
    metrics = {
        "loss": float(log_loss(data.y, proba, labels=classes)),
        "accuracy": float(accuracy_score(data.y, predicted)),
        "precision": float(precision_score(data.y, predicted, average=average, zero_division=0, **pos)),
        "recall": float(recall_score(data.y, predicted, average=average, zero_division=0, **pos)),
        "f1": float(f1_score(data.y, predicted, average=average, zero_division=0, **pos)),
    }
    if len(np.unique(data.y)) < 2:
        metrics.update(roc_auc=float("nan"), pr_auc=float("nan"))
    elif binary:
        positive = (data.y == classes[1]).astype(int)
        metrics["roc_auc"] = float(roc_auc_score(positive, proba[:, 1]))
        metrics["pr_auc"] = float(average_precision_score(positive, proba[:, 1]))
    else:
        onehot = (data.y.reshape(-1, 1) == classes.reshape(1, -1)).astype(int)
        metrics["roc_auc"] = float(roc_auc_score(onehot, proba, average="macro"))
        metrics["pr_auc"] = float(average_precision_score(onehot, proba, average="macro"))
    return metrics


# --------------------------------------------------------------------------- persistence


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far, in MB (to size instances).

    On Linux this is VmHWM, the high-water mark of this process's own address space:
    getrusage's ru_maxrss would also count the parent's memory at fork time, which survives
    exec. Elsewhere ru_maxrss is the best available figure.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def save_model(model: LogisticRegression, path: Path, provenance: dict[str, Any]) -> str:
    """Write the model to `path` with joblib, plus a `<path>.sha256` checksum; return the digest.

    The provenance travels inside the estimator as `fedsage_provenance_`, so `joblib.load` gives
    back a plain scikit-learn model that still says where it came from. The checksum lets
    `fedsage inspect` refuse a file that was changed after the run, before unpickling it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.fedsage_provenance_ = provenance
    tmp = path.with_name(path.name + ".tmp")
    joblib.dump(model, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    tmp.replace(path)
    path.with_name(path.name + CHECKSUM_SUFFIX).write_text(f"{digest}  {path.name}\n")
    return digest
