"""Server-side evaluation: the global model, prior-corrected, scored on the server's own held-out test set."""

from __future__ import annotations

from typing import Any

from flwr.common import NDArrays, Scalar

from client_code.metrics import score
from client_code.models import ModelFamily
from client_code.tabular import Dataset


class TestSetEvaluator:
    """Scores parameters on the test set with the task's metrics (client_code.metrics.METRICS).

    Flower calls it with the global parameters before round 1 and after every round. The model
    family (`family`, with its hyperparameters `hp`) turns the parameters into an estimator. With
    `prior` ({"true": {class: n}, "trained": {class: n}}, from the statistics phase) the parameters
    are prior-corrected first (the family's prior_correction), so probabilities refer to the true
    class prior, not the resampled one; binary metrics score the schema's positive class.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        test: Dataset,
        schema: dict[str, Any],
        family: ModelFamily,
        hp: Any,
        prior: tuple[dict[Any, float], dict[Any, float]] | None = None,
        seed: int = 0,
    ) -> None:
        self.test = test
        self.schema = schema
        self.family = family
        self.hp = hp
        self.prior = prior
        self.seed = seed

    def model(self, parameters: NDArrays):
        """An estimator of the family carrying `parameters` (prior-corrected when the run has a prior)."""
        model = self.family.build(self.hp, self.schema, self.seed)
        if self.prior is not None:
            parameters = self.family.prior_correction(self.hp, parameters, self.schema, *self.prior)
        return self.family.set_parameters(model, parameters)

    def __call__(
        self, server_round: int, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[float, dict[str, Scalar]]:
        """Flower's evaluate_fn: (loss, metrics) of the global model on the test set."""
        metrics = score(self.model(parameters), self.test, self.schema)
        return metrics["loss"], metrics
