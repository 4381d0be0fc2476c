"""Server-side evaluation: the global model scored on the server's own held-out test set."""

from __future__ import annotations

from typing import Any

from flwr.common import NDArrays, Scalar

from client_code.metrics import classification_metrics
from client_code.model import make_model, set_initial_params, set_model_params
from client_code.tabular import Dataset
from orchestrator.config import ModelSettings


class TestSetEvaluator:
    """Scores parameters on the test set: log loss, accuracy, precision, recall, F1, ROC-AUC, PR-AUC.

    Flower calls it with the global parameters before round 1 and after every round.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, test: Dataset, classes: list[Any], settings: ModelSettings) -> None:
        self.test = test
        self.classes = classes
        self.settings = settings

    def model(self, parameters: NDArrays):
        """A LogisticRegression carrying `parameters`, ready to predict."""
        s = self.settings
        model = make_model(s.penalty, s.c, s.l1_ratio, s.max_iter)
        set_initial_params(model, len(self.test.feature_names), self.classes)
        return set_model_params(model, parameters)

    def __call__(
        self, server_round: int, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[float, dict[str, Scalar]]:
        """Flower's evaluate_fn: (loss, metrics) of the global model on the test set."""
        metrics = classification_metrics(self.model(parameters), self.test)
        return metrics["loss"], metrics
