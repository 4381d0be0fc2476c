"""The final model's test-set scores (run/curves.py TestScores) when its outputs are not classes_' probabilities.

xgboost's classes_ are class positions and sgd's hinge loss has no predict_proba: both used to stop
a run at its end with a traceback (text labels; any hinge model) when run.json's confusion matrix was made.
"""

import numpy as np
import pytest

from client_code import models
from client_code.tabular import Dataset
from orchestrator.run.curves import TestScores
from orchestrator.run.figures import render

SCHEMA = {
    "label": "y",
    "task": "binary",
    "classes": ["no", "yes"],
    "class_counts": {"no": 50, "yes": 50},
    "features": [{"name": "a", "kind": "numeric", "mean": 0.0, "scale": 1.0}],
}


@pytest.mark.parametrize(
    ("kind", "values", "decision"),
    [
        ("xgboost", {}, "probability of the positive class >= 0.5"),
        ("sgd", {"loss": "hinge"}, "decision score >= 0"),
    ],
)
def test_scores_name_the_schemas_classes_for_every_family(kind, values, decision):
    family = models.get(kind)
    model = family.build(family.hyperparameters(**values), SCHEMA)
    X = np.linspace(-1, 1, 20).reshape(-1, 1)
    y = np.where(X[:, 0] > 0, "yes", "no")
    family.fit_round(model, Dataset(X=X, y=y, feature_names=["a"]), {"server_round": 1})
    scores = TestScores.of(model, X, y, SCHEMA["classes"])
    summary = scores.summary()
    assert summary["classes"] == ["no", "yes"] and summary["positive_class"] == "yes"
    assert summary["decision"] == decision
    assert np.sum(summary["confusion_matrix"]) == 20 and np.trace(summary["confusion_matrix"]) >= 15
    figure = scores.figure("test")
    assert figure.panels[0].matrix.labels == ["no", "yes"]
    assert render(figure).startswith(b"\x89PNG")
