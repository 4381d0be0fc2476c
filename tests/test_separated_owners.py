"""Issue 9's federation: owners holding only raw CSV exports end with the pooled schema and the pooled model."""

import json

import numpy as np
import pandas as pd
import pytest

from client_code.metrics import classification_metrics
from client_code.models.logistic import fit_local, make_model, prior_correction, set_initial_params
from client_code.resample import balance
from client_code.schema import load_data, to_dataset
from client_code.tabular import read_channel
from orchestrator.data.prepare import PrepareOptions, pooled_schema
from orchestrator.data.synth import LABEL, generate_fraud
from orchestrator.local import LocalOptions, run_local


def write_owners(root, rows=6000, seed=11):
    """Three owners' raw exports and a server test set, no schema anywhere.

    client-1 exports in another row order, client-2 with its columns reversed (label first) and in
    two files below a Hive-style subfolder, and only client-3 has providers in region 'islands'.
    """
    frame = generate_fraud(rows=rows, seed=seed)
    test, rest = frame.iloc[: rows // 5], frame.iloc[rows // 5 :]
    parts = np.array_split(rest.index.to_numpy(), 3)
    owners = [rest.loc[index] for index in parts]
    owners[0] = owners[0].sample(frac=1.0, random_state=3)
    owners[1] = owners[1][list(reversed(owners[1].columns))]
    islands = owners[2].sample(40, random_state=4).assign(region="islands")
    owners[2] = pd.concat([owners[2], islands])
    root.mkdir(parents=True)
    test.to_csv(root / "test.csv", index=False)
    for i, owner in enumerate(owners, start=1):
        train = root / "clients" / f"client-{i}" / "train"
        if i == 2:
            (train / "month=2024-01").mkdir(parents=True)
            (train / "month=2024-02").mkdir(parents=True)
            half = len(owner) // 2
            owner.iloc[:half].to_csv(train / "month=2024-01" / "part-00000.csv", index=False)
            owner.iloc[half:].to_csv(train / "month=2024-02" / "part-00001.csv", index=False)
        else:
            train.mkdir(parents=True)
            owner.to_csv(train / "export.csv", index=False)
    return root


def pooled_pipeline_auc(root, schema, balance_method="smote"):
    """ROC-AUC on the test set of one LogisticRegression trained centrally on the pooled rows, the same way."""
    frames = [read_channel(folder)[0] for folder in sorted((root / "clients").glob("*/train"))]
    pooled = to_dataset(pd.concat(frames, ignore_index=True), schema)
    classes = list(schema["classes"])
    balanced = balance(pooled, classes, balance_method, 1.0, seed=42)
    model = set_initial_params(
        make_model(max_iter=1000, class_weight=balanced.class_weight), pooled.X.shape[1], classes
    )
    fit_local(model, balanced.data)
    counts = {c: int(np.sum(pooled.y == c)) for c in classes}
    model.intercept_ = prior_correction([model.coef_, model.intercept_], classes, counts, balanced.trained_counts)[1]
    return classification_metrics(model, load_data(root / "test.csv", schema))["roc_auc"], frames


@pytest.mark.slow
def test_raw_exports_give_the_pooled_schema_and_a_model_as_good_as_the_pooled_one(tmp_path):
    root = write_owners(tmp_path / "owners")
    outcome = run_local(LocalOptions(data_dir=root, label=LABEL, out=tmp_path / "runs", rounds=10, join_timeout=120))
    schema = json.loads((outcome.run_dir / "schema.json").read_text())

    frames = [read_channel(folder)[0] for folder in sorted((root / "clients").glob("*/train"))]
    pooled, inferred = pooled_schema(pd.concat(frames, ignore_index=True), PrepareOptions(label=LABEL))
    assert inferred == ["region"]
    assert [(f["name"], f["kind"]) for f in schema["features"]] == [(f["name"], f["kind"]) for f in pooled["features"]]
    for mine, theirs in zip(schema["features"], pooled["features"], strict=True):
        if mine["kind"] == "numeric":
            assert mine["mean"] == pytest.approx(theirs["mean"], abs=1e-9, rel=0)
            assert mine["scale"] == pytest.approx(theirs["scale"], abs=1e-9, rel=0)
        else:
            assert mine["levels"] == theirs["levels"]
    region = next(f for f in schema["features"] if f["name"] == "region")
    assert "islands" in region["levels"]  # 40 rows at one owner: at least k = 10 over the federation
    assert schema["classes"] == pooled["classes"] == [0, 1] and schema["positive_class"] == 1

    summary = json.loads((outcome.run_dir / "run.json").read_text())
    assert summary["statistics"]["schema"] == "statistics phase"
    assert summary["clients"]["client-2"]["files"] == {"train": 2}
    assert sum(c["rows"]["train"] for c in summary["clients"].values()) == sum(map(len, frames))

    pooled_auc, _ = pooled_pipeline_auc(root, schema)
    assert outcome.final_metrics["roc_auc"] == pytest.approx(pooled_auc, abs=0.005)
