"""`fedsage launch`, `status` and `stop` against moto: a server account and two client accounts.

SageMaker itself is played by tests/fake_sagemaker.py: the jobs moto records really run, as
local processes fed from each client account's S3, and report back through moto.
"""

import json
import re
import shutil
from pathlib import Path

import botocore.client
import pytest
from cli_runner import run_cli
from conftest import CLIENT_ACCOUNTS, REGION, SERVER_ACCOUNT, free_port
from fake_sagemaker import CLIENTS, FakeSageMaker, SageMakerExecutor, cloud_federation, put_client_objects
from fake_sagemaker import bucket as _bucket
from federation_support import ctrl_c_after

from orchestrator import launch
from orchestrator.backends import COMPLETED, FAILED, STOPPED
from orchestrator.errors import BadInput, RunFailed
from orchestrator.images import training_image
from orchestrator.package import build
from orchestrator.run import resume
from orchestrator.run.events import JobLog, RoundFinished
from orchestrator.run.lifecycle import FederationRun


@pytest.fixture
def cloud(aws, monkeypatch, prepared, tmp_path):
    """Two client accounts holding their data and code in their own buckets, and the federation."""
    put_client_objects(aws, prepared, build(tmp_path / "source.tar.gz", vendor_wheels=False).path)
    federation = cloud_federation(prepared, free_port())
    return federation, FakeSageMaker(monkeypatch)


def _build(federation, aws, tmp_path, observer=None, completion_timeout=60.0):
    """A launch against moto, polling its jobs every 0.2 s instead of SageMaker's 15 s."""
    run = launch.build_launch(federation, aws.server, tmp_path / "runs", **({"observer": observer} if observer else {}))
    run.backend.poll_interval, run.backend.completion_timeout = 0.2, completion_timeout
    return run


def _executor(sagemaker, aws, tmp_path):
    return SageMakerExecutor(sagemaker, aws, tuple(CLIENTS.values()), tmp_path / "sagemaker")


def _all_objects(aws):
    found = {}
    for account in (SERVER_ACCOUNT, *CLIENT_ACCOUNTS):
        s3 = aws.admin(account).client("s3")
        for bucket in s3.list_buckets()["Buckets"]:
            for item in s3.list_objects_v2(Bucket=bucket["Name"]).get("Contents", []):
                found.setdefault(account, []).append(f"{bucket['Name']}/{item['Key']}")
    return found


def test_dry_run_prints_each_accounts_requests_and_makes_no_aws_call(cloud, monkeypatch):
    federation, _ = cloud

    def no_aws(client, operation, params):
        raise AssertionError(f"a dry run must not call AWS ({operation})")

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", no_aws)
    requests = launch.dry_run(federation)
    assert [(r["client"], r["account_id"]) for r in requests] == list(CLIENTS.items())
    body = requests[1]["CreateTrainingJob"]
    assert body["TrainingJobName"].startswith("fraud-") and body["TrainingJobName"].endswith("-hospital-b")
    assert body["AlgorithmSpecification"]["TrainingImage"] == training_image(federation.container, REGION)
    assert body["Environment"]["FEDSAGE_CLIENT_TOKEN"] == "***" and "client-token" not in body["HyperParameters"]
    assert requests[1]["via_role"] == "arn:aws:iam::333333333333:role/FL-kickoff-client-job"


@pytest.mark.parametrize(
    ("framework", "python", "said"),
    [
        ("1.4-2-py312", "3.11", "runs Python 3.12 but python_version = '3.11'"),  # wheels for 3.11, image 3.12
        ("1.4-2", "3.12", "runs Python 3.10; the client needs 3.11 or newer: use 1.4-2-py312"),
        ("1.9-0", "3.12", "is not one fedsage knows the Python of"),
    ],
)
def test_dry_run_and_launch_refuse_an_image_whose_python_is_not_the_wheels(
    cloud, aws, tmp_path, capsys, monkeypatch, framework, python, said
):
    federation, sagemaker = cloud
    federation.container.framework_version, federation.container.python_version = framework, python

    def no_aws(client, operation, params):
        raise AssertionError(f"a refused launch must not call AWS ({operation})")

    path = tmp_path / "federation.toml"
    path.write_text(federation.to_toml())
    code, out, err = run_cli(capsys, "launch", "-c", str(path), "--dry-run")
    assert code == 2 and out == "" and said in err and len(err.strip().splitlines()) == 1
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", no_aws)
    with pytest.raises(BadInput, match=re.escape(said)):
        launch.build_launch(federation, aws.server, tmp_path / "runs")
    assert not (tmp_path / "runs").exists() and sagemaker.jobs(CLIENTS["hospital-a"]) == {}


def test_launch_needs_a_complete_config(cloud):
    federation, _ = cloud
    federation.clients[1].code_uri = None
    with pytest.raises(BadInput, match=r"clients\[1\] \(hospital-b\): set code_uri"):
        launch.build_launch(federation, None, "runs")


def test_an_advertised_address_that_is_not_this_machines_is_a_warning(cloud, aws, tmp_path):
    """Issue 10, item 18: a warning, not an error (a load balancer or NAT may forward it); nothing written."""
    federation, _ = cloud
    assert launch.build_launch(federation, aws.server, tmp_path / "runs").warnings == []  # 127.0.0.1 is ours
    federation.server.bind_address = "0.0.0.0"
    federation.server.advertised_address = "192.0.2.10"  # TEST-NET-1 (RFC 5737): never this machine's
    run = launch.build_launch(federation, aws.server, tmp_path / "runs")
    assert run.warnings == [
        "advertised_address 192.0.2.10 (192.0.2.10) is not an address of this machine; the clients will dial it, "
        "so it must forward to this server (a load balancer or NAT), or set it to this host's private IP"
    ]
    assert not (tmp_path / "runs").exists()


def test_launch_checks_its_inputs_before_it_creates_any_job(cloud, aws, tmp_path):
    """A training job is billed from its creation: SageMaker's launch_while_checking is False (run/startup.py).

    The same run that launches local jobs while it checks its inputs checks them first here:
    bad input found by the check creates no job in any account, writes nothing, shows nothing.
    """
    federation, sagemaker = cloud
    built = _build(federation, aws, tmp_path)
    assert built.backend.launch_while_checking is False
    seen, events = [], []

    def bad_inputs():
        seen.append({account: dict(sagemaker.jobs(account)) for account in CLIENTS.values()})
        raise BadInput("test set test.csv: column 'amount' has an empty cell (test.csv line 3)")

    run = FederationRun(built.federation, bad_inputs, built.backend, built.folder, events.append)
    with pytest.raises(BadInput, match="empty cell"):
        run.execute()
    assert seen == [dict.fromkeys(CLIENTS.values(), {})]  # checked before any CreateTrainingJob
    assert all(sagemaker.jobs(account) == {} for account in CLIENTS.values())
    assert events == [] and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_launch_end_to_end(cloud, aws, tmp_path):
    federation, sagemaker = cloud
    with _executor(sagemaker, aws, tmp_path) as executor:
        run = _build(federation, aws, tmp_path)
        outcome = run.execute()
    assert executor.errors == []

    # the federation completed and the server wrote its model
    assert outcome.model_path.is_file()
    assert outcome.final_metrics["roc_auc"] > 0.8
    assert {j.status for j in outcome.jobs.values()} == {COMPLETED}

    # jobs exist only in the client accounts, created through the kickoff role with its ExternalId
    assert sagemaker.jobs(SERVER_ACCOUNT) == {}
    for name, account in CLIENTS.items():
        (job,) = sagemaker.jobs(account).values()
        assert job.training_job_name == f"fraud-{run.run_id}-{name}"
        kickoffs = [r for r in aws.assumed_roles(account) if r[0].endswith(":role/FL-kickoff-client-job")]
        assert kickoffs and set(kickoffs) == {
            (f"arn:aws:iam::{account}:role/FL-kickoff-client-job", f"fedsage-{run.run_id}", f"ext-{name}")
        }
        assert job.algorithm_specification["TrainingImage"] == training_image(federation.container, REGION)
        assert job.role_arn == f"arn:aws:iam::{account}:role/FL-sagemaker-execution"
        assert job.vpc_config == {"SecurityGroupIds": ["sg-0a01"], "Subnets": ["subnet-0a01", "subnet-0a02"]}
        assert [c["DataSource"]["S3DataSource"]["S3Uri"] for c in job.input_data_config] == [
            f"s3://{_bucket(account)}/data/train/",
            f"s3://{_bucket(account)}/data/validation/",
        ]
        hyperparameters = {k: json.loads(v) for k, v in job.hyper_parameters.items()}
        assert hyperparameters["sagemaker_submit_directory"] == f"s3://{_bucket(account)}/code/source.tar.gz"
        assert hyperparameters["server-address"] == f"127.0.0.1:{federation.server.port}"
        assert hyperparameters["client-name"] == name and "client-token" not in hyperparameters
        assert len(job.environment["FEDSAGE_CLIENT_TOKEN"]) == 64
        assert {t["Key"]: t["Value"] for t in job.tags} == {
            "fedsage:run-id": run.run_id,
            "fedsage:client": name,
            "project": "fl-pilot",
        }
        assert (
            outcome.jobs[name].model_artifact
            == f"s3://{_bucket(account)}/artifacts/{job.training_job_name}/output/model.tar.gz"
        )

    # each client's model.tar.gz landed in its own account's bucket, and nowhere else
    artifacts = {
        account: [key for key in keys if key.endswith("model.tar.gz")] for account, keys in _all_objects(aws).items()
    }
    for name, account in CLIENTS.items():
        assert artifacts[account] == [f"{_bucket(account)}/artifacts/fraud-{run.run_id}-{name}/output/model.tar.gz"]
    assert SERVER_ACCOUNT not in artifacts


@pytest.mark.slow
def test_a_failed_job_is_reported_with_its_reason_and_log_and_the_others_are_stopped(cloud, aws, tmp_path):
    federation, sagemaker = cloud
    federation.federation.rounds = 30
    logs = []
    holder = {}

    def observer(event):
        if isinstance(event, JobLog):
            logs.append(event)
        if isinstance(event, RoundFinished) and event.record.round == 1:
            name = f"fraud-{holder['run'].run_id}-hospital-b"
            sagemaker.set_status(
                CLIENTS["hospital-b"], name, FAILED, "Failed", "AlgorithmError: out of memory (simulated)"
            )
            executor._publish_log(CLIENTS["hospital-b"], name)

    with _executor(sagemaker, aws, tmp_path) as executor:
        run = _build(federation, aws, tmp_path, observer)
        holder["run"] = run
        with pytest.raises(
            RunFailed, match=r"client 'hospital-b' job failed: AlgorithmError: out of memory \(simulated\)"
        ):
            run.execute()
        (job_a,) = sagemaker.jobs(CLIENTS["hospital-a"]).values()
        for _ in range(100):  # the executor stops the process, then reports Stopped
            if job_a.training_job_status == STOPPED:
                break
            __import__("time").sleep(0.1)
    assert job_a.training_job_status == STOPPED
    assert logs and logs[0].client == "hospital-b"
    assert any("fedsage.client" in line or "flwr" in line for line in logs[0].lines)  # the job's own log
    status = json.loads((run.run_dir / "run.json").read_text())
    assert status["clients"]["hospital-a"]["status"] in ("Stopping", STOPPED)


def _sigterm():
    import os
    import signal

    os.kill(os.getpid(), signal.SIGTERM)


def _ctrl_c():
    raise KeyboardInterrupt


@pytest.mark.slow
@pytest.mark.parametrize(
    ("interrupt", "reason"),
    [(_ctrl_c, "interrupted by the user (Ctrl-C)"), (_sigterm, "terminated (SIGTERM)")],  # item 7 of issue 10
)
def test_ctrl_c_or_sigterm_stops_every_job_of_the_run(cloud, aws, tmp_path, interrupt, reason):
    federation, sagemaker = cloud
    federation.federation.rounds = 30

    def observer(event):
        if isinstance(event, RoundFinished) and event.record.round == 1:
            interrupt()

    with _executor(sagemaker, aws, tmp_path):
        run = _build(federation, aws, tmp_path, observer)
        with pytest.raises(KeyboardInterrupt):
            run.execute()
        jobs = [job for account in CLIENTS.values() for job in sagemaker.jobs(account).values()]
        assert {job.training_job_status for job in jobs} <= {"Stopping", STOPPED}
    summary = json.loads((run.run_dir / "run.json").read_text())
    assert (summary["status"], summary["reason"]) == ("interrupted", reason)


def _create_job(aws, account, name, run_id):
    aws.admin(account).client("sagemaker").create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": "image", "TrainingInputMode": "File"},
        RoleArn=f"arn:aws:iam::{account}:role/FL-sagemaker-execution",
        OutputDataConfig={"S3OutputPath": f"s3://{_bucket(account)}/artifacts/"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
        Tags=[{"Key": "fedsage:run-id", "Value": run_id}] if run_id else [],
    )


def test_status_and_stop_find_a_runs_jobs_by_tag_in_every_client_account(
    cloud, aws, aws_profiles, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "250")
    federation, sagemaker = cloud
    aws_profiles({"fl-server": SERVER_ACCOUNT})
    federation.server.profile = "fl-server"
    path = tmp_path / "federation.toml"
    path.write_text(federation.to_toml())
    for name, account in CLIENTS.items():
        _create_job(aws, account, f"fraud-run-1-{name}", "run-1")
        _create_job(aws, account, f"fraud-run-2-{name}", "run-2")
    _create_job(aws, CLIENT_ACCOUNTS[0], "fraud-not-ours", None)  # same prefix, no fedsage tag

    code, out, _ = run_cli(capsys, "status", "-c", str(path), "--run-id", "run-1")
    assert code == 0
    assert "fraud-run-1-hospital-a" in out and "fraud-run-1-hospital-b" in out
    assert "run-2" not in out and "not-ours" not in out

    code, out, _ = run_cli(capsys, "stop", "-c", str(path), "--run-id", "run-1")
    assert code == 0
    assert out.count("stop requested") == 2
    for name, account in CLIENTS.items():
        jobs = sagemaker.jobs(account)
        assert jobs[f"fraud-run-1-{name}"].training_job_status == "Stopping"
        assert jobs[f"fraud-run-2-{name}"].training_job_status == "InProgress"
    assert sagemaker.jobs(CLIENT_ACCOUNTS[0])["fraud-not-ours"].training_job_status == "InProgress"
    # every call went through the kickoff roles, named after the run
    kickoffs = [r for r in aws.assumed_roles(CLIENT_ACCOUNTS[0]) if r[0].endswith(":role/FL-kickoff-client-job")]
    assert {(r[1], r[2]) for r in kickoffs} == {("fedsage-run-1", "ext-hospital-a")}

    code, _, err = run_cli(capsys, "stop", "-c", str(path), "--run-id", "run-9")
    assert code == 2
    assert "no training jobs of run run-9" in err


def test_launch_cli_dry_run(cloud, tmp_path, capsys):
    federation, _ = cloud
    path = tmp_path / "federation.toml"
    path.write_text(federation.to_toml())
    code, out, _ = run_cli(capsys, "launch", "-c", str(path), "--dry-run")
    assert code == 0
    printed = json.loads(out)
    assert [r["account_id"] for r in printed] == list(CLIENTS.values())
    shutil.rmtree(tmp_path / "runs", ignore_errors=True)
    assert not (tmp_path / "runs").exists()


def test_a_job_that_cannot_be_created_fails_the_launch_and_the_created_ones_are_stopped(
    cloud, aws, tmp_path, monkeypatch
):
    from botocore.exceptions import ClientError

    from orchestrator.backends.sagemaker import SageMakerBackend

    federation, sagemaker = cloud
    create = SageMakerBackend.launch

    def refuse_hospital_a(backend, request):  # the first client: later ones are created regardless
        if request["TrainingJobName"].endswith("hospital-a"):
            error = {"Error": {"Code": "ResourceLimitExceeded", "Message": "ml.m5.large for training job usage: 0"}}
            raise ClientError(error, "CreateTrainingJob")
        create(backend, request)

    monkeypatch.setattr(SageMakerBackend, "launch", refuse_hospital_a)
    run = _build(federation, aws, tmp_path)
    with pytest.raises(
        RunFailed, match=r"could not launch client 'hospital-a'.s training job: .*ResourceLimitExceeded"
    ):
        run.execute()
    assert sagemaker.jobs(CLIENTS["hospital-a"]) == {}
    (job,) = sagemaker.jobs(CLIENTS["hospital-b"]).values()
    assert job.training_job_status == "Stopping"  # created, then stopped because the launch failed
    assert json.loads((run.run_dir / "run.json").read_text())["status"] == "failed"


def test_the_example_dry_run_works_from_a_fresh_clone(capsys, tmp_path, monkeypatch):
    """examples/federation.toml next to no prepared data at all: the schema will come from the statistics phase."""
    example = Path(__file__).resolve().parent.parent / "examples" / "federation.toml"
    clone = tmp_path / "clone" / "examples"
    clone.mkdir(parents=True)
    shutil.copy(example, clone / "federation.toml")
    monkeypatch.chdir(tmp_path / "clone")

    def no_aws(*args, **kwargs):
        raise AssertionError("a dry run must not call AWS")

    monkeypatch.setattr("botocore.client.BaseClient._make_api_call", no_aws)
    code, out, err = run_cli(capsys, "launch", "-c", "examples/federation.toml", "--dry-run")
    assert code == 0, err
    requests = json.loads(out)
    assert [r["client"] for r in requests] == ["hospital-a", "hospital-b"]
    hyperparameters = requests[0]["CreateTrainingJob"]["HyperParameters"]
    assert "label-column" not in hyperparameters and json.loads(hyperparameters["balance"]) == "smote"
    assert (
        err
        == "the feature schema will come from the statistics phase (computed from the clients' raw data before round 1)"
    )
    assert not (tmp_path / "prepared").exists()


# the server's thread runs rounds while the Ctrl-C after round 2 reaches the main thread: with 5
# rounds on moto a loaded machine could finish them all first (then the whole model is kept, not a
# partial one, and there is nothing to resume)
STOP_ROUNDS = 20


@pytest.mark.slow
def test_a_stopped_launch_is_resumed_with_new_jobs_in_the_same_client_accounts(cloud, aws, tmp_path):
    """Issue 14 item 3 on the cloud path: Ctrl-C after round 2, then `launch --resume` finishes the rounds."""
    federation, sagemaker = cloud
    federation.federation.rounds = STOP_ROUNDS
    with _executor(sagemaker, aws, tmp_path):
        stopped = _build(federation, aws, tmp_path, observer=ctrl_c_after(2))
        with pytest.raises(KeyboardInterrupt):
            stopped.execute()
    first = json.loads((stopped.run_dir / "run.json").read_text())
    k = first["rounds_completed"]
    assert first["status"] == "interrupted" and first["partial"] is True and 2 <= k < STOP_ROUNDS

    point = resume.find(tmp_path / "runs", stopped.run_id)
    assert point.checkpoint.round == k
    with _executor(sagemaker, aws, tmp_path / "again") as executor:
        run = launch.build_launch(point.federation, aws.server, tmp_path / "runs", resume=point)
        run.backend.poll_interval = 0.2
        outcome = run.execute()
    assert executor.errors == []
    summary = json.loads((run.run_dir / "run.json").read_text())
    assert summary["status"] == "completed" and summary["partial"] is False
    assert summary["rounds_completed"] == STOP_ROUNDS
    assert summary["resumed_from"] == {"run_id": stopped.run_id, "round": k}
    rounds = json.loads((run.run_dir / "metrics.json").read_text())["rounds"]
    assert [r["round"] for r in rounds] == list(range(k, STOP_ROUNDS + 1))
    assert outcome.final_metrics["roc_auc"] > 0.8
    for name, account in CLIENTS.items():  # a new job per client account, tagged with the new run
        names = sorted(sagemaker.jobs(account))
        assert names == sorted([f"fraud-{stopped.run_id}-{name}", f"fraud-{run.run_id}-{name}"])
