"""[[clients]]: one data owner's account: where its data lives and how its training job runs."""

from __future__ import annotations

import unicodedata
from ipaddress import IPv4Network
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from orchestrator.config.base import (
    CLIENT_NEEDS,
    NAME_HINT,
    NAME_PATTERN,
    REGION_PATTERN,
    ROLE_ARN_PATTERN,
    Purpose,
    _Section,
)

# SageMaker's Tag (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_Tag.html): a key of
# 1-128 and a value of 0-256 characters matching ([\p{L}\p{Z}\p{N}_.:/=+\-@]*): Unicode letters,
# separators and numbers, and this punctuation.
TAG_KEY_LENGTH = (1, 128)
TAG_VALUE_MAX = 256
TAG_PUNCTUATION = "_.:/=+-@"


def _tag_character(character: str) -> bool:
    """Whether SageMaker accepts `character` in a tag key or value (Unicode category L, Z or N, or TAG_PUNCTUATION)."""
    return unicodedata.category(character)[0] in "LZN" or character in TAG_PUNCTUATION


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
    spot: Annotated[
        bool, Field(description="managed spot training: not supported yet (an interrupted client cannot rejoin)")
    ] = False
    checkpoint_uri: Annotated[str | None, Field(pattern=r"^s3://", description="s3:// prefix for spot checkpoints")] = (
        None
    )
    kms_key_id: Annotated[str | None, Field(min_length=1, description="KMS key for the job's volume and output")] = None
    tags: Annotated[dict[str, str], Field(description="extra tags on the training job")] = {}
    profile: Annotated[
        str | None, Field(min_length=1, description="the data owner's AWS profile, used only by `fedsage data upload`")
    ] = None

    @property
    def channels(self) -> dict[str, str]:
        """The client's channels: name ("train", "validation" when set) -> URI."""
        return {"train": self.train_uri, **({"validation": self.validation_uri} if self.validation_uri else {})}

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
        if self.spot:
            raise ValueError(
                "spot = true is not supported yet: a spot interruption restarts the job, and a restarted client "
                "cannot rejoin a running federation (no resume design yet); remove spot"
            )
        if any(key.lower().startswith(("aws:", "fedsage:")) for key in self.tags):
            raise ValueError("tags may not start with aws: or fedsage: (reserved)")
        for key, value in self.tags.items():
            for text, what, low, high in (
                (key, "tag key", TAG_KEY_LENGTH[0], TAG_KEY_LENGTH[1]),
                (value, f"value of tag {key!r}", 0, TAG_VALUE_MAX),
            ):
                if not low <= len(text) <= high or not all(_tag_character(c) for c in text):
                    raise ValueError(
                        f"{what} {text!r} is not a SageMaker tag: {low} to {high} letters, digits, spaces "
                        f"and {TAG_PUNCTUATION} only"
                    )
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
