"""`fedsage local` from the command line: bad input is one line and exit code 2; defaults work."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from cli_runner import assert_bad_input, run_cli
from federation_support import job_processes


def _csv(folder: Path) -> Path:
    return next(folder.glob("*.csv"))


def _assert_bad_input(capsys, out, *args, message):
    return assert_bad_input(capsys, "local", "--out", str(out), *args, message=message, folder=out.parent)


def test_zero_clients(capsys, tmp_path):
    _assert_bad_input(
        capsys, tmp_path / "runs", "--clients", "0", message="Invalid value for '--clients': 0 is not in the range x>=1"
    )


def test_zero_rounds(capsys, tmp_path):
    _assert_bad_input(
        capsys, tmp_path / "runs", "--rounds", "0", message="Invalid value for '--rounds': 0 is not in the range x>=1"
    )


def test_one_client_is_no_federation(capsys, tmp_path):
    _assert_bad_input(
        capsys,
        tmp_path / "runs",
        "--clients",
        "1",
        message="--clients 1: a federation needs at least 2 clients (one client's update would be the model itself",
    )


def test_a_data_folder_of_one_client_is_no_federation(capsys, tmp_path, data_copy):
    for name in ("client-2", "client-3"):
        shutil.rmtree(data_copy / "clients" / name)
    err = _assert_bad_input(
        capsys, tmp_path / "runs", "--data-dir", str(data_copy), message=f"data folder {data_copy} has 1 client folder"
    )
    assert err.endswith("prepare it with --clients 2 or more")


def test_min_clients_above_the_clients_is_refused_before_any_data_is_generated(capsys, tmp_path):
    _assert_bad_input(
        capsys,
        tmp_path / "runs",
        "--clients",
        "2",
        "--min-clients",
        "5",
        message="--min-clients 5 is more than the 2 clients; lower it or add clients",
    )


def test_unknown_option(capsys, tmp_path):
    _assert_bad_input(capsys, tmp_path / "runs", "--clientz", "3", message="No such option '--clientz'")


def test_unknown_dataset(capsys, tmp_path):
    _assert_bad_input(
        capsys,
        tmp_path / "runs",
        "--dataset",
        "mnist",
        message="unknown data set 'mnist'; choose one of: synthetic-fraud, breast-cancer",
    )


def test_missing_data_folder(capsys, tmp_path):
    _assert_bad_input(
        capsys,
        tmp_path / "runs",
        "--data-dir",
        str(tmp_path / "nope"),
        message="does not exist; create it with `fedsage data prepare --out DIR`",
    )


def test_empty_data_folder(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    _assert_bad_input(capsys, tmp_path / "runs", "--data-dir", str(tmp_path / "empty"), message="is empty")


def test_clients_option_must_match_the_data_folder(capsys, tmp_path, prepared_dir):
    _assert_bad_input(
        capsys,
        tmp_path / "runs",
        "--data-dir",
        str(prepared_dir),
        "--clients",
        "2",
        message="--clients 2 does not match the 3 client folders",
    )


def test_missing_label_column(capsys, tmp_path, data_copy):
    path = _csv(data_copy / "clients" / "client-2" / "train")
    pd.read_csv(path).drop(columns=["potential_fraud"]).to_csv(path, index=False)
    _assert_bad_input(capsys, tmp_path / "runs", "--data-dir", str(data_copy), message="client 'client-2' train data")


def test_clients_whose_feature_columns_differ(capsys, tmp_path, data_copy):
    path = _csv(data_copy / "clients" / "client-3" / "validation")
    pd.read_csv(path).rename(columns={"n_beneficiaries": "beneficiaries"}).to_csv(path, index=False)
    _assert_bad_input(
        capsys,
        tmp_path / "runs",
        "--data-dir",
        str(data_copy),
        message="client 'client-3' validation data",
    )
    code, _, err = run_cli(capsys, "local", "--out", str(tmp_path / "runs"), "--data-dir", str(data_copy))
    assert "column 'n_beneficiaries' required by the feature schema is missing" in err


def test_non_numeric_values(capsys, tmp_path, data_copy):
    path = _csv(data_copy / "clients" / "client-1" / "train")
    frame = pd.read_csv(path)
    frame["inpatient_share"] = frame["inpatient_share"].astype(object)
    frame.loc[5, "inpatient_share"] = "twelve"
    frame.to_csv(path, index=False)
    _assert_bad_input(
        capsys,
        tmp_path / "runs",
        "--data-dir",
        str(data_copy),
        message="column 'inpatient_share' has the non-numeric value 'twelve' (train.csv line 7)",
    )


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ("test", "twelve", "test.csv: column 'inpatient_share' has the non-numeric value 'twelve' (test.csv line 4)"),
        ("test", "", "test.csv: column 'inpatient_share' has an empty cell (test.csv line 4)"),
        ("train", "inf", "column 'inpatient_share' has the infinite value 'inf' (train.csv line 4); replace it"),
        ("test", "-inf", "column 'inpatient_share' has the infinite value '-inf' (test.csv line 4); replace it"),
        # the label column too, in either file
        ("test", "", "test.csv: the label column has an empty value (test.csv line 4); drop or fill"),
        ("train", "", "the label column has an empty value (train.csv line 4); drop or fill"),
        ("test", "abc", "test.csv: label value 'abc' is not one of the classes [0, 1] (test.csv line 4)"),
    ],
)
def test_a_bad_cell_is_named_by_its_file_and_line_in_the_test_set_and_the_clients(
    capsys, tmp_path, data_copy, where, value, message
):
    folder = data_copy if where == "test" else data_copy / "clients" / "client-2" / "train"
    path = folder / "test.csv" if where == "test" else _csv(folder)
    column = "potential_fraud" if "label" in message else "inpatient_share"
    frame = pd.read_csv(path)
    frame[column] = frame[column].astype(object)
    frame.loc[2, column] = value  # the third data row: line 4 of the file
    frame.to_csv(path, index=False)
    error = _assert_bad_input(capsys, tmp_path / "runs", "--data-dir", str(data_copy), message=message)
    if where == "train":  # found by the client in its statistics phase, named where its owner keeps it
        assert f"error: client 'client-2' train data ({folder}): " in error


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30",
            "is not a readable CSV file (Expected 24 fields in line 5, saw 30; give every line the header's fields "
            "(quote a value that holds a comma))",
        ),
        (b"\xe9t\xe9", "is not UTF-8 text (byte 0xe9 on line 5); save it as UTF-8"),
        ('"south,1,2', "is not a readable CSV file (a quote opened on line 5 never closes; close it or remove it)"),
    ],
)
def test_a_row_a_client_cannot_parse_is_bad_input_named_by_its_folder(capsys, tmp_path, data_copy, line, message):
    """Found by the client when it reads its channel, after the header check: refused in the statistics phase."""
    folder = data_copy / "clients" / "client-2" / "train"
    path = _csv(folder)
    rows = path.read_bytes().split(b"\n")
    rows[4] = line if isinstance(line, bytes) else line.encode()
    path.write_bytes(b"\n".join(rows))
    error = _assert_bad_input(capsys, tmp_path / "runs", "--data-dir", str(data_copy), message=message)
    assert error.startswith(f"error: client 'client-2' train data ({folder}): {path.name} ")


def test_a_label_other_than_the_schemas_is_refused_not_ignored(capsys, tmp_path, data_copy):
    _assert_bad_input(
        capsys,
        tmp_path / "runs",
        "--data-dir",
        str(data_copy),
        "--label",
        "nosuch",
        message="[data] label (--label) is 'nosuch' but the feature schema's label is 'potential_fraud'; drop it",
    )


def test_raw_exports_whose_test_set_lacks_the_label_are_refused_by_the_input_check(capsys, tmp_path, data_copy):
    """Without schema.json the statistics phase computes the schema; the test set's label is checked before it.

    It used to be found only when the statistics phase's schema arrived, after every client had joined.
    """
    (data_copy / "schema.json").unlink()
    test = data_copy / "test.csv"
    pd.read_csv(test).drop(columns="potential_fraud").to_csv(test, index=False)
    out = tmp_path / "runs"
    code, stdout, err = run_cli(
        capsys, "local", "--out", str(out), "--data-dir", str(data_copy), "--label", "potential_fraud"
    )
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"{test}: label column 'potential_fraud' not found (columns: " in err
    assert "joined" not in stdout and not out.exists()


def test_a_truncated_schema_file_is_refused_naming_it_and_the_fix(capsys, tmp_path, data_copy):
    schema = data_copy / "schema.json"
    schema.write_text(schema.read_text()[:40])
    error = _assert_bad_input(
        capsys, tmp_path / "runs", "--data-dir", str(data_copy), message=f"{schema} is not a readable feature schema ("
    )
    assert error.endswith("); restore the file, or write it again with `fedsage data prepare`")


def test_missing_test_set(capsys, tmp_path, data_copy):
    (data_copy / "test.csv").unlink()
    _assert_bad_input(capsys, tmp_path / "runs", "--data-dir", str(data_copy), message="has no test.csv")


@pytest.mark.slow
def test_fedsage_local_with_defaults_writes_every_output(tmp_path, assert_run_outputs):
    """The README's main command, as a user runs it: installed console script, no arguments."""
    fedsage = shutil.which("fedsage", path=os.path.dirname(sys.executable)) or shutil.which("fedsage")
    result = subprocess.run([fedsage, "local"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1
    run_dir = runs[0]
    assert_run_outputs(run_dir)
    assert len(list((run_dir / "checkpoints").glob("round-*.npz"))) == 6  # round 0 + 5 rounds
    for client in ("client-1", "client-2", "client-3"):
        assert (run_dir / "clients" / client / "client.log").is_file()
        assert (run_dir / "clients" / client / "opt" / "ml" / "model" / "model.joblib").is_file()
        assert (run_dir / "requests" / f"{client}.json").is_file()
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert list(metrics["round"]) == [0, 1, 2, 3, 4, 5]
    assert metrics["server.roc_auc"].iloc[-1] > 0.85 > metrics["server.roc_auc"].iloc[0]
    assert "round 5/5" in result.stdout and "finished in" in result.stdout and str(run_dir.name) in result.stdout


@pytest.mark.slow
def test_ctrl_c_stops_every_job_and_exits_130(tmp_path):
    import json
    import signal

    import psutil

    fedsage = shutil.which("fedsage", path=os.path.dirname(sys.executable)) or shutil.which("fedsage")
    process = subprocess.Popen(
        [fedsage, "local", "--rounds", "200"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in process.stdout:
        if line.startswith("round 1/200"):
            break
    assert len(job_processes(process.pid)) == 3
    clients = psutil.Process(process.pid).children(recursive=True)  # and the plotter (run/plotter.py)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "interrupted: every job this run started was stopped" in err
    gone, alive = psutil.wait_procs(clients, timeout=5)
    assert not alive
    (run_dir,) = (tmp_path / "runs").iterdir()
    status = json.loads((run_dir / "run.json").read_text())
    assert status["status"] == "interrupted"
    assert {c["status"] for c in status["clients"].values()} == {"Stopped"}


# ----------------------------------------------------------------------------- issue 10, item 11: a bad --out


def test_out_is_a_file(capsys, tmp_path):
    (tmp_path / "runs").write_text("not a folder")
    _assert_bad_input(
        capsys, tmp_path / "runs", message="--out {} is a file; choose a folder".format(tmp_path / "runs")
    )


def test_out_inside_a_file(capsys, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    _assert_bad_input(capsys, tmp_path / "file" / "runs", message="is inside a file")


def test_out_on_a_read_only_disk(capsys, tmp_path, small_disk):
    disk = small_disk("ro", read_only=True)
    _assert_bad_input(capsys, disk / "runs", message=f"cannot write to {disk} (Read-only file system)")


@pytest.mark.parametrize("data", ["built-in", "data-dir"])
def test_out_on_a_full_small_disk(capsys, tmp_path, small_disk, prepared_dir, data):
    from conftest import fill

    disk = small_disk("full", "64m")
    fill(disk)
    args = ("--data-dir", str(prepared_dir)) if data == "data-dir" else ()
    _assert_bad_input(
        capsys, disk / "runs", *args, message=f"only 0.0 MiB free on the disk of {disk}; a run needs at least 32 MiB"
    )


@pytest.mark.slow
def test_class_weight_balancing_keeps_probabilities_calibrated(capsys, tmp_path):
    """--balance class_weight instead of SMOTE: no new rows, the same prior correction, calibrated output."""
    import json

    code, stdout, err = run_cli(capsys, "local", "--rounds", "3", "--balance", "class_weight", "--out", str(tmp_path))
    assert code == 0, err
    (run_dir,) = tmp_path.iterdir()
    summary = json.loads((run_dir / "run.json").read_text())
    trained = summary["statistics"]["trained_counts"]
    assert trained["0"] == pytest.approx(trained["1"])  # weighted shares are equal: w_c = N / (K N_c)
    raw = summary["statistics"]["class_counts"]
    rows = json.loads((run_dir / "metrics.json").read_text())["rounds"][-1]["clients"]
    assert sum(c["num_examples"] for c in rows.values()) == raw["0"] + raw["1"]  # no synthetic rows
    assert summary["calibration"]["mean_predicted"] == pytest.approx(summary["calibration"]["observed"], abs=0.02)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy-param", "x"], "--strategy-param 'x' is not KEY=NUMBER"),
        (
            ["--strategy", "fedprox", "--strategy-param", "proximal_mu=0.1", "--strategy-param", " proximal_mu=1"],
            "--strategy-param proximal_mu is given twice; keep one --strategy-param proximal_mu=VALUE",
        ),
        (["--strategy", "fedavg", "--strategy-param", "beta=0.1"], "strategy.beta is not a parameter of fedavg"),
        (["--clipping-norm", "1"], "--clipping-norm sets differential privacy; add --dp central or --dp local"),
        (["--dp", "central", "--strategy", "fedadam"], "its server state would keep the un-noised averages"),
        (["--strategy", "krum", "--strategy-param", "num_malicious_clients=1"], "needs at least 5 clients (2f + 3)"),
    ],
)
def test_strategy_and_privacy_options_are_checked_before_anything_runs(capsys, tmp_path, args, message):
    _assert_bad_input(capsys, tmp_path / "runs", *args, message=message)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--positive-class", "7"], "positive class '7' is not one of the classes"),
        (["--dp", "central", "--model", "xgboost"], "sends trees"),
        (["--strategy", "fedprox", "--model", "mlp"], "has none"),
    ],
)
def test_bad_input_found_with_the_built_in_data_is_one_line_and_leaves_no_out_folder(capsys, tmp_path, args, message):
    """Found once the data set is generated into a new --out: the run folder and the --out it made are removed."""
    out = tmp_path / "new" / "runs"
    code, printed, err = run_cli(capsys, "local", "--out", str(out), "--rounds", "1", *args)
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert printed.strip() == "", "no banner before the error line"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("moment", ["writing its results", "printing the summary"])
def test_ctrl_c_after_the_run_completed_exits_0_as_its_run_json_says(
    capsys, tmp_path, prepared_dir, monkeypatch, moment
):
    """A completed run stays completed: a late Ctrl-C neither changes run.json nor makes the command exit 130."""
    import json
    import signal

    from orchestrator.cli import progress
    from orchestrator.run import report

    module, name = (report, "write_all") if moment == "writing its results" else (progress, "print_outcome")
    original = getattr(module, name)

    def ctrl_c_then(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # handled in this (the main) thread before the call below goes on
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, ctrl_c_then)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # a harness may have it ignored
    try:
        code, out, err = run_cli(
            capsys, "local", "--data-dir", str(prepared_dir), "--rounds", "1", "--out", str(tmp_path)
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    (run_dir,) = tmp_path.iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    assert code == 0, err
    assert err == "note: interrupted after the run had completed; its results are complete"
    assert "finished in" in out


def test_help_shows_bracketed_words_as_written(capsys, monkeypatch):
    """Typer's Rich markup took `fedsage[simulation]` and `[default: 5; ...]` for style tags and dropped them."""
    monkeypatch.setenv("COLUMNS", "400")  # one line per option's help
    code, out, _ = run_cli(capsys, "local", "--help")
    assert code == 0
    assert 'pip install "fedsage[simulation]"' in out and "(needs fedsage[mlflow])" in out
    assert "Federated rounds [default: 5; linear 1, xgboost 20]." in out


def test_more_clients_than_the_data_can_split_among_is_one_line(capsys, tmp_path):
    """The review of issue 15 waited 118 s for this line (a quadratic check of the client names ran first)."""
    _assert_bad_input(
        capsys,
        tmp_path / "runs",
        "--clients",
        "100000",
        message="too few for a test set and 100000 clients; use fewer clients or more data",
    )
