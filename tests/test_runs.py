"""`fedsage runs` (list, show, compare) and `fedsage logs`: run folders read back, old and unfinished ones too."""

import json
import shutil
import time
from pathlib import Path

import pytest
from cli_runner import assert_bad_input, run_cli
from conftest import CLIENT_ACCOUNTS, SERVER_ACCOUNT

from orchestrator import config
from orchestrator.federation.history import RoundRecord, RunHistory
from orchestrator.run.folder import ClientSummary, RunSummary, write_json
from orchestrator.runs import follow_log, log_source

METRICS = ("loss", "accuracy", "roc_auc", "pr_auc", "f1")


def _history(rounds, quality):
    """Rounds 0..rounds whose ROC-AUC climbs towards `quality`."""
    records = []
    for r in range(rounds + 1):
        value = 0.5 + (quality - 0.5) * r / max(rounds, 1)
        records.append(
            RoundRecord(r, dict.fromkeys(METRICS, value) | {"loss": 1 - value}, {"client-1": {"num_examples": 100}})
        )
    return RunHistory(records)


def _run(out, run_id, *, rounds=3, asked=3, quality=0.9, c=1.0, status="completed", clients=("client-1", "client-2")):
    """A run folder as a run writes it: run.json, metrics.json, federation.toml, server.log, client logs."""
    folder = out / run_id
    (folder / "checkpoints").mkdir(parents=True)
    history = _history(rounds, quality)
    summary = RunSummary(
        run_id=run_id,
        status=status,
        reason="" if status == "completed" else "client 'client-2' job failed",
        backend="local (one process per client)",
        rounds=asked,
        seconds=12.5,
        peak_memory_mb=300.0,
        versions={"fedsage": "0.1.0"},
        clients={name: ClientSummary(f"fedsage-{run_id}-{name}", "Completed", num_examples=100) for name in clients},
        started_at="2026-11-21T10:15:00+00:00",
        rounds_completed=rounds,
        final_metrics=history.final().server,
        hyperparameters={"federation": {"rounds": asked, "seed": 42}, "model": {"c": c, "max_iter": 10}},
    )
    write_json(folder / "run.json", summary.to_dict())
    write_json(folder / "metrics.json", {**summary.to_dict(), **history.to_dict()})
    (folder / "server.log").write_text("server line 1\nserver line 2\nserver line 3\n")
    for name in clients:
        (folder / "clients" / name).mkdir(parents=True)
        (folder / "clients" / name / "client.log").write_text(f"{name} starts\n{name} trains\n{name} ends\n")
    return folder


@pytest.fixture
def runs(tmp_path):
    """A runs folder: two finished runs, one from an older fedsage, one unfinished, and things that are no runs."""
    out = tmp_path / "runs"
    _run(out, "20261121-101500-aaaa", quality=0.8)
    _run(out, "20261121-103000-bbbb", quality=0.9, c=0.1)
    # an older fedsage's run.json (the first format: no peak memory, none of the newer keys, one key unknown now)
    old = out / "20261120-090000-cccc"
    old.mkdir()
    old_summary = {
        "run_id": old.name,
        "status": "completed",
        "reason": "",
        "backend": "local",
        "rounds": 2,
        "seconds": 9.0,
        "versions": {},
        "clients": {
            "client-1": {
                "job_name": "j",
                "status": "Completed",
                "failure_reason": None,
                "model_artifact": None,
                "num_examples": 5,
                "gone": 1,
            }
        },
        "warnings": [],
        "files": {},
        "from_the_future": True,
    }
    write_json(old / "run.json", old_summary)
    write_json(old / "metrics.json", _history(2, 0.7).to_dict())
    # a run going on (or killed): federation.toml, server.log and checkpoints, no run.json
    going = out / "20261121-110000-dddd"
    (going / "checkpoints").mkdir(parents=True)
    for r in range(3):
        (going / "checkpoints" / f"round-{r:03d}.npz").write_bytes(b"")
    (going / "federation.toml").write_text('[federation]\nrounds = 10\n\n[[clients]]\nname = "client-1"\n')
    (going / "server.log").write_text("")
    (out / "notes").mkdir()  # not a run folder
    (out / "compare.png").write_bytes(b"")  # an earlier comparison
    return out


def test_runs_lists_every_run_folder_old_and_unfinished_ones_too(capsys, runs):
    code, out, err = run_cli(capsys, "runs", "--out", str(runs), "--json")
    assert code == 0, err
    listed = {r["run_id"]: r for r in json.loads(out)}
    assert list(listed) == [
        "20261120-090000-cccc",
        "20261121-101500-aaaa",
        "20261121-103000-bbbb",
        "20261121-110000-dddd",
    ]
    new = listed["20261121-103000-bbbb"]
    assert (new["status"], new["rounds_completed"], new["rounds"]) == ("completed", 3, 3)
    assert new["clients"] == ["client-1", "client-2"] and new["final_metrics"]["roc_auc"] == pytest.approx(0.9)
    assert new["started_at"].startswith("2026-11-21 10:15:00")
    old = listed["20261120-090000-cccc"]  # rounds and metrics from metrics.json, the start from the run id
    assert (old["status"], old["rounds_completed"], old["rounds"]) == ("completed", 2, 2)
    assert old["final_metrics"]["roc_auc"] == pytest.approx(0.7) and old["started_at"].startswith("2026-11-20 09:00")
    going = listed["20261121-110000-dddd"]
    assert (going["status"], going["rounds_completed"], going["rounds"]) == ("unfinished", 2, 10)
    assert going["clients"] == ["client-1"]

    code, out, err = run_cli(capsys, "runs", "--out", str(runs))
    assert code == 0, err
    for run_id in listed:
        assert run_id in out
    assert "0.9000" in out and "unfinished" in out


@pytest.mark.parametrize("columns", ["80", "60", "40"])
def test_a_narrow_terminal_never_cuts_a_run_id(capsys, runs, monkeypatch, columns):
    """The id is what users copy into --resume, `stop --run-id` and `runs show`: the other columns wrap instead."""
    monkeypatch.setenv("COLUMNS", columns)
    _run(runs, "20261121-120000-eeee", rounds=1, asked=5, status="interrupted")
    summary = json.loads((runs / "20261121-120000-eeee" / "run.json").read_text()) | {"partial": True}
    write_json(runs / "20261121-120000-eeee" / "run.json", summary)
    code, out, err = run_cli(capsys, "runs", "--out", str(runs))
    assert code == 0, err
    listed = [line.split()[0] for line in out.splitlines() if line.strip().startswith("2026")]
    assert listed == [
        "20261120-090000-cccc",
        "20261121-101500-aaaa",
        "20261121-103000-bbbb",
        "20261121-110000-dddd",
        "20261121-120000-eeee",
    ]
    assert max(map(len, out.splitlines())) <= int(columns)
    assert "…" not in out
    if columns == "80":  # the essentials: rounds done/asked and the first metrics, whole
        assert "1/5" in out and "0.9000" in out


def test_runs_in_an_empty_or_missing_folder(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "runs", "--out", str(tmp_path / "nothing"))
    assert code == 0 and f"no runs in {tmp_path / 'nothing'}" in out
    assert not (tmp_path / "nothing").exists()
    (tmp_path / "file").write_text("")
    assert_bad_input(capsys, "runs", "--out", str(tmp_path / "file"), message="is a file, not a folder of runs")


def test_runs_show(capsys, runs):
    code, out, err = run_cli(capsys, "runs", "show", "20261121-103000-bbbb", "--out", str(runs), "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["summary"]["hyperparameters"]["model"]["c"] == 0.1
    assert [r["round"] for r in shown["rounds"]] == [0, 1, 2, 3]
    code, out, err = run_cli(capsys, "runs", "show", "20261121-103000-bbbb", "--out", str(runs))
    assert code == 0, err
    for text in ("completed", "round 3", "model.c 0.1", "client-2", "fedsage-20261121-103000-bbbb-client-1"):
        assert text in out
    code, out, err = run_cli(capsys, "runs", "show", "20261120-090000-cccc", "--out", str(runs))
    assert code == 0, err


@pytest.mark.parametrize("run_id", ["20991231-000000-zzzz", "../runs", "notes"])
def test_a_run_that_does_not_exist_is_bad_input_naming_the_folder_searched(capsys, runs, run_id):
    for command in (["runs", "show", run_id], ["logs", run_id], ["runs", "compare", run_id, "20261121-101500-aaaa"]):
        assert_bad_input(
            capsys,
            *command,
            "--out",
            str(runs),
            message=f"no run {run_id!r} in {runs}; the latest there is",
            folder=runs,
        )


def test_runs_compare_puts_metrics_side_by_side_and_plots_both_curves(capsys, runs, tmp_path):
    a, b = "20261121-101500-aaaa", "20261121-103000-bbbb"
    code, out, err = run_cli(capsys, "runs", "compare", a, b, "--out", str(runs), "--json")
    assert code == 0, err
    compared = json.loads(out)
    assert compared["runs"] == [a, b]
    assert compared["metrics"]["roc_auc"] == {a: pytest.approx(0.8), b: pytest.approx(0.9)}
    assert compared["settings"] == {"model.c": {a: 1.0, b: 0.1}}  # only what differs
    assert compared["plot"] == str(runs / "compare.png")
    assert (runs / "compare.png").read_bytes().startswith(b"\x89PNG")

    plot = tmp_path / "elsewhere" / "ab.png"
    code, out, err = run_cli(capsys, "runs", "compare", a, b, "--out", str(runs), "--plot", str(plot))
    assert code == 0, err
    assert plot.read_bytes().startswith(b"\x89PNG") and str(plot) in out
    assert "0.8000" in out and "0.9000" in out and "model.c" in out


def test_compare_needs_two_runs(capsys, runs):
    a = "20261121-101500-aaaa"
    assert_bad_input(capsys, "runs", "compare", a, a, "--out", str(runs), message="at least two different run ids")


def test_logs_of_the_server_and_of_a_client(capsys, runs):
    run_id = "20261121-101500-aaaa"
    code, out, _ = run_cli(capsys, "logs", run_id, "--out", str(runs))
    assert code == 0 and out.splitlines() == ["server line 1", "server line 2", "server line 3"]
    code, out, _ = run_cli(capsys, "logs", run_id, "--client", "client-2", "--lines", "2", "--out", str(runs))
    assert code == 0 and out.splitlines() == ["client-2 trains", "client-2 ends"]
    code, out, _ = run_cli(capsys, "logs", run_id, "--client", "client-1", "--follow", "--out", str(runs))
    assert code == 0 and out.splitlines() == ["client-1 starts", "client-1 trains", "client-1 ends"]  # the run is over
    assert_bad_input(
        capsys,
        "logs",
        run_id,
        "--client",
        "client-9",
        "--out",
        str(runs),
        message=f"run {run_id} has no client 'client-9'; its clients: client-1, client-2",
    )


def test_following_a_log_while_the_run_goes_on_stops_when_it_ends(runs):
    folder = runs / "20261121-110000-dddd"
    log = folder / "server.log"
    log.write_text("round 1\nround 2 is half")
    steps = iter(
        [
            lambda: log.open("a").write(" done\nround 3\n"),
            lambda: None,  # nothing new
            lambda: (log.open("a").write("last line, no newline"), (folder / "run.json").write_text("{}")),
        ]
    )
    waits = []

    def sleep(seconds):  # the test plays the passing time: each wait, the run writes more
        waits.append(seconds)
        next(steps)()

    source = log_source(folder.name, runs)
    lines = list(follow_log(source, lines=1, sleep=sleep))
    assert lines == ["round 1", "round 2 is half done", "round 3", "last line, no newline"]
    assert len(waits) == 3


# ----------------------------------------------------------------------------- a cloud run's client logs


CLIENTS = {"hospital-a": CLIENT_ACCOUNTS[0], "hospital-b": CLIENT_ACCOUNTS[1]}


def _cloud_run(out, run_id, tmp_path):
    """A run folder of a cloud run: the annotated example's federation, its server in the moto server account."""
    federation = config.load(Path(__file__).resolve().parent.parent / "examples" / "federation.toml")
    federation.server.profile = "fl-server"
    folder = _run(out, run_id, clients=tuple(CLIENTS))
    shutil.rmtree(folder / "clients")  # a cloud run keeps no client logs in its folder
    (folder / "federation.toml").write_text(federation.to_toml())


def _job_with_log(aws, account, name, run_id, lines):
    aws.admin(account).client("sagemaker").create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": "image", "TrainingInputMode": "File"},
        RoleArn=f"arn:aws:iam::{account}:role/FL-sagemaker-execution",
        OutputDataConfig={"S3OutputPath": f"s3://b-{account}/artifacts/"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
        Tags=[{"Key": "fedsage:run-id", "Value": run_id}],
    )
    logs = aws.admin(account).client("logs")
    group, stream = "/aws/sagemaker/TrainingJobs", f"{name}/algo-1-1700000000"
    if not logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
        logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    now = int(time.time() * 1000)  # CloudWatch refuses events older than 14 days
    events = [{"timestamp": now + i, "message": line} for i, line in enumerate(lines)]
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)


def test_a_cloud_runs_client_log_comes_from_cloudwatch_through_its_kickoff_role(
    capsys, aws, aws_profiles, tmp_path, monkeypatch
):
    aws_profiles({"fl-server": SERVER_ACCOUNT})
    out, run_id = tmp_path / "runs", "20261121-120000-eeee"
    _cloud_run(out, run_id, tmp_path)
    for name, account in CLIENTS.items():
        _job_with_log(aws, account, f"fraud-{run_id}-{name}", run_id, [f"{name} line {i}" for i in range(5)])
        _job_with_log(aws, account, f"fraud-other-{name}", "another-run", ["not this run"])

    code, out_text, err = run_cli(capsys, "logs", run_id, "--client", "hospital-b", "--out", str(out))
    assert code == 0, err
    assert out_text.splitlines() == [f"hospital-b line {i}" for i in range(5)]
    code, out_text, err = run_cli(capsys, "logs", run_id, "--client", "hospital-a", "--lines", "2", "--out", str(out))
    assert code == 0, err
    assert out_text.splitlines() == ["hospital-a line 3", "hospital-a line 4"]
    # moto's jobs have completed: following prints the log and stops
    code, out_text, err = run_cli(capsys, "logs", run_id, "--client", "hospital-a", "--follow", "--out", str(out))
    assert code == 0, err
    assert out_text.splitlines() == [f"hospital-a line {i}" for i in range(5)]
    kickoffs = [r for r in aws.assumed_roles(CLIENT_ACCOUNTS[0]) if r[0].endswith(":role/FL-kickoff-client-job")]
    assert kickoffs and {(r[1], r[2]) for r in kickoffs} == {(f"fedsage-{run_id}", "fedsage-example-hospital-a")}
    # the server's log is the run folder's, wherever the clients ran
    code, out_text, _ = run_cli(capsys, "logs", run_id, "--out", str(out))
    assert code == 0 and out_text.splitlines()[0] == "server line 1"


def test_a_cloud_client_without_a_job_is_bad_input(capsys, aws, aws_profiles, tmp_path):
    aws_profiles({"fl-server": SERVER_ACCOUNT})
    out, run_id = tmp_path / "runs", "20261121-120000-ffff"
    _cloud_run(out, run_id, tmp_path)
    assert_bad_input(
        capsys,
        "logs",
        run_id,
        "--client",
        "hospital-a",
        "--out",
        str(out),
        message=f"no training job of client 'hospital-a' for run {run_id} in account {CLIENT_ACCOUNTS[0]}",
    )


# ----------------------------------------------------------------------------- real runs


@pytest.mark.slow
def test_real_runs_listed_shown_compared_and_their_logs_read(capsys, tmp_path, prepared_dir, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    out = tmp_path / "runs"
    code, first, err = run_cli(capsys, "local", "--data-dir", str(prepared_dir), "--rounds", "1", "--out", str(out))
    assert code == 0, err
    assert "3 clients x 1 round of a logistic model on" in first  # issue 14, item 7: not "x 1 rounds"
    # the file list lines up (issue 14, item 7): every path starts in the same column
    listed = [
        line for line in first.splitlines() if line.startswith("  ") and str(out) in line and "client" not in line
    ]
    assert len(listed) == 6 and len({line.index(str(out)) for line in listed}) == 1
    code, _, err = run_cli(
        capsys, "local", "--data-dir", str(prepared_dir), "--rounds", "2", "--max-iter", "3", "--out", str(out)
    )
    assert code == 0, err
    a, b = sorted(p.name for p in out.iterdir())

    code, listing, _ = run_cli(capsys, "runs", "--out", str(out))
    assert code == 0 and a in listing and b in listing and "1/1" in listing and "2/2" in listing
    code, shown, _ = run_cli(capsys, "runs", "show", b, "--out", str(out))
    assert code == 0 and "model.max_iter 3" in shown and "round 2" in shown
    code, compared, _ = run_cli(capsys, "runs", "compare", a, b, "--out", str(out), "--json")
    assert code == 0
    compared = json.loads(compared)
    assert compared["settings"]["model.max_iter"] == {a: 10, b: 3}
    assert compared["settings"]["federation.rounds"] == {a: 1, b: 2}
    assert set(compared["metrics"]["roc_auc"]) == {a, b}
    assert (out / "compare.png").read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in out.iterdir() if p.is_file()] == ["compare.png"]

    code, log, _ = run_cli(capsys, "logs", a, "--client", "client-3", "--out", str(out))
    assert code == 0
    lines = log.splitlines()
    # issue 14, item 7: the client's own first line, no Flower deprecation notice, no alembic plugin lines
    assert lines[0].split(" ", 2)[2].startswith("INFO fedsage.client: train channel") and "rows" in lines[0]
    assert not any("DEPRECATED" in line or "alembic" in line or line.endswith("flwr: ") for line in lines)
    assert "federation finished after" in log
    code, log, _ = run_cli(capsys, "logs", a, "--out", str(out), "--follow")
    assert code == 0 and "run" in log  # server.log of a run that has ended: printed whole, then stops


def test_finished_in_counts_the_whole_command(tmp_path):
    """Issue 14, item 7: "finished in" covers start-up and data generation, not only the run."""
    import re

    from rich.console import Console

    from orchestrator.cli.progress import print_outcome
    from orchestrator.run.lifecycle import RunOutcome

    console = Console(record=True, width=200)
    outcome = RunOutcome("r", tmp_path, _history(1, 0.9), tmp_path / "model.joblib", {}, seconds=2.0)
    print_outcome(console, outcome, started=time.monotonic() - 1000)  # the command started 1000 s before
    shown = float(re.search(r"finished in ([\d.]+) s", console.export_text()).group(1))
    assert shown >= 1000  # not the run's own 2.0 s
