"""Splitting rows the way `data prepare` does: stratified where the label allows, never losing a class.

A regression label has no classes, so its rows are stratified by the label's quintiles instead
(`strata`, held in the temporary column STRATUM while a folder is prepared, never written).
"""

from __future__ import annotations

import pandas as pd

STRATA = 5  # a regression label is stratified by its quintiles (test set, partition, validation split)
STRATUM = "\x00fedsage-stratum"  # the temporary column holding a regression row's stratum


def split_rows(frame: pd.DataFrame, label: str, size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split rows in two, stratified by label where every class has enough rows."""
    counts = frame[label].value_counts()
    stratify = frame[label] if counts.min() >= 2 and round(size * len(frame)) >= len(counts) else None
    from sklearn.model_selection import train_test_split  # here: a run from prepared data never splits

    first, second = train_test_split(frame, test_size=size, random_state=seed, stratify=stratify)
    return first.sort_index(), second.sort_index()


def split_client(
    part: pd.DataFrame, label: str, validation_size: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Split one client's rows into train and validation, keeping every class it has in train.

    Stratified where the classes allow it. A class the split sent entirely to validation (a
    class with a single row, say) gets one row moved back, because the client's model cannot
    train without it. Parts too small to split keep everything for training.
    """
    if validation_size <= 0 or len(part) < 4:
        return part, None
    train, validation = split_rows(part, label, validation_size, seed)
    missing = [cls for cls in part[label].unique() if cls not in set(train[label])]
    if missing:
        moved = pd.Index([validation.index[validation[label] == cls][0] for cls in missing])
        train = pd.concat([train, validation.loc[moved]]).sort_index()
        validation = validation.drop(index=moved)
    return train, (validation if len(validation) else None)


def strata(frame: pd.DataFrame, label: str) -> pd.Series:
    """Each row's quintile of a numeric label (0 .. STRATA-1; fewer bins when values repeat), for stratifying."""
    values = pd.to_numeric(frame[label], errors="coerce")
    return pd.qcut(values.rank(method="first"), STRATA, labels=False).astype(int)
