"""S3 as the emulated container's storage, and the few S3 transfers fedsage makes.

`S3Storage` fetches a channel prefix or the code archive from S3 into the emulated /opt/ml tree
and puts model.tar.gz back, exactly where SageMaker would; the tests' stand-in for SageMaker
uses it with a client account's session, so the local executor runs what moto recorded.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import boto3

from orchestrator.aws.sessions import RETRIES


def split_s3_uri(uri: str) -> tuple[str, str]:
    """('bucket', 'key/prefix') of an s3:// URI."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"{uri} is not an s3://bucket/key URI")
    return parsed.netloc, parsed.path.lstrip("/")


def upload_file(session: boto3.Session, path: Path, uri: str) -> None:
    """Put one local file at an s3:// URI."""
    bucket, key = split_s3_uri(uri)
    session.client("s3", config=RETRIES).upload_file(str(path), bucket, key)


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

        bucket, key = split_s3_uri(uri)
        dest.mkdir(parents=True, exist_ok=True)
        if key and not key.endswith("/"):
            try:
                self.s3.head_object(Bucket=bucket, Key=key)
            except ClientError:
                key += "/"
            else:
                self.s3.download_file(bucket, key, str(dest / Path(key).name))
                return
        found = False
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            for item in page.get("Contents", []):
                if item["Key"].endswith("/"):
                    continue
                target = dest / item["Key"][len(key) :]
                target.parent.mkdir(parents=True, exist_ok=True)
                self.s3.download_file(bucket, item["Key"], str(target))
                found = True
        if not found:
            raise FileNotFoundError(f"nothing at {uri}")

    def upload(self, path: Path, uri: str) -> None:
        """Put the local file `path` at `uri`."""
        bucket, key = split_s3_uri(uri)
        self.s3.upload_file(str(path), bucket, key)
