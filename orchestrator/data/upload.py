"""`fedsage data upload`: copy each client's prepared folders to that client's own S3 prefixes.

Each upload runs with the data owner's own credentials (the client's `profile` in
federation.toml, or the default credential chain), never the server account's: the server
never needs read access to client data. The order protects regulated data:

1. plan, without any AWS call: every selected client has a folder and every folder a client,
   channels match the URIs (train always, validation exactly when `validation_uri` is set),
   URIs are s3://, train and validation prefixes do not select each other's objects, and every
   channel loads with the server's schema (or, when the run will compute the schema in the
   statistics phase, reads as CSV files);
2. check every client's access before the first byte moves: the profile exists, its account is
   the client's `account_id` (when set), the bucket is reachable and belongs to that account,
   and the prefix holds nothing but files this upload would replace (a training job reads
   every object under its channel's prefix);
3. upload, reporting bytes. Re-running is safe: keys are the same every time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client_code.schema import load_data, load_schema
from client_code.tabular import DataError, read_channel
from orchestrator.aws import s3
from orchestrator.config import ClientSettings, Federation
from orchestrator.data import layout
from orchestrator.errors import BadInput, RunFailed


@dataclass(frozen=True)
class UploadFile:
    """One local file and where it goes."""

    client: str
    channel: str
    path: Path
    target: s3.S3Location
    size: int


@dataclass(frozen=True)
class ClientUpload:
    """Everything one data owner uploads, and to which channel prefixes."""

    client: ClientSettings
    prefixes: dict[str, s3.S3Location]
    files: list[UploadFile]

    @property
    def size(self) -> int:
        """Bytes to upload for this client."""
        return sum(f.size for f in self.files)


def plan_upload(root: Path, federation: Federation, only: tuple[str, ...] = ()) -> list[ClientUpload]:
    """Match clients to folders and check every channel; no AWS call. BadInput names any mismatch.

    `only` restricts the upload to some clients (a data owner uploading just its own folder);
    without it every client in the config must have a folder and every folder a client.
    """
    root = Path(root)
    clients_dir = root / layout.CLIENTS
    if not clients_dir.is_dir():
        raise BadInput(f"{root} has no {layout.CLIENTS}/ folder; prepare it with `fedsage data prepare --out {root}`")
    configured = {c.name: c for c in federation.clients}
    only = tuple(dict.fromkeys(only))
    unknown = [name for name in only if name not in configured]
    if unknown:
        raise BadInput(f"--client {unknown[0]!r} is not in the config; choose from {', '.join(configured)}")
    folders = sorted(p.name for p in clients_dir.iterdir() if p.is_dir())
    if not only:
        orphans = [name for name in folders if name not in configured]
        if orphans:
            raise BadInput(
                f"folder {clients_dir / orphans[0]} has no client named {orphans[0]!r} in the config; "
                "add it as a [[clients]] table or prepare the data with the config's client names (--names)"
            )
    server_schema = _server_schema(federation)
    plans = []
    for name in only or tuple(configured):
        client = configured[name]
        folder = clients_dir / name
        if not folder.is_dir():
            raise BadInput(
                f"client {name!r} has no folder {folder}; prepare the data with --names set to the config's "
                "client names, or upload only some clients with --client"
            )
        plans.append(_plan_client(client, folder, server_schema))
    return plans


def _server_schema(federation: Federation) -> dict[str, Any] | None:
    path = federation.server.resolved_schema()
    if not path.is_file():
        return None
    try:
        return load_schema(path)
    except DataError as exc:
        raise BadInput(str(exc)) from None


def _plan_client(client: ClientSettings, folder: Path, server_schema: dict[str, Any] | None) -> ClientUpload:
    uris = {layout.TRAIN: client.train_uri, layout.VALIDATION: client.validation_uri}
    prefixes: dict[str, s3.S3Location] = {}
    files: list[UploadFile] = []
    for channel, uri in uris.items():
        local = folder / channel
        if uri is None:
            if local.is_dir():
                raise BadInput(
                    f"client {client.name!r} has a {channel} folder ({local}) but no {channel}_uri; set "
                    f"{channel}_uri in the config, or prepare the data with --validation-size 0"
                )
            continue
        if not local.is_dir():
            raise BadInput(
                f"client {client.name!r} sets {channel}_uri but has no {local} folder; prepare the data "
                f"again or remove {channel}_uri"
            )
        try:
            location = s3.parse_uri(uri)
        except ValueError:
            raise BadInput(
                f"client {client.name!r}: {channel}_uri {uri} is not an s3:// URI; data upload copies to S3 "
                "(a file:// channel is read in place)"
            ) from None
        _check_channel(client.name, channel, local, server_schema)
        prefixes[channel] = location
        files += [
            UploadFile(client.name, channel, path, location.child(relative), path.stat().st_size)
            for path, relative in s3.folder_files(local)
        ]
    if len(prefixes) == 2 and s3.overlaps(prefixes[layout.TRAIN], prefixes[layout.VALIDATION]):
        raise BadInput(
            f"client {client.name!r}: train_uri and validation_uri overlap, so one channel would read the "
            "other's files; give them separate prefixes, e.g. .../train/ and .../validation/"
        )
    return ClientUpload(client, prefixes, files)


def _check_channel(client: str, channel: str, folder: Path, server_schema: dict[str, Any] | None) -> None:
    """The channel loads the way its training job will: with the server's schema if there is one, else as raw CSVs."""
    where = f"client {client!r} {channel} data ({folder})"
    try:
        if server_schema is not None:
            load_data(folder, server_schema)
        else:
            read_channel(folder)
    except DataError as exc:
        raise BadInput(f"{where}: {exc}") from None


def open_sessions(plans: list[ClientUpload], session_for: Callable[[ClientSettings], Any]) -> dict[str, Any]:
    """Each data owner's S3 client, checked before any upload (see the module docstring, step 2)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from orchestrator.aws.sessions import RETRIES

    clients: dict[str, Any] = {}
    for plan in plans:
        client = plan.client
        who = f"client {client.name!r} (profile {client.profile or 'default'})"
        session = session_for(client)
        try:
            if client.account_id:
                account = session.client("sts", config=RETRIES).get_caller_identity()["Account"]
                if account != client.account_id:
                    raise BadInput(
                        f"{who}: the credentials are for account {account}, not the client's account_id "
                        f"{client.account_id}; use the data owner's own profile"
                    )
            s3_client = session.client("s3", config=RETRIES)
            expected = _owner(client)
            wanted = {f.target.key for f in plan.files}
            for channel, location in plan.prefixes.items():
                others = [key for key in s3.list_keys(s3_client, location, **expected) if key not in wanted]
                if others:
                    raise BadInput(
                        f"{who}: {location.uri} already holds {len(others)} other object(s) (e.g. {others[0]}), "
                        f"which the training job would read as {channel} data; empty the prefix or choose "
                        f"another {channel}_uri"
                    )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise BadInput(
                f"{who}: cannot use its bucket ({error.get('Code', 'error')}: {error.get('Message', '')}); check "
                "the bucket exists in the client account and the profile may list and write it"
            ) from None
        except BotoCoreError as exc:
            raise BadInput(f"{who}: no usable AWS credentials or endpoint ({exc})") from None
        clients[client.name] = s3_client
    return clients


def _owner(client: ClientSettings) -> dict[str, str]:
    """ExpectedBucketOwner, so S3 refuses a bucket of another account (a typo in a bucket name)."""
    return {"ExpectedBucketOwner": client.account_id} if client.account_id else {}


def upload(
    plans: list[ClientUpload], s3_clients: dict[str, Any], on_file: Callable[[UploadFile], Callable[[int], None]]
) -> list[UploadFile]:
    """Upload every planned file with its owner's S3 client; `on_file` gives a byte callback per file.

    Objects are encrypted with the client's `kms_key_id` when it has one (otherwise the bucket's
    default encryption applies). A failure mid-way is a RunFailed naming the file; re-running
    the same upload replaces the same keys.
    """
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    done: list[UploadFile] = []
    for plan in plans:
        extra = _owner(plan.client)
        if plan.client.kms_key_id:
            extra |= {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": plan.client.kms_key_id}
        for item in plan.files:
            try:
                s3_clients[plan.client.name].upload_file(
                    str(item.path), item.target.bucket, item.target.key, ExtraArgs=extra or None, Callback=on_file(item)
                )
            except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
                raise RunFailed(
                    f"upload of {item.path} to {item.target.uri} failed after {len(done)} file(s) ({exc}); "
                    "fix the cause and run the same command again"
                ) from None
            done.append(item)
    return done
