"""`fedsage launch`, `status` and `stop`: a federation whose clients are SageMaker training jobs.

Launch is `fedsage local` with another backend: the same FederationRun, the same planning
step, the same run folder. What is specific to the cloud happens here:

* preflight, before anything is created or written: the config has everything a launch needs,
  the framework image runs the Python the archive's wheels are built for (images.py), an image
  exists for every client's region, every request is within SageMaker's limits, and
  every client's kickoff role can be assumed with its ExternalId (backends/sagemaker.py); an
  advertised address that is not this machine's is a warning (a load balancer or NAT may forward it);
* `--dry-run` plans the exact requests per account with the same planning function as a real
  run and makes no AWS call;
* `status` and `stop` find a run's jobs in every client account through the backend.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import boto3

from orchestrator import tracking
from orchestrator.backends import RunJob
from orchestrator.backends.sagemaker import SageMakerBackend
from orchestrator.config import Federation, host_port
from orchestrator.errors import BadInput
from orchestrator.federation import tls
from orchestrator.images import check_python
from orchestrator.plan import plan_run, redacted
from orchestrator.run.events import Observer, ignore
from orchestrator.run.folder import RunFolder, new_run_id
from orchestrator.run.inputs import load_server_data
from orchestrator.run.lifecycle import FederationRun, RunOutcome
from orchestrator.run.resume import ResumePoint

PLACEHOLDER_TOKEN = "0" * 64  # a dry run shows requests of the real size without a real token


def schema_source(federation: Federation) -> str:
    """Where a launch's feature schema will come from: the schema file, or the statistics phase."""
    path = federation.server.resolved_schema()
    if path.is_file() or federation.server.schema_path is not None:
        return f"the schema file {path}"
    return "the statistics phase (computed from the clients' raw data before round 1)"


def dry_run(federation: Federation) -> list[dict[str, Any]]:
    """The requests a launch would send, per client account, with tokens masked. No AWS call, no data read.

    The requests carry no label, classes or schema (the statistics phase sends them), so a dry run
    needs neither a prepared schema nor the test set. Raises BadInput when the config is not ready
    for launch, the image's Python is not the wheels' (images.check_python), or a request would be
    refused.
    """
    federation.require_launchable()
    check_python(federation.container)
    server = federation.server
    requests = plan_run(
        federation,
        SageMakerBackend(federation).placement,
        run_id=new_run_id(),
        server_address=host_port(server.dial_host(), server.port),
        root_certificate=tls.for_server(server).ca_certificate,
        tokens=dict.fromkeys((c.name for c in federation.clients), PLACEHOLDER_TOKEN),
    )
    return [
        {
            "client": client.name,
            "account_id": client.account_id,
            "region": client.region,
            "via_role": client.kickoff_role_arn,
            "CreateTrainingJob": redacted(request),
        }
        for client, request in zip(federation.clients, requests, strict=True)
    ]


def dry_run_json(federation: Federation) -> str:
    """The dry run as indented JSON."""
    return json.dumps(dry_run(federation), indent=2)


def build_launch(
    federation: Federation,
    server: boto3.Session,
    out: Path,
    observer: Observer = ignore,
    resume: ResumePoint | None = None,
) -> FederationRun:
    """Preflight a launch and set up its run on the SageMaker backend; BadInput before anything is created.

    `resume`: the stopped run (run/resume.py find) this one continues from its last checkpoint.
    """
    federation.require_launchable()
    check_python(federation.container)
    server_data = load_server_data(federation)
    folder = RunFolder.new(out, new_run_id())
    folder.check_writable()
    backend = SageMakerBackend.connect(federation, server, folder.run_id)
    run = FederationRun(federation, server_data, backend, folder, observer, resume=resume)
    warning = foreign_address_warning(federation.server.dial_host())
    if warning:
        run.warnings.append(warning)
    return run


def foreign_address_warning(host: str) -> str | None:
    """A warning when `host` (what the clients dial) is not an address of this machine, else None.

    An address is this machine's when a socket can be bound to it (EADDRNOTAVAIL otherwise); a
    name is resolved first (the system resolver's own timeouts apply). Not an error: a load
    balancer, NAT or DNS name may legitimately forward to this host.
    """
    try:
        addresses = sorted({info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)})
    except OSError as exc:
        return f"advertised_address {host} does not resolve on this machine ({exc}); the clients may not reach it"
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.bind((address, 0))
            return None
        except OSError:
            continue
    return (
        f"advertised_address {host} ({', '.join(addresses)}) is not an address of this machine; the clients will "
        "dial it, so it must forward to this server (a load balancer or NAT), or set it to this host's private IP"
    )


def launch(
    federation: Federation,
    server: boto3.Session,
    out: Path,
    observer: Observer = ignore,
    resume: ResumePoint | None = None,
) -> RunOutcome:
    """Run the federation on SageMaker (see build_launch); with [tracking], log it to MLflow afterwards."""
    tracker = tracking.tracker_for(federation)
    return tracking.execute(build_launch(federation, server, out, observer, resume), tracker)


def connect(federation: Federation, server: boto3.Session, run_id: str | None) -> SageMakerBackend:
    """The SageMaker backend with every client's kickoff role assumed, for `status` and `stop`."""
    federation.require_launchable()
    return SageMakerBackend.connect(federation, server, run_id or "status")


def stop_run(backend: SageMakerBackend, run_id: str) -> list[tuple[RunJob, bool]]:
    """Stop every still-running job of a run; return each job with whether a stop was requested."""
    jobs = backend.find_jobs(run_id)
    if not jobs:
        raise BadInput(f"no training jobs of run {run_id} in any client account; check the run id with fedsage status")
    return [(job, backend.stop(job.status.name)) for job in jobs]
