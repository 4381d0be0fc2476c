"""Built-in data sets, by name, for `fedsage local --dataset` and `fedsage data prepare --dataset`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator.data import synth
from orchestrator.errors import BadInput

if TYPE_CHECKING:  # each loader imports what it needs: `fedsage local` picks a data set before its jobs start
    import pandas as pd


@dataclass(frozen=True)
class BuiltinDataset:
    """A named data set with what `prepare` needs to know about its columns."""

    name: str
    description: str
    label: str
    categorical: tuple[str, ...]
    load: Callable[[int], pd.DataFrame]
    task: str | None = None  # None: inferred from the label, as for any input
    rows: int = 0  # rows `load` returns (part of the cache key of orchestrator/data/cache.py)


def _breast_cancer(seed: int) -> pd.DataFrame:
    """The Wisconsin diagnostic breast cancer data bundled with scikit-learn (569 rows)."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.rename(columns=lambda c: c.replace(" ", "_"))
    # scikit-learn codes malignant as 0; make malignant the positive class, as in fraud.
    frame["malignant"] = 1 - frame.pop("target")
    return frame


def _diabetes(seed: int) -> pd.DataFrame:
    """Efron et al.'s diabetes data bundled with scikit-learn (442 patients): raw values, progression after a year.

    scaled=False gives the measurements as recorded (age in years, sex coded 1/2, BMI, blood
    pressure, six serum measurements); the label is a quantitative measure of disease progression
    one year after baseline (25 to 346), a regression label.
    """
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    return frame.rename(columns={"target": "progression"})


FRAUD_ROWS = 75_000
DATASETS = {
    d.name: d
    for d in (
        BuiltinDataset(
            "synthetic-fraud",
            "75,000 synthetic healthcare providers, 10% fraudulent (see orchestrator/data/synth.py)",
            synth.LABEL,
            ("region",),
            lambda seed: synth.generate_fraud(rows=FRAUD_ROWS, seed=seed),
            rows=FRAUD_ROWS,
        ),
        BuiltinDataset(
            "breast-cancer",
            "569 tumours from scikit-learn's bundled Wisconsin data set, 37% malignant",
            "malignant",
            (),
            _breast_cancer,
            rows=569,
        ),
        BuiltinDataset(
            "diabetes",
            "442 patients from scikit-learn's bundled diabetes data set: disease progression after a year (regression)",
            "progression",
            ("sex",),
            _diabetes,
            task="regression",
            rows=442,
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
