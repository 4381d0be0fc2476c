"""A run's inputs, checked before anything is written: the server's schema and test set, and local channels.

Each input file is read once: the server's test set gives both its columns and its Dataset,
and a local channel is read, compared with the test set's columns and turned into a Dataset
from the same frame. Any problem is BadInput (exit 2), naming the file and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from client_code.schema import load_schema, to_dataset
from client_code.tabular import DataError, Dataset, read_csv_folder
from orchestrator.config import Federation
from orchestrator.data.layout import SchemaFields
from orchestrator.errors import BadInput


@dataclass(frozen=True)
class ServerData(SchemaFields):
    """What the server holds: the feature schema, its held-out test set and the test set's raw columns."""

    schema: dict[str, Any]
    test: Dataset
    columns: list[str]


def server_data(schema: dict[str, Any], test: pd.DataFrame, where: str) -> ServerData:
    """The server's data from a schema and a raw test frame already in memory; BadInput if unusable."""
    if "label" not in schema or "classes" not in schema:
        raise BadInput(f"the feature schema for {where} has no label or classes; prepare the data again")
    try:
        dataset = to_dataset(test, schema["label"], list(schema["classes"]), schema, where)
    except DataError as exc:
        raise BadInput(str(exc)) from None
    return ServerData(schema=schema, test=dataset, columns=[str(c) for c in test.columns])


def load_server_data(federation: Federation) -> ServerData:
    """Read the schema and the test set the server evaluates on (each once); BadInput if either is unusable."""
    server = federation.server
    schema_path = server.resolved_schema()
    if not schema_path.is_file():
        raise BadInput(f"feature schema {schema_path} not found; set [server] schema or run `fedsage data prepare`")
    try:
        schema = load_schema(schema_path)
        frame = read_csv_folder(server.test_data)
    except DataError as exc:
        raise BadInput(str(exc)) from None
    return server_data(schema, frame, str(server.test_data))


def check_channel(client: str, channel: str, folder: Path, server: ServerData) -> None:
    """Check one local channel loads the way its client will load it, with the server's columns.

    Catches, before any client starts: missing or empty folders, a missing label column,
    non-numeric values, labels outside the classes, and columns that differ from the test set's.
    Raises BadInput naming the client, the channel, the folder and the fix.
    """
    where = f"client {client!r} {channel} data"
    try:
        frame = read_csv_folder(folder)
        columns = [str(c) for c in frame.columns]
        if columns != server.columns:
            missing = [c for c in server.columns if c not in columns]
            extra = [c for c in columns if c not in server.columns]
            parts = [f"missing {', '.join(missing)}"] if missing else []
            parts += [f"extra {', '.join(extra)}"] if extra else []
            raise DataError(
                f"{where} ({folder}) has different feature columns from the server's test set "
                f"({'; '.join(parts) or 'different order'}); prepare every client's data with the same columns"
            )
        to_dataset(frame, server.label, server.classes, server.schema, str(folder))
    except DataError as exc:
        message = str(exc)
        raise BadInput(message if message.startswith(where) else f"{where}: {message}") from None
