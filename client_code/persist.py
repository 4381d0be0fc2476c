"""Writing a model file with its provenance and checksum."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import joblib
from sklearn.linear_model import LogisticRegression

from .constants import CHECKSUM_SUFFIX


def save_model(model: LogisticRegression, path: Path, provenance: dict[str, Any]) -> str:
    """Write the model to `path` with joblib, plus a `<path>.sha256` checksum; return the digest.

    The provenance travels inside the estimator as `fedsage_provenance_`, so `joblib.load` gives
    back a plain scikit-learn model that still says where it came from. The checksum lets
    `fedsage inspect` refuse a file that was changed after the run, before unpickling it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.fedsage_provenance_ = provenance
    tmp = path.with_name(path.name + ".tmp")
    joblib.dump(model, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    tmp.replace(path)
    path.with_name(path.name + CHECKSUM_SUFFIX).write_text(f"{digest}  {path.name}\n")
    return digest
