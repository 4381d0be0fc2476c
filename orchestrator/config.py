"""federation.toml: the schema of a federation, validated by pydantic.

Every error names the key, the bad value and what to put there instead; `load` turns pydantic's
errors into one BadInput line per problem. `fedsage local` builds the same `Federation` object in
memory from its options, and writes the resolved configuration into the run folder.
"""

from __future__ import annotations

import tomllib
from ipaddress import IPv4Network
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from client_code.constants import PENALTIES, SCHEMA_FILE
from orchestrator import defaults
from orchestrator.errors import BadInput

# SageMaker training job names: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$. A job is named
# <prefix>-<run id>-<client>, so prefix and client names use the same alphabet.
NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$"
NAME_HINT = "letters, digits and single hyphens, starting and ending with a letter or digit"
PREFIX_PATTERN = r"^[a-z0-9](-*[a-z0-9])*$"
REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-\d$"
ROLE_ARN_PATTERN = r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$"

# What the AWS commands need beyond what `fedsage local` needs: launch (and status, stop, doctor)
# and infra read it from here. The key hint is part of the one-line message a user sees.
Purpose = Literal["launch", "infra"]
FIXED_PORT = "port (a fixed port the security groups allow)"
SERVER_NEEDS: dict[Purpose, tuple[str, ...]] = {
    "launch": ("region", "advertised_address"),
    "infra": ("account_id", "region", "vpc_cidr"),
}
CLIENT_NEEDS: dict[Purpose, tuple[str, ...]] = {
    "launch": (
        "account_id",
        "region",
        "kickoff_role_arn",
        "external_id",
        "execution_role_arn",
        "code_uri",
        "output_uri",
        "subnets",
        "security_groups",
    ),
    "infra": ("account_id", "region", "external_id", "vpc_cidr", "code_uri", "output_uri"),
}
_NOT_READY = {"launch": ("launch", " (see examples/federation.toml)"), "infra": ("fedsage infra", "")}


def host_port(host: str, port: int) -> str:
    """HOST:PORT as gRPC dials and binds it; an IPv6 address is bracketed ([::1]:8080, RFC 3986)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Section(BaseModel):
    """A config table: unknown keys are errors, so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


class RunSettings(_Section):
    """[federation]: how the federation runs."""

    name: Annotated[
        str,
        Field(
            pattern=PREFIX_PATTERN,
            max_length=16,
            description=(
                "job name prefix: up to 16 lowercase letters, digits and single hyphens (SageMaker lowercases "
                "training job ARNs, so the kickoff role's name condition only matches a lowercase prefix)"
            ),
        ),
    ] = "fedsage"
    rounds: Annotated[int, Field(ge=1, description="number of federated rounds, at least 1")] = defaults.ROUNDS
    min_clients: Annotated[
        int | None,
        Field(ge=1, description="clients that must take part in every round; leave unset to require all"),
    ] = None
    join_timeout: Annotated[float, Field(gt=0, description="seconds to wait for every client to join")] = (
        defaults.JOIN_TIMEOUT
    )
    round_timeout: Annotated[float, Field(gt=0, description="seconds a client may take for one round")] = (
        defaults.ROUND_TIMEOUT
    )
    seed: Annotated[int, Field(description="seed for data preparation and model initialisation")] = defaults.SEED
    strategy: Annotated[Literal["fedavg"], Field(description="aggregation strategy: fedavg (example-weighted)")] = (
        "fedavg"
    )


class ModelSettings(_Section):
    """[model]: the LogisticRegression every client trains."""

    penalty: Annotated[Literal[PENALTIES], Field(description=f"one of {', '.join(PENALTIES)}")] = "l2"
    c: Annotated[float, Field(gt=0, description="inverse regularisation strength, a positive number")] = 1.0
    l1_ratio: Annotated[float, Field(ge=0, le=1, description="elastic-net mixing, between 0 and 1")] = 0.5
    max_iter: Annotated[int, Field(ge=1, le=10_000, description="local solver iterations per round, 1 to 10000")] = (
        defaults.MAX_ITER
    )


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


class ClientSettings(_Section):
    """[[clients]]: one data owner's account: where its data lives and how its training job runs.

    Only `name` and `train_uri` are needed to run locally; `fedsage launch` also needs the
    account, roles, code and output locations and the network settings (see `missing_for_launch`).
    """

    name: Annotated[str, Field(pattern=NAME_PATTERN, max_length=24, description=f"client name: up to 24 {NAME_HINT}")]
    train_uri: Annotated[
        str, Field(min_length=1, description="the train channel: s3://bucket/prefix/ or file:///path/")
    ]
    validation_uri: Annotated[str | None, Field(description="optional validation channel URI")] = None
    account_id: Annotated[
        str | None, Field(pattern=r"^\d{12}$", description="the client's 12-digit AWS account id")
    ] = None
    region: Annotated[
        str | None, Field(pattern=REGION_PATTERN, description="the client account's region, e.g. eu-west-1")
    ] = None
    kickoff_role_arn: Annotated[
        str | None, Field(pattern=ROLE_ARN_PATTERN, description="ARN of FL-kickoff-client-job in the client account")
    ] = None
    external_id: Annotated[
        str | None,
        Field(
            pattern=r"^[A-Za-z0-9+=,.@:/_-]+$",
            min_length=2,
            max_length=1224,
            description="the ExternalId the kickoff role's trust policy requires",
        ),
    ] = None
    execution_role_arn: Annotated[
        str | None,
        Field(pattern=ROLE_ARN_PATTERN, description="ARN of the SageMaker execution role in the client account"),
    ] = None
    code_uri: Annotated[
        str | None,
        Field(pattern=r"^s3://.+\.tar\.gz$", description="s3:// URI of source.tar.gz in the client's bucket"),
    ] = None
    output_uri: Annotated[
        str | None, Field(pattern=r"^s3://", description="s3:// prefix for the job's model.tar.gz")
    ] = None
    instance_type: Annotated[
        str,
        Field(
            pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$", description="a SageMaker training instance type, e.g. ml.m5.large"
        ),
    ] = "ml.m5.large"
    instance_count: Annotated[
        int, Field(ge=1, le=1, description="1: each training job is exactly one Flower client")
    ] = 1
    volume_size_gb: Annotated[int, Field(ge=1, le=16384, description="EBS volume size in GB, 1 to 16384")] = 30
    subnets: Annotated[
        list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]+$")]],
        Field(max_length=16, description="1 to 16 private subnet ids (subnet-...) that route to the server"),
    ] = []
    security_groups: Annotated[
        list[Annotated[str, Field(pattern=r"^sg-[0-9a-f]+$")]],
        Field(max_length=5, description="1 to 5 security group ids (sg-...) allowing egress to the server's port"),
    ] = []
    vpc_cidr: Annotated[IPv4Network | None, Field(description="the client VPC's CIDR block, e.g. 10.20.0.0/16")] = None
    max_runtime_seconds: Annotated[
        int | None,
        Field(ge=1, le=28 * 24 * 3600, description="job time limit; default join timeout + rounds x round timeout"),
    ] = None
    spot: Annotated[bool, Field(description="use managed spot training (needs checkpoint_uri)")] = False
    max_wait_seconds: Annotated[
        int | None, Field(ge=1, description="spot: how long to wait for capacity, above max runtime")
    ] = None
    checkpoint_uri: Annotated[str | None, Field(pattern=r"^s3://", description="s3:// prefix for spot checkpoints")] = (
        None
    )
    kms_key_id: Annotated[str | None, Field(min_length=1, description="KMS key for the job's volume and output")] = None
    tags: Annotated[dict[str, str], Field(description="extra tags on the training job")] = {}
    profile: Annotated[
        str | None, Field(min_length=1, description="the data owner's AWS profile, used only by `fedsage data upload`")
    ] = None

    @field_validator("train_uri", "validation_uri")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("s3://", "file://")):
            raise ValueError("must start with s3:// or file://")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ClientSettings:
        for key in ("kickoff_role_arn", "execution_role_arn"):
            arn = getattr(self, key)
            if arn and self.account_id and arn.split(":")[4] != self.account_id:
                raise ValueError(
                    f"{key} {arn} is not in account_id {self.account_id}; use a role of the client's account"
                )
        if self.spot and not self.checkpoint_uri:
            raise ValueError(
                "spot = true needs checkpoint_uri, where SageMaker keeps checkpoints between interruptions"
            )
        if any(key.lower().startswith(("aws:", "fedsage:")) for key in self.tags):
            raise ValueError("tags may not start with aws: or fedsage: (reserved)")
        return self

    def missing_for(self, purpose: Purpose) -> list[str]:
        """The keys `fedsage launch` or `fedsage infra` needs that this client does not set.

        Both need the data channels in S3: an s3:// train_uri, and validation_uri (when set) too.
        """
        missing = [key for key in CLIENT_NEEDS[purpose] if getattr(self, key) in (None, [])]
        if not self.train_uri.startswith("s3://"):
            missing.append("train_uri (an s3:// URI)")
        if self.validation_uri and not self.validation_uri.startswith("s3://"):
            missing.append("validation_uri (an s3:// URI)")
        return missing

    def missing_for_launch(self) -> list[str]:
        """The keys `fedsage launch` needs that this client does not set."""
        return self.missing_for("launch")


class Federation(_Section):
    """A whole federation: run settings, model, server and clients."""

    federation: RunSettings = RunSettings()
    model: ModelSettings = ModelSettings()
    container: ContainerSettings = ContainerSettings()
    server: ServerSettings
    clients: Annotated[list[ClientSettings], Field(min_length=1, description="at least one [[clients]] table")]

    @model_validator(mode="after")
    def _consistent(self) -> Federation:
        names = [c.name for c in self.clients]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"client name {duplicates[0]!r} is used twice; give every client its own name")
        if self.federation.min_clients and self.federation.min_clients > len(self.clients):
            raise ValueError(
                f"federation.min_clients = {self.federation.min_clients} is more than the "
                f"{len(self.clients)} clients configured; lower it or add clients"
            )
        return self

    def require_ready(self, purpose: Purpose, also: list[str] | None = None) -> None:
        """Raise BadInput listing every key `fedsage launch` or `fedsage infra` needs that the config lacks.

        `also`: further problems of the caller's own (infra: the templates' constraints), in the same line.
        """
        problems = [f"server: set {', '.join(missing)}"] if (missing := self.server.missing_for(purpose)) else []
        problems += [
            f"clients[{i}] ({client.name}): set {', '.join(missing)}"
            for i, client in enumerate(self.clients)
            if (missing := client.missing_for(purpose))
        ]
        problems += also or []
        if problems:
            command, hint = _NOT_READY[purpose]
            raise BadInput(f"federation.toml is not ready for {command}: " + "; ".join(problems) + hint)

    def require_launchable(self) -> None:
        """Raise BadInput listing every key `fedsage launch` needs that the config lacks."""
        self.require_ready("launch")

    def min_clients(self) -> int:
        """Clients every round needs: the configured minimum, or all of them."""
        return self.federation.min_clients or len(self.clients)

    def to_toml(self) -> str:
        """The resolved configuration as TOML (defaults filled in)."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return tomli_w.dumps(data)


def _location(loc: tuple[Any, ...]) -> str:
    """Render a pydantic error location as the TOML key a user edits: clients[2].name."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def describe_errors(error: ValidationError, source: str) -> str:
    """One line per problem: the key, the bad value, what is wrong and what is expected."""
    lines = []
    for item in error.errors():
        key = _location(item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            lines.append(f"{source}: {key} is required")
            continue
        if item["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key {key}; remove it or check its spelling")
            continue
        value = item.get("input")
        shown = "" if isinstance(value, dict | list) else f" = {value!r}"
        hint = _field_description(item["loc"], _SECTIONS.get(error.title))
        lines.append(f"{source}: {key}{shown}: {message}" + (f" (expected {hint})" if hint else ""))
    return "; ".join(lines)


def _field_description(loc: tuple[Any, ...], root: type[BaseModel] | None = None) -> str | None:
    """The description of the field at a location (from `root`, default Federation), used as the 'how to fix' hint."""
    model: Any = root or Federation
    description = None
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(model, "model_fields", {})
        info = fields.get(part) or next((f for f in fields.values() if f.alias == part), None)
        if info is None:
            return description
        description = info.description
        annotation = info.annotation
        args = getattr(annotation, "__args__", ())
        model = next((a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return description


_SECTIONS: dict[str, type[BaseModel]] = {
    model.__name__: model
    for model in (Federation, RunSettings, ModelSettings, ContainerSettings, ServerSettings, ClientSettings)
}
T = TypeVar("T", bound=BaseModel)


def build(section: type[T], source: str, **values: Any) -> T:
    """Construct one config section from typed values, validated as a config file would be; BadInput if not."""
    try:
        return section(**values)
    except ValidationError as error:
        raise BadInput(describe_errors(error, source)) from None


def parse(data: dict[str, Any], source: str = "federation.toml") -> Federation:
    """Validate a configuration mapping; raise BadInput describing every problem."""
    try:
        return Federation.model_validate(data)
    except ValidationError as error:
        raise BadInput(describe_errors(error, source)) from None


def load(path: Path) -> Federation:
    """Read and validate a federation.toml file; relative paths are relative to the file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise BadInput(f"config file {path} not found; pass an existing federation.toml with -c") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{path} is not valid TOML: {exc}") from None
    federation = parse(data, str(path))
    server = federation.server
    if not server.test_data.is_absolute():
        server.test_data = path.parent / server.test_data
    if server.schema_path is not None and not server.schema_path.is_absolute():
        server.schema_path = path.parent / server.schema_path
    if server.tls is not None:
        for key in ("ca_certificate", "certificate", "private_key"):
            value = getattr(server.tls, key)
            if not value.is_absolute():
                setattr(server.tls, key, path.parent / value)
    return federation
