"""The `xgboost` family: gradient-boosted trees, federated by bagging (Flower's FedXgbBagging).

Each round every client loads the global booster, grows one more tree on its own rows
(`xgboost.train(..., num_boost_round=1, xgb_model=global)`), and sends only that tree; the server
appends every client's new tree to the global booster (flwr.server.strategy.fedxgb_bagging's
`aggregate`, orchestrator/federation/xgboost.py), so after R rounds of C clients the model holds
R x C trees. On the wire a booster (or a tree) is its JSON model bytes as one uint8 array, so the
client stays a NumPyClient and checkpoints stay .npz files. Every party starts from the same
booster without trees, whose base score is the label's mean over the federation, from the schema
(regression: the label's mean; binary: the second class's share of the raw training counts), as
xgboost >= 2 estimates its intercept from the training labels (xgboost docs, "Intercept"); the prior
correction moves that base score's log-odds by King & Zeng's offset.

Class balance: by default the training split is not rebalanced (`default_balance = "none"`). The
prior correction is exact for a logistic model, but a boosted ensemble after a few shrunken trees
is far from converged: trained on SMOTE's 50/50 rows from a base score of 0.5 and then shifted by
log(pi / pi~), its probabilities stay below the true rate and, on the built-in data (10% positives,
3 clients x 5 rounds), none reaches 0.5. xgboost's own advice for imbalanced data when the
probabilities matter is not to rebalance (xgboost docs, "Notes on Parameter Tuning: Handle
Imbalanced Dataset"); `[model] balance` can still ask for it. Trees are many small steps:
`default_rounds` is 20 (3 clients grow 60 trees; xgboost's own default is 100 trees).

Tasks: binary classification and regression. Flower's bagging records every appended tree as
class 0's (`tree_info`), so a multiclass booster would be wrong: multiclass is refused. The saved
estimator is xgboost's scikit-learn XGBClassifier / XGBRegressor loaded from the global booster;
XGBClassifier's `classes_` are the class positions [0, 1] in the schema's class order, so its
`predict` returns positions, `predict_proba` columns in that order (the metrics map them back).
`learning_rate` is each tree's shrinkage: with C clients adding a tree per round, the ensemble
moves about C times as far per round as one client alone would.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from pydantic import Field

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

UPDATE = "_fedsage_update"  # the trees the last fit_round grew, as sent (persist.py drops it)
CLASS_WEIGHT = "_fedsage_class_weight"


class XgboostHyperparameters(Hyperparameters):
    """[model] keys of kind = "xgboost" (xgboost's names)."""

    max_depth: int = Field(4, ge=1, le=20, description="depth of each tree, 1 to 20")
    learning_rate: float = Field(0.1, gt=0, le=1, description="shrinkage of each tree (eta), in (0, 1]")
    subsample: float = Field(1.0, gt=0, le=1, description="share of rows each tree samples, in (0, 1]")
    colsample_bytree: float = Field(1.0, gt=0, le=1, description="share of inputs each tree samples, in (0, 1]")
    reg_lambda: float = Field(1.0, ge=0, description="L2 penalty on leaf weights (lambda), 0 or more")
    min_child_weight: float = Field(1.0, ge=0, description="least hessian weight in a leaf, 0 or more")


def _to_array(raw: bytes | bytearray) -> np.ndarray:
    """Booster JSON bytes as the uint8 array that travels."""
    return np.frombuffer(bytes(raw), dtype=np.uint8).copy()


def base_score(schema: dict[str, Any]) -> float:
    """The booster's first prediction: the label's mean over the federation, from the schema.

    Regression: `label_stats.mean` (0.0 without it). Binary: the share of the second class (the
    booster's label 1) in the schema's `class_counts`, the federation's raw training counts; 0.5
    when the schema has no usable counts. xgboost >= 2 estimates its intercept from the training
    labels the same way (xgboost docs, "Intercept"); here every party must start from the same one.
    """
    if task_of(schema) == "regression":
        return float(schema.get("label_stats", {}).get("mean", 0.0))
    counts = schema.get("class_counts") or {}
    numbers = [float(counts.get(str(c), 0)) for c in schema["classes"]]
    share = numbers[1] / sum(numbers) if len(numbers) == 2 and sum(numbers) > 0 else 0.5
    return share if 0 < share < 1 else 0.5


def _params(hp: XgboostHyperparameters, schema: dict[str, Any], seed: int) -> dict[str, Any]:
    """xgboost.train's parameters for the schema's task (one thread: a job's cores are shared)."""
    regression = task_of(schema) == "regression"
    return {
        "objective": "reg:squarederror" if regression else "binary:logistic",
        "base_score": base_score(schema),
        "max_depth": hp.max_depth,
        "eta": hp.learning_rate,
        "subsample": hp.subsample,
        "colsample_bytree": hp.colsample_bytree,
        "lambda": hp.reg_lambda,
        "min_child_weight": hp.min_child_weight,
        "tree_method": "hist",
        "nthread": 1,
        "seed": seed,
    }


class Xgboost(ModelFamily):
    """XGBClassifier / XGBRegressor whose booster grows by bagging the clients' trees."""

    name = "xgboost"
    tasks = frozenset({"binary", "regression"})
    hyperparameters = XgboostHyperparameters
    required_strategy = "fedxgb_bagging"
    estimator_classes = (("xgboost.sklearn", "XGBClassifier"), ("xgboost.sklearn", "XGBRegressor"))
    saved_globals = (("xgboost.core", "Booster"), ("builtins", "bytearray"))  # the booster pickles as its raw bytes
    default_rounds = 20  # rounds x clients trees: 5 rounds of 3 clients (15 trees at eta 0.1) under-fit
    default_balance = "none"  # see the module docstring: rebalanced trees are miscalibrated after the correction

    def build(self, hp, schema, seed=0, class_weight=None):
        """The scikit-learn estimator holding a booster without trees (the run's first global model)."""
        import xgboost as xgb

        self.check_task(schema)
        options = {
            "max_depth": hp.max_depth,
            "learning_rate": hp.learning_rate,
            "subsample": hp.subsample,
            "colsample_bytree": hp.colsample_bytree,
            "reg_lambda": hp.reg_lambda,
            "min_child_weight": hp.min_child_weight,
            "tree_method": "hist",
            "n_jobs": 1,
            "random_state": seed,
        }
        model = xgb.XGBRegressor(**options) if task_of(schema) == "regression" else xgb.XGBClassifier(**options)
        model._fedsage_params = _params(hp, schema, seed)
        model._fedsage_classes = list(schema["classes"])
        model._fedsage_inputs = n_inputs(schema)
        setattr(model, CLASS_WEIGHT, class_weight)
        return self.set_parameters(model, self.initial_parameters(hp, schema, seed))

    def parameter_shapes(self, hp, schema):
        """One array of booster JSON bytes, of any length (-1)."""
        return [(-1,)]

    def parameter_names(self, hp, schema):
        """The checkpoint's name of each array, in order."""
        return ["booster"]

    def initial_parameters(self, hp, schema, seed=0):
        """A booster without trees over the schema's inputs, with the task's base score."""
        import xgboost as xgb

        params = _params(hp, schema, seed)
        empty = xgb.DMatrix(np.zeros((1, n_inputs(schema))), label=[params["base_score"]])
        return [_to_array(xgb.train(params, empty, num_boost_round=0).save_raw("json"))]

    def get_parameters(self, estimator):
        """The estimator's parameters as the arrays on the wire."""
        return [_to_array(estimator.get_booster().save_raw("json"))]

    def set_parameters(self, estimator, parameters):
        """Load a booster's JSON bytes (one uint8 array); ValueError if they are not a booster over these inputs."""
        if len(parameters) != 1 or np.asarray(parameters[0]).dtype != np.uint8:
            raise ValueError("an xgboost model travels as one uint8 array of booster JSON")
        estimator.load_model(bytearray(np.asarray(parameters[0]).tobytes()))
        features = int(estimator.get_booster().num_features())
        if features != estimator._fedsage_inputs:
            raise ValueError(f"the booster has {features} inputs, this model {estimator._fedsage_inputs}")
        return estimator

    def fit_round(self, estimator, data, config):
        """Grow one tree on this client's rows from the current booster; keep it as the round's update."""
        import xgboost as xgb

        no_proximal_term(self.name, config)
        booster = estimator.get_booster()
        before = booster.num_boosted_rounds()
        classes = estimator._fedsage_classes
        if classes:
            check_every_class(estimator, data, classes)  # the schema's classes: classes_ are their positions
            target = np.array([classes.index(v) for v in data.y.tolist()], dtype=np.float64)
        else:
            target = np.asarray(data.y, dtype=np.float64)
        weight = sample_weights(data, getattr(estimator, CLASS_WEIGHT, None))
        matrix = xgb.DMatrix(np.asarray(data.X, dtype=np.float64), label=target, weight=weight)
        grown = xgb.train(estimator._fedsage_params, matrix, num_boost_round=1, xgb_model=booster)
        setattr(estimator, UPDATE, _to_array(grown[before:].save_raw("json")))
        estimator.load_model(bytearray(grown.save_raw("json")))
        return estimator

    def update_from(self, estimator):
        """Only the trees the last round grew (Flower's bagging appends them to the global booster)."""
        return [getattr(estimator, UPDATE)]

    def prior_correction(self, hp, parameters, schema, true_counts, trained_counts):
        """Binary: the base score's log-odds moved by King & Zeng's offset (models/base.py); regression: unchanged."""
        if task_of(schema) == "regression":
            return [np.array(p, copy=True) for p in parameters]
        offset = intercept_offset(list(schema["classes"]), true_counts, trained_counts)
        if offset is None:
            return [np.array(p, copy=True) for p in parameters]
        model = json.loads(np.asarray(parameters[0]).tobytes())
        learner = model["learner"]["learner_model_param"]
        base = float(np.ravel(json.loads(learner["base_score"]))[0])  # "[5E-1]" (xgboost 3) or "5E-1"
        margin = np.log(base / (1 - base)) + float(offset[0])
        learner["base_score"] = f"[{1 / (1 + np.exp(-margin)):.9E}]"
        return [_to_array(json.dumps(model).encode())]

    def outputs(self, estimator, schema):
        """The schema's classes: XGBClassifier's classes_ are their positions (see the module docstring)."""
        return list(schema["classes"]) if hasattr(estimator, "classes_") else []

    def describe(self, estimator, names, outputs, label, top):
        """The trees (count, depth, shrinkage, base score) and the inputs whose splits gained most (total gain)."""
        booster = estimator.get_booster()
        config = json.loads(booster.save_config())["learner"]
        gain = booster.get_score(importance_type="total_gain")  # {"f3": gain}: inputs by position
        splits = booster.get_score(importance_type="weight")
        ranked = sorted(gain.items(), key=lambda item: -item[1])[: max(top, 0)]
        base = float(np.ravel(json.loads(config["learner_model_param"]["base_score"]))[0])
        return {
            "model": {
                "trees": int(booster.num_boosted_rounds()),
                "objective": config["objective"]["name"],
                "base_score": base,
                "max_depth": estimator.max_depth,
                "learning_rate": estimator.learning_rate,
            },
            "tables": {
                "top_features": {
                    "title": "inputs by the total gain of their splits (features as the schema encodes them)",
                    "rows": [
                        {"feature": names[int(key[1:])], "total_gain": float(value), "splits": int(splits.get(key, 0))}
                        for key, value in ranked
                    ],
                },
            },
        }


FAMILY = Xgboost()
