"""Partition schemes: how the rows left after the test hold-out are dealt to the clients.

A scheme is written as text, the `--partition` of `fedsage data prepare`:

* `iid`: every class is dealt evenly over the clients (stratified IID);
* `dirichlet:ALPHA`: label skew; each class is shared out in proportions drawn from
  Dirichlet(ALPHA, ..., ALPHA), independently per class (smaller ALPHA, stronger skew);
* `quantity:ALPHA`: size skew; one draw of Dirichlet(ALPHA) proportions decides how many rows
  each client gets, and every class is shared out in those same proportions, so class balance
  stays about the same everywhere;
* `column:NAME`: one client per value of column NAME (a region, a provider group), named after
  the value;
* `classes:1,2,3/4,5,6/7,8,9,0`: explicit class lists, one per client (the CLI's `--classes`).
  For every class, each client that does not list it receives `other_fraction` of the class's
  rows; the clients that list it share `selected_fraction` of the rows that remain. Rows dealt
  to nobody are left out and reported.

Every scheme returns one array of row positions per client, and no row is dealt twice.
Logistic regression needs every class in every client's training split (otherwise the shape
of its parameters changes), so the random schemes first reserve `min_class_rows` rows of every
class for every client, and `check_coverage` rejects any partition that still leaves a client
short; docs/adr/0002-data-partitions.md explains why.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from orchestrator.config import NAME_PATTERN
from orchestrator.errors import BadInput

KINDS = ("iid", "dirichlet", "quantity", "column", "classes")
NAME_MAX = 24  # ClientSettings.name in config.py
MAX_COLUMN_CLIENTS = 64
HELP = "iid, dirichlet:ALPHA, quantity:ALPHA, column:NAME or classes:1,2/3,4"


@dataclass(frozen=True)
class Partition:
    """A parsed partition scheme (see the module docstring for what each kind means)."""

    kind: str
    alpha: float = 0.0
    column: str = ""
    class_lists: tuple[tuple[str, ...], ...] = ()
    selected_fraction: float = 1.0
    other_fraction: float = 0.0

    def __str__(self) -> str:
        """The scheme as `--partition` text, e.g. `dirichlet:0.3`."""
        if self.kind in ("dirichlet", "quantity"):
            return f"{self.kind}:{self.alpha:g}"
        if self.kind == "column":
            return f"column:{self.column}"
        if self.kind == "classes":
            lists = "/".join(",".join(group) for group in self.class_lists)
            return f"classes:{lists} (selected {self.selected_fraction:g}, other {self.other_fraction:g})"
        return self.kind

    @property
    def decides_clients(self) -> bool:
        """True when the scheme, not `--clients`, decides how many clients there are."""
        return self.kind in ("column", "classes")


def parse_partition(text: str, selected_fraction: float = 1.0, other_fraction: float = 0.0) -> Partition:
    """Parse `--partition` text into a Partition; BadInput with an example for anything else."""
    kind, _, argument = text.strip().partition(":")
    kind = kind.strip().lower()
    argument = argument.strip()
    if kind not in KINDS:
        raise BadInput(f"unknown partition {text!r}; use one of: {HELP}")
    if kind == "iid":
        if argument:
            raise BadInput(f"partition 'iid' takes no argument, got {text!r}")
        return Partition("iid")
    if kind in ("dirichlet", "quantity"):
        try:
            alpha = float(argument)
        except ValueError:
            alpha = float("nan")
        if not np.isfinite(alpha) or alpha <= 0:
            raise BadInput(f"partition {text!r}: ALPHA must be a positive number, e.g. {kind}:0.5")
        return Partition(kind, alpha=alpha)
    if kind == "column":
        if not argument:
            raise BadInput(f"partition {text!r} names no column; use column:NAME, e.g. column:region")
        return Partition("column", column=argument)
    if not 0 < selected_fraction <= 1:
        raise BadInput(f"--selected-fraction must be in (0, 1], got {selected_fraction}")
    if not 0 <= other_fraction < 1:
        raise BadInput(f"--other-fraction must be in [0, 1), got {other_fraction}")
    return Partition(
        "classes",
        class_lists=parse_class_lists(argument),
        selected_fraction=selected_fraction,
        other_fraction=other_fraction,
    )


def parse_class_lists(text: str) -> tuple[tuple[str, ...], ...]:
    """Parse `1,2,3/4,5,6/7,8,9,0`: one comma-separated class list per client, lists split by `/`."""
    groups = tuple(tuple(item.strip() for item in group.split(",") if item.strip()) for group in text.split("/"))
    if not text.strip() or any(not group for group in groups):
        raise BadInput(
            f"class lists {text!r}: give one non-empty comma-separated list per client, "
            "separated by '/', e.g. --classes 1,2,3/4,5,6/7,8,9,0"
        )
    return groups


def safe_client_name(value: Any) -> str:
    """A client name from a column value: letters and digits kept, anything else one hyphen, 24 characters."""
    text = re.sub(r"[^A-Za-z0-9]+", "-", str(value)).strip("-")[:NAME_MAX].rstrip("-")
    if not text:
        raise BadInput(f"value {value!r} gives no usable client name (it needs a letter or digit); relabel it")
    return text


def check_client_names(names: list[str]) -> None:
    """Client names must be usable as training job names and folder names, and unique."""
    for name in names:
        if len(name) > NAME_MAX or not re.match(NAME_PATTERN, name):
            raise BadInput(
                f"client name {name!r} is not usable; use up to {NAME_MAX} letters, digits and single "
                "hyphens, starting and ending with a letter or digit"
            )
    twice = sorted(name for name, count in Counter(names).items() if count > 1)  # linear: 100,000 names are fine
    if twice:
        raise BadInput(f"client name {twice[0]!r} is used twice; give every client its own name")


def _column_values(frame: pd.DataFrame, column: str, label: str) -> list[Any]:
    """The distinct values of the partition column, in a stable order."""
    if column not in frame.columns:
        shown = ", ".join(map(str, frame.columns[:10])) + (", ..." if frame.shape[1] > 10 else "")
        raise BadInput(f"partition column {column!r} not found; choose one of: {shown}")
    if column == label:
        raise BadInput(f"partition column {column!r} is the label; partition by a feature column")
    if frame[column].isna().any():
        raise BadInput(f"partition column {column!r} has empty values; fill them or choose another column")
    values = sorted(frame[column].unique().tolist(), key=lambda v: (str(type(v)), v))
    if len(values) > MAX_COLUMN_CLIENTS:
        raise BadInput(
            f"partition column {column!r} has {len(values)} distinct values, one client each; choose a "
            f"column with at most {MAX_COLUMN_CLIENTS} values (a region or group, not an id)"
        )
    return values


def client_names(
    partition: Partition, frame: pd.DataFrame, label: str, clients: int | None, names: tuple[str, ...], default: int
) -> list[str]:
    """The clients a partition produces, in order, checked against `--clients` and `--names`.

    `column:` names its clients after the column's values; `classes:` has one client per class
    list; other schemes have `clients` clients (or as many as `names`, or `default`).
    """
    if partition.kind == "column":
        if names:
            raise BadInput("--names cannot be used with a column: partition; the column's values name the clients")
        values = _column_values(frame, partition.column, label)
        result = [safe_client_name(v) for v in values]
        for value, name in zip(values, result, strict=True):
            clash = [v for v, n in zip(values, result, strict=True) if n == name and v != value]
            if clash:
                raise BadInput(
                    f"values {value!r} and {clash[0]!r} of column {partition.column!r} both give client "
                    f"name {name!r}; make the values distinct in letters and digits"
                )
        source = f"column {partition.column!r} has {len(result)} values"
    elif partition.kind == "classes":
        count = len(partition.class_lists)
        result = list(names) or [f"client-{i + 1}" for i in range(count)]
        if len(result) != count:
            raise BadInput(f"--names lists {len(result)} clients but --classes gives {count} class lists")
        source = f"--classes gives {count} class lists"
    else:
        count = clients or len(names) or default
        result = list(names) or [f"client-{i + 1}" for i in range(count)]
        if len(result) != count:
            raise BadInput(f"--names lists {len(result)} clients but --clients is {count}; make them agree")
        source = ""
    if partition.decides_clients and clients is not None and clients != len(result):
        raise BadInput(f"--clients {clients} does not match: {source}; drop --clients")
    check_client_names(result)
    return result


def deal(
    partition: Partition,
    frame: pd.DataFrame,
    label: str,
    classes: list[Any],
    clients: int,
    rng: np.random.Generator,
    min_class_rows: int,
) -> list[np.ndarray]:
    """Deal the rows of `frame` to `clients` clients; return each client's sorted row positions."""
    if partition.kind == "iid":
        return partition_iid(frame, label, clients, rng)
    if partition.kind == "column":
        values = _column_values(frame, partition.column, label)
        column = frame[partition.column].to_numpy()
        return [np.flatnonzero(column == value) for value in values]
    if partition.kind == "classes":
        return partition_classes(frame, label, classes, partition, rng)
    return partition_dirichlet(frame, label, clients, rng, partition.alpha, min_class_rows, partition.kind)


def _class_rows(frame: pd.DataFrame, label: str) -> list[tuple[Any, np.ndarray]]:
    """Row positions of each class (as a plain Python value), classes in a stable order."""
    items = frame.groupby(label).indices.items()
    return sorted(((k.item() if hasattr(k, "item") else k, v) for k, v in items), key=lambda kv: str(kv[0]))


def partition_iid(frame: pd.DataFrame, label: str, clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Deal the rows of each class evenly over the clients (stratified IID partition)."""
    parts: list[list[int]] = [[] for _ in range(clients)]
    offset = 0
    for _, index in _class_rows(frame, label):
        shuffled = rng.permutation(index)
        for i, chunk in enumerate(np.array_split(shuffled, clients)):
            parts[(i + offset) % clients].extend(chunk.tolist())
        offset += len(shuffled) % clients
    return [np.sort(np.asarray(p, dtype=int)) for p in parts]


def partition_dirichlet(
    frame: pd.DataFrame,
    label: str,
    clients: int,
    rng: np.random.Generator,
    alpha: float,
    min_class_rows: int,
    kind: str = "dirichlet",
) -> list[np.ndarray]:
    """Label skew (`dirichlet`) or size skew (`quantity`) with Dirichlet(alpha) proportions.

    Every client first receives `min_class_rows` rows of every class (the reserve that keeps
    every class in every client's training split); the remaining rows of each class are cut in
    Dirichlet proportions, drawn per class for label skew and once for all classes for size
    skew. The draws come from `rng`, so the seed decides the partition.
    """
    parts: list[list[int]] = [[] for _ in range(clients)]
    shared = rng.dirichlet(np.full(clients, alpha)) if kind == "quantity" else None
    for cls, index in _class_rows(frame, label):
        if len(index) < clients * min_class_rows:
            raise BadInput(
                f"class {cls!r} has {len(index)} rows outside the test set, too few to give each of "
                f"{clients} clients {min_class_rows}; use fewer clients, more data or a lower --min-class-rows"
            )
        shuffled = rng.permutation(index)
        reserved, rest = shuffled[: clients * min_class_rows], shuffled[clients * min_class_rows :]
        proportions = shared if shared is not None else rng.dirichlet(np.full(clients, alpha))
        cuts = np.round(np.cumsum(proportions)[:-1] * len(rest)).astype(int)
        for i, (mine, extra) in enumerate(zip(np.split(reserved, clients), np.split(rest, cuts), strict=True)):
            parts[i].extend(mine.tolist() + extra.tolist())
    return [np.sort(np.asarray(p, dtype=int)) for p in parts]


def partition_classes(
    frame: pd.DataFrame, label: str, classes: list[Any], partition: Partition, rng: np.random.Generator
) -> list[np.ndarray]:
    """Explicit class lists: owners of a class share `selected_fraction` of it, others get `other_fraction` each.

    For each class, in order: every client that does not list it takes `other_fraction` of the
    class's rows; the clients that list it share `selected_fraction` of what is left, evenly.
    Whatever remains is dealt to nobody.
    """
    by_text = {str(c): c for c in classes}
    lists = partition.class_lists
    for group in lists:
        for item in group:
            if item not in by_text:
                raise BadInput(
                    f"class {item!r} in --classes is not a value of label {label!r} "
                    f"(its classes: {', '.join(map(str, classes))})"
                )
    unlisted = [text for text in by_text if not any(text in group for group in lists)]
    if unlisted:
        raise BadInput(f"class {unlisted[0]!r} is in no client's list; add it to one of the --classes lists")
    parts: list[list[int]] = [[] for _ in lists]
    rows = dict(_class_rows(frame, label))
    for text, cls in by_text.items():
        owners = [i for i, group in enumerate(lists) if text in group]
        others = [i for i in range(len(lists)) if i not in owners]
        if len(others) * partition.other_fraction >= 1:
            raise BadInput(
                f"--other-fraction {partition.other_fraction:g} for each of the {len(others)} clients that do not "
                f"list class {text!r} leaves none for its owners; use less than {1 / len(others):.3g}"
            )
        shuffled = rng.permutation(rows.get(cls, np.array([], dtype=int)))
        each = int(round(partition.other_fraction * len(shuffled)))
        for k, i in enumerate(others):
            parts[i].extend(shuffled[k * each : (k + 1) * each].tolist())
        remaining = shuffled[len(others) * each :]
        kept = remaining[: int(round(partition.selected_fraction * len(remaining)))]
        for i, chunk in zip(owners, np.array_split(kept, len(owners)), strict=True):
            parts[i].extend(chunk.tolist())
    return [np.sort(np.asarray(p, dtype=int)) for p in parts]


def check_coverage(
    partition: Partition,
    frame: pd.DataFrame,
    label: str,
    classes: list[Any],
    names: list[str],
    parts: list[np.ndarray],
    min_class_rows: int,
) -> None:
    """Every client needs at least `min_class_rows` rows of every class; otherwise say how to fix it."""
    hints = {
        "iid": "use fewer clients, more data or a lower --min-class-rows",
        "column": f"merge small groups of {partition.column!r}, drop them, or lower --min-class-rows",
        "classes": "raise --other-fraction or add the class to that client's list",
    }
    labels = frame[label].to_numpy()
    for name, index in zip(names, parts, strict=True):
        if len(index) == 0:
            raise BadInput(f"the partition left client {name!r} with no rows; use fewer clients or another partition")
        present = pd.Series(labels[index]).value_counts()
        for cls in classes:
            have = int(present.get(cls, 0))
            if have < min_class_rows:
                hint = hints.get(partition.kind, "use fewer clients or a larger ALPHA")
                raise BadInput(
                    f"client {name!r} gets {have} rows of class {cls!r} and needs at least {min_class_rows} "
                    f"(every client trains on every class); {hint}"
                )
