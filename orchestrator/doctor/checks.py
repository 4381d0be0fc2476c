"""Every check of doctor, in order: the settings, the server, each client, then what spans accounts."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from orchestrator.config.base import FIXED_PORT
from orchestrator.doctor.clients import check_client
from orchestrator.doctor.findings import Check, Doctor
from orchestrator.doctor.paths import check_overlaps, check_paths
from orchestrator.doctor.server import check_server

if TYPE_CHECKING:
    from orchestrator.config import ClientSettings, Federation

DOCTOR_RUN = "doctor"  # the session name is fedsage-doctor, so CloudTrail shows who looked


def diagnose(
    federation: Federation, server_session: Any, client_session_for: Callable[[ClientSettings], Any] | None = None
) -> list[Check]:
    """Run every check of a federation and return the rows, in order.

    `server_session`: a boto3 session in the server account. Client accounts are reached through
    their kickoff roles (sessions.client_session), unless `client_session_for` says otherwise.
    AWS errors become failed rows, not exceptions.
    """
    from orchestrator.aws import sessions

    def through_kickoff_role(client: ClientSettings) -> Any:
        return sessions.client_session(server_session, client, DOCTOR_RUN)

    doctor = Doctor(federation, server_session, client_session_for or through_kickoff_role)
    _check_settings(doctor)
    check_server(doctor)
    for client in federation.clients:
        check_client(doctor, client)
    check_overlaps(doctor)
    for client in federation.clients:
        check_paths(doctor, client)
    return doctor.checks


def _check_settings(doctor: Doctor) -> None:
    """The job name prefix, and a fixed Flower port (what launch needs, config.py)."""
    name = doctor.federation.federation.name  # lowercase, by config.PREFIX_PATTERN
    doctor.add("federation", "job name prefix", "pass", f"jobs are named {name}-<run id>-<client>")
    if FIXED_PORT in doctor.federation.server.missing_for("launch"):
        doctor.add(
            "server",
            "Flower port",
            "fail",
            "[server] port = 0 (any free port)",
            "set [server] port to the port the security groups open, e.g. 8080",
        )
