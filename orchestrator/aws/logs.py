"""CloudWatch Logs of training jobs, read through the client account's kickoff role."""

from __future__ import annotations

import boto3

from orchestrator.aws.sessions import RETRIES

LOG_GROUP = "/aws/sagemaker/TrainingJobs"


def _streams(logs, job_name: str) -> list[str]:
    """The names of a training job's log streams (<job>/algo-1-..., one per instance), sorted; [] before the first."""
    try:
        streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{job_name}/")["logStreams"]
    except logs.exceptions.ResourceNotFoundException:
        return []
    return sorted(stream["logStreamName"] for stream in streams)


def training_job_log_tail(session: boto3.Session, job_name: str, lines: int = 20) -> list[str]:
    """The last `lines` lines of a training job's log stream(s), oldest first; [] if there are none yet."""
    logs = session.client("logs", config=RETRIES)
    tail: list[str] = []
    for stream in _streams(logs, job_name):
        events = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream, limit=lines, startFromHead=False)[
            "events"
        ]
        tail += [event["message"].rstrip("\n") for event in events]
    return tail[-lines:]


def training_job_log_since(session: boto3.Session, job_name: str, cursor: dict[str, str]) -> list[str]:
    """The lines of a training job's log stream(s) written since `cursor`, oldest first per stream.

    `cursor` maps each stream to CloudWatch's nextForwardToken and is updated in place; empty, it
    reads every stream from its start. GetLogEvents pages forward from a token (startFromHead
    must be true with one) and returns an empty page at the end of a stream
    (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_GetLogEvents.html).
    [] while the job has no log yet.
    """
    logs = session.client("logs", config=RETRIES)
    lines: list[str] = []
    for name in _streams(logs, job_name):
        while True:
            token = {"nextToken": cursor[name]} if name in cursor else {}
            page = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=name, startFromHead=True, **token)
            lines += [event["message"].rstrip("\n") for event in page["events"]]
            cursor[name] = page["nextForwardToken"]
            if not page["events"]:
                break
    return lines
