"""Server-side evaluation: the global model, prior-corrected, scored on the server's own held-out test set."""

from __future__ import annotations

from typing import Any

from flwr.common import NDArrays, Scalar

from client_code.metrics import classification_metrics
from client_code.model import make_model, prior_correction, set_initial_params, set_model_params
from client_code.tabular import Dataset
from orchestrator.config import ModelSettings


class TestSetEvaluator:
    """Scores parameters on the test set: log loss, accuracy, precision, recall, F1, ROC-AUC, PR-AUC, Brier.

    Flower calls it with the global parameters before round 1 and after every round. With `prior`
    ({"true": {class: n}, "trained": {class: n}}, from the statistics phase) the parameters are
    prior-corrected first (client_code.model.prior_correction), so probabilities refer to the true
    class prior, not the resampled one; binary metrics score `positive_class`.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        test: Dataset,
        classes: list[Any],
        settings: ModelSettings,
        positive_class: Any = None,
        prior: tuple[dict[Any, float], dict[Any, float]] | None = None,
    ) -> None:
        self.test = test
        self.classes = classes
        self.settings = settings
        self.positive_class = positive_class
        self.prior = prior

    def model(self, parameters: NDArrays):
        """A LogisticRegression carrying `parameters` (prior-corrected when the run has a prior), ready to predict."""
        s = self.settings
        model = make_model(s.penalty, s.c, s.l1_ratio, s.max_iter)
        set_initial_params(model, len(self.test.feature_names), self.classes)
        if self.prior is not None:
            parameters = prior_correction(parameters, self.classes, *self.prior)
        return set_model_params(model, parameters)

    def __call__(
        self, server_round: int, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[float, dict[str, Scalar]]:
        """Flower's evaluate_fn: (loss, metrics) of the global model on the test set."""
        metrics = classification_metrics(self.model(parameters), self.test, self.positive_class)
        return metrics["loss"], metrics
