"""Every family's hyperparameters read the same in `fedsage inspect`, report.md and federation.toml.

`fedsage inspect` shows the trained estimator's parameters; report.md, federation.toml and the
model's provenance show the [model] table. They used to disagree: a logistic model with the
default penalty l2 trains with l1_ratio 0 (scikit-learn: 0 is the L2 penalty), which inspect
showed, while the table kept the unused 0.5. The table now holds the value each penalty trains with.
"""

import json
import tomllib

import pytest
from cli_runner import run_cli

from client_code import models
from orchestrator import config
from orchestrator.local import LocalOptions, build_local_run

FEATURES = [{"name": "amount", "kind": "numeric", "mean": 0.0, "scale": 1.0}]
SCHEMAS = {
    "binary": {"label": "y", "task": "binary", "classes": ["no", "yes"], "features": FEATURES},
    "regression": {"label": "y", "task": "regression", "classes": [], "features": FEATURES},
}
CASES = [
    ("logistic", "binary", {}),
    ("logistic", "binary", {"penalty": "l1", "l1_ratio": 0.3}),
    ("logistic", "binary", {"penalty": "elasticnet", "l1_ratio": 0.3}),
    ("logistic", "binary", {"penalty": "l2", "l1_ratio": 0.3, "c": 0.5}),
    ("sgd", "binary", {}),
    ("sgd", "binary", {"penalty": "elasticnet", "l1_ratio": 0.4, "alpha": 0.001}),
    ("sgd", "regression", {"penalty": "l1"}),
    ("mlp", "binary", {"alpha": 0.01, "activation": "tanh"}),
    ("linear", "regression", {"alpha": 0.01}),
    ("xgboost", "binary", {"max_depth": 3, "learning_rate": 0.2}),
]


def _shared(shown: dict, table: dict) -> dict:
    """What inspect shows that is a [model] key too (scikit-learn's C is the table's c): {key: (shown, table)}."""
    return {k.lower(): (v, table[k.lower()]) for k, v in shown.items() if table.get(k.lower()) is not None}


@pytest.mark.parametrize(("kind", "task", "values"), CASES)
def test_the_model_table_holds_what_the_estimator_trains_with(kind, task, values):
    settings = config.model_settings(kind=kind, **values)
    table = settings.model_dump(mode="json", by_alias=True, exclude_none=True)  # report.md, toml, provenance
    family = models.get(kind)
    estimator = family.build(settings.hyperparameters(), SCHEMAS[task])
    outputs = SCHEMAS[task]["classes"]
    shown = family.describe(estimator, ["amount"], outputs, "y", 0)["model"]  # what inspect shows
    shared = _shared(shown, table)
    assert shared, f"inspect shows none of the {kind} family's keys"
    for key, (trained, written) in shared.items():
        assert trained == written, f"{kind} {key}: the estimator has {trained!r}, the table {written!r}"
    if kind in ("logistic", "sgd"):  # l1_ratio is the penalty's unless the penalty is elasticnet
        penalty = values.get("penalty", "l2")
        expected = {"l2": 0.0, "l1": 1.0}.get(penalty, values.get("l1_ratio"))
        assert shared["l1_ratio"] == (expected, expected)


def _report_settings(run_dir) -> dict[str, str]:
    """report.md's Hyperparameters table: {"model.c": "1", ...}."""
    lines = (run_dir / "report.md").read_text().splitlines()
    rows = [line.split("|")[1:3] for line in lines if line.startswith("| model.")]
    return {name.strip(): value.strip() for name, value in rows}


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(models.FAMILIES))
def test_inspect_report_and_federation_toml_show_the_same_hyperparameters(capsys, prepared_dir, tmp_path, kind):
    data = {"dataset": "diabetes"} if kind == "linear" else {"data_dir": prepared_dir}  # linear: regression only
    options = LocalOptions(model=kind, rounds=1, out=tmp_path, join_timeout=60, **data)
    outcome = build_local_run(options).execute()
    saved = tomllib.loads((outcome.run_dir / "federation.toml").read_text())["model"]
    report = _report_settings(outcome.run_dir)
    code, out, err = run_cli(capsys, "inspect", str(outcome.model_path), "--json")
    assert code == 0, err
    inspected = json.loads(out)["model"]
    assert inspected["settings"] == saved  # the provenance's [model] table is the file's
    for key, value in saved.items():
        expected = f"{value:g}" if isinstance(value, float) else str(value)
        assert report[f"model.{key}"] == expected, key
    shown = {k: v for k, v in inspected.items() if k != "settings" and not isinstance(v, dict | list)}
    shared = _shared(shown, saved)
    assert shared or kind == "mlp"
    for key, (trained, written) in shared.items():
        assert trained == pytest.approx(written) if isinstance(written, float) else trained == written, key
