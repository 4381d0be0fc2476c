"""What a run makes of the statistics phase's result: warnings for the user, and run.json's record of it."""

from __future__ import annotations

from typing import Any

import pandas as pd

from client_code.schema import unseen_counts
from orchestrator.data.prepare import test_set_warnings
from orchestrator.federation.statistics import PhaseResult
from orchestrator.run.inputs import ServerData


def phase_warnings(phase: PhaseResult, data: ServerData) -> list[str]:
    """Classes the test set lacks (undefined AUCs), and every client's and the test set's unseen values, per column."""
    assert data.test is not None and data.schema is not None
    warnings = test_set_warnings(pd.DataFrame({data.label: data.test.y}), data.label, data.classes)
    unseen = {name: report.unseen for name, report in phase.clients.items()}
    unseen["server"] = {"test": unseen_counts(data.frame, data.schema)}
    for name, channels in unseen.items():
        for channel, columns in channels.items():
            for column, count in columns.items():
                warnings.append(
                    f"{name} {channel} data: {count} value(s) of {column!r} are not among the schema's levels "
                    "(encoded as 'other')"
                )
    return warnings


def phase_summary(phase: PhaseResult | None) -> dict[str, Any]:
    """run.json's view of the statistics phase: where the schema came from, how long it took, the class counts."""
    if phase is None:
        return {}
    return {
        "schema": phase.source,
        "seconds": round(phase.seconds, 3),
        "inferred_categorical": phase.inferred,
        "class_counts": {str(c): n for c, n in phase.raw_counts.items()},
        "trained_counts": {str(c): n for c, n in phase.trained_counts.items()},
    }
