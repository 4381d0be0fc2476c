"""`fedsage data prepare` and `fedsage data synth` from the command line: tables, determinism, bad input."""

import json

import pandas as pd
import pytest
from cli_runner import assert_bad_input, run_cli
from conftest import CASES, needs_cases

from orchestrator.data import layout, synth


@pytest.fixture(scope="module")
def claims_csv(tmp_path_factory, fraud_frame):
    path = tmp_path_factory.mktemp("input") / "claims.csv"
    fraud_frame.to_csv(path, index=False)
    return path


def test_prepare_a_csv_prints_rows_and_class_balance_per_client_and_test_set(capsys, tmp_path, claims_csv):
    out = tmp_path / "prepared"
    code, stdout, err = run_cli(
        capsys,
        *("data", "prepare", "--input", str(claims_csv), "--label", synth.LABEL, "--categorical", "region"),
        *("--partition", "column:region", "--out", str(out)),
    )
    assert code == 0, err
    for name in ("server", "central", "east", "north", "south", "west"):
        assert name in stdout
    assert "test" in stdout and "validation" in stdout and "class 0" in stdout and "class 1" in stdout
    assert "5 clients; schema: 23 feature columns, 28 model inputs; positive class 1" in stdout
    assert f"fedsage local --data-dir {out}" in stdout
    data = layout.open_prepared(out)
    assert [c.name for c in data.clients] == ["central", "east", "north", "south", "west"]
    manifest = json.loads((out / layout.MANIFEST).read_text())
    assert manifest["partition"] == "column:region" and manifest["source"] == str(claims_csv)


def test_seed_makes_the_cli_deterministic(capsys, tmp_path):
    args = ("data", "prepare", "--dataset", "breast-cancer", "--clients", "4", "--partition", "dirichlet:0.5")
    for name in ("a", "b"):
        assert run_cli(capsys, *args, "--seed", "3", "--out", str(tmp_path / name))[0] == 0
    assert run_cli(capsys, *args, "--seed", "4", "--out", str(tmp_path / "c"))[0] == 0
    for relative in ("test.csv", "schema.json", "clients/client-2/train/train.csv"):
        assert (tmp_path / "a" / relative).read_bytes() == (tmp_path / "b" / relative).read_bytes()
    assert (tmp_path / "a/clients/client-2/train/train.csv").read_bytes() != (
        tmp_path / "c/clients/client-2/train/train.csv"
    ).read_bytes()


def test_names_and_class_lists(capsys, tmp_path):
    from sklearn.datasets import load_digits

    csv = tmp_path / "digits.csv"
    load_digits(as_frame=True).frame.to_csv(csv, index=False)
    out = tmp_path / "out"
    code, stdout, err = run_cli(
        capsys,
        *("data", "prepare", "--input", str(csv), "--label", "target", "--classes", "1,2,3/4,5,6/7,8,9,0"),
        *("--other-fraction", "0.05", "--names", "low,mid,high", "--out", str(out)),
    )
    assert code == 0, err
    assert "partition classes:1,2,3/4,5,6/7,8,9,0 (selected 1, other 0.05)" in stdout
    train = pd.read_csv(out / "clients/mid/train/train.csv")
    assert train["target"].isin([4, 5, 6]).mean() > 0.7 and train["target"].nunique() == 10


def test_synth_writes_the_documented_columns_deterministically(capsys, tmp_path):
    paths = [tmp_path / "a.csv", tmp_path / "b.csv"]
    for path in paths:
        code, stdout, err = run_cli(
            capsys, "data", "synth", "--rows", "5000", "--fraud-rate", "0.2", "--seed", "9", "--out", str(path)
        )
        assert code == 0, err
    assert paths[0].read_bytes() == paths[1].read_bytes()
    frame = pd.read_csv(paths[0])
    assert len(frame) == 5000 and frame[synth.LABEL].mean() == pytest.approx(0.2, abs=0.02)
    for column in ("n_claims_inpatient", "total_reimbursed_inpatient", "mean_deductible_paid", "inpatient_share"):
        assert column in frame.columns
    assert "5,000 providers" in stdout and not list(tmp_path.glob(".*partial"))


def _assert_bad_input(capsys, tmp_path, *args, message):
    assert_bad_input(capsys, *args, message=message, folder=tmp_path)


@pytest.fixture
def small_csv(tmp_path):
    path = tmp_path / "input.csv"
    synth.generate_fraud(400, seed=1).to_csv(path, index=False)
    return path


def _prepare(path, *extra):
    return ("data", "prepare", "--input", str(path), "--out", str(path.parent / "out"), *extra)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--label", "fraud", "--categorical", "region"), "label column 'fraud' not found; choose one of: region,"),
        (
            ("--label", synth.LABEL, "--max-levels", "3"),
            "column 'region' has 5 distinct text values in",
        ),
        (("--label", synth.LABEL, "--drop", "region", "--categorical", "nope"), "column 'nope' given to --categorical"),
        (("--categorical", "region"), "--input needs --label"),
        (("--label", synth.LABEL, "--drop", "region", "--partition", "column:regio"), "partition column 'regio'"),
        (
            ("--label", synth.LABEL, "--categorical", "region", "--partition", "column:region", "--clients", "3"),
            "--clients 3 does not match: column 'region' has 5 values; drop --clients",
        ),
        (("--label", synth.LABEL, "--drop", "region", "--partition", "dirichlet:-1"), "ALPHA must be a positive"),
        (
            ("--label", synth.LABEL, "--drop", "region", "--partition", "dirichlet:1", "--classes", "0/1"),
            "--classes and --partition dirichlet:1 are two partitions",
        ),
        (("--label", synth.LABEL, "--drop", "region", "--other-fraction", "0.1"), "only apply with --classes"),
        (("--label", synth.LABEL, "--drop", "region", "--test-size", "1.5"), "--test-size must be in (0, 1)"),
        (("--label", synth.LABEL, "--drop", "region", "--names", "a,b_c"), "client name 'b_c' is not usable"),
        (("--label", synth.LABEL, "--drop", "region", "--clients", "60"), "too few for a test set and 60 clients"),
        (
            ("--label", synth.LABEL, "--drop", "region", "--clients", "12", "--partition", "dirichlet:0.3"),
            "too few to give each of 12 clients 5",
        ),
        (("--dataset", "breast-cancer"), "give either --input or --dataset, not both"),
        (("--label", synth.LABEL, "--drop", "region", "--clients", "1"), "--clients 1: a federation needs at least 2"),
        (("--label", synth.LABEL, "--drop", "region", "--classes", "0,1"), "makes 1 client: a federation needs"),
    ],
)
def test_prepare_bad_input_is_one_line_exit_2_and_writes_nothing(capsys, tmp_path, small_csv, extra, message):
    _assert_bad_input(capsys, tmp_path, *_prepare(small_csv, *extra), message=message)


def test_single_class_label(capsys, tmp_path):
    path = tmp_path / "input.csv"
    synth.generate_fraud(300).assign(potential_fraud=0).drop(columns="region").to_csv(path, index=False)
    _assert_bad_input(capsys, tmp_path, *_prepare(path, "--label", synth.LABEL), message="has a single class (0)")


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "is empty; it needs a header row and data rows"), ("a,b,label\n", "has a header but no data rows")],
)
def test_empty_files(capsys, tmp_path, content, message):
    path = tmp_path / "input.csv"
    path.write_text(content)
    _assert_bad_input(capsys, tmp_path, *_prepare(path, "--label", "label"), message=message)


def test_missing_input_and_existing_output(capsys, tmp_path, small_csv):
    _assert_bad_input(
        capsys,
        tmp_path,
        *_prepare(tmp_path / "missing.csv", "--label", synth.LABEL),
        message="input " + str(tmp_path / "missing.csv") + " does not exist",
    )
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    code, _, err = run_cli(capsys, *_prepare(small_csv, "--label", synth.LABEL, "--drop", "region"))
    assert code == 2 and "already exists and is not empty; choose a new --out" in err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_builtin_label_mismatch(capsys, tmp_path):
    code, _, err = run_cli(
        capsys, "data", "prepare", "--dataset", "breast-cancer", "--label", "target", "--out", str(tmp_path / "o")
    )
    assert code == 2 and "data set 'breast-cancer' has the label 'malignant'; drop --label target" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--fraud-rate", "1.2"), "--fraud-rate must be between 0 and 1"),
        (("--rows", "0"), "Invalid value for '--rows'"),
    ],
)
def test_synth_bad_input(capsys, tmp_path, args, message):
    _assert_bad_input(capsys, tmp_path, "data", "synth", "--out", str(tmp_path / "x.csv"), *args, message=message)


def test_synth_refuses_to_overwrite(capsys, tmp_path):
    path = tmp_path / "input.csv"
    path.write_text("precious\n")
    code, _, err = run_cli(capsys, "data", "synth", "--rows", "10", "--out", str(path))
    assert code == 2 and "already exists; choose another --out" in err
    assert path.read_text() == "precious\n"


@needs_cases
def test_spaced_header_names_can_be_named_in_options(capsys, tmp_path):
    """Case 01: ', '-separated header names are stripped, so --drop and --categorical can name them."""
    source = CASES / "01-adult-leading-spaces" / "adult_like_spacedheader.csv"
    out = tmp_path / "out"
    code, stdout, err = run_cli(
        capsys,
        *("data", "prepare", "--input", str(source), "--label", "income", "--drop", "education_num"),
        *("--categorical", "workclass", "--positive-class", ">50K", "--out", str(out)),
    )
    assert code == 0, err
    schema = json.loads((out / layout.SCHEMA).read_text())
    assert [f["name"] for f in schema["features"]] == ["age", "hours_per_week", "workclass"]
    assert schema["classes"] == ["<=50K", ">50K"] and schema["positive_class"] == ">50K"
    assert "positive class >50K" in stdout
