"""`fedsage inspect`: look inside a model a federation produced, without trusting the file blindly.

Unpickling runs code, so a model file is opened in three guarded steps:

1. its bytes are read once and checked against the `<file>.sha256` the run wrote next to it
   (a missing or different checksum is refused), and the same bytes are what gets loaded;
2. when `model.skops` lies beside it (runs since issue 9 write one), that file is checked the
   same way and loaded with skops.io, which rebuilds only the types it trusts (the explicit
   `trusted` list is empty: a fedsage Pipeline needs none beyond skops' defaults) and runs no
   pickled code; otherwise the joblib file is unpickled with an allow-list that resolves only the
   classes a fedsage model is made of (scikit-learn's Pipeline, ColumnTransformer, StandardScaler,
   OneHotEncoder and LogisticRegression, numpy arrays and dtypes, joblib's array wrapper); any
   other reference, such as `os.system`, is refused before it is imported or called;
3. the result must be a Pipeline ending in a LogisticRegression (or, from older runs, a bare
   LogisticRegression) carrying `fedsage_provenance_`.

The checksum catches a file changed or damaged after the run; it does not authenticate who
wrote the run folder, which is what the allow-list is for.

A client's model.tar.gz (what SageMaker uploads from the job's SM_MODEL_DIR) holds model.joblib
and its checksum: `opened` extracts just those two regular files into a temporary folder (the
tarfile "data" filter: no links, no paths outside it) and the same three steps follow.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import re
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from client_code.constants import CHECKSUM_SUFFIX, SKOPS_SUFFIX
from orchestrator.errors import BadInput

MAX_MODEL_BYTES = 1 << 30
# A checksum file is one `sha256sum` line: 64 hex digits, two spaces, the file name (at most 255 bytes).
MAX_CHECKSUM_BYTES = 4096
ALLOWED_GLOBALS = frozenset(
    {
        ("sklearn.linear_model._logistic", "LogisticRegression"),
        ("sklearn.pipeline", "Pipeline"),
        ("sklearn.compose._column_transformer", "ColumnTransformer"),
        ("sklearn.preprocessing._data", "StandardScaler"),
        ("sklearn.preprocessing._encoders", "OneHotEncoder"),
        ("builtins", "slice"),
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy", "float64"),
        ("numpy", "int64"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
    }
)


def read_verified(path: Path) -> tuple[bytes, str]:
    """The model file's bytes and SHA-256, after checking them against `<path>.sha256`.

    Reads at most MAX_CHECKSUM_BYTES of the checksum file and MAX_MODEL_BYTES of the model;
    raises BadInput for a missing, oversized or mismatching file.
    """
    path = Path(path)
    checksum = path.with_name(path.name + CHECKSUM_SUFFIX)
    if not path.is_file():
        raise BadInput(f"model file {path} not found; give the model.joblib of a run folder")
    if not checksum.is_file():
        raise BadInput(
            f"{checksum.name} is missing next to {path}; refusing to unpickle an unverified file "
            "(inspect the model.joblib of a run folder, which has its checksum)"
        )
    with open(checksum, "rb") as file:  # read a bounded head: the file may be anything, of any size
        head = file.read(MAX_CHECKSUM_BYTES + 1)
    if len(head) > MAX_CHECKSUM_BYTES:
        raise BadInput(
            f"{checksum} is larger than {MAX_CHECKSUM_BYTES} bytes, not a checksum file; "
            f"refusing to unpickle {path.name}"
        )
    match = re.match(r"\s*([0-9a-fA-F]{64})\b", head.decode(errors="replace"))
    if match is None:
        raise BadInput(f"{checksum} does not hold a SHA-256 checksum; refusing to unpickle {path.name}")
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise BadInput(f"{path} is larger than 1 GiB, far more than a fedsage model; refusing to read it")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != match.group(1).lower():
        raise BadInput(
            f"{path} does not match its checksum in {checksum.name} (it changed after the run); refusing to unpickle it"
        )
    return data, digest


def estimator_of(model: Any) -> Any:
    """The trained estimator: a Pipeline's last step, or the model itself (older runs saved a bare estimator)."""
    from sklearn.pipeline import Pipeline

    return model[-1] if isinstance(model, Pipeline) else model


def _unpickle(path: Path, data: bytes) -> Any:
    """Unpickle joblib bytes resolving only ALLOWED_GLOBALS; BadInput for anything else."""
    import warnings

    from joblib.numpy_pickle import NumpyUnpickler

    class _AllowListUnpickler(NumpyUnpickler):
        def find_class(self, module: str, name: str) -> Any:
            if (module, name) not in ALLOWED_GLOBALS:
                raise BadInput(
                    f"{path} is not a fedsage model: it refers to {module}.{name}, which a fedsage model "
                    "never contains; refusing to load it"
                )
            return super().find_class(module, name)

    if not data.startswith(b"\x80"):
        raise BadInput(f"{path} is not a fedsage model file (not an uncompressed joblib pickle)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # version differences are reported from the provenance
            return _AllowListUnpickler(str(path), io.BytesIO(data), ensure_native_byte_order=True).load()
    except BadInput:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to unpickle means: not a readable model
        raise BadInput(f"{path} is not a readable fedsage model ({type(exc).__name__}: {exc})") from None


def _load_skops(path: Path, data: bytes) -> Any:
    """Load skops.io bytes trusting nothing beyond skops' default types; BadInput naming any other type."""
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(data=data)
        if untrusted:
            raise BadInput(f"{path} holds types a fedsage model never contains ({', '.join(untrusted[:3])})")
        return sio.loads(data, trusted=[])
    except BadInput:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to load means: not a readable model
        raise BadInput(f"{path} is not a readable fedsage model ({type(exc).__name__}: {exc})") from None


def load_model(path: Path) -> tuple[Any, str]:
    """Load a fedsage model after the checks in the module docstring; return it and the given file's SHA-256."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    path = Path(path)
    data, digest = read_verified(path)
    sibling = path.with_suffix(SKOPS_SUFFIX)
    if path.suffix == SKOPS_SUFFIX:
        model = _load_skops(path, data)
    elif sibling.is_file():
        model = _load_skops(sibling, read_verified(sibling)[0])
    else:
        model = _unpickle(path, data)
    estimator = estimator_of(model)
    pipeline_ok = not isinstance(model, Pipeline) or len(model.steps) == 2
    if (
        not pipeline_ok
        or not isinstance(estimator, LogisticRegression)
        or not isinstance(getattr(model, "fedsage_provenance_", None), dict)
    ):
        raise BadInput(f"{path} is not a fedsage model (no Pipeline or LogisticRegression with fedsage_provenance_)")
    if not all(hasattr(estimator, attribute) for attribute in ("coef_", "intercept_", "classes_")):
        raise BadInput(f"{path} holds a LogisticRegression without parameters; it is not a trained fedsage model")
    return model, digest


def _clean(value: Any) -> Any:
    """JSON-safe values: NaN becomes None, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def describe(model: Any, path: Path, digest: str, top: int = 10) -> dict[str, Any]:
    """What a model is, where it came from and what it learned, as a JSON-ready dict."""
    from importlib.metadata import version

    import numpy as np

    provenance = model.fedsage_provenance_
    estimator = estimator_of(model)
    classes = estimator.classes_.tolist()
    coef = np.asarray(estimator.coef_)
    n_features = coef.shape[1]
    names = list(provenance.get("feature_names") or [])
    if not names and provenance.get("schema"):
        from client_code.schema import feature_names

        names = feature_names(provenance["schema"])
    notes = []
    if len(names) != n_features:
        if names:
            notes.append(f"the provenance lists {len(names)} feature names for {n_features} coefficients")
        names = [f"x{i}" for i in range(n_features)]
    row_class = [classes[1]] if len(classes) == 2 else classes
    ranked = sorted(
        ((abs(value), row_class[r], names[c], value) for (r, c), value in np.ndenumerate(coef)),
        key=lambda item: -item[0],
    )[: max(top, 0)]
    versions = provenance.get("versions", {})
    installed = version("scikit-learn")
    if versions.get("scikit-learn") and versions["scikit-learn"] != installed:
        notes.append(f"saved with scikit-learn {versions['scikit-learn']}, loaded with {installed}")
    params = estimator.get_params()
    return _clean(
        {
            "path": str(path),
            "sha256": digest,
            "checksum": "verified",
            "model": {
                "type": type(model).__name__ + (f"({type(estimator).__name__})" if estimator is not model else ""),
                "classes": classes,
                "positive_class": provenance.get("positive_class"),
                "n_features": n_features,
                "solver": params.get("solver"),
                "C": params.get("C"),
                "l1_ratio": params.get("l1_ratio"),
                "intercept": np.asarray(estimator.intercept_).tolist(),
            },
            "top_coefficients": [
                {"class": cls, "feature": name, "coefficient": float(value)} for _, cls, name, value in ranked
            ],
            "provenance": {
                "saved_by": provenance.get("client_name") or "server",
                "run_id": provenance.get("run_id"),
                "created_at": provenance.get("created_at"),
                "rounds": provenance.get("rounds", provenance.get("rounds_trained")),
                "label": provenance.get("label"),
                "clients": provenance.get("clients", {}),
                "model_settings": provenance.get("model", {}),
                "versions": versions,
            },
            "final_metrics": provenance.get("final_metrics", {}),
            "notes": notes,
        }
    )


def test_metrics(model: Any, test: Path) -> dict[str, Any]:
    """Metrics of the model on a CSV file, read with the feature schema the model was trained with."""
    from client_code.metrics import classification_metrics
    from client_code.schema import normalise_schema, to_dataset
    from client_code.tabular import DataError, read_channel

    provenance = model.fedsage_provenance_
    estimator = estimator_of(model)
    schema = provenance.get("schema")
    if not schema or not schema.get("label"):
        raise BadInput("the model's provenance holds no schema with a label column, so a test file cannot be scored")
    try:
        schema = normalise_schema(schema, "the model's schema")
        frame, info = read_channel(test)
        label = schema["label"]
        if label not in frame.columns:
            raise BadInput(
                f"{test} has no column {label!r}, the label the model was trained on; --test needs a file with "
                "the model's feature and label columns (such as the test.csv of the data the run used)"
            )
        data = to_dataset(frame, schema, str(test), info.locate)
    except DataError as exc:
        raise BadInput(str(exc)) from None
    if data.X.shape[1] != estimator.coef_.shape[1]:
        raise BadInput(
            f"{test} gives {data.X.shape[1]} features but the model has {estimator.coef_.shape[1]}; "
            "use a file with the columns the model was trained on"
        )
    metrics = classification_metrics(estimator, data, provenance.get("positive_class"))
    return _clean({"file": str(test), "rows": len(data), "metrics": metrics})


@contextlib.contextmanager
def opened(path: Path) -> Iterator[Path]:
    """The model file to verify and load: `path` itself, or the model.joblib inside a model.tar.gz.

    From an archive, only model.joblib and model.joblib.sha256 are extracted (regular files of at
    most MAX_MODEL_BYTES, through tarfile's "data" filter), into a temporary folder removed on
    exit. BadInput for an unreadable archive or one without them.
    """
    path = Path(path)
    if not path.name.endswith((".tar.gz", ".tgz")):
        yield path
        return
    if not path.is_file():
        raise BadInput(f"model archive {path} not found; give a client job's model.tar.gz or a run's model.joblib")
    names = ("model.joblib", "model.joblib" + CHECKSUM_SUFFIX)
    with tempfile.TemporaryDirectory(prefix="fedsage-inspect-") as folder:
        try:
            with tarfile.open(path, "r:gz") as archive:
                members = {member.name.removeprefix("./"): member for member in archive.getmembers()}
                for name in names:
                    member = members.get(name)
                    if member is None or not member.isfile() or member.size > MAX_MODEL_BYTES:
                        raise BadInput(
                            f"{path} holds no {name} (as a regular file under 1 GiB); give the model.tar.gz of a "
                            "fedsage client's training job"
                        )
                    archive.extract(member, folder, filter="data")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise BadInput(f"{path} is not a readable model.tar.gz ({exc})") from None
        yield Path(folder) / names[0]


def load_and_describe(path: Path, test: Path | None = None, top: int = 10) -> tuple[Any, dict[str, Any]]:
    """Verify, load and describe a model (a model.joblib, or a client's model.tar.gz), scored on `test` when given.

    Returns the loaded estimator and the JSON-ready report.
    """
    with opened(path) as model_file:
        model, digest = load_model(model_file)
    report = describe(model, path, digest, top)
    if test is not None:
        report["test"] = test_metrics(model, test)
    return model, report


def inspect_model(path: Path, test: Path | None = None, top: int = 10) -> dict[str, Any]:
    """The report of `load_and_describe`."""
    return load_and_describe(path, test, top)[1]
