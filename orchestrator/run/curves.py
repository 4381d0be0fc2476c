"""The final model on the server's test set: confusion matrix, ROC and precision-recall curves.

`TestScores` holds what the plots and run.json's `test_set` are drawn from: the true labels and
the predicted probabilities of the final global model on the server's held-out test set. The
run keeps it in memory (run/lifecycle.py); nothing but the summary below and the plot is written.

* `summary()`: the confusion matrix (rows: true class, columns: predicted class; the predicted
  class is the most probable one, which for two classes is a 0.5 threshold on the positive
  class), JSON-ready for run.json and report.md;
* `write_plot()`: test_curves.png, drawn with scikit-learn's ConfusionMatrixDisplay,
  RocCurveDisplay and PrecisionRecallDisplay on matplotlib's Agg backend. Binary tasks plot the
  positive class (the second class, as client_code.metrics scores it); multiclass tasks plot
  each class against the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.run.folder import fixed_layout, pyplot, write_figure


@dataclass(frozen=True)
class TestScores:
    """True labels `y` (n,) and predicted probabilities `proba` (n, k), columns in `classes` order."""

    __test__ = False  # not a pytest test class, despite the name

    y: np.ndarray
    proba: np.ndarray
    classes: list[Any]

    @classmethod
    def of(cls, model: Any, X: np.ndarray, y: np.ndarray) -> TestScores:
        """Score a fitted classifier (predict_proba, classes_) on the rows `X` (n, features) with labels `y` (n,)."""
        return cls(np.asarray(y), np.asarray(model.predict_proba(X)), list(model.classes_))

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
            "decision": "probability of the positive class >= 0.5"
            if self.positive_class is not None
            else "the most probable class",
            "confusion_matrix": matrix.tolist(),
        }

    def write_plot(self, path: Path, title: str) -> None:
        """Write test_curves.png: the confusion matrix, the ROC curve(s) and the precision-recall curve(s)."""
        plt = pyplot()
        from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

        fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
        ConfusionMatrixDisplay.from_predictions(
            self.y,
            self.predicted(),
            labels=self.classes,
            display_labels=[str(c) for c in self.classes],
            ax=axes[0],
            colorbar=False,
            values_format="d",
        )
        axes[0].set_title("Confusion matrix (rows: true class)")
        shown = [self.positive_class] if self.positive_class is not None else self.classes
        for cls in shown:
            column = self.proba[:, self.classes.index(cls)]
            target = (self.y == cls).astype(int)
            if target.min() == target.max():  # one class only: the curves are undefined
                continue
            last = cls == shown[-1]
            RocCurveDisplay.from_predictions(target, column, name=f"class {cls}", ax=axes[1], plot_chance_level=last)
            PrecisionRecallDisplay.from_predictions(
                target, column, name=f"class {cls}", ax=axes[2], plot_chance_level=last and len(shown) == 1
            )
        axes[1].set_title("ROC curve")
        axes[2].set_title("Precision-recall curve")
        if axes[2].get_legend() is not None:
            axes[2].legend(loc="upper right")
        for axis in axes[1:]:
            axis.grid(alpha=0.3)
        fig.suptitle(title)
        fixed_layout(fig, 3)
        write_figure(path, fig)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (JSON-ready); anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value
