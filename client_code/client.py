"""The Flower client a data owner runs: the statistics phase, then rounds on this account's data only.

Before round 1 the server talks to the client through Flower's `get_properties` (the same
authenticated gRPC stream as the rounds). Every request carries `{"fedsage": <phase>, "payload":
<JSON>}` and every answer is `{"payload": <JSON>}`, or `{"error": <one line>}` for data the client
cannot use:

1. "statistics" (only when the run has no schema): aggregate statistics of the raw training rows
   (statistics.compute_statistics: counts, sums, level counts under keyed hashes);
2. "levels": the names of the level hashes the server asks for, among those this client holds;
3. "schema": the federation's schema (a channel's own schema.json is never used). The client
   encodes its channels with it and answers: raw class counts, rows and files read, a sha256 of
   each channel's files (tabular.tree_digest, for the run's provenance), values outside the
   schema's levels per column (counts only) and the feature fingerprint;
4. "train": the federation's raw class counts; the client balances its training split
   (resample.py; classification only) and builds its model (its family, client_code/models), and
   answers its trained class counts.

Then the rounds: the server sends the global parameters; the client loads them into its model,
trains one local round (the family's `fit_round`) and returns its update with its example count.
Alongside, it trains a local-only model of the same family on the same rows, the same number of
rounds, never touching the global parameters; each federated evaluation scores both on the
validation channel (the training channel if there is none) and reports their metrics
(`local_<metric>` and `federated_<metric>`, client_code.metrics.GAIN_METRICS): what this client
gains from the federation. Raw data never leaves this process; only what is listed above does.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from flwr.client import NumPyClient

from . import models, privacy
from .constants import PHASE_KEY
from .metrics import GAIN_METRICS, score
from .models.base import task_of
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
    """Flower NumPyClient over the model interface of client_code/models (see the module docstring).

    `kind` names the model family and `hyperparameters` its keys (None: the family's defaults).
    """

    def __init__(
        self,
        train: Channel,
        validation: Channel | None = None,
        kind: str = models.DEFAULT,
        hyperparameters: models.Hyperparameters | None = None,
        balance_method: str = "smote",
        smote_ratio: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.channels = {"train": train, **({"validation": validation} if validation else {})}
        self.family = models.get(kind)
        self.hyperparameters = hyperparameters or self.family.hyperparameters()
        self.balance_method = balance_method
        self.smote_ratio = smote_ratio
        self.seed = seed
        self.schema: dict[str, Any] | None = None
        self.model: Any = None
        self.local_model: Any = None  # trained on this client's rows only: what it would have alone
        self.own_prior: tuple[dict[Any, float], dict[Any, float]] | None = None
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
            where="train data",  # the server names where the channel comes from (federation/statistics.py)
            locate=train.info.locate,
            task=request.get("task"),
        )

    def _levels(self, request: dict[str, Any]) -> dict[str, Any]:
        return reveal_levels(self.channels["train"].frame, self._salt, request["hashes"])

    def _schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        schema = normalise_schema(schema, "the federation's schema")
        datasets, unseen = {}, {}
        for name, channel in self.channels.items():
            datasets[name] = to_dataset(channel.frame, schema, f"{name} data", channel.info.locate)
            unseen[name] = unseen_counts(channel.frame, schema)
            log.info("%s channel: %s", name, channel.info.describe())
            for column, count in unseen[name].items():
                log.warning("%s channel: %d value(s) of %r are not among the schema's levels", name, count, column)
        self.family.check_task(schema)
        self.schema = schema
        self.train, self.validation = datasets["train"], datasets.get("validation")
        classes = list(schema["classes"])
        self.raw_counts = {c: int(np.sum(self.train.y == c)) for c in classes}
        return {
            "class_counts": {str(c): n for c, n in self.raw_counts.items()},
            "rows": {name: channel.info.rows for name, channel in self.channels.items()},
            "files": {name: len(channel.info.files) for name, channel in self.channels.items()},
            "digests": {name: channel.info.digest for name, channel in self.channels.items()},
            "unseen": unseen,
            "features": feature_fingerprint(self.train.feature_names),
        }

    def _prepare_training(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.schema is None or self.train is None:
            raise DataError("the server asked to train before it sent the schema")
        classes = list(self.schema["classes"])
        weights, trained = None, {}
        if task_of(self.schema) == "regression":
            log.info("regression label: the training split is not balanced (%s rows)", f"{len(self.train):,}")
        else:
            federation = {canonical_class(k, classes): int(n) for k, n in request.get("class_counts", {}).items()}
            balanced = balance(self.train, classes, self.balance_method, self.smote_ratio, self.seed, federation)
            self.train, weights, trained = balanced.data, balanced.class_weight, balanced.trained_counts
            self.own_prior = ({c: float(n) for c, n in self.raw_counts.items()}, dict(trained))
            log.info(
                "training split balanced with %s: %s rows (%s)",
                self.balance_method,
                f"{len(self.train):,}",
                ", ".join(f"class {c}: {n:g}" for c, n in trained.items()),
            )
        self.model = self.family.build(self.hyperparameters, self.schema, self.seed, weights)
        self.local_model = self.family.build(self.hyperparameters, self.schema, self.seed, weights)
        log.info("model: %s %s", self.family.name, self.hyperparameters.model_dump())
        return {"trained_counts": {str(c): float(n) for c, n in trained.items()}}

    # ------------------------------------------------------------------ rounds

    def get_parameters(self, config):
        """Return the current local parameters (the family's arrays)."""
        self.instructions_received += 1
        self._require_model()
        return self.family.get_parameters(self.model)

    def fit(self, parameters, config):
        """Train one round from the global parameters (and the local-only model one round); return the update."""
        self.instructions_received += 1
        started = time.perf_counter()
        self._load_global(parameters, config)
        self.family.fit_round(self.model, self.train, config)
        update = self.family.update_from(self.model)
        self.rounds_trained += 1
        scores = score(self.model, self.train, self.schema)
        seconds = time.perf_counter() - started  # local training and scoring of the federated model
        self.family.fit_round(self.local_model, self.train, {})
        log.info(
            "round %s: trained on %d rows, train loss %.4f",
            config.get("server_round", "?"),
            len(self.train),
            scores["loss"],
        )
        metrics = {
            "train_loss": scores["loss"],
            **({"train_accuracy": scores["accuracy"]} if "accuracy" in scores else {}),
            "fit_seconds": seconds,
            "features": feature_fingerprint(self.train.feature_names),
        }
        return privacy.privatize(update, self.global_parameters, config), len(self.train), metrics

    def evaluate(self, parameters, config):
        """Score the global model (prior-corrected) and the local-only one on the validation channel.

        Returns the global model's loss, the row count and {"accuracy" (classification), "split",
        "federated_<m>", "local_<m>" for every m of GAIN_METRICS[task]}. Without a validation
        channel the training rows are scored ("split": "train") and no gain is reported: the
        local-only model was trained on those rows, so comparing it there would flatter it.
        """
        self.instructions_received += 1
        self._load_global(parameters, config)
        data, split = (self.validation, "validation") if self.validation else (self.train, "train")
        federated = score(self.global_model(), data, self.schema)
        metrics: dict[str, Any] = {"split": split}
        if "accuracy" in federated:
            metrics["accuracy"] = federated["accuracy"]
        if self.validation:
            local = score(self.local_only_model(), data, self.schema)
            for name in GAIN_METRICS[self.task]:
                metrics[f"federated_{name}"], metrics[f"local_{name}"] = federated[name], local[name]
        return federated["loss"], len(data), metrics

    @property
    def task(self) -> str:
        """The federation's task (binary, multiclass or regression), from the schema."""
        return task_of(self.schema)

    def global_model(self) -> Any:
        """The last global model the server sent, prior-corrected: after the final round, the federation's model."""
        if self.global_parameters is None:
            raise RuntimeError("the server never sent global parameters")
        params = self.global_parameters
        if self.prior is not None:
            params = self.family.prior_correction(self.hyperparameters, params, self.schema, *self.prior)
        return self.family.set_parameters(self.model, params)

    def local_only_model(self) -> Any:
        """A copy of the local-only model, prior-corrected for this client's own class counts."""
        import copy

        model = copy.deepcopy(self.local_model)
        if self.own_prior is None:
            return model
        params = self.family.get_parameters(model)
        return self.family.set_parameters(
            model, self.family.prior_correction(self.hyperparameters, params, self.schema, *self.own_prior)
        )

    def _require_model(self) -> None:
        if self.model is None:
            raise DataError("the server started a round before the statistics phase set up this client")

    def _load_global(self, parameters, config) -> None:
        """Check the global parameters fit this client's model, then load them into it."""
        self._require_model()
        expected = self.family.parameter_shapes(self.hyperparameters, self.schema)
        shapes = [np.shape(p) for p in parameters]
        fits = len(shapes) == len(expected) and all(
            len(got) == len(want) and all(w in (-1, g) for g, w in zip(got, want, strict=True))
            for got, want in zip(shapes, expected, strict=True)
        )
        if not fits:
            raise DataError(
                f"this client's {self.family.name} model over {len(self.train.feature_names)} features has "
                f"parameters of shapes {expected}, but the global model sent {shapes}; prepare every party's data "
                "with the same feature schema and model settings"
            )
        if not all(np.all(np.isfinite(p)) for p in parameters if np.issubdtype(np.asarray(p).dtype, np.floating)):
            raise ValueError("the server sent global parameters with NaN or infinite values; refusing them")
        if "prior" in config:
            classes = list(self.schema["classes"])
            prior = json.loads(str(config["prior"]))
            self.prior = tuple(
                {canonical_class(k, classes): float(v) for k, v in prior[key].items()} for key in ("true", "trained")
            )
        self.global_parameters = [np.array(p, copy=True) for p in parameters]
        self.family.set_parameters(self.model, parameters)


class RefusingClient(NumPyClient):
    """The client of a job that could not read its own data: it joins and refuses every request, saying why.

    `refusal`: one line, `<channel> data: <what is wrong>` (client_code/train.py). A file a job
    cannot parse (an extra field on line 500, a byte that is not UTF-8) is then bad input named by
    the server in the statistics phase, like a bad cell (exit 2, orchestrator/federation/statistics.py
    ClientRefusal), instead of a job that ends before it joins.
    """

    def __init__(self, refusal: str) -> None:
        self.refusal = refusal
        self.instructions_received = 0

    def get_properties(self, config):
        """Every statistics-phase request: {"error": refusal}."""
        self.instructions_received += 1
        return {"error": self.refusal}

    def get_parameters(self, config):
        """Never reached (the phase refused the run): DataError."""
        raise DataError(self.refusal)

    def fit(self, parameters, config):
        """Never reached (the phase refused the run): DataError."""
        raise DataError(self.refusal)

    def evaluate(self, parameters, config):
        """Never reached (the phase refused the run): DataError."""
        raise DataError(self.refusal)
