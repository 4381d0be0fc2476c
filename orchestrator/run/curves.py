"""The final model on the server's test set: confusion matrix, ROC and precision-recall curves.

`TestScores` holds what the plots and run.json's `test_set` are drawn from: the true labels and
the predicted probabilities of the final global model on the server's held-out test set. The
run keeps it in memory (run/lifecycle.py); nothing but the summary below and the plot is written.

* `summary()`: the confusion matrix (rows: true class, columns: predicted class; the predicted
  class is the most probable one, which for two classes is a 0.5 threshold on the positive
  class), JSON-ready for run.json and report.md;
* `figure()`: test_curves.png as plain data (run/figures.py), computed as scikit-learn's
  ConfusionMatrixDisplay, RocCurveDisplay and PrecisionRecallDisplay compute theirs. Binary
  tasks plot the positive class (the second class, as client_code.metrics scores it);
  multiclass tasks plot each class against the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from client_code.metrics import class_scores
from orchestrator.run.figures import Figure, Line, Matrix, Panel


@dataclass(frozen=True)
class TestScores:
    """True labels `y` (n,) and predicted probabilities `proba` (n, k), columns in `classes` order."""

    __test__ = False  # not a pytest test class, despite the name

    y: np.ndarray
    proba: np.ndarray
    classes: list[Any]
    probabilities: bool = True  # False: `proba` holds decision scores (sgd's hinge loss has no probabilities)

    @classmethod
    def of(cls, model: Any, X: np.ndarray, y: np.ndarray, classes: list[Any]) -> TestScores:
        """Score a fitted classifier on the rows `X` (n, features) with labels `y` (n,).

        `classes`: the model's outputs in column order, the schema's classes (xgboost's classes_ are
        their positions, models/xgboost.py). A model without predict_proba is scored by its
        decision function (client_code.metrics.class_scores).
        """
        scores, probabilities = class_scores(model, X, len(classes))
        return cls(np.asarray(y), np.asarray(scores), list(classes), probabilities)

    @property
    def positive_class(self) -> Any:
        """The class binary metrics score (the second one, as in client_code.metrics); None for multiclass."""
        return self.classes[1] if len(self.classes) == 2 else None

    def predicted(self) -> np.ndarray:
        """The most probable class of every row, shape (n,)."""
        return np.asarray(self.classes)[np.argmax(self.proba, axis=1)]

    def summary(self) -> dict[str, Any]:
        """run.json's `test_set`: rows, classes, positive class, decision rule, confusion matrix (true x predicted)."""
        from sklearn.metrics import confusion_matrix

        matrix = confusion_matrix(self.y, self.predicted(), labels=self.classes)
        return {
            "rows": int(len(self.y)),
            "classes": [_plain(c) for c in self.classes],
            "positive_class": _plain(self.positive_class),
            "decision": (
                ("probability of the positive class >= 0.5" if self.probabilities else "decision score >= 0")
                if self.positive_class is not None
                else "the most probable class"
            ),
            "confusion_matrix": matrix.tolist(),
        }

    def figure(self, title: str) -> Figure:
        """test_curves.png: the confusion matrix, the ROC curve(s) and the precision-recall curve(s).

        Computed as scikit-learn's ConfusionMatrixDisplay, RocCurveDisplay and PrecisionRecallDisplay
        compute them (confusion_matrix, roc_curve with roc_auc, precision_recall_curve with
        average_precision_score, a step curve; the chance levels 0.5 and the positive rate),
        and drawn as they draw them, by run/figures.py (possibly in another process). The panels
        are computed once: the run asks for the figure when it hands it to the plotter and again
        when it writes it.
        """
        return Figure(self._panels, (15, 4.6), title)

    @cached_property
    def _panels(self) -> list[Panel]:
        """The three panels of `figure` (computed on first use, then kept)."""
        from sklearn.metrics import auc, average_precision_score, confusion_matrix, precision_recall_curve, roc_curve

        labels = [str(c) for c in self.classes]
        matrix = confusion_matrix(self.y, self.predicted(), labels=self.classes).tolist()
        roc: list[Line] = []
        pr: list[Line] = []
        shown = [self.positive_class] if self.positive_class is not None else self.classes
        for cls in shown:
            column = self.proba[:, self.classes.index(cls)]
            target = (self.y == cls).astype(int)
            if target.min() == target.max():  # one class only: the curves are undefined
                continue
            fpr, tpr, _ = roc_curve(target, column)
            precision, recall, _ = precision_recall_curve(target, column)
            average = average_precision_score(target, column)
            roc.append(Line(fpr.tolist(), tpr.tolist(), f"class {cls} (AUC = {auc(fpr, tpr):.2f})", marker=None))
            pr.append(
                Line(
                    recall.tolist(),
                    precision.tolist(),
                    f"class {cls} (AP = {average:.2f})",
                    marker=None,
                    drawstyle="steps-post",
                )
            )
            if cls == shown[-1]:
                roc.append(Line([0, 1], [0, 1], "Chance level (AUC = 0.5)", marker=None, linestyle="--", color="k"))
                if len(shown) == 1:
                    rate = float(target.mean())
                    pr.append(Line([0, 1], [rate, rate], f"Chance level (AP = {rate:.2f})", None, "--", color="k"))
        positive = f" (Positive label: {self.positive_class})" if self.positive_class is not None else ""
        limits = (-0.01, 1.01)
        panels = [
            Panel(
                "Confusion matrix (rows: true class)",
                "Predicted label",
                "True label",
                matrix=Matrix(matrix, labels),
                grid=False,
            ),
            Panel(
                "ROC curve",
                f"False Positive Rate{positive}",
                f"True Positive Rate{positive}",
                roc,
                xlim=limits,
                ylim=limits,
                legend="lower right",
                aspect="equal",
            ),
            Panel(
                "Precision-recall curve",
                f"Recall{positive}",
                f"Precision{positive}",
                pr,
                xlim=limits,
                ylim=limits,
                legend="upper right",
                aspect="equal",
            ),
        ]
        return panels


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (JSON-ready); anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value
