"""What a finished run returns to its caller (the CLI, the Python API, MLflow tracking): RunOutcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.backends import JobStatus
from orchestrator.federation.history import RunHistory


@dataclass
class RunOutcome:
    """What a finished run produced."""

    run_id: str
    run_dir: Path
    history: RunHistory
    model_path: Path
    jobs: dict[str, JobStatus]
    seconds: float
    warnings: list[str] = field(default_factory=list)
    positive_class: Any = None
    calibration: dict[str, Any] = field(default_factory=dict)
    task: str = "binary"  # the schema's: binary, multiclass or regression
    privacy: dict[str, Any] = field(default_factory=dict)  # the privacy spent, with differential privacy on

    @property
    def final_metrics(self) -> dict[str, float]:
        """The server's test-set metrics after the last round."""
        return self.history.final().server
