"""What a finished run's numbers mean for the user: warnings about the final model that do not stop the run.

* `prediction_warning`: a classifier that predicts one class for every test row (for two classes:
  no row of the positive class at the 0.5 threshold) has precision, recall and F1 of 0 however well
  it ranks; the run says so, and what to try, instead of leaving a row of zeros unexplained;
* `rounds_warning`: a family whose rounds after the first `rounds_needed` change nothing (linear's
  closed form) repeats the same metrics round after round; the run says that this is expected.

`model_warnings` gathers them for run/saving.py, which puts them in run.json's warnings (and so
in report.md and the console's summary).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from client_code.metrics import class_scores, positive_of
from client_code.tabular import Dataset
from orchestrator.config import Federation


def prediction_warning(model: Any, test: Dataset, schema: dict[str, Any]) -> str | None:
    """One line when `model` predicts a single class for every row of `test` (or, binary, never the positive class).

    The predicted class is the most probable one (client_code.metrics.classification_metrics: for
    two classes, the positive class's probability >= 0.5). `schema`: the run's, for its classes,
    positive class and task. None for regression, an empty test set, or predictions of every kind.
    """
    classes = list(schema.get("classes") or [])
    if schema.get("task") == "regression" or len(classes) < 2 or len(test) == 0:
        return None
    scores, probabilities = class_scores(model, test.X, len(classes))
    predicted = set(np.argmax(scores, axis=1).tolist())
    positive = positive_of(classes, schema.get("positive_class"))
    rows = f"{len(test):,} test rows"
    if positive is not None and classes.index(positive) not in predicted:
        top = f", highest probability {scores[:, classes.index(positive)].max():.2f}" if probabilities else ""
        what = f"predicts none of {rows} as the positive class {positive!r}{top}, so precision, recall and F1 are 0"
    elif len(predicted) == 1:
        what = f"predicts class {classes[predicted.pop()]!r} for all {rows}"
    else:
        return None
    return (
        f"the final model {what}: try more rounds (--rounds), more local training (model.max_iter; "
        "model.learning_rate for xgboost), another model.balance, or your own decision threshold (test_curves.png)"
    )


def rounds_warning(federation: Federation, rounds: int) -> str | None:
    """One line when the run asked for more rounds than its model family needs (`rounds`: the rounds it ran)."""
    family = federation.model.family
    needed = family.rounds_needed(federation.model.hyperparameters())
    if needed is None or rounds <= needed:
        return None
    return (
        f"model kind {family.name!r} reaches its exact solution in {needed} round(s): rounds {needed + 1}-{rounds} "
        f"repeat it, so their metrics are the same (expected; run it with --rounds {needed})"
    )


def model_warnings(model: Any, test: Dataset, schema: dict[str, Any], federation: Federation, rounds: int) -> list[str]:
    """The warnings of `prediction_warning` and `rounds_warning` that apply, in that order."""
    return [w for w in (prediction_warning(model, test, schema), rounds_warning(federation, rounds)) if w]
