"""The Flower client a data owner runs: the statistics phase, then rounds on this account's data only.

Before round 1 the server talks to the client through Flower's `get_properties` (the same
authenticated gRPC stream as the rounds). Every request carries `{"fedsage": <phase>, "payload":
<JSON>}` and every answer is `{"payload": <JSON>}`, or `{"error": <one line>}` for data the client
cannot use:

1. "statistics" (only when the run has no schema): aggregate statistics of the raw training rows
   (statistics.compute_statistics: counts, sums, level counts under keyed hashes);
2. "levels": the names of the level hashes the server asks for, among those this client holds;
3. "schema": the federation's schema (a channel's own schema.json is never used). The client
   encodes its channels with it and answers: raw class counts, rows and files read, values outside
   the schema's levels per column (counts only) and the feature fingerprint;
4. "train": the federation's raw class counts; the client balances its training split
   (resample.py) and builds its model, and answers its trained class counts.

Then the rounds: the server sends the global parameters; the client warm-starts its model from
them, runs a few local solver iterations and returns the new parameters with its example count.
Raw data never leaves this process; only what is listed above does.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from flwr.client import NumPyClient

from . import model as family
from . import privacy
from .constants import PHASE_KEY
from .metrics import classification_metrics
from .resample import balance
from .schema import normalise_schema, to_dataset, unseen_counts
from .statistics import compute_statistics, reveal_levels
from .tabular import ChannelInfo, DataError, Dataset, canonical_class, feature_fingerprint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Channel:
    """A channel's raw rows (text cells) and where they came from."""

    name: str
    frame: pd.DataFrame
    info: ChannelInfo


class FederationClient(NumPyClient):
    """Flower NumPyClient over the model interface of model.py (see the module docstring)."""

    def __init__(
        self,
        train: Channel,
        validation: Channel | None = None,
        make_model: Callable[[dict[Any, float] | None], Any] = lambda weights: family.make_model(class_weight=weights),
        balance_method: str = "smote",
        smote_ratio: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.channels = {"train": train, **({"validation": validation} if validation else {})}
        self.make_model = make_model
        self.balance_method = balance_method
        self.smote_ratio = smote_ratio
        self.seed = seed
        self.schema: dict[str, Any] | None = None
        self.model: Any = None
        self.train: Dataset | None = None
        self.validation: Dataset | None = None
        self.raw_counts: dict[Any, int] = {}
        self.prior: tuple[dict[Any, float], dict[Any, float]] | None = None
        self.rounds_trained = 0
        self.instructions_received = 0
        self.global_parameters: list[np.ndarray] | None = None
        self._salt = ""

    # ------------------------------------------------------------------ statistics phase

    def get_properties(self, config):
        """Answer one statistics-phase request (see the module docstring); data problems become {"error"}."""
        self.instructions_received += 1
        phase = config.get(PHASE_KEY)
        handlers = {
            "statistics": self._statistics,
            "levels": self._levels,
            "schema": self._schema,
            "train": self._prepare_training,
        }
        if phase not in handlers:
            return {"error": f"unknown request {phase!r}; the server and the client code are of different versions"}
        try:
            answer = handlers[phase](json.loads(str(config.get("payload", "{}"))))
        except DataError as exc:
            log.error("%s", exc)
            return {"error": str(exc)}
        return {"payload": json.dumps(answer, default=str)}

    def _statistics(self, request: dict[str, Any]) -> dict[str, Any]:
        self._salt = str(request["salt"])
        train = self.channels["train"]
        return compute_statistics(
            train.frame,
            request["label"],
            self._salt,
            categorical=request.get("categorical", []),
            drop=request.get("drop", []),
            max_levels=int(request.get("max_levels", 50)),
            where=f"train data ({train.info.folder})",
            locate=train.info.locate,
        )

    def _levels(self, request: dict[str, Any]) -> dict[str, Any]:
        return reveal_levels(self.channels["train"].frame, self._salt, request["hashes"])

    def _schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        schema = normalise_schema(schema, "the federation's schema")
        datasets, unseen = {}, {}
        for name, channel in self.channels.items():
            where = f"{name} data ({channel.info.folder})"
            datasets[name] = to_dataset(channel.frame, schema, where, channel.info.locate)
            unseen[name] = unseen_counts(channel.frame, schema)
            log.info("%s channel: %s", name, channel.info.describe())
            for column, count in unseen[name].items():
                log.warning("%s channel: %d value(s) of %r are not among the schema's levels", name, count, column)
        self.schema = schema
        self.train, self.validation = datasets["train"], datasets.get("validation")
        classes = list(schema["classes"])
        self.raw_counts = {c: int(np.sum(self.train.y == c)) for c in classes}
        return {
            "class_counts": {str(c): n for c, n in self.raw_counts.items()},
            "rows": {name: channel.info.rows for name, channel in self.channels.items()},
            "files": {name: len(channel.info.files) for name, channel in self.channels.items()},
            "unseen": unseen,
            "features": feature_fingerprint(self.train.feature_names),
        }

    def _prepare_training(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.schema is None or self.train is None:
            raise DataError("the server asked to train before it sent the schema")
        classes = list(self.schema["classes"])
        federation = {canonical_class(k, classes): int(n) for k, n in request.get("class_counts", {}).items()}
        balanced = balance(self.train, classes, self.balance_method, self.smote_ratio, self.seed, federation)
        self.train = balanced.data
        self.model = family.set_initial_params(
            self.make_model(balanced.class_weight), len(self.train.feature_names), classes
        )
        log.info(
            "training split balanced with %s: %s rows (%s)",
            self.balance_method,
            f"{len(self.train):,}",
            ", ".join(f"class {c}: {n:g}" for c, n in balanced.trained_counts.items()),
        )
        return {"trained_counts": {str(c): float(n) for c, n in balanced.trained_counts.items()}}

    # ------------------------------------------------------------------ rounds

    def get_parameters(self, config):
        """Return the current local parameters [coef, intercept]."""
        self.instructions_received += 1
        self._require_model()
        return family.get_model_parameters(self.model)

    def fit(self, parameters, config):
        """Train locally from the global parameters; return new parameters, example count, metrics."""
        self.instructions_received += 1
        started = time.perf_counter()
        self._load_global(parameters, config)
        family.fit_local(self.model, self.train)
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
        parameters = privacy.privatize(family.get_model_parameters(self.model), self.global_parameters, config)
        return parameters, len(self.train), metrics

    def evaluate(self, parameters, config):
        """Score the global model (prior-corrected) on the validation channel (the training data if absent)."""
        self.instructions_received += 1
        self._load_global(parameters, config)
        data, split = (self.validation, "validation") if self.validation else (self.train, "train")
        model = self.global_model()
        scores = classification_metrics(model, data, self.schema.get("positive_class"))
        return scores["loss"], len(data), {"accuracy": scores["accuracy"], "split": split}

    def global_model(self) -> Any:
        """The last global model the server sent, prior-corrected: after the final round, the federation's model."""
        if self.global_parameters is None:
            raise RuntimeError("the server never sent global parameters")
        params = self.global_parameters
        if self.prior is not None:
            params = family.prior_correction(params, list(self.schema["classes"]), *self.prior)
        return family.set_model_params(self.model, params)

    def _require_model(self) -> None:
        if self.model is None:
            raise DataError("the server started a round before the statistics phase set up this client")

    def _load_global(self, parameters, config) -> None:
        """Check the global parameters fit this client's data, then load them into the model."""
        self._require_model()
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
        if "prior" in config:
            classes = list(self.schema["classes"])
            prior = json.loads(str(config["prior"]))
            self.prior = tuple(
                {canonical_class(k, classes): float(v) for k, v in prior[key].items()} for key in ("true", "trained")
            )
        self.global_parameters = [np.array(p, copy=True) for p in parameters]
        family.set_model_params(self.model, parameters)
