"""The run folder `runs/<run-id>/`: its files, its typed summary (run.json), and atomic writes.

```
runs/<run-id>/
  model.joblib (+ .sha256)   the final global model (a Pipeline that scores raw rows) with its provenance
  model.skops (+ .sha256)    the same Pipeline in skops.io's format (loads without running pickled code)
  schema.json                the feature schema the run used (merged in the statistics phase, or given)
  calibration.png            the final model's calibration curve on the test set (binary tasks)
  checkpoints/round-NNN.npz  after every round: the global parameters, strategy and random state (run/checkpoint.py)
  metrics.json/.csv/.png     per-round metrics (run/report.py)
  test_curves.png            the final model's confusion matrix, ROC and PR curves on the test set (run/curves.py)
  report.md                  a readable summary (run/report.py)
  federation.toml            the resolved configuration
  requests/<client>.json     the training job requests as sent (client tokens masked)
  clients/<client>/          what the backend keeps per client (local backends: log, /opt/ml tree)
  code/                      the client code the jobs ran (local backends)
  server.log                 the Flower server's and fedsage's log
  run.json                   RunSummary: status, reason, timings, each job's final state
```

Every file is written whole or not at all (`write_atomic`, `RunFolder.staging`), so a crash or a
full disk never leaves a truncated run.json, checkpoint or model behind; server.log, which grows
while the run goes on, keeps what was written and stops (run/logs.py). `file_error` turns a failed
write into the run's one-line failure.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import platform
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import Any

from client_code.constants import CHECKSUM_SUFFIX
from orchestrator import __version__
from orchestrator.errors import BadInput, RunFailed

FILES = {
    "model.joblib": "final global model (partial: the last good one of a run that stopped): a scikit-learn Pipeline "
    "(schema preprocessing + the model family's "
    "estimator) that scores raw rows, with provenance",
    "model.joblib.sha256": "checksum `fedsage inspect` and `fedsage predict` verify before loading",
    "model.skops": "the same Pipeline in skops.io's format (loads without running pickled code)",
    "model.skops.sha256": "its checksum",
    "schema.json": "the feature schema the run used (from the statistics phase or a file)",
    "calibration.png": "calibration curve of the final model on the test set",
    "checkpoints": "after every round: the global parameters, the strategy's and the server's random state (.npz)",
    "federation.toml": "the resolved configuration",
    "requests": "the training job requests sent (client tokens masked)",
    "clients": "each client's log and /opt/ml tree, with its model",
    "code": "the client code every job ran (entry script and client_code package)",
    "data": "with a built-in data set: the prepared data the run generated (test set, schema, each client's channels)",
    "server.log": "the Flower server's and fedsage's log",
    "metrics.json": "server test metrics and client metrics per round",
    "metrics.csv": "the same, one row per round",
    "metrics.png": "metrics over rounds",
    "test_curves.png": "the final model on the server's test set: confusion matrix, ROC and precision-recall curves",
    "report.md": "this summary",
    "run.json": "status, timings and every job's final state",
}


# Room a run needs on the disk of --out before it starts: the built-in data set takes ~25 MiB, and
# every round adds a checkpoint and log lines. A fuller disk is refused before anything is written.
MIN_FREE_BYTES = 32 * 2**20


def new_run_id(now: dt.datetime | None = None) -> str:
    """A sortable, unique run id usable in job names: 20261121-101500-a1b2."""
    now = now or dt.datetime.now()
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def versions() -> dict[str, str]:
    """Versions that matter for reproducing a model: fedsage, Python, flwr, scikit-learn, numpy, pandas."""
    found = {"fedsage": __version__, "python": platform.python_version()}
    for package in ("flwr", "scikit-learn", "numpy", "pandas"):
        found[package] = metadata.version(package)
    return found


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write `data` to `path` whole or not at all: a temporary file in the same folder, fsync, rename.

    Raises OSError naming `path` (a full disk, a read-only folder) with `path` unchanged and no
    temporary file left behind.
    """
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    tmp = None
    try:
        handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(handle, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def file_error(error: OSError) -> RunFailed:
    """The one line a run fails with when it cannot write a file: which file and why; for a full disk, what to do."""
    where = f"{error.filename}: " if error.filename else ""
    hint = ""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = (
            "; free space on that disk (or choose another --out) and run again - the files already in the run "
            "folder are complete"
        )
    return RunFailed(f"could not write {where}{error.strerror or error}{hint}")


def write_json(path: Path, payload: Any) -> None:
    """Write an indented JSON document atomically (NaN is written as null: it is not JSON)."""
    write_atomic(path, json.dumps(_json_safe(payload), indent=2, allow_nan=False, default=str) + "\n")


def _json_safe(value: Any) -> Any:
    """Replace NaN and infinities by None, recursively, so the document is valid JSON (RFC 8259)."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


@dataclass(kw_only=True)
class ClientReport:
    """One client's statistics-phase report (rows, files, class counts, unseen values, channel digests)."""

    rows: dict[str, int] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)
    class_counts: dict[str, int] = field(default_factory=dict)
    trained_counts: dict[str, float] = field(default_factory=dict)
    unseen: dict[str, dict[str, int]] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)  # per channel: sha256 of its files (tabular.tree_digest)


@dataclass
class ClientSummary(ClientReport):
    """One client's job at the end of a run, with its statistics-phase report, as run.json records it."""

    job_name: str | None
    status: str
    failure_reason: str | None = None
    model_artifact: str | None = None
    num_examples: int | None = None

    @classmethod
    def load(cls, data: dict[str, Any]) -> ClientSummary:
        """One client's entry of a run.json (keys this version does not know are left out)."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass
class RunSummary:
    """What run.json holds; report.md, `fedsage runs` and the Python API read it back through `load`.

    `task` is the schema's task and `model` the [model] table (kind and keys).
    `statistics` is the statistics phase (schema source, seconds, inferred columns), `unseen` the
    values outside the schema's levels on the server's test set, `calibration` the final model's
    (client_code.metrics.calibration); each client's rows, files, class counts and unseen values
    are in `clients`.
    `rounds` is the number of rounds asked for, `rounds_completed` those the run finished (None in
    run folders older than the field: `fedsage runs` counts them from metrics.json). `started_at`
    is when the run started (UTC, ISO 8601); `seconds` the run's wall time; `peak_memory_mb` the
    server process's peak resident memory (VmHWM). `files` maps each file present in the run folder
    to what it holds. `refused_connections`: every connection the server refused (time, peer,
    claimed_name, reason). `final_metrics`: the server's test-set metrics after the last round;
    `hyperparameters`: the [federation] and [model] settings the run used; `test_set`: the final
    model on the server's test set (run/curves.py: confusion matrix, threshold, positive class);
    `tracking`: where the run was logged (MLflow tracking URI, experiment and run id); `privacy`:
    with differential privacy on, the privacy spent (federation/privacy.py: mode, epsilon, delta,
    rounds, clipping norm, noise multiplier, adjacency, accountant), else empty.
    `partial`: the run stopped after round `rounds_completed` and model.joblib is that round's
    global model; `resumed_from`: the stopped run ({run_id, round}) this one continued;
    `provenance`: the seed and sha256 digests of the test set, schema, client code and each
    client's channels (run/provenance.py).
    """

    run_id: str
    status: str
    reason: str
    backend: str
    rounds: int
    seconds: float
    peak_memory_mb: float | None
    versions: dict[str, str]
    clients: dict[str, ClientSummary] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    refused_connections: list[dict[str, str | None]] = field(default_factory=list)
    positive_class: Any = None
    statistics: dict[str, Any] = field(default_factory=dict)
    unseen: dict[str, int] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    started_at: str | None = None
    rounds_completed: int | None = None
    final_metrics: dict[str, float | None] = field(default_factory=dict)
    hyperparameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    test_set: dict[str, Any] = field(default_factory=dict)
    tracking: dict[str, str] = field(default_factory=dict)
    task: str | None = None  # binary, multiclass or regression (the schema's), once known
    model: dict[str, Any] = field(default_factory=dict)  # [model]: kind and the family's hyperparameters
    privacy: dict[str, Any] = field(default_factory=dict)
    partial: bool = False  # model.joblib is the last good model of a run that stopped (round: rounds_completed)
    resumed_from: dict[str, Any] = field(default_factory=dict)  # {run_id, round}: the stopped run this one continues
    provenance: dict[str, Any] = field(default_factory=dict)  # seed, digests of the inputs and code (run/provenance.py)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return asdict(self)

    def settings(self) -> dict[str, Any]:
        """The hyperparameters as flat "section.key" names: {"federation.rounds": 5, "model.c": 1.0, ...}."""
        return {
            f"{section}.{key}": value for section, keys in self.hyperparameters.items() for key, value in keys.items()
        }

    @classmethod
    def load(cls, path: Path) -> RunSummary:
        """Read a run.json back, of this version of fedsage or an older one.

        Keys an older run.json lacks take their defaults (`peak_memory_mb`, absent from the first
        run folders, is None); keys this version does not know (a newer fedsage's) are left out.
        Raises BadInput naming the file when it cannot be read or is not a run summary.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            known = {f.name for f in fields(cls)}
            data = {key: value for key, value in data.items() if key in known}
            data.setdefault("reason", "")
            data.setdefault("peak_memory_mb", None)
            data.setdefault("versions", {})
            data["clients"] = {name: ClientSummary.load(c) for name, c in (data.get("clients") or {}).items()}
            return cls(**data)
        except OSError as exc:
            raise BadInput(f"cannot read {path} ({exc.strerror})") from None
        except (ValueError, TypeError, AttributeError) as exc:  # not JSON, or not a run summary
            raise BadInput(f"{path} is not a fedsage run summary ({exc})") from None


class RunFolder:
    """The paths of one run folder; `create` makes it, refusing one that exists."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.created = False
        self._made_out: Path | None = None  # the outermost --out folder create() made, if any

    @classmethod
    def new(cls, out: Path, run_id: str) -> RunFolder:
        """The folder of run `run_id` under `out` (not created yet)."""
        return cls(Path(out) / run_id)

    @property
    def run_id(self) -> str:
        """The run id: the folder's name."""
        return self.root.name

    def path(self, name: str) -> Path:
        """A file or folder of the run, by its name in FILES."""
        return self.root / name

    @property
    def model(self) -> Path:
        """model.joblib."""
        return self.root / "model.joblib"

    @property
    def clients(self) -> Path:
        """clients/: what the backend keeps per client."""
        return self.root / "clients"

    def save_model(self, model: Any, provenance: dict[str, Any]) -> Path:
        """Write model.joblib, model.skops and their checksums (client_code.persist), each whole: staged, then moved in.

        The checksum is moved in first, so a model file is never there without it (`fedsage
        inspect` refuses a model without its checksum). OSError naming the file if it fails,
        with nothing staged left behind.
        """
        with self._staging() as staging:
            try:
                from client_code.persist import save_model  # joblib and scikit-learn: not before a run's launch

                save_model(model, staging / self.model.name, provenance, skops=True)
                # checksums first: a model file is never there without its checksum
                names = sorted((p.name for p in staging.iterdir()), key=lambda n: not n.endswith(CHECKSUM_SUFFIX))
                for name in names:
                    with open(staging / name, "rb+") as file:
                        os.fsync(file.fileno())
                    os.replace(staging / name, self.path(name))
            except OSError as exc:
                raise OSError(exc.errno, exc.strerror, str(self.model)) from exc
        return self.model

    @contextlib.contextmanager
    def _staging(self) -> Iterator[Path]:
        """A fresh hidden folder inside the run folder, removed afterwards with whatever is left in it."""
        folder = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def create(self) -> None:
        """Create the folder; its parent may exist, the folder itself must not (two runs never share one).

        Raises BadInput when the parent cannot hold it (a file, read-only, missing permissions).
        """
        try:
            missing = self.root.parent
            while not missing.parent.exists():
                missing = missing.parent
            self._made_out = None if missing.exists() else missing
            self.root.parent.mkdir(parents=True, exist_ok=True)
            self.root.mkdir()
            self.created = True
        except FileExistsError:
            raise BadInput(f"run folder {self.root} already exists; choose another --out") from None
        except OSError as exc:
            raise BadInput(f"cannot create the run folder {self.root} ({exc.strerror}); choose another --out") from None

    def discard(self) -> None:
        """Remove the run folder of a run refused before it started, and the --out folders its creation made."""
        shutil.rmtree(self.root, ignore_errors=True)
        if self._made_out is not None and not any(p.is_file() for p in self._made_out.rglob("*")):
            shutil.rmtree(self._made_out, ignore_errors=True)

    def check_writable(self) -> None:
        """Check, leaving nothing behind, that the run folder could be created and has room (BadInput otherwise).

        The nearest existing folder on the way to --out must be a folder this process can write
        to (a file that is created and removed at once tells, whatever the reason: permissions,
        a read-only mount, no inodes left), on a disk with at least MIN_FREE_BYTES free.
        """
        out = self.root.parent
        parent = out
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            where = "is a file" if parent == out else f"is inside a file ({parent})"
            raise BadInput(f"--out {out} {where}; choose a folder")
        try:
            with tempfile.TemporaryFile(dir=parent):
                pass
        except OSError as exc:
            raise BadInput(f"cannot write to {parent} ({exc.strerror}); choose another --out") from None
        free = shutil.disk_usage(parent).free
        if free < MIN_FREE_BYTES:
            raise BadInput(
                f"only {free / 2**20:.1f} MiB free on the disk of {parent}; a run needs at least "
                f"{MIN_FREE_BYTES // 2**20} MiB: free some space or choose another --out"
            )

    def present(self, to_come: tuple[str, ...] = ()) -> dict[str, str]:
        """The run folder's files that exist now or are about to be written (`to_come`), with what each holds."""
        return {name: what for name, what in FILES.items() if name in to_come or (self.root / name).exists()}
