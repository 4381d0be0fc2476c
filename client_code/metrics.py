"""Scoring a model on a Dataset by its task; calibration; what each client gains; peak memory.

Classification is scored for a named positive class, regression by its errors and R^2.

`METRICS` names the test-set metrics of each task, in the order the console, report.md and
metrics.csv show them; `GAIN_METRICS` the ones a client reports for its local-only and the
federated model (issue 12: what each client gains), with whether higher is better.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .tabular import Dataset

CALIBRATION_BINS = 10
CLASSIFICATION = ("loss", "accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "brier")
REGRESSION = ("loss", "rmse", "mae", "r2")
METRICS = {"binary": CLASSIFICATION, "multiclass": CLASSIFICATION, "regression": REGRESSION}
# metric -> higher is better; "loss" is log loss for classification, mean squared error for regression
GAIN_METRICS = {
    "binary": {"roc_auc": True, "pr_auc": True, "loss": False},
    "multiclass": {"roc_auc": True, "pr_auc": True, "loss": False},
    "regression": {"rmse": False, "mae": False, "r2": True},
}


def score(model: Any, data: Dataset, schema: dict[str, Any]) -> dict[str, float]:
    """The metrics of the schema's task (METRICS[task]) of a model on a data set.

    classification_metrics for the schema's positive class and classes, or regression_metrics.
    """
    if schema.get("task") == "regression":
        return regression_metrics(model, data)
    return classification_metrics(model, data, schema.get("positive_class"), list(schema["classes"]))


def regression_metrics(model: Any, data: Dataset) -> dict[str, float]:
    """Mean squared error ("loss"), RMSE, MAE and R^2 (coefficient of determination) of a regressor's predictions.

    scikit-learn's mean_squared_error, mean_absolute_error and r2_score; R^2 is NaN for fewer than
    two rows (undefined) rather than an error.
    """
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    y = np.asarray(data.y, dtype=np.float64)
    predicted = np.asarray(model.predict(data.X), dtype=np.float64).reshape(-1)
    mse = float(mean_squared_error(y, predicted))
    return {
        "loss": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": float(mean_absolute_error(y, predicted)),
        "r2": float(r2_score(y, predicted)) if len(y) >= 2 else float("nan"),
    }


def gain(local: dict[str, float], federated: dict[str, float], task: str) -> dict[str, float]:
    """How much better the federated model scores than the local-only one, per GAIN_METRICS[task].

    Positive is better for the client: federated - local for metrics where higher is better,
    local - federated for losses and errors. NaN where either score is undefined.
    """
    return {
        m: (federated[m] - local[m]) if higher else (local[m] - federated[m])
        for m, higher in GAIN_METRICS[task].items()
        if m in local and m in federated
    }


def class_scores(model: Any, X: np.ndarray, n_classes: int) -> tuple[np.ndarray, bool]:
    """Per-class scores (rows x classes) and whether they are probabilities.

    A model without predict_proba (SGD with hinge loss) gives its decision function, which ranks
    rows (AUCs) but is no probability: binary scores become [-d, d].
    """
    if hasattr(model, "predict_proba"):
        return model.predict_proba(X), True
    decision = np.asarray(model.decision_function(X), dtype=np.float64)
    if n_classes == 2:
        decision = np.column_stack([-decision, decision])
    return decision, False


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
    from sklearn.metrics import brier_score_loss

    if len(classes) == 2:
        positive = positive_of(classes, positive_class)
        return float(brier_score_loss((y == positive).astype(int), proba[:, classes.index(positive)]))
    onehot = (np.asarray(y).reshape(-1, 1) == np.asarray(classes).reshape(1, -1)).astype(float)
    return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))


def classification_metrics(
    model: Any, data: Dataset, positive_class: Any = None, classes: list[Any] | None = None
) -> dict[str, float]:
    """Score a model on a data set: log loss, accuracy, precision, recall, F1, ROC-AUC, PR-AUC, Brier score.

    Binary problems score `positive_class` (pos_label and its probability column; default the
    second class); multiclass problems use macro averages and one-vs-rest AUCs. Metrics that are
    undefined on this data (an AUC when the positive class is absent) are NaN rather than an error.
    A model without probabilities (SGD's hinge loss) has the hinge loss as "loss", no Brier score,
    and AUCs of its decision function. `classes` names the model's outputs in order (default its
    classes_; xgboost's classes_ are positions, so the schema's classes are given).
    """
    from sklearn.metrics import (  # here, not at import: a run's start does not wait for scikit-learn
        accuracy_score,
        average_precision_score,
        f1_score,
        hinge_loss,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    classes = list(classes) if classes is not None else list(model.classes_.tolist())
    proba, probabilities = class_scores(model, data.X, len(classes))
    # score class indices: labels may be ints or text, which scikit-learn's metrics do not mix in object arrays
    y = class_indices(data.y, classes)
    predicted = np.argmax(proba, axis=1)
    binary = len(classes) == 2
    positive = classes.index(positive_of(classes, positive_class)) if binary else None
    average = "binary" if binary else "macro"
    pos = {"pos_label": positive} if binary else {}
    every = list(range(len(classes)))
    if probabilities:
        loss, brier = float(log_loss(y, proba, labels=every)), brier_score(y, proba, every, positive)
    else:
        decision = proba[:, 1] if binary else proba
        loss, brier = float(hinge_loss(y, decision, labels=every)), float("nan")
    metrics = {
        "loss": loss,
        "accuracy": float(accuracy_score(y, predicted)),
        "precision": float(precision_score(y, predicted, average=average, zero_division=0, labels=every, **pos)),
        "recall": float(recall_score(y, predicted, average=average, zero_division=0, labels=every, **pos)),
        "f1": float(f1_score(y, predicted, average=average, zero_division=0, labels=every, **pos)),
        "brier": brier,
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


def calibration(
    model: Any, data: Dataset, positive_class: Any = None, classes: list[Any] | None = None
) -> dict[str, Any]:
    """Reliability of the predicted probabilities on `data`, for the report and the calibration plot ({} without).

    Binary: sklearn.calibration.calibration_curve over 10 uniform bins of the positive class's
    probability (empty bins are left out) -> {"positive_class", "mean_predicted", "observed",
    "bins": {"predicted": [...], "observed": [...], "rows": [...]}}, where mean_predicted is the
    mean probability of the positive class and observed its share in the data. Multiclass: the
    same means per class, without bins.
    """
    if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
        return {}  # a regressor, or a classifier without probabilities: nothing to calibrate
    classes = list(classes) if classes is not None else list(model.classes_.tolist())
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
        from sklearn.calibration import calibration_curve

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
