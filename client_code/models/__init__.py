"""The model families behind one interface (base.ModelFamily), by the name `[model] kind` gives them.

`FAMILIES` maps a kind to its family: logistic (the default), sgd, mlp, linear, xgboost. Each module holds
one family: its hyperparameters (a pydantic model), how it builds, trains one round, exchanges and
prior-corrects its parameters. The interface itself is in base.py (a module of its own, so the
family modules and this registry import it without a loop). Estimator libraries are imported
inside the families' methods, so reading the registry (the CLI, config validation) stays cheap.
"""

from __future__ import annotations

from typing import Any

from .base import TASKS, Hyperparameters, ModelFamily, NDArrays, task_of
from .linear import FAMILY as LINEAR
from .logistic import FAMILY as LOGISTIC
from .mlp import FAMILY as MLP
from .sgd import FAMILY as SGD
from .xgboost import FAMILY as XGBOOST

FAMILIES: dict[str, ModelFamily] = {family.name: family for family in (LOGISTIC, SGD, MLP, LINEAR, XGBOOST)}
DEFAULT = LOGISTIC.name


def family_of(estimator: Any) -> ModelFamily | None:
    """The family whose `estimator_classes` holds the estimator's class, or None (not a fedsage model family's)."""
    key = (type(estimator).__module__, type(estimator).__qualname__)
    return next((family for family in FAMILIES.values() if key in family.estimator_classes), None)


def get(kind: str) -> ModelFamily:
    """The family of a kind; ValueError naming the kinds there are."""
    try:
        return FAMILIES[kind]
    except KeyError:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(FAMILIES)}") from None


__all__ = ["DEFAULT", "FAMILIES", "TASKS", "Hyperparameters", "ModelFamily", "NDArrays", "family_of", "get", "task_of"]
