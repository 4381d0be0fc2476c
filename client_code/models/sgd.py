"""The `sgd` family: scikit-learn's SGDClassifier / SGDRegressor, `max_iter` epochs of partial_fit per round.

Classification with `loss = "log_loss"` (logistic regression by SGD, with probabilities, which the
prior correction moves to the true class prior) or `"hinge"` (a linear SVM: no probabilities, so
log loss and the Brier score are not defined, and ROC-AUC/PR-AUC rank by the decision function);
regression with `"squared_error"`. The parameters on the wire are [coef, intercept] as for the
logistic family (binary: one row; multiclass: one row per class, one-vs-all; regression: one
coefficient per input and one intercept). The step-size schedule's counter `t_` stays with each
client, so every round continues the schedule where the last one ended.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from ..constants import MAX_ITER
from .base import (
    Hyperparameters,
    ModelFamily,
    check_every_class,
    intercept_offset,
    l1_ratio_of_penalty,
    n_inputs,
    no_proximal_term,
    sample_weights,
    task_of,
)

LOSSES = ("log_loss", "hinge", "squared_error")


class SgdHyperparameters(Hyperparameters):
    """[model] keys of kind = "sgd" (scikit-learn's names and defaults)."""

    loss: Literal[LOSSES] | None = Field(
        None, description="log_loss or hinge (classification), squared_error (regression); default by task"
    )
    penalty: Literal["l2", "l1", "elasticnet"] = Field("l2", description="l2, l1 or elasticnet")
    alpha: float = Field(1e-4, gt=0, description="regularisation strength, a positive number")
    l1_ratio: float = Field(
        0.15, ge=0, le=1, description="elastic-net mixing, between 0 and 1 (penalty elasticnet; l2 uses 0, l1 uses 1)"
    )
    learning_rate: Literal["optimal", "constant", "invscaling", "adaptive"] = Field(
        "invscaling", description="step-size schedule: optimal, constant, invscaling or adaptive"
    )
    eta0: float = Field(0.01, gt=0, description="initial step size (constant, invscaling, adaptive)")
    max_iter: int = Field(MAX_ITER, ge=1, le=10_000, description="local epochs (partial_fit passes) per round")

    @model_validator(mode="before")
    @classmethod
    def _l1_ratio_of_penalty(cls, values: Any) -> Any:
        """l1_ratio as the penalty trains with it (models/base.py l1_ratio_of_penalty)."""
        return l1_ratio_of_penalty(values)


def _loss(hp: SgdHyperparameters, task: str) -> str:
    """The loss for the task: the configured one, or log_loss / squared_error; DataError if it does not fit."""
    loss = hp.loss or ("squared_error" if task == "regression" else "log_loss")
    if (loss == "squared_error") != (task == "regression"):
        from ..tabular import DataError

        raise DataError(
            f"sgd loss {loss!r} does not fit a {task} label: use squared_error for regression, "
            "log_loss or hinge for classification ([model] loss)"
        )
    return loss


class Sgd(ModelFamily):
    """SGDClassifier / SGDRegressor over [coef, intercept]."""

    name = "sgd"
    tasks = frozenset({"binary", "multiclass", "regression"})
    hyperparameters = SgdHyperparameters
    estimator_classes = (
        ("sklearn.linear_model._stochastic_gradient", "SGDClassifier"),
        ("sklearn.linear_model._stochastic_gradient", "SGDRegressor"),
    )
    # the loss objects an SGDClassifier keeps (log_loss: CyHalfBinomialLoss, hinge: Hinge); none for regression
    saved_globals = (("sklearn._loss._loss", "CyHalfBinomialLoss"), ("sklearn.linear_model._sgd_fast", "Hinge"))
    shown_params = ("loss", "penalty", "alpha", "l1_ratio", "learning_rate", "eta0")

    def build(self, hp, schema, seed=0, class_weight=None):
        """The family's estimator carrying the run's initial parameters (ModelFamily.build)."""
        from sklearn.linear_model import SGDClassifier, SGDRegressor

        self.check_task(schema)
        task = task_of(schema)
        common = {
            "loss": _loss(hp, task),
            "penalty": hp.penalty,
            "alpha": hp.alpha,
            "l1_ratio": hp.l1_ratio,
            "learning_rate": hp.learning_rate,
            "eta0": hp.eta0,
            "random_state": seed,
            "max_iter": hp.max_iter,  # partial_fit ignores it: fit_round makes that many passes
        }
        if task == "regression":
            model: Any = SGDRegressor(**common)
        else:
            model = SGDClassifier(**common, class_weight=class_weight)
            model.classes_ = np.array(schema["classes"])
        shapes = self.parameter_shapes(hp, schema)
        model.coef_ = np.zeros(shapes[0]) if task != "regression" else np.zeros(shapes[0][1])
        model.intercept_ = np.zeros(shapes[1])
        model.n_features_in_ = n_inputs(schema)
        return model

    def parameter_shapes(self, hp, schema):
        """The shapes of the arrays on the wire (ModelFamily.parameter_shapes)."""
        task = task_of(schema)
        rows = 1 if task in ("binary", "regression") else len(schema["classes"])
        return [(rows, n_inputs(schema)), (rows,)]

    def parameter_names(self, hp, schema):
        """The checkpoint's name of each array, in order."""
        return ["coef", "intercept"]

    def get_parameters(self, estimator):
        """The estimator's parameters as the arrays on the wire."""
        return [np.atleast_2d(np.array(estimator.coef_, dtype=np.float64)), np.array(estimator.intercept_, np.float64)]

    def set_parameters(self, estimator, parameters):
        """Load arrays from the wire into the estimator; ValueError if they do not fit it."""
        coef, intercept = (np.array(p, dtype=np.float64) for p in parameters)
        expected = self.get_parameters(estimator)
        if coef.shape != expected[0].shape or intercept.shape != expected[1].shape:
            raise ValueError(f"parameters of shape {coef.shape} and {intercept.shape} do not fit this sgd model")
        estimator.coef_ = coef if estimator.coef_.ndim == 2 else coef[0]
        estimator.intercept_ = intercept
        return estimator

    def fit_round(self, estimator, data, config):
        """`max_iter` epochs of partial_fit (one pass over the rows each), from the current parameters.

        In federated round r (`config["server_round"]`) the step-size schedule's counter `t_` starts
        where r - 1 rounds of `max_iter` passes leave it (scikit-learn adds the row count per pass),
        so a round trains the same in a resumed job as in the job that ran every round before it;
        the shuffles come from the seed (random_state) alone.
        """
        from sklearn.exceptions import ConvergenceWarning

        no_proximal_term(self.name, config)
        regression = not hasattr(estimator, "classes_")
        weight = None
        if not regression:
            check_every_class(estimator, data)
            # partial_fit takes no class_weight dict on every scikit-learn version: weigh the rows instead
            weight = sample_weights(data, estimator.class_weight)
        if "server_round" in config:
            estimator.t_ = 1.0 + (int(config["server_round"]) - 1) * estimator.max_iter * len(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for _ in range(estimator.max_iter):
                if regression:
                    estimator.partial_fit(data.X, np.asarray(data.y, dtype=np.float64))
                else:
                    estimator.partial_fit(data.X, data.y, classes=estimator.classes_, sample_weight=weight)
        return estimator

    def prior_correction(self, hp, parameters, schema, true_counts, trained_counts):
        """Binary log_loss: King & Zeng's intercept offset (models/base.py); otherwise unchanged.

        Hinge has no probabilities, and a multiclass SGDClassifier is one-vs-all (its probabilities
        are normalised per class), so neither has a log-odds intercept to correct.
        """
        coef, intercept = (np.array(p, dtype=np.float64, copy=True) for p in parameters)
        if _loss(hp, task_of(schema)) == "log_loss" and len(schema["classes"]) == 2:
            offset = intercept_offset(list(schema["classes"]), true_counts, trained_counts)
            if offset is not None:
                intercept += offset
        return [coef, intercept]


FAMILY = Sgd()
