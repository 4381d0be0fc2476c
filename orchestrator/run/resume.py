"""`--resume ID`: find where a stopped run can go on - its folder, saved configuration and last checkpoint.

The resumed run is a new run (a new folder and id) with the stopped run's clients, configuration
and seed (its saved federation.toml) and schema (its schema.json), starting from the global model,
strategy state and random state of the stopped run's last checkpoint (run/checkpoint.py). Its
run.json and model provenance record `resumed_from: {run_id, round}`. What the next round depends
on at a client is rebuilt the same way by the new jobs: the data, the schema, SMOTE (done once
before round 1 from the seed); each round's training starts from the global parameters only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from client_code.constants import SCHEMA_FILE
from orchestrator import config
from orchestrator.config import Federation
from orchestrator.errors import BadInput
from orchestrator.run import checkpoint
from orchestrator.run.checkpoint import Checkpoint


@dataclass(frozen=True)
class ResumePoint:
    """A stopped run and the checkpoint its continuation starts from."""

    run_id: str
    run_dir: Path
    federation: Federation
    checkpoint: Checkpoint

    def record(self) -> dict[str, str | int]:
        """What run.json and the model's provenance keep: {"run_id": ..., "round": ...}."""
        return {"run_id": self.run_id, "round": self.checkpoint.round}


def find(out: Path, run_id: str, adjust: config.Edit | None = None) -> ResumePoint:
    """The resume point of run `run_id` under `out`; `adjust` changes its configuration before it is validated.

    The configuration is the run's federation.toml, with [server] schema set to the run's
    schema.json when there is one (the schema the checkpoints were trained under). Raises BadInput
    (one line) for a run folder that does not exist, one without a checkpoint, a configuration
    that no longer loads, and a run that already finished all its rounds.
    """
    run_dir = Path(out) / run_id
    if not run_dir.is_dir():
        raise BadInput(f"run folder {run_dir} does not exist; check the run id with `fedsage runs` (and --out)")
    latest = checkpoint.latest(run_dir)
    if latest is None:
        raise BadInput(
            f"run {run_id} has no checkpoint ({run_dir / checkpoint.FOLDER} is empty or missing): it stopped before "
            f"its first round; run it again with `fedsage local -c {run_dir / 'federation.toml'}`"
        )
    try:
        federation = config.load(run_dir / "federation.toml", adjust)
    except BadInput as exc:
        raise BadInput(f"run {run_id}'s configuration no longer loads: {exc}") from None
    if (run_dir / SCHEMA_FILE).is_file():
        federation.server.schema_path = run_dir / SCHEMA_FILE
    point = checkpoint.read(latest)
    rounds = federation.federation.rounds
    if point.round >= rounds:
        raise BadInput(
            f"run {run_id} already has {point.round} rounds and asks for {rounds}; nothing to resume (give --rounds "
            f"above {point.round} to train it further)"
        )
    return ResumePoint(run_id, run_dir, federation, point)
