"""A run's inputs, checked before its rounds start: the server's test set and schema, and local channels' headers.

The run has a schema when `[server] schema` is set or schema.json lies beside the test set
(prepared data); otherwise the statistics phase computes one from the clients' raw data, and the
test set is encoded once it is known. The server reads its own files once. Of a local channel it
reads only the header and first row (`check_local_channels`): the rows are its client's to read
and check, once, as on SageMaker (run/startup.py: while the jobs of a local backend start). Any
problem is BadInput (exit 2), naming the file and the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from client_code.schema import load_schema, normalise_schema, require_features, to_dataset
from client_code.tabular import DataError, Dataset, canonical_labels, channel_head, read_channel, require_label
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
        """The same test rows encoded with `schema`; BadInput if they do not fit it.

        Rows already encoded with a schema that differs at most in its positive class (the
        statistics phase's copy of a schema file) are not encoded again: the positive class
        changes the metrics, not the encoding.
        """
        try:
            schema = normalise_schema(schema, "the run's schema")
            if self.test is not None and self.schema is not None and _encoding(self.schema) == _encoding(schema):
                return replace(self, schema=schema)
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


def _encoding(schema: dict[str, Any]) -> dict[str, Any]:
    """What of a (normalised) schema decides how rows are encoded: everything but the positive class."""
    return {key: value for key, value in schema.items() if key != "positive_class"}


def server_data(
    schema: dict[str, Any] | None,
    test: pd.DataFrame,
    where: str,
    locate: Callable[[int], str] | None = None,
    encode: bool = True,
    label: str | None = None,
) -> ServerData:
    """The server's data from a raw test frame, encoded when a schema is given; BadInput if unusable.

    `locate(row)` names a row in a message ("test.csv line 7"); without it, "row N" (N = its line).
    With `encode` False the rows are only checked to have the schema's label and feature columns,
    and are encoded when the statistics phase hands over the run's schema (`with_schema`): a
    local run does that in its server thread while the clients read their own rows, instead of
    before its statistics phase (issue 15; a bad cell is then refused after the clients joined).
    Without a schema, `label` ([data] label) is the column the test set must have: checked here,
    before any client joins, not when the statistics phase's schema arrives.
    """
    if schema is None and label:
        try:
            require_label(test, label, where)
        except DataError as exc:
            raise BadInput(str(exc)) from None
    if schema is not None and not encode:
        try:
            schema = normalise_schema(schema, where)
            require_label(test, schema["label"], where)
            require_features(test, schema, where)
        except DataError as exc:
            raise BadInput(str(exc)) from None
        return ServerData(frame=test, where=where, schema=schema, locate=locate)
    data = ServerData(frame=test, where=where, locate=locate)
    return data.with_schema(schema) if schema is not None else data


def read_server_data(
    test: Path, schema: dict[str, Any] | None, encode: bool = True, label: str | None = None
) -> ServerData:
    """Read the test set folder `test` and encode it with `schema` (None: once the statistics phase has one).

    BadInput naming the file when it is unreadable, lacks the `label` column, or its rows do not
    fit the schema (`encode` and `label`: see server_data).
    """
    try:
        frame, info = read_channel(test)
    except DataError as exc:
        raise BadInput(str(exc)) from None
    return server_data(schema, frame, str(test), info.locate, encode, label)


def load_server_data(federation: Federation) -> ServerData:
    """Read the schema file (server_schema), then the test set; BadInput if either is unusable."""
    test = federation.server.test_data
    return read_server_data(test, server_schema(federation), label=federation.data.label)


def server_schema(federation: Federation) -> dict[str, Any] | None:
    """The run's schema file, read; None when the statistics phase computes one. BadInput if unusable.

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
        return load_schema(schema_path) if schema_path.is_file() else None
    except DataError as exc:
        raise BadInput(str(exc)) from None


def check_local_channels(
    federation: Federation, channels: dict[str, dict[str, Path]], schema: dict[str, Any] | None
) -> None:
    """Check what the headers of local channels can show, before their clients read them (BadInput).

    `channels` maps client -> {"train": folder, "validation": folder}; `schema` is the run's schema
    file (None: the statistics phase computes one, from [data] label). Reads each file's header
    and first data row only (tabular.channel_head), and refuses by client and channel: a missing
    or empty folder, an unreadable header, files with different columns, no data rows, no label
    column, and, with a schema, a column of the schema that a channel lacks.

    The rows are each client's to read and check, as on SageMaker, where the server never sees
    them: its job reads its channels once (client_code/train.py) and a file it cannot parse, a
    bad cell, a client without rows of some class or a column some clients lack comes back as
    its one-line refusal in the statistics phase (federation/statistics.py ClientRefusal): exit 2,
    the run folder removed (run/lifecycle.py). Issue 15: nothing is read twice.
    """
    label = schema["label"] if schema is not None else federation.data.label
    for client, folders in channels.items():
        for channel, folder in folders.items():
            try:
                head = channel_head(folder)
            except DataError as exc:
                raise BadInput(f"client {client!r} {channel} data: {exc}") from None
            where = f"client {client!r} {channel} data ({folder})"
            try:
                if label:
                    require_label(head, label, where)
                if schema is not None:
                    require_features(head, schema, where)
            except DataError as exc:
                raise BadInput(str(exc)) from None
