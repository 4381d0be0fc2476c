"""The saved model: a scikit-learn Pipeline that scores raw rows, with its provenance and checksums.

`model.joblib` is Pipeline([("preprocess", schema.preprocessor(schema)), ("model", estimator)]),
so `joblib.load(path).predict_proba(raw_dataframe)` works without fedsage. The provenance travels
inside it as `fedsage_provenance_`. `model.skops` is the same Pipeline in skops.io's format, which
loads without running pickled code (the format to use for a file that comes from elsewhere); it is
written when skops is installed (the server always has it; a training job writes joblib only).
Each file has a `<file>.sha256` beside it, which `fedsage inspect` and `fedsage predict` check.
"""

from __future__ import annotations

import copy
import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib

from .constants import CHECKSUM_SUFFIX, SKOPS_SUFFIX
from .schema import preprocessor

if TYPE_CHECKING:  # scikit-learn is imported when a model is saved, not with the run folder that saves it
    from sklearn.pipeline import Pipeline

# What a saved Pipeline refers to in its pickle besides its estimator (whose own references each model
# family lists: estimator_classes, saved_globals): the preprocessing of schema.preprocessor, numpy arrays,
# dtypes and scalars (numpy.core before numpy 2), joblib's array wrapper. The allow-list of model_file.py.
PIPELINE_GLOBALS = frozenset(
    {
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
FEDERATION_STATE = "_fedsage_"  # estimator attributes for the federation only (a family's wire state): never saved


def model_pipeline(schema: dict[str, Any], estimator: Any) -> Pipeline:
    """The schema's preprocessing followed by a copy of the trained estimator: a model that scores raw rows.

    The copy leaves out the attributes a model family keeps for the federation only (names that
    start with `_fedsage_`, such as the linear family's statistics), which prediction never needs.
    """
    from sklearn.pipeline import Pipeline

    saved = copy.deepcopy(estimator)
    for name in [n for n in vars(saved) if n.startswith(FEDERATION_STATE)]:
        delattr(saved, name)
    return Pipeline([("preprocess", preprocessor(schema)), ("model", saved)])


def _write_with_checksum(path: Path, dump) -> str:
    """Write a file through `dump(tmp_path)` atomically, then `<path>.sha256`; return the digest."""
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        dump(tmp)
        digest = hashlib.sha256(Path(tmp).read_bytes()).hexdigest()
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    checksum = path.with_name(path.name + CHECKSUM_SUFFIX)
    checksum.write_text(f"{digest}  {path.name}\n")
    return digest


def save_model(model: Any, path: Path, provenance: dict[str, Any], skops: bool | None = None) -> str:
    """Write `model` (a Pipeline) to `path` with joblib, its `.sha256`, and model.skops beside it; return the digest.

    `skops`: write `<stem>.skops` too (None: when skops.io is importable). The provenance is attached
    as `fedsage_provenance_` before writing. Raises OSError when the folder cannot be written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.fedsage_provenance_ = provenance
    digest = _write_with_checksum(path, lambda tmp: joblib.dump(model, tmp))
    if skops is None:
        try:
            import skops.io  # noqa: F401
        except ImportError:
            skops = False
        else:
            skops = True
    if skops:
        import skops.io as sio

        _write_with_checksum(path.with_suffix(SKOPS_SUFFIX), lambda tmp: sio.dump(model, tmp))
    return digest
