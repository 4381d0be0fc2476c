"""The `logistic` family: scikit-learn's LogisticRegression, warm-started from the global parameters.

The parameters that travel between client and server are [coef, intercept], in that order, with
the shapes of `parameter_shapes`. The functions below (`make_model`, `set_initial_params`,
`fit_local`, ...) are the family's building blocks; `FAMILY` puts them behind the model interface
(models/base.py). Under FedProx (a `proximal_mu` in the round's config) the local objective gains
mu/2 ||w - w_global||^2 (Li et al. 2020, "Federated Optimization in Heterogeneous Networks"),
which LogisticRegression cannot take: `fit_proximal` minimises scikit-learn's own penalised
log-loss (sklearn.linear_model._linear_loss.LinearModelLoss, the objective LogisticRegression's
lbfgs solver minimises) plus that term with scipy's L-BFGS-B and the same options.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from ..constants import MAX_ITER, PENALTIES
from .base import (
    PENALTY_L1_RATIO,
    Hyperparameters,
    ModelFamily,
    NDArrays,
    check_every_class,
    intercept_offset,
    l1_ratio_of_penalty,
    n_inputs,
)

if TYPE_CHECKING:  # scikit-learn is imported where it is used: the registry (config, CLI) stays cheap
    from sklearn.linear_model import LogisticRegression

    from ..tabular import Dataset


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
    from sklearn.linear_model import LogisticRegression

    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {', '.join(PENALTIES)}, got {penalty!r}")
    solver = "lbfgs" if penalty in ("l2", "none") else "saga"
    ratio = PENALTY_L1_RATIO.get(penalty, l1_ratio)
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
    from sklearn.exceptions import ConvergenceWarning

    check_every_class(model, data)
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
    offset = intercept_offset(classes, true_counts, trained_counts)
    if offset is not None:
        intercept += offset
    return [coef, intercept]


def fit_proximal(
    model: LogisticRegression, data: Dataset, global_parameters: NDArrays, mu: float
) -> LogisticRegression:
    """One FedProx round: minimise the model's penalised log-loss plus mu/2 ||w - w_global||^2, from w_global.

    The objective is scikit-learn's for the lbfgs solver (LinearModelLoss: the sample-weighted mean
    log-loss plus 1/(2 C sw_sum) ||coef||^2, binary with one row, multinomial with one row per
    class), plus the proximal term over coef and intercept (Li et al. 2020, eq. 2); it is minimised
    by scipy.optimize.minimize(method="L-BFGS-B") with LogisticRegression's options (maxiter =
    max_iter, maxls 50, gtol = tol, ftol 64 eps). With mu = 0 this is LogisticRegression.fit's own
    computation, so it returns the same parameters up to rounding (tests/test_models.py). Only the
    lbfgs penalties (l2, none) have it; raises ValueError for l1 and elasticnet (saga).
    """
    from scipy import optimize
    from sklearn._loss.loss import HalfBinomialLoss, HalfMultinomialLoss
    from sklearn.linear_model._linear_loss import LinearModelLoss

    if model.solver != "lbfgs":
        raise ValueError("FedProx's proximal term needs penalty l2 or none (the lbfgs solver), not l1/elasticnet")
    check_every_class(model, data)
    classes = model.classes_.tolist()
    X = np.asarray(data.X, dtype=np.float64)
    y = np.array([classes.index(v) for v in data.y.tolist()], dtype=np.float64)
    sample_weight = None
    if model.class_weight:
        weights = np.array([float(model.class_weight[c]) for c in classes])
        sample_weight = weights[y.astype(int)]
    sw_sum = len(y) if sample_weight is None else float(sample_weight.sum())
    l2 = 0.0 if np.isinf(model.C) else 1.0 / (model.C * sw_sum)
    coef, intercept = (np.asarray(p, dtype=np.float64) for p in global_parameters)
    binary = len(classes) == 2
    if binary:
        loss = LinearModelLoss(base_loss=HalfBinomialLoss(), fit_intercept=True)
        w_global = np.concatenate([coef[0], intercept])
    else:
        loss = LinearModelLoss(base_loss=HalfMultinomialLoss(n_classes=len(classes)), fit_intercept=True)
        w_global = np.hstack([coef, intercept[:, None]]).ravel(order="F")

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = loss.loss_gradient(w, X, y, sample_weight, l2, 1)
        delta = w - w_global
        return value + 0.5 * mu * float(delta @ delta), gradient.ravel(order="F") + mu * delta

    result = optimize.minimize(
        objective,
        w_global.copy(),
        method="L-BFGS-B",
        jac=True,
        options={"maxiter": model.max_iter, "maxls": 50, "gtol": model.tol, "ftol": 64 * np.finfo(float).eps},
    )
    if binary:
        model.coef_, model.intercept_ = result.x[None, :-1].copy(), result.x[-1:].copy()
    else:
        w = result.x.reshape((len(classes), -1), order="F")
        model.coef_, model.intercept_ = w[:, :-1].copy(), w[:, -1].copy()
    return model


class LogisticHyperparameters(Hyperparameters):
    """[model] keys of kind = "logistic"."""

    penalty: Literal[PENALTIES] = Field("l2", description=f"one of {', '.join(PENALTIES)}")
    inverse_regularization: float = Field(
        1.0, gt=0, alias="c", description="C, the inverse regularisation strength: a positive number"
    )
    l1_ratio: float = Field(
        0.5, ge=0, le=1, description="elastic-net mixing, between 0 and 1 (penalty elasticnet; l2 uses 0, l1 uses 1)"
    )
    max_iter: int = Field(MAX_ITER, ge=1, le=10_000, description="local solver iterations per round, 1 to 10000")

    @model_validator(mode="before")
    @classmethod
    def _l1_ratio_of_penalty(cls, values: Any) -> Any:
        """l1_ratio as the penalty trains with it (models/base.py l1_ratio_of_penalty)."""
        return l1_ratio_of_penalty(values)


class Logistic(ModelFamily):
    """LogisticRegression (binary and multinomial), prior-corrected; FedProx through `fit_proximal`."""

    name = "logistic"
    tasks = frozenset({"binary", "multiclass"})
    hyperparameters = LogisticHyperparameters
    proximal = True
    estimator_classes = (("sklearn.linear_model._logistic", "LogisticRegression"),)
    shown_params = ("solver", "C", "l1_ratio")

    def build(self, hp, schema, seed=0, class_weight=None):
        """The family's estimator carrying the run's initial parameters (ModelFamily.build)."""
        self.check_task(schema)
        model = make_model(hp.penalty, hp.inverse_regularization, hp.l1_ratio, hp.max_iter, seed, class_weight)
        return set_initial_params(model, n_inputs(schema), list(schema["classes"]))

    def parameter_shapes(self, hp, schema):
        """The shapes of the arrays on the wire (ModelFamily.parameter_shapes)."""
        return parameter_shapes(n_inputs(schema), len(schema["classes"]))

    def parameter_names(self, hp, schema):
        """The checkpoint's name of each array, in order."""
        return ["coef", "intercept"]

    def get_parameters(self, estimator):
        """The estimator's parameters as the arrays on the wire."""
        return get_model_parameters(estimator)

    def set_parameters(self, estimator, parameters):
        """Load arrays from the wire into the estimator; ValueError if they do not fit it."""
        return set_model_params(estimator, parameters)

    def fit_round(self, estimator, data, config):
        """LogisticRegression.fit warm-started (max_iter iterations); with `proximal_mu`, fit_proximal."""
        if "proximal_mu" in config:
            return fit_proximal(estimator, data, get_model_parameters(estimator), float(config["proximal_mu"]))
        return fit_local(estimator, data)

    def prior_correction(self, hp, parameters, schema, true_counts, trained_counts):
        """King & Zeng's prior correction of the parameters (models/base.py intercept_offset)."""
        return prior_correction(parameters, list(schema["classes"]), true_counts, trained_counts)


FAMILY = Logistic()
