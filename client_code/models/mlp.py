"""The `mlp` family: scikit-learn's MLPClassifier / MLPRegressor, warm-started for `max_iter` epochs per round.

The parameters on the wire are the layer weights, then the layer biases, in layer order:
[coefs_[0], ..., coefs_[L-1], intercepts_[0], ..., intercepts_[L-1]] (coefs_[i] has shape
(units_i, units_i+1), from the inputs through `hidden_layer_sizes` to the outputs: one for binary
classification and regression, one per class for multiclass). Every party starts from the same
Glorot-uniform weights drawn from the run's seed (Glorot & Bengio 2010, the initialisation
scikit-learn uses: bound sqrt(6 / (fan_in + fan_out)), sqrt(2 / ...) for the logistic activation),
because an all-zero network never breaks the symmetry between hidden units. Each round is one
warm-started `fit` of exactly `max_iter` epochs with a fresh Adam state; the prior correction
moves the output layer's bias like a logistic model's intercept (the output unit is a logistic
or softmax of it).
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from ..constants import MAX_ITER
from .base import (
    Hyperparameters,
    ModelFamily,
    check_every_class,
    intercept_offset,
    n_inputs,
    no_proximal_term,
    sample_weights,
    task_of,
)

NO_EARLY_STOP = 1_000_000  # n_iter_no_change: every round trains exactly max_iter epochs


class MlpHyperparameters(Hyperparameters):
    """[model] keys of kind = "mlp" (scikit-learn's names; solver adam)."""

    hidden_layer_sizes: tuple[int, ...] = Field((32,), description="units per hidden layer, e.g. [64, 32]")
    activation: Literal["relu", "tanh", "logistic"] = Field("relu", description="relu, tanh or logistic")
    alpha: float = Field(1e-4, ge=0, description="L2 regularisation strength, 0 or more")
    learning_rate_init: float = Field(1e-3, gt=0, description="Adam's step size, a positive number")
    batch_size: int = Field(200, ge=1, description="rows per minibatch (fewer rows: one batch)")
    max_iter: int = Field(MAX_ITER, ge=1, le=10_000, description="local epochs per round, 1 to 10000")

    @field_validator("hidden_layer_sizes", mode="before")
    @classmethod
    def _sizes(cls, value: Any) -> Any:
        """Accept "64,32" (how the job receives it) as well as a list."""
        if isinstance(value, str):
            return tuple(part.strip() for part in value.strip("[]() ").split(",") if part.strip())
        return value

    @field_validator("hidden_layer_sizes")
    @classmethod
    def _positive(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(units < 1 for units in value):
            raise ValueError("give one or more positive layer sizes, e.g. [64, 32]")
        return value


def _layers(hp: MlpHyperparameters, schema: dict[str, Any]) -> list[int]:
    """Units per layer: inputs, hidden layers, outputs."""
    task = task_of(schema)
    outputs = len(schema["classes"]) if task == "multiclass" else 1
    return [n_inputs(schema), *hp.hidden_layer_sizes, outputs]


class Mlp(ModelFamily):
    """MLPClassifier / MLPRegressor over [coefs_..., intercepts_...]."""

    name = "mlp"
    tasks = frozenset({"binary", "multiclass", "regression"})
    hyperparameters = MlpHyperparameters
    estimator_classes = (
        ("sklearn.neural_network._multilayer_perceptron", "MLPClassifier"),
        ("sklearn.neural_network._multilayer_perceptron", "MLPRegressor"),
    )
    # a trained network keeps its label binarizer, Adam's state and its RandomState (MT19937)
    saved_globals = (
        ("sklearn.preprocessing._label", "LabelBinarizer"),
        ("sklearn.neural_network._stochastic_optimizers", "AdamOptimizer"),
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("numpy.random._pickle", "__bit_generator_ctor"),
        ("numpy.random._mt19937", "MT19937"),
    )

    def build(self, hp, schema, seed=0, class_weight=None):
        """The network with the run's initial weights; one partial_fit on a row of zeros sets scikit-learn's state."""
        from sklearn.neural_network import MLPClassifier, MLPRegressor

        self.check_task(schema)
        options = {
            "hidden_layer_sizes": hp.hidden_layer_sizes,
            "activation": hp.activation,
            "alpha": hp.alpha,
            "learning_rate_init": hp.learning_rate_init,
            "batch_size": hp.batch_size,
            "max_iter": hp.max_iter,
            "n_iter_no_change": NO_EARLY_STOP,
            "random_state": seed,
        }
        zeros = np.zeros((1, n_inputs(schema)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if task_of(schema) == "regression":
                model: Any = MLPRegressor(**options).partial_fit(zeros, [0.0])
            else:
                classes = np.array(schema["classes"])
                model = MLPClassifier(**options).partial_fit(zeros, classes[:1], classes=classes)
                model._fedsage_class_weight = class_weight
        model.set_params(warm_start=True)  # after the first partial_fit, which would check the row's classes
        return self.set_parameters(model, self.initial_parameters(hp, schema, seed))

    def parameter_shapes(self, hp, schema):
        """The shapes of the arrays on the wire (ModelFamily.parameter_shapes)."""
        layers = _layers(hp, schema)
        return [*zip(layers[:-1], layers[1:], strict=True), *((units,) for units in layers[1:])]

    def parameter_names(self, hp, schema):
        """The checkpoint's name of each array, in order."""
        count = len(_layers(hp, schema)) - 1
        return [f"coef_{i}" for i in range(count)] + [f"intercept_{i}" for i in range(count)]

    def initial_parameters(self, hp, schema, seed=0):
        """Glorot-uniform weights and biases from `seed` (see the module docstring), the same on every party."""
        rng = np.random.default_rng(seed)
        factor = 2.0 if hp.activation == "logistic" else 6.0
        layers = _layers(hp, schema)
        weights, biases = [], []
        for fan_in, fan_out in zip(layers[:-1], layers[1:], strict=True):
            bound = np.sqrt(factor / (fan_in + fan_out))
            weights.append(rng.uniform(-bound, bound, (fan_in, fan_out)))
            biases.append(rng.uniform(-bound, bound, fan_out))
        stats = schema.get("label_stats")
        if task_of(schema) == "regression" and stats:  # outputs in the label's units: start at its mean and scale
            weights[-1] *= float(stats.get("std") or 1.0)
            biases[-1] = np.full_like(biases[-1], float(stats["mean"]))
        return weights + biases

    def get_parameters(self, estimator):
        """The estimator's parameters as the arrays on the wire."""
        return [np.array(p, dtype=np.float64) for p in (*estimator.coefs_, *estimator.intercepts_)]

    def set_parameters(self, estimator, parameters):
        """Load arrays from the wire into the estimator; ValueError if they do not fit it."""
        count = len(estimator.coefs_)
        arrays = [np.array(p, dtype=np.float64) for p in parameters]
        expected = [p.shape for p in self.get_parameters(estimator)]
        if [a.shape for a in arrays] != expected:
            raise ValueError(f"parameters of shapes {[a.shape for a in arrays]} do not fit this network ({expected})")
        estimator.coefs_, estimator.intercepts_ = arrays[:count], arrays[count:]
        return estimator

    def fit_round(self, estimator, data, config):
        """One warm-started fit: `max_iter` epochs of Adam over minibatches from the current weights."""
        from sklearn.exceptions import ConvergenceWarning

        no_proximal_term(self.name, config)
        regression = not hasattr(estimator, "classes_")
        estimator.batch_size = min(estimator.batch_size, len(data))  # fewer rows: one batch, without a warning
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if regression:
                estimator.fit(data.X, np.asarray(data.y, dtype=np.float64))
            else:
                check_every_class(estimator, data)
                weight = sample_weights(data, estimator._fedsage_class_weight)
                estimator.fit(data.X, data.y, sample_weight=weight)
        return estimator

    def prior_correction(self, hp, parameters, schema, true_counts, trained_counts):
        """Classification: King & Zeng's offsets on the output layer's bias (the last array); else unchanged."""
        corrected = [np.array(p, dtype=np.float64, copy=True) for p in parameters]
        if task_of(schema) != "regression":
            offset = intercept_offset(list(schema["classes"]), true_counts, trained_counts)
            if offset is not None:
                corrected[-1] += offset
        return corrected

    def describe(self, estimator, names, outputs, label, top):
        """The layers (units, weights' L2 norm) and the inputs whose first-layer weights are largest (L2 norm)."""
        weights = [np.asarray(w, dtype=np.float64) for w in estimator.coefs_]
        strength = np.linalg.norm(weights[0], axis=1)  # one per input: how strongly it feeds the first layer
        ranked = np.argsort(-strength, kind="stable")[: max(top, 0)]
        layers = [
            {"layer": i + 1, "inputs": w.shape[0], "units": w.shape[1], "weight_norm": float(np.linalg.norm(w))}
            for i, w in enumerate(weights)
        ]
        return {
            "model": {
                "layers": [weights[0].shape[0], *(w.shape[1] for w in weights)],
                "activation": estimator.activation,
                "output_activation": estimator.out_activation_,
                "parameters": int(sum(w.size for w in weights) + sum(np.size(b) for b in estimator.intercepts_)),
                "alpha": estimator.alpha,
            },
            "tables": {
                "layers": {"title": "layers (weights from the previous layer)", "rows": layers},
                "top_inputs": {
                    "title": "inputs with the largest first-layer weights (L2 norm; encoded features)",
                    "rows": [{"feature": names[i], "weight_norm": float(strength[i])} for i in ranked],
                },
            },
        }


FAMILY = Mlp()
