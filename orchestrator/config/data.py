"""[data]: the label and the columns, for the statistics phase that computes the feature schema."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from client_code.models import TASKS
from orchestrator import defaults
from orchestrator.config.base import _Section


class DataSettings(_Section):
    """[data]: what the statistics phase needs to compute the schema from the clients' raw data.

    Used when the run has no schema (no [server] schema and no schema.json beside the test set).
    `positive_class` applies either way.
    """

    label: Annotated[str | None, Field(min_length=1, description="the label column of every client's CSV files")] = None
    categorical: Annotated[
        list[str], Field(description="columns to one-hot encode even if they hold numbers (others are inferred)")
    ] = []
    drop: Annotated[list[str], Field(description="columns to leave out, e.g. identifiers")] = []
    min_level_count: Annotated[
        int,
        Field(ge=1, description="k: a level seen fewer times over the federation folds into 'other' (default 10)"),
    ] = defaults.MIN_LEVEL_COUNT
    max_levels: Annotated[
        int, Field(ge=1, description="most distinct values a text column may have to be inferred categorical")
    ] = defaults.MAX_LEVELS
    positive_class: Annotated[
        str | int | None, Field(description="the class binary metrics score; default the minority class")
    ] = None
    task: Annotated[
        Literal[TASKS] | None,
        Field(
            description="binary, multiclass or regression; default inferred (a number with more than 20 distinct "
            "values, or any fraction, is a regression label)"
        ),
    ] = None

    def merge_options(self) -> dict[str, object]:
        """The keyword arguments of client_code.statistics.merge_statistics these settings give."""
        return {
            "min_level_count": self.min_level_count,
            "max_levels": self.max_levels,
            "categorical": tuple(self.categorical),
            "positive_class": self.positive_class,
            "task": self.task,
        }
