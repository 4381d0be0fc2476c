"""`fedsage launch`, `status` and `stop`: a federation whose clients are SageMaker training jobs.

Launch is `fedsage local` with another backend: the same FederationRun, the same plan, the same
run folder. What is specific to the cloud happens here:

* preflight, before anything is created or written: the config has everything a launch needs,
  an image exists for every client's region, every request is within SageMaker's limits, and
  every client's kickoff role can be assumed with its ExternalId;
* the backend creates each job in its client's account through that client's assumed role;
* `--dry-run` prints the exact requests per account and makes no AWS call;
* `status` and `stop` find a run's jobs in every client account by their fedsage:run-id tag.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import boto3

from orchestrator.aws import sessions
from orchestrator.backends import JobStatus
from orchestrator.backends.sagemaker import SageMakerBackend, run_jobs, stop_job
from orchestrator.config import Federation
from orchestrator.errors import BadInput
from orchestrator.federation import tls
from orchestrator.images import training_image
from orchestrator.plan import JobPlacement, RunContext, plan, redacted
from orchestrator.run import FederationRun, Observer, RunOutcome, load_server_data, new_run_id

POLL_SECONDS = 15.0  # DescribeTrainingJob per client; well inside SageMaker's API rate limits
COMPLETION_SECONDS = 1800.0  # after the last round: save the model, upload model.tar.gz, exit


def placements(federation: Federation) -> dict[str, JobPlacement]:
    """Each client's code archive, output location and framework image (offline lookup)."""
    return {
        c.name: JobPlacement(
            code_uri=c.code_uri, output_uri=c.output_uri, image=training_image(federation.container, c.region)
        )
        for c in federation.clients
    }


def dry_run(federation: Federation) -> list[dict]:
    """The requests a launch would send, per client account, with tokens masked. No AWS call."""
    federation.require_launchable()
    data = load_server_data(federation)
    server = federation.server
    run_id = new_run_id()
    context = RunContext(
        run_id=run_id,
        server_address=f"{server.dial_host()}:{server.port}",
        root_certificate=tls.generate([server.dial_host()]).ca_certificate,
        tokens={c.name: "0" * 64 for c in federation.clients},  # same length as a real token
        label=data.label,
        classes=data.classes,
        placements=placements(federation),
    )
    accounts = {c.name: (c.account_id, c.region, c.kickoff_role_arn) for c in federation.clients}
    return [
        {
            "client": name,
            "account_id": accounts[name][0],
            "region": accounts[name][1],
            "via_role": accounts[name][2],
            "CreateTrainingJob": redacted(request),
        }
        for name, request in zip(accounts, plan(federation, context), strict=True)
    ]


def client_sessions(federation: Federation, server: boto3.Session, run_id: str) -> dict[str, boto3.Session]:
    """Assume every client's kickoff role now, in parallel; BadInput naming the first that fails."""
    made = {c.name: sessions.client_session(server, c, run_id) for c in federation.clients}
    with ThreadPoolExecutor(max_workers=min(8, len(made))) as pool:
        checks = [pool.submit(sessions.check_assumable, made[c.name], c) for c in federation.clients]
    for check in checks:
        check.result()
    return made


def build_launch(
    federation: Federation,
    server: boto3.Session,
    out: Path,
    observer: Observer = lambda event: None,
    poll_interval: float = POLL_SECONDS,
    completion_timeout: float = COMPLETION_SECONDS,
) -> FederationRun:
    """Preflight a launch and set up its run on the SageMaker backend; BadInput before anything is created."""
    federation.require_launchable()
    server_data = load_server_data(federation)
    where = placements(federation)
    run_id = new_run_id()
    backend = SageMakerBackend(client_sessions(federation, server, run_id))
    return FederationRun(
        federation=federation,
        server_data=server_data,
        backend=backend,
        backend_name="sagemaker (one training job per client account)",
        run_id=run_id,
        run_dir=Path(out) / run_id,
        placements=where,
        observer=observer,
        poll_interval=poll_interval,
        completion_timeout=completion_timeout,
    )


def launch(
    federation: Federation, server: boto3.Session, out: Path, observer: Observer = lambda event: None
) -> RunOutcome:
    """Run the federation on SageMaker (see build_launch)."""
    return build_launch(federation, server, out, observer).execute()


@dataclass(frozen=True)
class RunJob:
    """One training job of a run, in one client account."""

    client: str
    account_id: str
    run_id: str
    status: JobStatus


def find_jobs(federation: Federation, made: dict[str, boto3.Session], run_id: str | None = None) -> list[RunJob]:
    """The training jobs fedsage started in every client account (one run's, or every run's)."""
    accounts = {c.name: c.account_id for c in federation.clients}
    return [
        RunJob(client, accounts[client], job_run, status)
        for client, session in made.items()
        for job_run, _name, status in run_jobs(session, federation.federation.name, run_id)
    ]


def stop_run(federation: Federation, made: dict[str, boto3.Session], run_id: str) -> list[tuple[RunJob, bool]]:
    """Stop every still-running job of a run; return each job with whether a stop was requested."""
    jobs = find_jobs(federation, made, run_id)
    if not jobs:
        raise BadInput(f"no training jobs of run {run_id} in any client account; check the run id with fedsage status")
    return [
        (job, stop_job(made[job.client].client("sagemaker", config=sessions.RETRIES), job.status.name)) for job in jobs
    ]


def dry_run_json(federation: Federation) -> str:
    """The dry run as indented JSON."""
    return json.dumps(dry_run(federation), indent=2)
