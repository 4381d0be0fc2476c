"""Scoring a model on a Dataset, and the peak memory a process used."""

from __future__ import annotations

import numpy as np
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

from .tabular import Dataset


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
