"""The `linear` family: exact federated ridge regression from sufficient statistics, in one round.

With X~ = [X, 1] (the encoded inputs and an intercept column) a client's parameters on the wire
are its statistics [X~'X~ / n, X~'y / n] ((d+1) x (d+1) and (d+1)), not coefficients. FedAvg's
example-weighted mean of them is exactly the pooled [X~'X~ / N, X~'y / N], and `set_parameters`
solves the ridge normal equations

    (X~'X~ / N + alpha D) w = X~'y / N,   D = diag(1, ..., 1, 0)   (the intercept is not penalised)

(Hoerl & Kennard 1970), which is the ridge solution on the pooled rows: scikit-learn's
Ridge(alpha = alpha * N) fitted on all clients' rows together (tests/test_models.py holds it to
1e-8). `alpha` is the penalty per row (like SGD's), because the averaged statistics do not carry N;
alpha > 0 also makes the system positive definite when one-hot columns sum to the intercept's.
One round gives the pooled solution; further rounds send the same statistics and change nothing,
so a run of this family is one round unless it asks for more (and then says they repeat it).
The round-0 model is zero statistics with the intercept entry 1 (a mean of ones), which solves
to the all-zero model. What the statistics reveal about a client's rows: docs/security.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from .base import Hyperparameters, ModelFamily, n_inputs, no_proximal_term

STATISTICS = "_fedsage_statistics"  # the estimator's last statistics (for the wire only: persist.py drops it)


class LinearHyperparameters(Hyperparameters):
    """[model] keys of kind = "linear"."""

    alpha: float = Field(
        1e-3, gt=0, description="ridge penalty per training row (Ridge's alpha over N rows is alpha * N), positive"
    )


def statistics(X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """[X~'X~ / n, X~'y / n] of one data set, X~ = [X, 1]; shapes (d+1, d+1) and (d+1,)."""
    augmented = np.hstack([np.asarray(X, dtype=np.float64), np.ones((len(X), 1))])
    target = np.asarray(y, dtype=np.float64)
    return [augmented.T @ augmented / len(X), augmented.T @ target / len(X)]


def solve(statistics: list[np.ndarray], alpha: float) -> tuple[np.ndarray, float]:
    """Coefficients and intercept of (S + alpha D) w = b (see the module docstring); LinAlgError if singular."""
    gram, moment = (np.asarray(s, dtype=np.float64) for s in statistics)
    penalty = np.full(len(moment), alpha)
    penalty[-1] = 0.0
    w = np.linalg.solve(gram + np.diag(penalty), moment)
    return w[:-1], float(w[-1])


class Linear(ModelFamily):
    """scikit-learn Ridge whose coefficients are solved from the federation's pooled statistics."""

    name = "linear"
    tasks = frozenset({"regression"})
    hyperparameters = LinearHyperparameters
    estimator_classes = (("sklearn.linear_model._ridge", "Ridge"),)
    shown_params = ("alpha",)
    default_rounds = 1  # rounds_needed: a second round sends the same statistics

    def build(self, hp, schema, seed=0, class_weight=None):
        """The family's estimator carrying the run's initial parameters (ModelFamily.build)."""
        from sklearn.linear_model import Ridge

        self.check_task(schema)
        model = Ridge(alpha=hp.alpha)
        model.n_features_in_ = n_inputs(schema)
        return self.set_parameters(model, self.initial_parameters(hp, schema, seed))

    def parameter_shapes(self, hp, schema):
        """The shapes of the arrays on the wire (ModelFamily.parameter_shapes)."""
        d = n_inputs(schema) + 1
        return [(d, d), (d,)]

    def parameter_names(self, hp, schema):
        """The checkpoint's name of each array, in order."""
        return ["gram", "moment"]

    def initial_parameters(self, hp, schema, seed=0):
        """Zero statistics with the intercept entry 1 (a mean of ones): they solve to the all-zero model."""
        gram, moment = (np.zeros(shape) for shape in self.parameter_shapes(hp, schema))
        gram[-1, -1] = 1.0
        return [gram, moment]

    def get_parameters(self, estimator):
        """The statistics the estimator was last given (set_parameters) or computed (fit_round)."""
        return [np.array(s, copy=True) for s in getattr(estimator, STATISTICS)]

    def set_parameters(self, estimator, parameters):
        """Solve the ridge equations for `parameters` (statistics) and set coef_ and intercept_."""
        gram, moment = (np.asarray(p, dtype=np.float64) for p in parameters)
        d = estimator.n_features_in_ + 1
        if gram.shape != (d, d) or moment.shape != (d,):
            raise ValueError(f"statistics of shapes {gram.shape} and {moment.shape} do not fit {d - 1} inputs")
        estimator.coef_, estimator.intercept_ = solve([gram, moment], estimator.alpha)
        setattr(estimator, STATISTICS, [gram.copy(), moment.copy()])
        return estimator

    def fit_round(self, estimator: Any, data, config):
        """Compute the client's statistics; the estimator takes its own ridge solution (for the train metrics)."""
        no_proximal_term(self.name, config)
        return self.set_parameters(estimator, statistics(data.X, data.y))

    def rounds_needed(self, hp):
        """One round gives the pooled solution; later rounds send the same statistics."""
        return 1


FAMILY = Linear()
