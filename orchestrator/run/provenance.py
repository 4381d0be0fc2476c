"""Where a run's model came from, as digests: the server's files, each client's channels, the client code.

`sources(federation, requests)` gives what run.json (`provenance`) and the model's
`fedsage_provenance_` record, beside the seed and the library versions:

* `test_set`: tabular.tree_digest of the server's test set (its CSV files, as read_channel reads them);
* `schema`: the sha256 of the schema file the server read, or "statistics phase" when it
  computed the schema (the run's schema.json then holds it);
* `code`: the client code every job ran - a local folder (process backend: the laid-out code/
  entries) by tree_digest, a local archive (docker backend) by its file's sha256; an s3:// archive
  (sagemaker) is recorded as "unknown (<uri>)": its ETag is no content digest;
* each client's channel digests are computed by the client (client_code/tabular.py ChannelInfo)
  and recorded in run.json's `clients.<name>.digests`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from client_code.tabular import DataError, channel_files, tree_digest
from orchestrator.backends.container import file_path
from orchestrator.config import Federation
from orchestrator.plan import TrainingJobRequest

UNKNOWN = "unknown"


def _tree(location: Path) -> str:
    """tree_digest of every file below `location` but hidden and `_`-prefixed ones (__pycache__), or of one file."""
    if location.is_file():
        return hashlib.sha256(location.read_bytes()).hexdigest()
    files = [p for p in location.rglob("*") if p.is_file() and not _skipped(p.relative_to(location))]
    return tree_digest(location, files)


def _skipped(relative: Path) -> bool:
    """A hidden file, or a file in a hidden or `_`-prefixed folder (__pycache__: written when the code runs)."""
    return relative.name.startswith(".") or any(part.startswith((".", "_")) for part in relative.parts[:-1])


def code_digest(code_uri: str) -> str:
    """The digest of the client code at `code_uri` (see the module docstring); UNKNOWN for what cannot be read."""
    if not code_uri.startswith("file://"):
        return f"{UNKNOWN} ({code_uri})"
    try:
        return _tree(file_path(code_uri))
    except OSError:
        return UNKNOWN


def sources(federation: Federation, requests: list[TrainingJobRequest]) -> dict[str, Any]:
    """The seed and the digests of the run's inputs (see the module docstring)."""
    server = federation.server
    try:
        test = server.test_data
        test_digest = tree_digest(test if test.is_dir() else test.parent, channel_files(test))
    except (DataError, OSError):
        test_digest = UNKNOWN
    schema_path = server.resolved_schema()
    schema = hashlib.sha256(schema_path.read_bytes()).hexdigest() if schema_path.is_file() else "statistics phase"
    code = {json.loads(r["HyperParameters"].get("sagemaker_submit_directory", '""')) for r in requests}
    return {
        "seed": federation.federation.seed,
        "test_set": test_digest,
        "schema": schema,
        "code": code_digest(str(next(iter(code)))) if len(code) == 1 else UNKNOWN,
    }
