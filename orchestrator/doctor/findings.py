"""What doctor finds: the rows of the report, and what it learned about each account's network on the way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # pydantic loads only when doctor runs
    from orchestrator.config import ClientSettings, Federation

Status = Literal["pass", "fail", "warn"]


@dataclass(frozen=True)
class Check:
    """One row of the report: what was checked, for whom, the outcome, and how to fix a failure."""

    subject: str
    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass
class ServerView:
    """What doctor learned about the server's network (None until found)."""

    vpc_id: str | None = None
    cidr: IPv4Network | None = None
    route_table: dict[str, Any] | None = None
    security_groups: list[dict[str, Any]] | None = None
    ec2: Any = None


@dataclass
class ClientView:
    """What doctor learned about one client's network through its kickoff role (None until found)."""

    vpc_id: str | None = None
    cidr: IPv4Network | None = None
    subnets: list[dict[str, Any]] | None = None


@dataclass
class Doctor:
    """One examination of a federation: how to reach each account, what was learned, and the rows so far.

    `server_session` is a boto3 session in the server account; `client_session_for(client)` opens
    one in a client account (through its kickoff role).
    """

    federation: Federation
    server_session: Any
    client_session_for: Callable[[ClientSettings], Any]
    checks: list[Check] = field(default_factory=list)
    server: ServerView = field(default_factory=ServerView)
    clients: dict[str, ClientView] = field(default_factory=dict)

    def add(self, subject: str, name: str, status: Status, detail: str, fix: str = "") -> None:
        """Record one row."""
        self.checks.append(Check(subject, name, status, detail, fix))


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ClientError (AccessDenied, ...), or the exception's class name."""
    return getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
