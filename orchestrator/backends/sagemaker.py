"""SageMaker backend: each client's training job runs in the client's own account.

Every call goes through that client account's kickoff-role session (aws/sessions.py), so the
server account never holds a credential for client data and CloudTrail in each client account
shows the run id in the role session name.
"""

from __future__ import annotations

import logging

import boto3
from botocore.exceptions import ClientError

from orchestrator.aws.logs import training_job_log_tail
from orchestrator.aws.sessions import RETRIES
from orchestrator.backends import IN_PROGRESS, JobStatus
from orchestrator.plan import RUN_ID_TAG, TrainingJobRequest, client_of

log = logging.getLogger(__name__)


class SageMakerBackend:
    """Creates, describes, stops and reads the logs of training jobs in client accounts."""

    def __init__(self, sessions: dict[str, boto3.Session]) -> None:
        self.sessions = sessions
        self._client_of_job: dict[str, str] = {}

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

    def stop(self, job_name: str) -> None:
        """StopTrainingJob if the job is still running (a finished job is left as it is)."""
        stop_job(self._sagemaker(job_name), job_name)

    def logs(self, job_name: str, lines: int = 20) -> list[str]:
        """The last lines of the job's CloudWatch log, read through the kickoff role."""
        return training_job_log_tail(self.sessions[self._client_of_job[job_name]], job_name, lines)


def describe(sagemaker, job_name: str) -> JobStatus:
    """A training job's status, secondary status, failure reason and model artifact."""
    job = sagemaker.describe_training_job(TrainingJobName=job_name)
    return JobStatus(
        name=job_name,
        status=job["TrainingJobStatus"],
        secondary_status=job.get("SecondaryStatus", ""),
        failure_reason=job.get("FailureReason"),
        model_artifact=job.get("ModelArtifacts", {}).get("S3ModelArtifacts")
        if job["TrainingJobStatus"] == "Completed"
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


def run_jobs(session: boto3.Session, prefix: str, run_id: str | None = None) -> list[tuple[str, str, JobStatus]]:
    """The training jobs fedsage started in one account: (run id, job name, status), newest first.

    Jobs are found by name prefix and identified by their fedsage:run-id tag, so jobs of other
    tools with a similar name are never touched.
    """
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
            job_run = next((t["Value"] for t in tags if t["Key"] == RUN_ID_TAG), None)
            if job_run is None or (run_id is not None and job_run != run_id):
                continue
            found.append((job_run, name, describe(sagemaker, name)))
    return found
