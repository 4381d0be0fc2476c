"""Data preparation: the test set is held out first and never resampled; SMOTE stays per client."""

import pandas as pd
import pytest

from client_code import utils
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
        utils.load_data(data.clients[0].train, LABEL, [0, 1], data.schema).X.shape[1] == 22 + 5
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
            "column 'region' is not numeric; declare it with --categorical region",
        ),
        (
            generate_fraud(200).assign(potential_fraud=1),
            PrepareOptions(label=LABEL, categorical=("region",)),
            "has a single class",
        ),
        (generate_fraud(200).head(0), PrepareOptions(label=LABEL), "has a header but no rows"),
    ],
)
def test_bad_input_writes_nothing(tmp_path, frame, options, message):
    with pytest.raises(BadInput, match=message):
        prepare(frame, options, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.iterdir())
