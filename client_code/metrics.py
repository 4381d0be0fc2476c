"""Scoring a model on a Dataset with a named positive class; calibration; the peak memory a process used."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from .tabular import Dataset

CALIBRATION_BINS = 10


def positive_of(classes: list[Any], positive_class: Any = None) -> Any:
    """The class binary metrics score: `positive_class` when given, else the second class (None for multiclass)."""
    if len(classes) != 2:
        return None
    return positive_class if positive_class in classes else classes[1]


def brier_score(y: np.ndarray, proba: np.ndarray, classes: list[Any], positive_class: Any = None) -> float:
    """Brier score (Brier 1950) of probabilities (rows x classes) for labels `y` (values of `classes`).

    Binary: the mean squared error of the positive class's probability
    (scikit-learn's brier_score_loss); multiclass, the mean over rows of the summed squared errors
    over every class. 0 is perfect; lower is better.
    """
    if len(classes) == 2:
        positive = positive_of(classes, positive_class)
        return float(brier_score_loss((y == positive).astype(int), proba[:, classes.index(positive)]))
    onehot = (np.asarray(y).reshape(-1, 1) == np.asarray(classes).reshape(1, -1)).astype(float)
    return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))


def classification_metrics(model: Any, data: Dataset, positive_class: Any = None) -> dict[str, float]:
    """Score a model on a data set: log loss, accuracy, precision, recall, F1, ROC-AUC, PR-AUC, Brier score.

    Binary problems score `positive_class` (pos_label and its probability column; default the
    second class); multiclass problems use macro averages and one-vs-rest AUCs. Metrics that are
    undefined on this data (an AUC when the positive class is absent) are NaN rather than an error.
    """
    classes = list(model.classes_.tolist())
    proba = model.predict_proba(data.X)
    # score class indices: labels may be ints or text, which scikit-learn's metrics do not mix in object arrays
    y = class_indices(data.y, classes)
    predicted = np.argmax(proba, axis=1)
    binary = len(classes) == 2
    positive = classes.index(positive_of(classes, positive_class)) if binary else None
    average = "binary" if binary else "macro"
    pos = {"pos_label": positive} if binary else {}
    every = list(range(len(classes)))
    metrics = {
        "loss": float(log_loss(y, proba, labels=every)),
        "accuracy": float(accuracy_score(y, predicted)),
        "precision": float(precision_score(y, predicted, average=average, zero_division=0, labels=every, **pos)),
        "recall": float(recall_score(y, predicted, average=average, zero_division=0, labels=every, **pos)),
        "f1": float(f1_score(y, predicted, average=average, zero_division=0, labels=every, **pos)),
        "brier": brier_score(y, proba, every, positive),
    }
    present = set(y.tolist())
    if len(present) < 2 or (binary and positive not in present):
        metrics.update(roc_auc=float("nan"), pr_auc=float("nan"))
    elif binary:
        target = (y == positive).astype(int)
        metrics["roc_auc"] = float(roc_auc_score(target, proba[:, positive]))
        metrics["pr_auc"] = float(average_precision_score(target, proba[:, positive]))
    else:
        onehot = (y.reshape(-1, 1) == np.arange(len(classes)).reshape(1, -1)).astype(int)
        keep = onehot.sum(axis=0) > 0  # classes absent from this data have no AUC
        metrics["roc_auc"] = float(roc_auc_score(onehot[:, keep], proba[:, keep], average="macro"))
        metrics["pr_auc"] = float(average_precision_score(onehot[:, keep], proba[:, keep], average="macro"))
    return metrics


def class_indices(y: np.ndarray, classes: list[Any]) -> np.ndarray:
    """Each label's position in `classes` (int array); labels are compared as the classes' text."""
    position = {str(c): i for i, c in enumerate(classes)}
    return np.array([position[str(v)] for v in np.asarray(y, dtype=object)], dtype=np.int64)


def calibration(model: Any, data: Dataset, positive_class: Any = None) -> dict[str, Any]:
    """Reliability of the predicted probabilities on `data`, for the report and the calibration plot.

    Binary: sklearn.calibration.calibration_curve over 10 uniform bins of the positive class's
    probability (empty bins are left out) -> {"positive_class", "mean_predicted", "observed",
    "bins": {"predicted": [...], "observed": [...], "rows": [...]}}, where mean_predicted is the
    mean probability of the positive class and observed its share in the data. Multiclass: the
    same means per class, without bins.
    """
    classes = list(model.classes_.tolist())
    proba = model.predict_proba(data.X)
    y = class_indices(data.y, classes)
    if len(classes) != 2:
        return {
            "mean_predicted": {str(c): float(proba[:, i].mean()) for i, c in enumerate(classes)},
            "observed": {str(c): float(np.mean(y == i)) for i, c in enumerate(classes)},
        }
    positive = positive_of(classes, positive_class)
    column = proba[:, classes.index(positive)]
    target = (y == classes.index(positive)).astype(int)
    result: dict[str, Any] = {
        "positive_class": positive,
        "mean_predicted": float(column.mean()),
        "observed": float(target.mean()),
    }
    if 0 < target.sum() < len(target):
        observed, predicted = calibration_curve(target, column, n_bins=CALIBRATION_BINS, strategy="uniform")
        edges = np.linspace(0, 1, CALIBRATION_BINS + 1)
        counts = np.bincount(np.clip(np.digitize(column, edges[1:-1]), 0, CALIBRATION_BINS - 1))
        result["bins"] = {
            "predicted": predicted.tolist(),
            "observed": observed.tolist(),
            "rows": [int(n) for n in counts if n],
        }
    return result


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
