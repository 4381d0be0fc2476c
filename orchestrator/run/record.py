"""What a run records while it goes on, and what it makes of that at the end.

The run's lifecycle (run/lifecycle.py) feeds a RunRecord: every round, every warning, every
refused connection, the statistics phase. At the end the record gives the model's provenance
(attached to model.joblib and model.skops) and run.json's RunSummary.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.config import Federation, name_order
from orchestrator.federation.history import RunHistory
from orchestrator.run.events import ClientRefused, PrivacySpent, RunEvent, RunWarning, UpdateRejected
from orchestrator.run.folder import ClientSummary, RunFolder, RunSummary, versions
from orchestrator.run.watcher import JobWatcher

if TYPE_CHECKING:  # the data stack: a run's record exists from before its launch (run/lifecycle.py)
    from orchestrator.federation.statistics import PhaseResult
    from orchestrator.run.curves import TestScores
    from orchestrator.run.inputs import ServerData


@dataclass
class RunRecord:
    """One run's history, warnings, refused connections, statistics phase and final calibration."""

    run_id: str
    federation: Federation
    history: RunHistory = field(default_factory=RunHistory)
    warnings: list[str] = field(default_factory=list)
    refused: list[dict[str, str | None]] = field(default_factory=list)  # as run.json records them
    phase: PhaseResult | None = None
    calibration: dict[str, Any] = field(default_factory=dict)
    scores: TestScores | None = None  # the final model on the test set: run.json's test_set, test_curves.png
    privacy: dict[str, Any] = field(default_factory=dict)  # the privacy spent (federation/privacy.py), if DP is on
    resumed_from: dict[str, Any] = field(default_factory=dict)  # {run_id, round} of the run this one continues
    sources: dict[str, Any] = field(default_factory=dict)  # seed and input digests (run/provenance.py)
    partial: bool = False  # the model is the last good one of a run that stopped (run/saving.py)
    model_round: int | None = None  # the round of the model saved last (run/saving.py), None before any
    stopped: str = ""  # why a run with a partial model stopped (run.json's reason)
    started: float = field(default_factory=time.monotonic)
    started_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    def note(self, event: RunEvent) -> None:
        """Keep what run.json must show of an event: rejected updates and warnings, refused connections, privacy."""
        if isinstance(event, UpdateRejected):
            self.warnings.append(f"round {event.round}: update of client {event.name!r} left out: {event.reason}")
        elif isinstance(event, ClientRefused):
            self.refused.append(asdict(event))
        elif isinstance(event, RunWarning):
            self.warnings.append(event.message)
        elif isinstance(event, PrivacySpent):
            self.privacy = dict(event.budget)

    def digests(self) -> dict[str, Any]:
        """The seed, the digests of the server's inputs and code, and each client's channel digests, by client."""
        reports = self.phase.clients if self.phase else {}
        clients = {name: reports[name].digests for name in sorted(reports, key=name_order)}
        return {**self.sources, "clients": clients}

    def provenance(self, data: ServerData) -> dict[str, Any]:
        """What the saved model carries as `fedsage_provenance_`: run, clients, schema, strategy, privacy, metrics.

        `rounds` is the last evaluated round, `rounds_asked` the federation's; `partial` whether the
        run stopped there before its last round, `stopped` why ("" unless partial); `resumed_from`
        the run it continued ({} if none); `inputs` the digests (digests()).
        """
        assert data.test is not None
        final = self.history.final()
        return {
            "run_id": self.run_id,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "rounds": final.round,
            "rounds_asked": self.federation.federation.rounds,
            "partial": self.partial,
            "stopped": self.stopped if self.partial else "",
            "resumed_from": self.resumed_from,
            "seed": self.federation.federation.seed,
            "inputs": self.digests(),
            "clients": self.history.participants(),
            "label": data.label,
            "classes": data.classes,
            "task": data.schema.get("task"),
            "positive_class": data.schema.get("positive_class"),
            "feature_names": data.test.feature_names,
            "schema": data.schema,
            "prior": self.phase.prior() if self.phase else None,
            "model": self.federation.model.model_dump(mode="json", by_alias=True, exclude_none=True),
            "strategy": {"name": self.federation.federation.strategy, **self._strategy_parameters()},
            "privacy": self.privacy or None,
            "versions": versions(),
            "final_metrics": final.server,
        }

    def summary(
        self, status: str, reason: str, backend: str, watcher: JobWatcher, folder: RunFolder, data: ServerData | None
    ) -> RunSummary:
        """run.json's content: status, timings, every client's job, example count and statistics-phase report.

        `data` is None for a run that ended before its inputs were checked (run/startup.py).
        """
        from client_code.metrics import peak_memory_mb
        from client_code.schema import unseen_counts
        from orchestrator.run import report
        from orchestrator.run.phase import phase_summary

        schema = data.schema if data is not None else None
        participants = self.history.participants()
        final = self.history.final() if self.history.rounds else None
        clients = {}
        for config in self.federation.clients:
            job = watcher.final_status(config.name)
            phase_report = self.phase.clients.get(config.name) if self.phase else None
            examples = participants.get(config.name, {}).get("num_examples")
            clients[config.name] = ClientSummary(
                job_name=watcher.job_name(config.name),
                status=job.status,
                failure_reason=job.failure_reason,
                model_artifact=job.model_artifact,
                num_examples=examples,
                **(asdict(phase_report) if phase_report else {}),
            )
        return RunSummary(
            run_id=self.run_id,
            status=status,
            reason=reason,
            backend=backend,
            rounds=self.federation.federation.rounds,
            seconds=time.monotonic() - self.started,
            peak_memory_mb=round(peak_memory_mb(), 1),
            versions=versions(),
            clients=clients,
            warnings=self.warnings,
            files=folder.present(report.outputs(self.history, self.calibration, self.scores)),
            refused_connections=self.refused,
            positive_class=schema.get("positive_class") if schema else None,
            statistics=phase_summary(self.phase),
            unseen=unseen_counts(data.frame, schema) if data is not None and schema else {},
            calibration=self.calibration,
            started_at=self.started_at,
            rounds_completed=final.round if final else 0,
            final_metrics=final.server if final else {},
            hyperparameters={
                **self.federation.model_dump(mode="json", include={"federation", "model"}, by_alias=True),
                "strategy": self._strategy_parameters(),
                **({"privacy": self.federation.privacy.model_dump()} if self.federation.privacy.enabled else {}),
            },
            test_set=self.scores.summary() if self.scores is not None else {},
            privacy=self.privacy,
            task=schema.get("task") if schema else None,
            model=self.federation.model.model_dump(mode="json", by_alias=True, exclude_none=True),
            partial=self.partial,
            resumed_from=self.resumed_from,
            provenance=self.digests(),
        )

    def _strategy_parameters(self) -> dict[str, Any]:
        return self.federation.strategy_parameters().model_dump()
