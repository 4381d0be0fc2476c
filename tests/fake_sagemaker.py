"""SageMaker played in moto: jobs that really run, in the account that created them.

moto records CreateTrainingJob but runs nothing: it marks every job Completed at once, keeps no
Environment and has no StopTrainingJob. `FakeSageMaker` patches moto so jobs start InProgress,
keep their Environment and can be stopped. `SageMakerExecutor` then plays SageMaker: for every
job moto recorded in a client account it

* fetches the channels from that account's (moto) S3 into the job's /opt/ml tree,
* runs the job, in one of two modes:
  - process: the process backend fetches source.tar.gz itself and starts `sagemaker_program` as
    the training toolkit would (arguments, SM_* environment);
  - docker (`DockerMode`): the docker backend runs the local training image's real toolkit, which
    downloads source.tar.gz from moto's S3 itself (moto in server mode on 127.0.0.1; the
    container, on the host network, gets the endpoint and the account's credentials through its
    environment), installs the vendored wheels and runs the program,
* uploads /opt/ml/model as model.tar.gz to the job's output path in that account,
* mirrors the job's status into moto and its log into CloudWatch Logs, as SageMaker does.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from conftest import CLIENT_ACCOUNTS
from moto.logs.models import logs_backends
from moto.sagemaker.models import FakeTrainingJob, sagemaker_backends
from moto.sagemaker.responses import SageMakerResponse

from orchestrator.aws.logs import LOG_GROUP
from orchestrator.aws.s3 import S3Storage
from orchestrator.backends import COMPLETED, FAILED, IN_PROGRESS, STOPPED, STOPPING
from orchestrator.backends.process import ProcessBackend

REGION = "eu-west-1"
CLIENTS = {"hospital-a": CLIENT_ACCOUNTS[0], "hospital-b": CLIENT_ACCOUNTS[1]}  # client name -> account


def bucket(account: str) -> str:
    """The client account's own bucket."""
    return f"fedsage-{account}-{REGION}"


def put_client_objects(accounts, prepared, archive: Path) -> None:
    """Each client account's bucket with its source.tar.gz and its train and validation channels."""
    for account, folders in zip(CLIENTS.values(), prepared.clients, strict=False):
        s3 = accounts.admin(account).client("s3")
        s3.create_bucket(Bucket=bucket(account), CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.upload_file(str(archive), bucket(account), "code/source.tar.gz")
        for channel in ("train", "validation"):
            for path in getattr(folders, channel).iterdir():
                s3.upload_file(str(path), bucket(account), f"data/{channel}/{path.name}")


def cloud_federation(prepared, port: int, **sections):
    """The launch config of the two client accounts, their data and code in their own buckets.

    `sections` replace or add top-level tables (e.g. `federation`, `container`).
    """
    from orchestrator import config

    return config.parse(
        {
            "federation": {"name": "fraud", "rounds": 2, "join_timeout": 60, "round_timeout": 60},
            "server": {
                "region": REGION,
                "bind_address": "127.0.0.1",
                "advertised_address": "127.0.0.1",
                "port": port,
                "test_data": str(prepared.test),
                "schema": str(prepared.root / "schema.json"),
            },
            "clients": [
                {
                    "name": name,
                    "account_id": account,
                    "region": REGION,
                    "kickoff_role_arn": f"arn:aws:iam::{account}:role/FL-kickoff-client-job",
                    "external_id": f"ext-{name}",
                    "execution_role_arn": f"arn:aws:iam::{account}:role/FL-sagemaker-execution",
                    "code_uri": f"s3://{bucket(account)}/code/source.tar.gz",
                    "train_uri": f"s3://{bucket(account)}/data/train/",
                    "validation_uri": f"s3://{bucket(account)}/data/validation/",
                    "output_uri": f"s3://{bucket(account)}/artifacts/",
                    "subnets": ["subnet-0a01", "subnet-0a02"],
                    "security_groups": ["sg-0a01"],
                    "tags": {"project": "fl-pilot"},
                }
                for name, account in CLIENTS.items()
            ],
            **sections,
        }
    )


class FakeSageMaker:
    """moto's SageMaker with InProgress jobs and a working StopTrainingJob."""

    def __init__(self, monkeypatch) -> None:
        original_init = FakeTrainingJob.__init__

        def init(job, *args, **kwargs):
            original_init(job, *args, **kwargs)
            job.training_job_status, job.secondary_status = IN_PROGRESS, "Starting"
            job.failure_reason = None

        def stop_training_job(response):
            name = response._get_param("TrainingJobName")
            job = response.sagemaker_backend.training_jobs[name]
            if job.training_job_status == IN_PROGRESS:
                job.training_job_status, job.secondary_status = STOPPING, "Stopping"
            return "{}"

        original_create = SageMakerResponse.create_training_job

        def create_training_job(response):
            result = original_create(response)
            name = response._get_param("TrainingJobName")
            job = response.sagemaker_backend.training_jobs[name]
            job.environment = response._get_param("Environment") or {}
            return result

        monkeypatch.setattr(FakeTrainingJob, "__init__", init)
        monkeypatch.setattr(SageMakerResponse, "create_training_job", create_training_job)
        monkeypatch.setattr(SageMakerResponse, "stop_training_job", stop_training_job, raising=False)

    @staticmethod
    def jobs(account_id: str) -> dict[str, FakeTrainingJob]:
        """The training jobs moto holds in an account."""
        return sagemaker_backends[account_id][REGION].training_jobs

    def set_status(self, account_id: str, name: str, status: str, secondary: str, reason: str | None = None) -> None:
        """Drive a job's status, as SageMaker would."""
        job = self.jobs(account_id)[name]
        job.training_job_status, job.secondary_status, job.failure_reason = status, secondary, reason


def request_of(job: FakeTrainingJob) -> dict:
    """The CreateTrainingJob request moto recorded for a job."""
    return {
        "TrainingJobName": job.training_job_name,
        "AlgorithmSpecification": job.algorithm_specification,
        "HyperParameters": job.hyper_parameters,
        "Environment": getattr(job, "environment", {}),
        "RoleArn": job.role_arn,
        "InputDataConfig": job.input_data_config,
        "OutputDataConfig": job.output_data_config,
        "ResourceConfig": job.resource_config,
        "StoppingCondition": job.stopping_condition,
        "Tags": job.tags,
    }


@dataclass(frozen=True)
class DockerMode:
    """Run the jobs as containers of `image` (a LocalImage), their AWS calls going to moto at `endpoint`."""

    image: object
    endpoint: str


def _docker_backend(mode: DockerMode, session, workdir: Path, jobs: int):
    """A docker backend acting in one client account: its S3 through moto, the account's credentials inside."""
    from orchestrator.backends.docker import DockerBackend

    credentials = session.get_credentials().get_frozen_credentials()
    environment = {
        "AWS_ACCESS_KEY_ID": credentials.access_key,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
        "AWS_SESSION_TOKEN": credentials.token,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": mode.endpoint,  # botocore's variable, for the program's own calls
        "S3_ENDPOINT_URL": mode.endpoint,  # the training toolkit's, for the code download
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return DockerBackend(workdir, mode.image, expected_jobs=jobs, storage=S3Storage(session), environment=environment)


class SageMakerExecutor:
    """A background thread that runs every InProgress job of the client accounts (see module doc)."""

    def __init__(
        self,
        sagemaker: FakeSageMaker,
        accounts,
        client_accounts: tuple[str, ...],
        workdir: Path,
        docker: DockerMode | None = None,
    ) -> None:
        self.sagemaker = sagemaker
        self.client_accounts = client_accounts
        jobs = len(client_accounts)
        self.backends = {
            account: _docker_backend(docker, accounts.admin(account), workdir / account, jobs)
            if docker
            else ProcessBackend(workdir / account, expected_jobs=jobs, storage=S3Storage(accounts.admin(account)))
            for account in client_accounts
        }
        self.started: dict[str, str] = {}  # job name -> account
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fake-sagemaker", daemon=True)

    def __enter__(self) -> SageMakerExecutor:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)
        for name, account in self.started.items():
            self.backends[account].stop(name)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for account in self.client_accounts:
                for name, job in list(self.sagemaker.jobs(account).items()):
                    try:
                        self._step(account, name, job)
                    except Exception as exc:  # noqa: BLE001 - surfaced by the test
                        self.errors.append(f"{name}: {type(exc).__name__}: {exc}")
                        self.sagemaker.set_status(account, name, FAILED, "Failed", f"executor: {exc}")
            time.sleep(0.1)

    def _step(self, account: str, name: str, job: FakeTrainingJob) -> None:
        backend = self.backends[account]
        if name not in self.started:
            if job.training_job_status != IN_PROGRESS:
                return
            self.started[name] = account
            self.sagemaker.set_status(account, name, IN_PROGRESS, "Downloading")
            backend.launch(request_of(job))
            self.sagemaker.set_status(account, name, IN_PROGRESS, "Training")
            return
        if job.training_job_status == STOPPING:
            backend.stop(name)
            self._publish_log(account, name)
            self.sagemaker.set_status(account, name, STOPPED, "Stopped")
            return
        if job.training_job_status != IN_PROGRESS:
            return
        status = backend.poll(name)
        if status.status == COMPLETED:
            self._publish_log(account, name)
            self.sagemaker.set_status(account, name, COMPLETED, "Completed")
        elif status.status == FAILED:
            self._publish_log(account, name)
            self.sagemaker.set_status(account, name, FAILED, "Failed", status.failure_reason)

    def _publish_log(self, account: str, name: str) -> None:
        """Put the job's log into CloudWatch Logs, where SageMaker writes it."""
        logs = logs_backends[account][REGION]
        if LOG_GROUP not in logs.groups:
            logs.create_log_group(LOG_GROUP, {})
        stream = f"{name}/algo-1-1700000000"
        if stream not in logs.groups[LOG_GROUP].streams:
            logs.create_log_stream(LOG_GROUP, stream)
        now = int(time.time() * 1000)
        events = [{"timestamp": now, "message": line} for line in self.backends[account].logs(name, 200)]
        if events:
            logs.put_log_events(LOG_GROUP, stream, events)
