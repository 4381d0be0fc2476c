"""[server], [server.tls] and [container]: where the Flower server listens, what it evaluates on, the image."""

from __future__ import annotations

import re
from ipaddress import IPv4Network, ip_address
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from client_code.constants import SCHEMA_FILE
from orchestrator.config.base import FIXED_PORT, REGION_PATTERN, SERVER_NEEDS, Purpose, _Section

# A DNS host name (RFC 1123 section 2.1): dot-separated labels of 1-63 letters, digits and inner
# hyphens, at most 253 characters in all.
_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


def is_loopback(host: str) -> bool:
    """Whether `host` (an IP address or a name) can only be reached from this machine: 127.0.0.0/8, ::1, localhost."""
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return host.lower() == "localhost" or host.lower().endswith(".localhost")


def host_port(host: str, port: int) -> str:
    """HOST:PORT as gRPC dials and binds it; an IPv6 address is bracketed ([::1]:8080, RFC 3986)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class TlsSettings(_Section):
    """[server.tls]: bring your own certificates instead of a per-run CA."""

    ca_certificate: Annotated[Path, Field(description="PEM file of the CA that signed the server certificate")]
    certificate: Annotated[Path, Field(description="PEM file of the server certificate (SAN: advertised_address)")]
    private_key: Annotated[Path, Field(description="PEM file of the server's private key")]


class ContainerSettings(_Section):
    """[container]: the SageMaker image the client jobs run in."""

    framework_version: Annotated[
        str,
        Field(
            min_length=1, description="SageMaker scikit-learn image version whose Python runs flwr, e.g. 1.4-2-py312"
        ),
    ] = "1.4-2-py312"
    python_version: Annotated[
        str,
        Field(
            pattern=r"^3\.(1[1-9])$",
            description="the image's Python, 3.11 or newer (flwr needs it); wheels are built for it",
        ),
    ] = "3.12"
    image_uri: Annotated[str | None, Field(min_length=1, description="an explicit image URI instead of the lookup")] = (
        None
    )


class ServerSettings(_Section):
    """[server]: where the Flower server listens and what it evaluates on."""

    bind_address: Annotated[str, Field(min_length=1, description="address the server binds, e.g. 0.0.0.0")] = (
        "127.0.0.1"
    )
    port: Annotated[int, Field(ge=0, le=65535, description="port to listen on, 0 for any free port")] = 0
    advertised_address: Annotated[
        str | None, Field(description="host the clients dial (the server's private IP); default bind_address")
    ] = None
    test_data: Annotated[Path, Field(description="CSV file of the server's held-out test set")]
    schema_path: Annotated[
        Path | None, Field(alias="schema", description="feature schema JSON; default schema.json beside test_data")
    ] = None
    region: Annotated[
        str | None, Field(pattern=REGION_PATTERN, description="the server account's AWS region, e.g. eu-west-1")
    ] = None
    profile: Annotated[
        str | None, Field(min_length=1, description="AWS profile of the server account; default credential chain")
    ] = None
    account_id: Annotated[
        str | None, Field(pattern=r"^\d{12}$", description="the server's 12-digit AWS account id (fedsage infra)")
    ] = None
    vpc_cidr: Annotated[
        IPv4Network | None,
        Field(description="the server VPC's CIDR block, e.g. 10.10.0.0/16; no client's may overlap it (fedsage infra)"),
    ] = None
    vpc_id: Annotated[
        str | None,
        Field(pattern=r"^vpc-[0-9a-f]+$", description="the server VPC's id (vpc-...): VpcId of the server stack"),
    ] = None
    security_group: Annotated[
        str | None,
        Field(
            pattern=r"^sg-[0-9a-f]+$",
            description="the server host's security group (sg-...), output HostSecurityGroupId of the server stack",
        ),
    ] = None
    tls: TlsSettings | None = None

    @field_validator("bind_address", "advertised_address")
    @classmethod
    def _a_host(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            ip_address(value)
        except ValueError:
            if not _HOST_NAME.match(value):
                raise ValueError("is neither an IP address nor a DNS host name") from None
        return value

    @model_validator(mode="after")
    def _reachable(self) -> ServerSettings:
        if self.advertised_address and is_loopback(self.bind_address) and not is_loopback(self.advertised_address):
            raise ValueError(
                f"bind_address {self.bind_address} accepts connections from this machine only, but the clients "
                f'dial advertised_address {self.advertised_address}; set bind_address = "0.0.0.0" (or that address)'
            )
        return self

    def missing_for(self, purpose: Purpose) -> list[str]:
        """The [server] keys `fedsage launch` or `fedsage infra` needs that are unset (port 0 counts)."""
        missing = [key for key in SERVER_NEEDS[purpose] if getattr(self, key) is None]
        return missing + ([FIXED_PORT] if self.port == 0 else [])

    def dial_host(self) -> str:
        """The host clients connect to."""
        return self.advertised_address or self.bind_address

    def resolved_schema(self) -> Path:
        """The schema file, defaulting to schema.json next to the test set."""
        return self.schema_path or self.test_data.with_name(SCHEMA_FILE)
