"""SageMaker backend: each client's training job runs in the client's own account.

Every call goes through that client account's kickoff-role session (aws/sessions.py), so the
server account never holds a credential for client data and CloudTrail in each client account
shows the run id in the role session name. Placement (code archive, output prefix, framework
image) comes from the config and sagemaker-core's offline image lookup, so a dry run can plan
without any session.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.exceptions import ClientError

from orchestrator.aws import sessions
from orchestrator.aws.logs import training_job_log_since, training_job_log_tail
from orchestrator.aws.sessions import RETRIES
from orchestrator.backends import COMPLETED, IN_PROGRESS, JobStatus, RunJob
from orchestrator.config import ClientSettings, Federation
from orchestrator.images import training_image
from orchestrator.plan import JobPlacement, TrainingJobRequest, client_of, run_of

log = logging.getLogger(__name__)


class SageMakerBackend:
    """Creates, describes, stops and reads the logs of training jobs in client accounts.

    `sessions` maps each client name to its kickoff-role session; without sessions the backend
    can still place requests (for `fedsage launch --dry-run`) but not run them.
    """

    name = "sagemaker"
    description = "sagemaker (one training job per client account)"
    poll_interval = 15.0  # DescribeTrainingJob per client; well inside SageMaker's API rate limits
    launch_while_checking = False  # a training job is billed from its creation: inputs first (run/startup.py)
    completion_timeout = 1800.0  # after the last round: save the model, upload model.tar.gz, exit

    def __init__(self, federation: Federation, sessions: dict[str, boto3.Session] | None = None) -> None:
        self.federation = federation
        self.sessions = sessions or {}
        self._client_of_job: dict[str, str] = {}

    @classmethod
    def connect(cls, federation: Federation, server: boto3.Session, run_id: str) -> SageMakerBackend:
        """Assume every client's kickoff role now, in parallel; BadInput naming the first that fails.

        The role session name carries `run_id` (aws/sessions.py), so each client account's
        CloudTrail shows which run did what.
        """
        made = {c.name: sessions.client_session(server, c, run_id) for c in federation.clients}
        with ThreadPoolExecutor(max_workers=min(8, len(made))) as pool:
            checks = [pool.submit(sessions.check_assumable, made[c.name], c) for c in federation.clients]
        for check in checks:
            check.result()
        return cls(federation, made)

    def placement(self, client: ClientSettings) -> JobPlacement:
        """The client's code archive and output prefix (config) and its region's framework image."""
        assert client.code_uri and client.output_uri and client.region, "checked by require_launchable"
        return JobPlacement(
            code_uri=client.code_uri,
            output_uri=client.output_uri,
            image=training_image(self.federation.container, client.region),
        )

    def check_inputs(self, federation: Federation, schema: dict[str, Any] | None) -> None:
        """Nothing to read here: the channels are S3 prefixes the jobs read (`fedsage doctor` checks them)."""

    def _sagemaker(self, job_name: str):
        return self.sessions[self._client_of_job[job_name]].client("sagemaker", config=RETRIES)

    def launch(self, request: TrainingJobRequest) -> None:
        """CreateTrainingJob in the request's client account."""
        client = client_of(request)
        self._client_of_job[request["TrainingJobName"]] = client
        self.sessions[client].client("sagemaker", config=RETRIES).create_training_job(**request)
        log.info("created %s in %s's account", request["TrainingJobName"], client)

    def poll(self, job_name: str) -> JobStatus:
        """DescribeTrainingJob, in fedsage's JobStatus."""
        return describe(self._sagemaker(job_name), job_name)

    def stop(self, job_name: str) -> bool:
        """StopTrainingJob if the job is still running (a finished job is left as it is)."""
        return stop_job(self._sagemaker(job_name), job_name)

    def logs(self, job_name: str, lines: int = 20) -> list[str]:
        """The last lines of the job's CloudWatch log, read through the kickoff role."""
        return training_job_log_tail(self.sessions[self._client_of_job[job_name]], job_name, lines)

    def log_since(self, job_name: str, cursor: dict[str, str]) -> list[str]:
        """The job's CloudWatch log lines written since `cursor` (updated in place; empty: from the start)."""
        return training_job_log_since(self.sessions[self._client_of_job[job_name]], job_name, cursor)

    def find_jobs(self, run_id: str | None = None) -> list[RunJob]:
        """The training jobs fedsage started in every client account (one run's, or every run's).

        Jobs are found by name prefix and identified by their fedsage:run-id tag, so jobs of
        other tools with a similar name are never touched.
        """
        accounts = {c.name: c.account_id for c in self.federation.clients}
        found = []
        for client, session in self.sessions.items():
            for job_run, status in run_jobs(session, self.federation.federation.name, run_id):
                self._client_of_job[status.name] = client
                found.append(RunJob(client, accounts[client], job_run, status))
        return found


def describe(sagemaker, job_name: str) -> JobStatus:
    """A training job's status, secondary status, failure reason and model artifact."""
    job = sagemaker.describe_training_job(TrainingJobName=job_name)
    return JobStatus(
        name=job_name,
        status=job["TrainingJobStatus"],
        secondary_status=job.get("SecondaryStatus", ""),
        failure_reason=job.get("FailureReason"),
        model_artifact=job.get("ModelArtifacts", {}).get("S3ModelArtifacts")
        if job["TrainingJobStatus"] == COMPLETED
        else None,
    )


def stop_job(sagemaker, job_name: str) -> bool:
    """Stop a running job; return whether a stop was requested. Idempotent."""
    if describe(sagemaker, job_name).status != IN_PROGRESS:
        return False
    try:
        sagemaker.stop_training_job(TrainingJobName=job_name)
    except ClientError as exc:  # it finished between describe and stop
        if exc.response.get("Error", {}).get("Code") != "ValidationException":
            raise
        return False
    return True


def run_jobs(session: boto3.Session, prefix: str, run_id: str | None = None) -> list[tuple[str, JobStatus]]:
    """The training jobs fedsage started in one account: (run id, status), newest first."""
    sagemaker = session.client("sagemaker", config=RETRIES)
    found = []
    pages = sagemaker.get_paginator("list_training_jobs").paginate(
        NameContains=f"{prefix}-", SortBy="CreationTime", SortOrder="Descending"
    )
    for page in pages:
        for summary in page["TrainingJobSummaries"]:
            name = summary["TrainingJobName"]
            if not name.startswith(f"{prefix}-"):
                continue
            tags = sagemaker.list_tags(ResourceArn=summary["TrainingJobArn"])["Tags"]
            job_run = run_of({"Tags": tags})
            if job_run is None or (run_id is not None and job_run != run_id):
                continue
            found.append((job_run, describe(sagemaker, name)))
    return found
