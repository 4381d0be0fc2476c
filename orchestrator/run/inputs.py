"""A run's inputs, checked before its rounds start: the server's test set and schema, and local channels.

The run has a schema when `[server] schema` is set or schema.json lies beside the test set
(prepared data); otherwise the statistics phase computes one from the clients' raw data, and the
test set is encoded once it is known. Each input file is read once. For local channels the same
statistics the clients will send are computed here, with the same client_code functions, so a
client without rows of some class, a column some clients lack, or an identifier column is caught
by name before the server starts its rounds (run/startup.py: while the jobs of a local backend
start). Any problem is BadInput (exit 2), naming the file and the fix.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from client_code.schema import check_rows, load_schema, normalise_schema, to_dataset
from client_code.statistics import compute_statistics, merge_statistics
from client_code.tabular import DataError, Dataset, canonical_labels, read_channel
from orchestrator.config import Federation
from orchestrator.errors import BadInput


@dataclass(frozen=True)
class ServerData:
    """What the server holds: its raw test rows and, once known, the schema and the encoded test set."""

    frame: pd.DataFrame
    where: str
    schema: dict[str, Any] | None = None
    test: Dataset | None = None
    locate: Callable[[int], str] | None = None  # "test.csv line 7" of a row (tabular.ChannelInfo.locate)

    @property
    def label(self) -> str:
        """The label column (the schema's)."""
        assert self.schema is not None
        return self.schema["label"]

    @property
    def classes(self) -> list[Any]:
        """The federation's classes, in the order of the model's outputs."""
        assert self.schema is not None
        return list(self.schema["classes"])

    @property
    def columns(self) -> list[str]:
        """The test set's raw columns."""
        return [str(c) for c in self.frame.columns]

    def with_schema(self, schema: dict[str, Any]) -> ServerData:
        """The same test rows encoded with `schema`; BadInput if they do not fit it."""
        try:
            schema = normalise_schema(schema, "the run's schema")
            dataset = to_dataset(self.frame, schema, self.where, self.locate)
        except DataError as exc:
            raise BadInput(str(exc)) from None
        return replace(self, schema=schema, test=dataset)

    def label_counts(self, federation: Federation) -> dict[str, int]:
        """Rows of each label value in the test set (canonical, as text); empty if its label is unknown or absent."""
        label = self.schema["label"] if self.schema is not None else federation.data.label
        if not label or label not in self.frame.columns:
            return {}
        try:
            values = canonical_labels(self.frame[label])
        except DataError:
            return {}
        return {str(k): int(n) for k, n in pd.Series(values).value_counts().items()}


def server_data(
    schema: dict[str, Any] | None, test: pd.DataFrame, where: str, locate: Callable[[int], str] | None = None
) -> ServerData:
    """The server's data from a raw test frame, encoded when a schema is given; BadInput if unusable.

    `locate(row)` names a row in a message ("test.csv line 7"); without it, "row N" (N = its line).
    """
    data = ServerData(frame=test, where=where, locate=locate)
    return data.with_schema(schema) if schema is not None else data


def read_server_data(test: Path, schema: dict[str, Any] | None) -> ServerData:
    """Read the test set folder `test` and encode it with `schema` (None: once the statistics phase has one).

    BadInput naming the file when it is unreadable, or its rows do not fit the schema.
    """
    try:
        frame, info = read_channel(test)
    except DataError as exc:
        raise BadInput(str(exc)) from None
    return server_data(schema, frame, str(test), info.locate)


def load_server_data(federation: Federation) -> ServerData:
    """Read the test set and, when there is one, the schema (each once); BadInput if either is unusable.

    A `[server] schema` that does not exist is bad input; a missing schema.json beside the test set
    means the statistics phase computes the schema, which needs `[data] label`.
    """
    server = federation.server
    schema_path = server.resolved_schema()
    if server.schema_path is not None and not schema_path.is_file():
        raise BadInput(f"feature schema {schema_path} not found; fix [server] schema or remove it to compute one")
    if not schema_path.is_file() and not federation.data.label:
        raise BadInput(
            f"no feature schema ({schema_path} does not exist) and no [data] label: set [data] label so the "
            "statistics phase can compute the schema, or run `fedsage data prepare`"
        )
    try:
        schema = load_schema(schema_path) if schema_path.is_file() else None
    except DataError as exc:
        raise BadInput(str(exc)) from None
    return read_server_data(server.test_data, schema)


def _read(client: str, channel: str, folder: Path) -> tuple[pd.DataFrame, Any]:
    """One local channel's rows, or BadInput naming the client and the channel."""
    try:
        return read_channel(folder)
    except DataError as exc:
        raise BadInput(f"client {client!r} {channel} data: {exc}") from None


def check_local_channels(federation: Federation, channels: dict[str, dict[str, Path]], server: ServerData) -> None:
    """Check local channels before the rounds start, with the statistics the clients will send.

    `channels` maps client -> {"train": folder, "validation": folder}; each folder is read once.
    Catches, by client name: unreadable or empty folders, a missing label column, empty cells,
    columns the clients do not share, a column with numbers at one client and text at another, an
    identifier column, a client without rows of some class (its statistics), and, with a schema,
    data the schema cannot encode or labels outside its classes.
    """
    settings = federation.data
    label = server.label if server.schema is not None else settings.label
    assert label, "load_server_data requires a schema or [data] label"
    salt = secrets.token_hex(16)
    task = server.schema["task"] if server.schema is not None else settings.task
    read = {c: {ch: _read(c, ch, folder) for ch, folder in folders.items()} for c, folders in channels.items()}
    keep = {f["name"] for f in server.schema["features"]} | {label} if server.schema is not None else None
    statistics = {}
    for client, frames in read.items():
        frame, info = frames["train"]
        if keep is not None:  # with a schema, only its columns matter
            frame = frame[[c for c in frame.columns if c in keep]]
        where = f"client {client!r} train data ({channels[client]['train']})"
        try:
            statistics[client] = compute_statistics(
                frame, label, salt, settings.categorical, settings.drop, settings.max_levels, where, info.locate, task
            )
        except DataError as exc:
            raise BadInput(str(exc)) from None
    classes = list(server.schema["classes"]) if server.schema is not None else None
    if server.schema is None:
        try:
            classes = merge_statistics(statistics, label, **settings.merge_options())["classes"]
        except DataError as exc:
            raise BadInput(str(exc)) from None
    for client, stats in statistics.items():
        present = {str(k) for k, n in stats.get("label_counts", {}).items() if n > 0}  # none for regression
        for cls in classes:
            if str(cls) not in present:
                raise BadInput(
                    f"client {client!r} has no training rows of class {cls!r} ({channels[client]['train']}); every "
                    "client needs rows of every class (docs/adr/0002-data-partitions.md): leave it out or give it some"
                )
    if server.schema is None:
        return
    for client, frames in read.items():
        for channel, (frame, info) in frames.items():
            where = f"client {client!r} {channel} data ({channels[client][channel]})"
            try:
                check_rows(frame, server.schema, where, info.locate)  # what encoding would refuse, not encoded
            except DataError as exc:
                raise BadInput(str(exc)) from None
