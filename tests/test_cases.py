"""The failing inputs of issue 9 (../shared/cases), run as a new user would: each gives the right result or one line."""

import json
import shutil

import pandas as pd
import pytest
from cli_runner import assert_bad_input, run_cli
from conftest import CASES, needs_cases

from orchestrator.local import LocalOptions, build_local_run, run_local

pytestmark = needs_cases


def _copy(case, tmp_path, folder="prepared"):
    target = tmp_path / "data"
    shutil.copytree(CASES / case / folder, target)
    return target


def _run(data, tmp_path, **options):
    return run_local(LocalOptions(data_dir=data, out=tmp_path / "runs", rounds=2, join_timeout=120, **options))


@pytest.mark.parametrize(
    ("case", "message"),
    [
        # a client without the rare class is refused by name and folder in the statistics phase
        ("10-client-missing-class", "/clients/client-2/train): no rows of class 1, held by client-1 ("),
        # empty cells left by an old preparation (NA read as missing) are refused with file and line
        ("04-na-country-code", "column 'continent' has an empty cell ("),
    ],
)
def test_cases_refused_in_one_line_before_anything_starts(capsys, tmp_path, case, message):
    data = _copy(case, tmp_path)
    assert_bad_input(
        capsys, "local", "--data-dir", str(data), "--out", str(tmp_path / "runs"), message=message, folder=tmp_path
    )


def test_case_11_column_order_does_not_matter(tmp_path):
    data = _copy("11-column-order-differs", tmp_path)
    run = build_local_run(LocalOptions(data_dir=data, out=tmp_path / "runs"))
    assert run.inputs().schema is not None  # the input check reads every channel's header, by name; raises if refused
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "folder", "classes", "positive"),
    [
        ("01-adult-leading-spaces", "prepared", ["<=50K", ">50K"], ">50K"),
        ("02-float-labels", "prepared", [0, 1], 1),
        ("03-plus-minus-one-labels", "prepared", [-1, 1], None),
        ("08-nested-channel-folders", "prepared", [0, 1], 1),
        ("11-column-order-differs", "prepared", [0, 1], 1),
        ("24-channel-without-schema", "prepared-noschema", [0, 1], 1),
    ],
)
def test_cases_that_used_to_fail_now_train(tmp_path, case, folder, classes, positive):
    outcome = _run(_copy(case, tmp_path, folder), tmp_path)
    summary = json.loads((outcome.run_dir / "run.json").read_text())
    assert summary["status"] == "completed"
    model = __import__("joblib").load(outcome.model_path)
    assert model[-1].classes_.tolist() == classes
    if positive is not None:
        assert summary["positive_class"] == positive
    assert not [w for w in outcome.warnings if "left out" in w]  # every client's update was usable
    assert outcome.final_metrics["roc_auc"] > 0.6
    if case.startswith("08"):  # the nested file is read too: 60 + 186 rows, 2 files
        assert summary["clients"]["client-1"]["rows"]["train"] == 246
        assert summary["clients"]["client-1"]["files"]["train"] == 2
    if case.startswith("24"):  # client-2 lost its schema.json: it trains with the federation's, like the others
        losses = {c: r["train_loss"] for c, r in outcome.history.final().clients.items()}
        assert max(losses.values()) - min(losses.values()) < 0.1


@pytest.mark.slow
def test_case_23_the_positive_class_is_named_everywhere(capsys, tmp_path):
    data = _copy("23-string-labels-positive-class", tmp_path)
    code, stdout, err = run_cli(
        capsys, "local", "--data-dir", str(data), "--rounds", "2", "--out", str(tmp_path / "runs")
    )
    assert code == 0, err
    assert "positive class: fraud" in stdout
    (run_dir,) = (tmp_path / "runs").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["positive_class"] == "fraud"
    assert "positive class: **fraud**" in (run_dir / "report.md").read_text()
    # precision and recall are the rare class's: the zero model (round 0, ties go to the first class)
    # calls every claim fraud, so its recall is 1 and its precision the share of fraud, not of legit
    test = pd.read_csv(data / "test.csv")
    fraud_share = (test["status"] == "fraud").mean()
    assert metrics["rounds"][0]["server"]["recall"] == 1.0
    assert metrics["rounds"][0]["server"]["precision"] == pytest.approx(fraud_share)
    assert metrics["calibration"]["observed"] == pytest.approx(fraud_share)


@pytest.mark.slow
def test_case_26_a_test_set_without_the_positive_class_warns_and_writes_null(tmp_path):
    outcome = _run(_copy("26-test-set-without-minority", tmp_path, "prepared-tinytest"), tmp_path)
    warning = "the server's test set has no rows of class 1: ROC-AUC/PR-AUC are undefined; use a larger --test-size"
    assert warning in outcome.warnings
    text = (outcome.run_dir / "metrics.json").read_text()
    assert "NaN" not in text
    assert json.loads(text)["rounds"][-1]["server"]["roc_auc"] is None
    assert warning in (outcome.run_dir / "report.md").read_text()
