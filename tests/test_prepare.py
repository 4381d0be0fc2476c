"""Data preparation: the test set is held out first; nothing is resampled; the schema is the statistics phase's."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import CASES, needs_cases

from client_code.schema import encode, feature_names, load_data, load_schema
from client_code.tabular import read_channel
from orchestrator.data import layout
from orchestrator.data.own import prepare_own
from orchestrator.data.prepare import PrepareOptions, prepare
from orchestrator.data.synth import LABEL, generate_fraud
from orchestrator.errors import BadInput


def _read(folder):
    return pd.read_csv(next(folder.glob("*.csv")))


def test_iid_split_keeps_every_original_row_once_and_resamples_nothing(tmp_path, fraud_frame):
    summary = prepare(fraud_frame, PrepareOptions(label=LABEL, clients=3, categorical=("region",)), tmp_path / "out")
    data = layout.open_prepared(tmp_path / "out")
    test = pd.read_csv(data.test)
    validations = [_read(c.validation) for c in data.clients]
    trains = [_read(c.train) for c in data.clients]
    assert len(test) + sum(map(len, trains)) + sum(map(len, validations)) == len(fraud_frame)
    assert len(test) == pytest.approx(0.2 * len(fraud_frame), abs=1)
    # every split keeps the natural class balance, and every row is an original row
    original = set(map(tuple, fraud_frame.astype(str).to_numpy()))
    for frame in (test, *validations, *trains):
        assert frame[LABEL].mean() == pytest.approx(fraud_frame[LABEL].mean(), abs=0.02)
        assert set(map(tuple, frame.astype(str).to_numpy())) <= original
    assert data.schema["label"] == LABEL and data.schema["classes"] == [0, 1]
    assert data.schema["positive_class"] == 1 and data.schema["version"] == 2
    train_counts = pd.concat(trains)[LABEL].value_counts()
    assert data.schema["class_counts"] == {"0": int(train_counts[0]), "1": int(train_counts[1])}
    assert [f["name"] for f in data.schema["features"] if f["kind"] == "categorical"] == ["region"]
    assert load_data(data.clients[0].train, data.schema).X.shape[1] == 22 + 5 + 1  # numerics, regions, other
    assert not (data.clients[0].train / layout.SCHEMA).exists()  # the clients get the schema from the server
    assert summary.warnings == []


def test_text_columns_are_inferred_categorical(tmp_path, fraud_frame):
    summary = prepare(fraud_frame, PrepareOptions(label=LABEL, clients=2), tmp_path / "out")
    assert summary.inferred == ["region"]
    region = next(f for f in summary.schema["features"] if f["name"] == "region")
    assert region == {
        "name": "region",
        "kind": "categorical",
        "levels": sorted(fraud_frame["region"].unique()),
        "other": True,
    }
    manifest = json.loads((tmp_path / "out" / layout.MANIFEST).read_text())
    assert manifest["inferred_categorical"] == ["region"]


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
            generate_fraud(200).assign(region=[f"r{i}" for i in range(200)]),
            PrepareOptions(label=LABEL),
            "column 'region' has .* distinct text values in .* rows: it looks like an identifier; "
            "leave it out with --drop region",
        ),
        (generate_fraud(200).assign(potential_fraud=1), PrepareOptions(label=LABEL), "has a single class"),
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
            "column 'n_beneficiaries' has the infinite value 'inf'",
        ),
        (generate_fraud(200), PrepareOptions(label=LABEL, positive_class="2"), "positive class '2' is not one of"),
    ],
)
def test_bad_input_writes_nothing(tmp_path, frame, options, message):
    with pytest.raises(BadInput, match=message):
        prepare(frame, options, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.iterdir())


def test_every_party_gets_the_same_matrix_whatever_the_column_order(tmp_path, fraud_frame):
    prepare(fraud_frame, PrepareOptions(label=LABEL, clients=2, categorical=("region",)), tmp_path / "out")
    data = layout.open_prepared(tmp_path / "out")
    schema = load_schema(tmp_path / "out" / layout.SCHEMA)
    trains = pd.concat(_read(c.train) for c in data.clients)
    age = next(f for f in schema["features"] if f["name"] == "mean_beneficiary_age")
    assert age["mean"] == pytest.approx(trains["mean_beneficiary_age"].mean(), abs=1e-9)
    assert age["scale"] == pytest.approx(trains["mean_beneficiary_age"].std(ddof=0), abs=1e-9)
    test, _ = read_channel(data.test)
    matrix = encode(test, schema)
    assert np.array_equal(matrix, encode(test[test.columns[::-1]], schema))
    regions = [i for i, name in enumerate(feature_names(schema)) if name.startswith("region=")]
    assert len(regions) == 6 and np.allclose(matrix[:, regions].sum(axis=1), 1.0)  # 5 levels + other, one-hot


def test_dropped_columns_are_left_out_everywhere(tmp_path, fraud_frame):
    options = PrepareOptions(label=LABEL, clients=2, drop=("region", "share_male_beneficiaries"))
    prepare(fraud_frame, options, tmp_path / "out")
    data = layout.open_prepared(tmp_path / "out")
    for path in (data.test, data.clients[0].train / "train.csv", data.clients[1].validation / "validation.csv"):
        columns = pd.read_csv(path).columns
        assert "region" not in columns and "share_male_beneficiaries" not in columns
    assert len(data.schema["features"]) == len(fraud_frame.columns) - 3


def test_word_labels_name_the_minority_as_positive(tmp_path, fraud_frame):
    frame = fraud_frame.assign(**{LABEL: fraud_frame[LABEL].map({0: "legit", 1: "fraud"})})
    summary = prepare(frame, PrepareOptions(label=LABEL, categorical=("region",)), tmp_path / "out")
    assert summary.classes == ["fraud", "legit"] and summary.schema["positive_class"] == "fraud"
    chosen = prepare(frame, PrepareOptions(label=LABEL, positive_class="legit"), tmp_path / "out2")
    assert chosen.schema["positive_class"] == "legit"


def test_a_test_set_without_a_class_is_a_warning(tmp_path):
    frame = generate_fraud(2000, fraud_rate=0.01, seed=1)
    summary = prepare(frame, PrepareOptions(label=LABEL, clients=2, test_size=0.005, min_class_rows=1), tmp_path / "o")
    assert summary.warnings == [
        "the server's test set has no rows of class 1: ROC-AUC/PR-AUC are undefined; use a larger --test-size"
    ]


def test_one_owner_prepares_its_own_file_against_a_shared_schema(tmp_path, fraud_frame, prepared):
    own = fraud_frame.head(500)
    parts = prepare_own(own.astype(str), prepared.schema, tmp_path / "own", validation_size=0.2, seed=1)
    assert [(p.split, p.rows) for p in parts] == [("train", 400), ("validation", 100)]
    assert load_data(tmp_path / "own" / "train", prepared.schema).X.shape == (400, 28)
    with pytest.raises(BadInput, match="column 'region' required by the feature schema is missing"):
        prepare_own(own.drop(columns="region"), prepared.schema, tmp_path / "own2")
    assert not (tmp_path / "own2").exists()


@needs_cases
@pytest.mark.parametrize(
    ("case", "file", "label", "classes", "positive"),
    [
        ("01-adult-leading-spaces", "adult_like.csv", "income", ["<=50K", ">50K"], ">50K"),
        ("01-adult-leading-spaces", "adult_like_spacedheader.csv", "income", ["<=50K", ">50K"], ">50K"),
        ("02-float-labels", "float_labels.csv", "target", [0, 1], 1),
        ("03-plus-minus-one-labels", "sentiment_pm1.csv", "sentiment", [-1, 1], None),
        ("04-na-country-code", "claims_by_continent.csv", "fraud", [0, 1], 1),
        ("04-na-country-code", "fraud_type_none.csv", "fraud_type", None, None),
        ("23-string-labels-positive-class", "claims_fraud_legit.csv", "status", ["fraud", "legit"], "fraud"),
    ],
)
def test_the_cases_prepare_with_canonical_classes(tmp_path, case, file, label, classes, positive):
    frame, _ = read_channel(CASES / case / file)
    summary = prepare(frame, PrepareOptions(label=label), tmp_path / "out")
    schema = summary.schema
    if classes is not None:
        assert schema["classes"] == classes
    if positive is not None:
        assert schema["positive_class"] == positive
    counts = frame[label].str.strip().value_counts()
    if case.startswith("03"):  # -1/+1: the minority, whichever it is
        assert schema["positive_class"] == (-1 if counts.get("-1", 0) < counts.get("1", 0) else 1)
    if file == "claims_by_continent.csv":  # NA is North America, not a missing value
        continent = next(f for f in schema["features"] if f["name"] == "continent")
        assert continent["levels"] == ["AS", "EU", "NA"]
    if file == "fraud_type_none.csv":  # a class called None is a class
        assert "None" in schema["classes"] and schema["task"] == "multiclass"
    if case.startswith("01"):  # leading spaces gone from levels and classes
        workclass = next(f for f in schema["features"] if f["name"] == "workclass")
        assert workclass["levels"] == ["Private", "Self-emp", "State-gov"]
    # every prepared channel loads with the schema the way its client will
    data = layout.open_prepared(tmp_path / "out")
    for client in data.clients:
        assert len(load_data(client.train, schema)) > 0
