"""Built-in data sets, by name, for `fedsage local --dataset` and `fedsage data prepare --dataset`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from orchestrator.data import synth
from orchestrator.errors import BadInput


@dataclass(frozen=True)
class BuiltinDataset:
    """A named data set with what `prepare` needs to know about its columns."""

    name: str
    description: str
    label: str
    categorical: tuple[str, ...]
    load: Callable[[int], pd.DataFrame]


def _breast_cancer(seed: int) -> pd.DataFrame:
    """The Wisconsin diagnostic breast cancer data bundled with scikit-learn (569 rows)."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.rename(columns=lambda c: c.replace(" ", "_"))
    # scikit-learn codes malignant as 0; make malignant the positive class, as in fraud.
    frame["malignant"] = 1 - frame.pop("target")
    return frame


DATASETS = {
    d.name: d
    for d in (
        BuiltinDataset(
            "synthetic-fraud",
            "75,000 synthetic healthcare providers, 10% fraudulent (see orchestrator/data/synth.py)",
            synth.LABEL,
            ("region",),
            lambda seed: synth.generate_fraud(seed=seed),
        ),
        BuiltinDataset(
            "breast-cancer",
            "569 tumours from scikit-learn's bundled Wisconsin data set, 37% malignant",
            "malignant",
            (),
            _breast_cancer,
        ),
    )
}
DEFAULT = "synthetic-fraud"


def get(name: str) -> BuiltinDataset:
    """Look up a built-in data set, or say which names exist."""
    try:
        return DATASETS[name]
    except KeyError:
        raise BadInput(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}") from None
