"""The Flower client a data owner runs: LogisticRegression trained on this account's data only.

The server sends the global parameters; the client warm-starts its model from them, runs a few
local solver iterations on its training channel and returns the new parameters with its example
count, so the server can weight the average. Raw data never leaves this process.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from flwr.client import NumPyClient
from sklearn.linear_model import LogisticRegression

from .metrics import classification_metrics
from .model import fit_local, get_model_parameters, set_model_params
from .tabular import DataError, Dataset, feature_fingerprint

log = logging.getLogger(__name__)


class LogisticRegressionClient(NumPyClient):
    """Flower NumPyClient around a warm-started scikit-learn LogisticRegression."""

    def __init__(
        self,
        model: LogisticRegression,
        train: Dataset,
        validation: Dataset | None = None,
    ) -> None:
        self.model = model
        self.train = train
        self.validation = validation
        self.rounds_trained = 0
        self.instructions_received = 0
        self.global_parameters: list[np.ndarray] | None = None

    def get_parameters(self, config):
        """Return the current local parameters [coef, intercept]."""
        self.instructions_received += 1
        return get_model_parameters(self.model)

    def fit(self, parameters, config):
        """Train locally from the global parameters; return new parameters, example count, metrics."""
        self.instructions_received += 1
        started = time.perf_counter()
        self._load_global(parameters)
        fit_local(self.model, self.train)
        self.rounds_trained += 1
        scores = classification_metrics(self.model, self.train)
        log.info(
            "round %s: trained on %d rows, train loss %.4f, accuracy %.4f",
            config.get("server_round", "?"),
            len(self.train),
            scores["loss"],
            scores["accuracy"],
        )
        metrics = {
            "train_loss": scores["loss"],
            "train_accuracy": scores["accuracy"],
            "fit_seconds": time.perf_counter() - started,  # local training and scoring
            "features": feature_fingerprint(self.train.feature_names),
        }
        return get_model_parameters(self.model), len(self.train), metrics

    def evaluate(self, parameters, config):
        """Score the global parameters on the validation channel (the training data if absent)."""
        self.instructions_received += 1
        self._load_global(parameters)
        data, split = (self.validation, "validation") if self.validation else (self.train, "train")
        scores = classification_metrics(self.model, data)
        return scores["loss"], len(data), {"accuracy": scores["accuracy"], "split": split}

    def global_model(self) -> LogisticRegression:
        """The last global model the server sent: after the final round, the federation's model."""
        if self.global_parameters is None:
            raise RuntimeError("the server never sent global parameters")
        return set_model_params(self.model, self.global_parameters)

    def _load_global(self, parameters) -> None:
        """Check the global parameters fit this client's data, then load them into the model."""
        coef_shape = np.shape(parameters[0]) if parameters else ()
        n_features = len(self.train.feature_names)
        if len(coef_shape) != 2 or coef_shape[1] != n_features:
            raise DataError(
                f"this client's data has {n_features} features but the global model expects "
                f"{coef_shape[-1] if coef_shape else 'none'}; prepare every party's data with "
                "the same feature schema"
            )
        if not all(np.all(np.isfinite(p)) for p in parameters):
            raise ValueError("the server sent global parameters with NaN or infinite values; refusing them")
        self.global_parameters = [np.array(p, copy=True) for p in parameters]
        set_model_params(self.model, parameters)
