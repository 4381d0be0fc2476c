"""What `fedsage data prepare` takes (PrepareOptions) and what it wrote (PrepareSummary): plain data.

Kept apart from data/prepare.py, which needs pandas and NumPy to split a frame, so that a
built-in data set copied from the cache (data/cache.py) reaches the run's launch without them
(issue 15: `fedsage local` starts its client jobs before its heavy imports).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator import defaults

if TYPE_CHECKING:
    import pandas as pd

    from orchestrator.data import partition


@dataclass(frozen=True)
class PrepareOptions:
    """How to split and prepare a data set (the options of `fedsage data prepare`).

    `partition` is the scheme as text (see partition.py); `class_lists` schemes also use
    `selected_fraction` and `other_fraction`. `clients` defaults to 3 for schemes that do not
    decide the number of clients themselves. `min_class_rows` is the fewest rows of every class
    each client must receive (docs/adr/0002-data-partitions.md).
    """

    label: str
    clients: int | None = None
    test_size: float = 0.2
    validation_size: float = 0.2
    seed: int = 42
    categorical: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    client_names: tuple[str, ...] = ()
    partition: str = "iid"
    selected_fraction: float = 1.0
    other_fraction: float = 0.0
    min_class_rows: int = 5
    positive_class: str | None = None
    min_level_count: int = defaults.MIN_LEVEL_COUNT
    max_levels: int = defaults.MAX_LEVELS
    task: str | None = None

    def names(self) -> list[str]:
        """Client names for schemes that do not name clients: the given ones, or client-1 .. client-N."""
        return list(self.client_names) or [f"client-{i + 1}" for i in range(self.clients or defaults.CLIENTS)]

    def scheme(self) -> partition.Partition:
        """The parsed partition scheme (BadInput if the text is not one)."""
        from orchestrator.data import partition

        return partition.parse_partition(self.partition, self.selected_fraction, self.other_fraction)


@dataclass
class PartSummary:
    """Rows and class counts of one written part (a client split or the test set)."""

    name: str
    split: str
    rows: int
    class_counts: dict[str, int]


@dataclass
class PrepareSummary:
    """What `prepare` wrote, for the table the CLI prints and for manifest.json.

    `parts` holds the test set, every client's train and validation splits, and, when a class
    list scheme dealt some rows to nobody, an `unassigned` part counting them. `schema` and
    `test` (the raw test rows) are what was written, kept in memory so a caller that runs the
    federation next (`fedsage local`) need not read them back; None when the folder was copied
    from the cache (data/cache.py), whose test set is read once, by the run that uses it.
    """

    out: Path
    label: str
    classes: list[Any]  # [] for a regression label
    schema: dict[str, Any]
    test: pd.DataFrame | None = field(repr=False)
    parts: list[PartSummary] = field(default_factory=list)
    partition: str = "iid"
    inferred: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def features(self) -> int:
        """Number of feature columns in the schema."""
        return len(self.schema["features"])

    @property
    def task(self) -> str:
        """binary, multiclass or regression (the schema's)."""
        return str(self.schema["task"])
