"""Data preparation: the test set is held out first and never resampled; SMOTE stays per client."""

import json

import numpy as np
import pandas as pd
import pytest

from client_code.schema import apply_schema, load_data, load_schema
from orchestrator.data import layout
from orchestrator.data.prepare import PrepareOptions, prepare
from orchestrator.data.synth import LABEL, generate_fraud
from orchestrator.errors import BadInput


def _read(folder):
    return pd.read_csv(next(folder.glob("*.csv")))


def test_iid_split_keeps_every_original_row_once_and_balances_train_only(tmp_path, fraud_frame):
    summary = prepare(fraud_frame, PrepareOptions(label=LABEL, clients=3, categorical=("region",)), tmp_path / "out")
    data = layout.open_prepared(tmp_path / "out")
    test = pd.read_csv(data.test)
    validations = [_read(c.validation) for c in data.clients]
    trains = [_read(c.train) for c in data.clients]
    before = {p.name: p.rows_before_smote for p in summary.parts if p.split == "train"}

    # rows add up: test + each client's original train rows + validation = input
    assert len(test) + sum(before.values()) + sum(map(len, validations)) == len(fraud_frame)
    assert len(test) == pytest.approx(0.2 * len(fraud_frame), abs=1)
    # the test set and validation sets keep the natural class balance (no SMOTE)
    assert test[LABEL].mean() == pytest.approx(fraud_frame[LABEL].mean(), abs=0.01)
    for validation in validations:
        assert validation[LABEL].mean() == pytest.approx(fraud_frame[LABEL].mean(), abs=0.02)
    # every test and validation row is an original row (exact match on all columns)
    original = set(map(tuple, fraud_frame.astype(str).to_numpy()))
    for frame in (test, *validations):
        assert set(map(tuple, frame.astype(str).to_numpy())) <= original
    # each client's train split is balanced 1:1 and keeps its original rows
    for name, train in zip(before, trains, strict=True):
        counts = train[LABEL].value_counts()
        assert counts[0] == counts[1]
        assert len(train) > before[name]
        assert pd.api.types.is_integer_dtype(train["n_claims_inpatient"])
        assert set(train["region"]) <= {"north", "south", "east", "west", "central"}
    # the schema every party applies
    assert data.schema["label"] == LABEL and data.schema["classes"] == [0, 1]
    assert [f["name"] for f in data.schema["features"] if f["kind"] == "categorical"] == ["region"]
    assert (
        load_data(data.clients[0].train, LABEL, [0, 1], data.schema).X.shape[1] == 22 + 5
    )  # numeric columns + one-hot regions


def test_seed_makes_preparation_deterministic(tmp_path, fraud_frame):
    options = PrepareOptions(label=LABEL, clients=2, categorical=("region",), seed=3)
    prepare(fraud_frame, options, tmp_path / "a")
    prepare(fraud_frame, options, tmp_path / "b")
    for relative in ("test.csv", "clients/client-1/train/train.csv", "schema.json"):
        assert (tmp_path / "a" / relative).read_bytes() == (tmp_path / "b" / relative).read_bytes()


@pytest.mark.parametrize(
    ("frame", "options", "message"),
    [
        (generate_fraud(200), PrepareOptions(label="fraud"), "label column 'fraud' not found"),
        (
            generate_fraud(200),
            PrepareOptions(label=LABEL),
            "column 'region' has the non-numeric value .* declare it with --categorical region",
        ),
        (
            generate_fraud(200).assign(potential_fraud=1),
            PrepareOptions(label=LABEL, categorical=("region",)),
            "has a single class",
        ),
        (generate_fraud(200).head(0), PrepareOptions(label=LABEL), "has a header but no rows"),
        (
            generate_fraud(200),
            PrepareOptions(label=LABEL, drop=("regio",)),
            "column 'regio' given to --drop is not a feature column",
        ),
        (
            generate_fraud(200).assign(region=None),
            PrepareOptions(label=LABEL, partition="column:region", categorical=("region",)),
            "partition column 'region' has empty values",
        ),
        (
            generate_fraud(200).assign(n_beneficiaries=np.inf),
            PrepareOptions(label=LABEL, categorical=("region",)),
            "column 'n_beneficiaries' has infinite values",
        ),
        (
            generate_fraud(200),
            PrepareOptions(label=LABEL, categorical=("region",), smote_ratio=1.5),
            "--smote-ratio must be in",
        ),
    ],
)
def test_bad_input_writes_nothing(tmp_path, frame, options, message):
    with pytest.raises(BadInput, match=message):
        prepare(frame, options, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.iterdir())


def test_schema_round_trip_every_party_gets_the_same_matrix(tmp_path, fraud_frame):
    prepare(fraud_frame, PrepareOptions(label=LABEL, clients=2, categorical=("region",)), tmp_path / "out")
    data = layout.open_prepared(tmp_path / "out")
    schema = load_schema(tmp_path / "out" / layout.SCHEMA)
    # the schema travels with every channel, unchanged
    for client in data.clients:
        for channel in (client.train, client.validation):
            assert load_schema(channel / layout.SCHEMA) == schema
    # column order, categorical levels, scaling parameters and classes, as fitted on training rows
    assert [f["name"] for f in schema["features"]] == [c for c in fraud_frame.columns if c != LABEL]
    region = next(f for f in schema["features"] if f["name"] == "region")
    assert region == {"name": "region", "kind": "categorical", "levels": sorted(fraud_frame["region"].unique())}
    originals = pd.concat(
        _read(c.train).head(p["rows_before_smote"])
        for c, p in zip(data.clients, _train_parts(tmp_path / "out"), strict=True)
    )
    age = next(f for f in schema["features"] if f["name"] == "mean_beneficiary_age")
    assert age["mean"] == pytest.approx(originals["mean_beneficiary_age"].mean())
    assert age["scale"] == pytest.approx(originals["mean_beneficiary_age"].std(ddof=0))
    assert schema["classes"] == [0, 1] and schema["label"] == LABEL
    # applying it: scaled numerics, one-hot regions, the schema's column order whatever the file's
    test = pd.read_csv(data.test)
    matrix, names = apply_schema(test, schema, "test")
    shuffled, shuffled_names = apply_schema(test[test.columns[::-1]], schema, "test")
    assert names == shuffled_names and np.array_equal(matrix, shuffled)
    assert names[:5] == [f"region={level}" for level in region["levels"]]
    assert np.array_equal(matrix[:, :5].sum(axis=1), np.ones(len(test)))
    column = names.index("mean_beneficiary_age")
    assert np.allclose(matrix[:, column], (test["mean_beneficiary_age"] - age["mean"]) / age["scale"])
    # a JSON round trip changes nothing
    copy = tmp_path / "schema-copy.json"
    copy.write_text(json.dumps(json.loads((tmp_path / "out" / layout.SCHEMA).read_text())))
    assert np.array_equal(apply_schema(test, load_schema(copy), "test")[0], matrix)


def _train_parts(out):
    manifest = json.loads((out / layout.MANIFEST).read_text())
    return sorted((p for p in manifest["parts"] if p["split"] == "train"), key=lambda p: p["name"])


def test_dropped_columns_are_left_out_everywhere(tmp_path, fraud_frame):
    options = PrepareOptions(label=LABEL, clients=2, drop=("region", "share_male_beneficiaries"))
    prepare(fraud_frame, options, tmp_path / "out")
    data = layout.open_prepared(tmp_path / "out")
    for path in (data.test, data.clients[0].train / "train.csv", data.clients[1].validation / "validation.csv"):
        columns = pd.read_csv(path).columns
        assert "region" not in columns and "share_male_beneficiaries" not in columns
    assert len(data.schema["features"]) == len(fraud_frame.columns) - 3


def test_string_labels_and_no_smote(tmp_path, fraud_frame):
    frame = fraud_frame.assign(**{LABEL: fraud_frame[LABEL].map({0: "no", 1: "yes"})})
    summary = prepare(frame, PrepareOptions(label=LABEL, categorical=("region",), smote=False), tmp_path / "out")
    data = layout.open_prepared(tmp_path / "out")
    assert data.classes == ["no", "yes"]
    assert all(p.rows_before_smote is None for p in summary.parts)
    loaded = load_data(data.clients[0].train, LABEL, data.classes, data.schema)
    assert set(loaded.y) == {"no", "yes"}
