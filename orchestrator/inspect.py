"""`fedsage inspect`: what a federation's model is, where it came from, what it learned and how well it scores.

The file is verified and loaded by orchestrator/model_file.py (checksum first, then skops.io or an
allow-list unpickler, per model family). The report is family-neutral where it can be (task,
classes or target, inputs, provenance, metrics) and the family's own where it must: each family
describes its trained estimator (client_code/models: coefficients for logistic, sgd and linear,
layers for mlp, trees for xgboost) as parameters and tables.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from client_code import models
from orchestrator.errors import BadInput
from orchestrator.model_file import estimator_of, load_model, opened


def _clean(value: Any) -> Any:
    """JSON-safe values: NaN becomes None, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def task_of_model(model: Any) -> str:
    """The task a loaded model learned: its provenance's, its schema's, else from the estimator (old runs)."""
    provenance = model.fedsage_provenance_
    schema = provenance.get("schema") or {}
    if provenance.get("task") or schema.get("task"):
        return provenance.get("task") or schema["task"]
    estimator = estimator_of(model)
    if not hasattr(estimator, "classes_"):
        return "regression"
    return "binary" if len(estimator.classes_) == 2 else "multiclass"


def outputs_of(model: Any) -> list[Any]:
    """The classes in the order of the model's probability columns ([] for regression)."""
    estimator = estimator_of(model)
    family = models.family_of(estimator)
    assert family is not None  # load_model refuses an estimator of no family
    return family.outputs(estimator, model.fedsage_provenance_.get("schema") or {"classes": []})


def partial_model(provenance: dict[str, Any], path: Path) -> dict[str, Any] | None:
    """For the last good model of a run that stopped: {"round": k, "rounds": N, "stopped": why}; None otherwise.

    From the model's provenance (run/record.py); a model of an older fedsage, whose provenance
    lacks N or the reason, takes them from the run.json beside it when there is one (else None each).
    """
    if not provenance.get("partial"):
        return None
    asked, stopped = provenance.get("rounds_asked"), provenance.get("stopped")
    summary_path = Path(path).parent / "run.json"
    if (asked is None or not stopped) and summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text())
        except (OSError, ValueError):
            summary = {}
        asked, stopped = asked or summary.get("rounds"), stopped or summary.get("reason")
    return {"round": provenance.get("rounds"), "rounds": asked, "stopped": stopped or None}


def partial_line(partial: dict[str, Any]) -> str:
    """One line saying a model is partial: "partial model: the global model after round 2 of 20; ..."."""
    of = f" of {partial['rounds']}" if partial.get("rounds") else ""
    why = f"; the run stopped: {partial['stopped']}" if partial.get("stopped") else "; the run stopped early"
    return f"partial model: the global model after round {partial['round']}{of}{why}"


def describe(model: Any, path: Path, digest: str, top: int = 10) -> dict[str, Any]:
    """What a model is, where it came from and what it learned, as a JSON-ready dict.

    Keys: path, sha256, checksum, partial (`partial_model`: None for the model of a completed
    run), model (type, family, task, classes or target, inputs and the family's parameters),
    tables (the family's: {name: {"title", "rows"}}), provenance, final_metrics, notes. `top`:
    rows per ranked table (largest coefficients, inputs, features).
    """
    from importlib.metadata import version

    provenance = model.fedsage_provenance_
    estimator = estimator_of(model)
    family = models.family_of(estimator)
    assert family is not None  # load_model refuses an estimator of no family
    schema = provenance.get("schema") or {}
    n_features = int(estimator.n_features_in_)
    names = list(provenance.get("feature_names") or [])
    if not names and schema:
        from client_code.schema import feature_names

        names = feature_names(schema)
    notes = []
    if len(names) != n_features:
        if names:
            notes.append(f"the provenance lists {len(names)} feature names for {n_features} inputs")
        names = [f"x{i}" for i in range(n_features)]
    task, outputs = task_of_model(model), outputs_of(model)
    label = provenance.get("label") or schema.get("label") or "y"
    own = family.describe(estimator, names, outputs, label, top)
    if task == "regression":
        stats = schema.get("label_stats") or {}
        learned: dict[str, Any] = {"target": {"label": label, "mean": stats.get("mean"), "std": stats.get("std")}}
    else:
        learned = {"classes": outputs, "positive_class": provenance.get("positive_class")}
    versions = provenance.get("versions", {})
    installed = version("scikit-learn")
    if versions.get("scikit-learn") and versions["scikit-learn"] != installed:
        notes.append(f"saved with scikit-learn {versions['scikit-learn']}, loaded with {installed}")
    return _clean(
        {
            "path": str(path),
            "sha256": digest,
            "checksum": "verified",
            "partial": partial_model(provenance, path),
            "model": {
                "type": type(model).__name__ + (f"({type(estimator).__name__})" if estimator is not model else ""),
                "family": family.name,
                "task": task,
                **learned,
                "n_features": n_features,
                "settings": provenance.get("model", {}),
                **own["model"],
            },
            "tables": own["tables"],
            "provenance": {
                "saved_by": provenance.get("client_name") or "server",
                "run_id": provenance.get("run_id"),
                "created_at": provenance.get("created_at"),
                "rounds": provenance.get("rounds", provenance.get("rounds_trained")),
                "label": provenance.get("label"),
                "clients": provenance.get("clients", {}),
                "versions": versions,
            },
            "final_metrics": provenance.get("final_metrics", {}),
            "notes": notes,
        }
    )


def test_metrics(model: Any, test: Path) -> dict[str, Any]:
    """Metrics of the model on a CSV file, read with the feature schema the model was trained with.

    The metrics of the model's task (client_code.metrics.score), as the server scored its test set.
    Raises BadInput for a model without a schema, a file without the label or the model's columns.
    """
    from client_code.metrics import score
    from client_code.schema import normalise_schema, to_dataset
    from client_code.tabular import DataError, read_channel

    provenance = model.fedsage_provenance_
    estimator = estimator_of(model)
    schema = provenance.get("schema")
    if not schema or not schema.get("label"):
        raise BadInput("the model's provenance holds no schema with a label column, so a test file cannot be scored")
    try:
        schema = normalise_schema(schema, "the model's schema")
        frame, info = read_channel(test)
        label = schema["label"]
        if label not in frame.columns:
            raise BadInput(
                f"{test} has no column {label!r}, the label the model was trained on; --test needs a file with "
                "the model's feature and label columns (such as the test.csv of the data the run used)"
            )
        data = to_dataset(frame, schema, str(test), info.locate)
    except DataError as exc:
        raise BadInput(str(exc)) from None
    if data.X.shape[1] != estimator.n_features_in_:
        raise BadInput(
            f"{test} gives {data.X.shape[1]} features but the model has {estimator.n_features_in_}; "
            "use a file with the columns the model was trained on"
        )
    metrics = score(estimator, data, {**schema, "task": task_of_model(model)})
    return _clean({"file": str(test), "rows": len(data), "metrics": metrics})


def load_and_describe(path: Path, test: Path | None = None, top: int = 10) -> tuple[Any, dict[str, Any]]:
    """Verify, load and describe a model (a model.joblib, or a client's model.tar.gz), scored on `test` when given.

    Returns the loaded model and the JSON-ready report (`describe`, plus "test" with a test file).
    Raises BadInput as model_file.load_model and test_metrics do.
    """
    with opened(path) as model_file:
        model, digest = load_model(model_file)
    report = describe(model, path, digest, top)
    if test is not None:
        report["test"] = test_metrics(model, test)
    return model, report


def inspect_model(path: Path, test: Path | None = None, top: int = 10) -> dict[str, Any]:
    """The report of `load_and_describe`."""
    return load_and_describe(path, test, top)[1]
