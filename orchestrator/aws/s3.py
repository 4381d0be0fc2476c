"""S3 for fedsage: locations, prefixes as folders, and S3 as the emulated container's storage.

`S3Storage` fetches a channel prefix or the code archive from S3 into the emulated /opt/ml tree
and puts model.tar.gz back, exactly where SageMaker would; the tests' stand-in for SageMaker
uses it with a client account's session, so the local executor runs what moto recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3

from orchestrator.aws.sessions import RETRIES


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key (or key prefix)."""

    bucket: str
    key: str

    @property
    def uri(self) -> str:
        """The s3:// URI of this location."""
        return f"s3://{self.bucket}/{self.key}"

    def child(self, relative: str) -> S3Location:
        """The object `relative` below this prefix, treating the prefix as a folder."""
        base = self.key if not self.key or self.key.endswith("/") else self.key + "/"
        return S3Location(self.bucket, base + relative)


def parse_uri(uri: str) -> S3Location:
    """Split `s3://bucket/prefix` into bucket and key; ValueError for anything that is not one."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"{uri} is not an s3://bucket/key URI")
    return S3Location(parsed.netloc, parsed.path.lstrip("/"))


def overlaps(first: S3Location, second: S3Location) -> bool:
    """True when one prefix selects the other's objects (what a SageMaker S3Prefix channel would read)."""
    return first.bucket == second.bucket and (first.key.startswith(second.key) or second.key.startswith(first.key))


def list_keys(client: Any, location: S3Location, **extra: Any) -> list[str]:
    """Every key that starts with the location's key, following pagination."""
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=location.key, **extra):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


def folder_files(folder: Path) -> list[tuple[Path, str]]:
    """The files below `folder`, with their relative POSIX paths, in a stable order."""
    folder = Path(folder)
    return [(path, path.relative_to(folder).as_posix()) for path in sorted(folder.rglob("*")) if path.is_file()]


def upload_file(session: boto3.Session, path: Path, uri: str) -> None:
    """Put one local file at an s3:// URI."""
    target = parse_uri(uri)
    session.client("s3", config=RETRIES).upload_file(str(path), target.bucket, target.key)


class S3Storage:
    """Storage for s3:// URIs through one account's session (see backends.container.Storage)."""

    def __init__(self, session: boto3.Session) -> None:
        self.s3 = session.client("s3", config=RETRIES)

    def download(self, uri: str, dest: Path) -> None:
        """Copy the object at `uri` into the folder `dest`, or, for a prefix, every object under it.

        A URI is an object if one exists with exactly that key (like source.tar.gz); otherwise
        it is a prefix, read as a folder (like a channel's data/train/).
        """
        from botocore.exceptions import ClientError

        location = parse_uri(uri)
        dest.mkdir(parents=True, exist_ok=True)
        if location.key and not location.key.endswith("/"):
            try:
                self.s3.head_object(Bucket=location.bucket, Key=location.key)
            except ClientError:
                location = S3Location(location.bucket, location.key + "/")
            else:
                self.s3.download_file(location.bucket, location.key, str(dest / Path(location.key).name))
                return
        keys = [key for key in list_keys(self.s3, location) if not key.endswith("/")]
        if not keys:
            raise FileNotFoundError(f"nothing at {uri}")
        for key in keys:
            target = dest / key[len(location.key) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            self.s3.download_file(location.bucket, key, str(target))

    def upload(self, path: Path, uri: str) -> None:
        """Put the local file `path` at `uri`."""
        target = parse_uri(uri)
        self.s3.upload_file(str(path), target.bucket, target.key)
