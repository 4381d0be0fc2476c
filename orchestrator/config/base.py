"""What every config section shares: strict tables, the patterns of names AWS accepts, what launch/infra need."""

from __future__ import annotations

import re
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

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


def name_order(name: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key that puts client names in natural order: client-2 before client-10 (digits compare as numbers)."""
    return tuple((0, int(part)) if part.isdigit() else (1, part.lower()) for part in re.split(r"(\d+)", name) if part)


class _Section(BaseModel):
    """A config table: unknown keys are errors, so typos do not pass silently.

    Numbers are finite (`inf` and `nan` are refused) and never booleans: pydantic's lax mode
    would read `rounds = true` as 1 and `c = inf` as a number.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_as_number(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name and bool not in _types(cls.model_fields[info.field_name]):
            raise ValueError("true/false is not a valid value here")
        return value


def _types(field: Any) -> set[Any]:
    """The types a field's annotation admits (Optional and unions unpacked one level)."""
    annotation = field.annotation
    return {annotation, *typing.get_args(annotation)}
