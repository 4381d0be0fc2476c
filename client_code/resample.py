"""Class balancing inside the training job, after encoding with the federation's schema (ADR 0004).

`[model] balance`:

* "smote": each minority class of this client's training split is raised to `ratio` times its
  majority class with SMOTE (Chawla et al. 2002, imbalanced-learn), interpolating in the encoded
  feature space; the validation split and the server's test set are never resampled;
* "class_weight": no new rows; class c's rows weigh w_c = N / (K * N_c) in the loss, with N and
  N_c the federation-wide raw counts and K the number of classes (scikit-learn's "balanced" rule,
  applied to the federation's counts so every client weighs the same way);
* "none": train on the rows as they are.

The trained class counts (weighted for class_weight) are what the prior correction needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .constants import BALANCES
from .tabular import Dataset, label_array


@dataclass(frozen=True)
class Balanced:
    """A balanced training set: the rows to train on, the class weights (or None), trained counts by class."""

    data: Dataset
    class_weight: dict[Any, float] | None
    trained_counts: dict[Any, float]


def class_counts(y: np.ndarray, classes: list[Any]) -> dict[Any, int]:
    """Rows of each class (every class present as a key, 0 when absent)."""
    values, counts = np.unique(np.asarray(y, dtype=object).astype(str), return_counts=True)
    found = dict(zip(values.tolist(), counts.tolist(), strict=True))
    return {c: int(found.get(str(c), 0)) for c in classes}


def federation_weights(classes: list[Any], federation_counts: dict[Any, int]) -> dict[Any, float]:
    """w_c = N / (K * N_c) from the federation's raw class counts (a class with no rows gets weight 1)."""
    total = sum(federation_counts.get(c, 0) for c in classes)
    return {c: total / (len(classes) * federation_counts[c]) if federation_counts.get(c) else 1.0 for c in classes}


def balance(
    train: Dataset,
    classes: list[Any],
    method: str,
    ratio: float = 1.0,
    seed: int = 0,
    federation_counts: dict[Any, int] | None = None,
) -> Balanced:
    """Balance one client's training split; see the module docstring. Raises ValueError for an unknown method."""
    if method not in BALANCES:
        raise ValueError(f"balance must be one of {', '.join(BALANCES)}, got {method!r}")
    counts = class_counts(train.y, classes)
    if method == "class_weight":
        weights = federation_weights(classes, federation_counts or counts)
        return Balanced(train, weights, {c: counts[c] * weights[c] for c in classes})
    if method == "none":
        return Balanced(train, None, dict(counts))
    target = int(ratio * max(counts.values()))
    strategy = {c: target for c, n in counts.items() if 2 <= n < target}
    if not strategy:
        return Balanced(train, None, dict(counts))
    from imblearn.over_sampling import SMOTE

    k = int(min(5, min(counts[c] for c in strategy) - 1))
    labels = np.array([classes.index(v) for v in train.y])  # SMOTE wants one label type
    sampler = SMOTE(
        sampling_strategy={classes.index(c): n for c, n in strategy.items()}, k_neighbors=k, random_state=seed
    )
    X, y = sampler.fit_resample(train.X, labels)
    y_values = label_array([classes[i] for i in y])
    resampled = Dataset(X=np.asarray(X, dtype=np.float64), y=y_values, feature_names=train.feature_names)
    return Balanced(resampled, None, dict(class_counts(y_values, classes)))
