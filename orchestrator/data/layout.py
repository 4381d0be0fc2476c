"""The prepared-data folder: what `fedsage data prepare` writes and `fedsage local` reads.

```
DIR/
  schema.json                    feature schema every party applies (client_code/schema.py); optional:
                                 without it the statistics phase computes one from the clients' data
  test.csv                       the server's held-out test set
  manifest.json                  how the folder was made: source, seed, rows per client
  clients/<name>/train/          one folder per client = the client's train channel: CSV files,
                                 at any depth (raw exports will do)
  clients/<name>/validation/     optional validation channel
```

Each client folder maps one to one onto the SageMaker channels of that client's training job;
`fedsage data upload` copies them to the client's S3 URIs unchanged. The clients never read a
schema.json beside their data: the server sends the federation's schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client_code.constants import SCHEMA_FILE
from orchestrator.errors import BadInput

SCHEMA = SCHEMA_FILE
TEST = "test.csv"
MANIFEST = "manifest.json"
CLIENTS = "clients"
TRAIN = "train"
VALIDATION = "validation"


@dataclass(frozen=True)
class ClientFolders:
    """One client's channel folders inside a prepared-data folder."""

    name: str
    train: Path
    validation: Path | None


class SchemaFields:
    """The label and classes of whatever holds a feature schema as `self.schema`."""

    schema: dict[str, Any]

    @property
    def label(self) -> str:
        """The label column, from the schema."""
        return self.schema["label"]

    @property
    def classes(self) -> list[Any]:
        """The federation's classes, in the order of the model's outputs."""
        return list(self.schema["classes"])


@dataclass(frozen=True)
class PreparedData(SchemaFields):
    """A prepared-data folder, checked to be complete."""

    root: Path
    schema: dict[str, Any] | None
    clients: list[ClientFolders]

    @property
    def test(self) -> Path:
        """The server's test set."""
        return self.root / TEST


# how a data folder is made: prepared by `fedsage data prepare`, or raw exports read by the statistics phase
HINT = (
    "create it with `fedsage data prepare --out DIR`, or give raw exports (test.csv, clients/<name>/train/*.csv) "
    "with --label"
)


def open_prepared(root: Path, require_schema: bool = True, read_schema: bool = True) -> PreparedData:
    """Check a data folder has a test set, client train folders and (if `require_schema`) a schema.

    Without `require_schema` a missing schema.json gives `schema` None (the statistics phase makes
    one). Without `read_schema` the schema is left unread (None) for the caller: `fedsage local`
    reads it in its input check, once its jobs are launched (run/startup.py). Raises BadInput
    naming the missing piece and how to produce it.
    """
    root = Path(root)
    if not root.is_dir():
        raise BadInput(f"data folder {root} does not exist; {HINT}")
    if not any(root.iterdir()):
        raise BadInput(f"data folder {root} is empty; {HINT}")
    for required in (SCHEMA, TEST) if require_schema else (TEST,):
        if not (root / required).is_file():
            raise BadInput(f"data folder {root} has no {required}; {HINT}")
    schema = _read_schema(root / SCHEMA) if read_schema and (root / SCHEMA).is_file() else None
    clients = client_folders(root)
    return PreparedData(root=root, schema=schema, clients=clients)


def _read_schema(path: Path) -> dict[str, Any]:
    """The folder's schema.json, read and checked (client_code/schema.py, with pandas); BadInput if unusable."""
    from client_code.schema import load_schema
    from client_code.tabular import DataError

    try:
        return load_schema(path)
    except DataError as exc:
        raise BadInput(f"{exc}; {HINT}") from None


def client_folders(root: Path) -> list[ClientFolders]:
    """Each client's channel folders under `root`/clients/, by name; BadInput if there are none or one lacks train/."""
    client_root = Path(root) / CLIENTS
    names = sorted(p.name for p in client_root.iterdir() if p.is_dir()) if client_root.is_dir() else []
    if not names:
        raise BadInput(f"data folder {root} has no client folders under {CLIENTS}/; {HINT}")
    clients = []
    for name in names:
        train = client_root / name / TRAIN
        if not train.is_dir():
            raise BadInput(f"client folder {client_root / name} has no {TRAIN}/ folder; {HINT}")
        validation = client_root / name / VALIDATION
        clients.append(ClientFolders(name, train, validation if validation.is_dir() else None))
    return clients


def client_folder(root: Path, name: str) -> Path:
    """Where a client's channel folders go inside a prepared-data folder."""
    return Path(root) / CLIENTS / name


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write a JSON document readable by people and diff tools."""
    path.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
