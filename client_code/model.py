"""The model every party trains: scikit-learn's LogisticRegression, warm-started from the global parameters.

The interface the client, the strategy and the server use (a model family implements all of it):
`make_model`, `parameter_shapes`, `get_model_parameters`, `set_model_params`, `set_initial_params`,
`fit_local` and `prior_correction`. The parameters that travel between client and server are
[coef, intercept], in that order, with the shapes of `parameter_shapes`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from .constants import PENALTIES
from .tabular import DataError, Dataset


def make_model(
    penalty: str = "l2",
    c: float = 1.0,
    l1_ratio: float = 0.5,
    max_iter: int = 10,
    seed: int = 0,
    class_weight: dict[Any, float] | None = None,
) -> LogisticRegression:
    """Build the LogisticRegression every party trains, warm-started from the global model.

    `penalty` keeps the familiar names (l2, l1, elasticnet, none) and is translated to the
    `l1_ratio`/`C` parameters scikit-learn uses since 1.8, so the model is configured the same
    way on every scikit-learn version fedsage supports. `max_iter` is the number of local solver
    iterations per federated round; `class_weight` ({class: weight}) weighs each class's rows in
    the loss (resample.py's "class_weight" balancing).
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
        class_weight=class_weight,
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


def prior_correction(
    params: list[np.ndarray], classes: list[Any], true_counts: dict[Any, float], trained_counts: dict[Any, float]
) -> list[np.ndarray]:
    """Parameters whose probabilities refer to the true class prior instead of the resampled one.

    A logistic model trained where class k had the share pi~_k (after SMOTE or class weights)
    predicts odds inflated by pi~_k / pi_k; adding log(pi_k / pi~_k) to class k's intercept undoes it
    (King & Zeng 2001, "Logistic Regression in Rare Events Data", prior correction). Binary models
    have one intercept, for the second class: it moves by log(pi_1 pi~_0 / (pi_0 pi~_1)). Counts are
    by class (any positive scale); classes missing from either count leave the parameters as they are.
    Returns new arrays [coef, intercept]; the input is not changed.
    """
    coef, intercept = (np.array(p, dtype=np.float64, copy=True) for p in params)
    true = np.array([float(true_counts.get(c, 0)) for c in classes])
    trained = np.array([float(trained_counts.get(c, 0)) for c in classes])
    if np.any(true <= 0) or np.any(trained <= 0):
        return [coef, intercept]
    offset = np.log(true / true.sum()) - np.log(trained / trained.sum())
    intercept += offset[1] - offset[0] if len(classes) == 2 else offset
    return [coef, intercept]
