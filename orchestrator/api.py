"""fedsage's Python API: the functions behind `fedsage local`, `launch`, `runs`, `logs` and `inspect`.

For notebooks and scripts (docs/python-api.md walks through them). Every function returns typed
results and prints nothing; bad input raises orchestrator.errors.BadInput and a run that cannot
finish RunFailed (both FedsageError, with a one-line message), exactly where the CLI exits 2 and 1.
Optional arguments left None take the defaults of orchestrator/defaults.py, as the CLI's do.

    from orchestrator import api

    outcome = api.local(clients=3, rounds=5, dataset="breast-cancer", out="runs")
    outcome.final_metrics["roc_auc"]
    api.runs("runs")                       # [RunInfo, ...]
    api.compare([a, b], out="runs").plot   # the PNG of their curves
    api.inspect(outcome.model_path).model  # the verified scikit-learn model

A run's progress can be watched with `observer`, a callable that receives every event of
orchestrator/run/events.py (RoundFinished, JobChanged, ...).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import defaults
from orchestrator.config import Federation
from orchestrator.errors import BadInput, FedsageError, RunFailed
from orchestrator.local import LocalOptions, run_local
from orchestrator.run.events import Observer, ignore
from orchestrator.run.lifecycle import RunOutcome
from orchestrator.runs import Comparison, RunDetails, RunInfo

__all__ = [
    "BadInput",
    "Comparison",
    "FedsageError",
    "InspectedModel",
    "RunDetails",
    "RunFailed",
    "RunInfo",
    "RunOutcome",
    "compare",
    "dry_run",
    "inspect",
    "launch",
    "local",
    "logs",
    "runs",
    "show",
    "track",
]

RUNS = Path(defaults.RUNS)


def local(options: LocalOptions | None = None, /, *, observer: Observer = ignore, **fields: Any) -> RunOutcome:
    """Run a whole federation on this machine (`fedsage local`): one process (or container) per client, no AWS.

    Give a `LocalOptions` or its fields as keywords (`local(rounds=3, data_dir="prepared/")`):
    clients, rounds, data_dir (a prepared-data folder or the owners' raw exports), dataset (a
    built-in data set, generated into the run folder), out, min_clients, max_iter, join_timeout
    and round_timeout (seconds), seed, balance, smote_ratio, positive_class, label, backend
    (process or docker) and its settings, mlflow (a tracking URI to log the run to), strategy and
    strategy_parameters (`[federation] strategy` and its `[strategy]` table), update_norm_factor,
    privacy (the `[privacy]` table as a dict: mode, clipping_norm, noise_multiplier, delta); None takes
    orchestrator/defaults.py's default (rounds and balance: the model kind's own where it has one,
    linear 1 round, xgboost 20 rounds and no balancing). `config` (a federation.toml, e.g. a run folder's, to repeat
    that run) or `resume` (the id of a stopped run under `out`, continued from its last checkpoint
    into a new run folder) take the federation from the file; the other fields given then override
    its values (orchestrator/overrides.py; with `resume` only rounds, timeouts, backend settings and
    mlflow). Returns the RunOutcome (run id and folder, per-round
    history, model path, jobs, wall time in seconds, warnings). BadInput before anything is written
    (an unknown keyword too); RunFailed once the run folder exists (its run.json and report say why);
    KeyboardInterrupt on Ctrl-C, after every job is stopped.
    """
    return run_local(LocalOptions.of(options, **fields), observer)


def _federation(config: str | Path | Federation) -> Federation:
    from orchestrator import config as config_module

    return config if isinstance(config, Federation) else config_module.load(Path(config))


def launch(
    config: str | Path | Federation | None = None,
    *,
    out: str | Path = RUNS,
    mlflow: str | None = None,
    observer: Observer = ignore,
    resume: str | None = None,
) -> RunOutcome:
    """Run the federation on SageMaker (`fedsage launch`): a training job in each client account, the server here.

    `config` is a federation.toml path or a Federation; the server's credentials come from its
    [server] profile (or the default chain). `resume` instead continues the stopped run of that id
    under `out` from its last checkpoint, with its saved federation.toml (BadInput: no such run
    folder, no checkpoint, a config that no longer loads). `mlflow` replaces [tracking]
    mlflow_uri. Raises as `local` does; every job this run created is stopped on failure or Ctrl-C.
    """
    from orchestrator import config as config_module
    from orchestrator import launch as launching
    from orchestrator.aws.sessions import server_session
    from orchestrator.run import resume as resuming

    if (config is None) == (resume is None):
        raise BadInput("give launch either a config or resume=RUN_ID")
    point = resuming.find(Path(out), resume) if resume is not None else None
    federation = point.federation if point is not None else _federation(config)
    if mlflow is not None:
        federation = federation.model_copy(
            update={
                "tracking": config_module.build(
                    config_module.TrackingSettings,
                    "mlflow",
                    mlflow_uri=mlflow,
                    experiment=federation.tracking.experiment,
                )
            }
        )
    return launching.launch(federation, server_session(federation.server), Path(out), observer, resume=point)


def dry_run(config: str | Path | Federation) -> list[dict[str, Any]]:
    """The CreateTrainingJob requests a launch would send, per client account, tokens masked; no AWS call."""
    from orchestrator import launch as launching

    return launching.dry_run(_federation(config))


def runs(out: str | Path = RUNS) -> list[RunInfo]:
    """Every run under `out`, oldest first (`fedsage runs`): id, start, backend, clients, rounds, status, metrics."""
    from orchestrator.runs import list_runs

    return list_runs(Path(out))


def show(run_id: str, out: str | Path = RUNS) -> RunDetails:
    """One run (`fedsage runs show`): its listing, run.json (RunSummary) and per-round history; BadInput if unknown."""
    from orchestrator.runs import show_run

    return show_run(run_id, Path(out))


def compare(run_ids: list[str], out: str | Path = RUNS, plot: str | Path | None = None) -> Comparison:
    """Compare runs (`fedsage runs compare`): final metrics side by side, differing settings, a PNG of their curves.

    The PNG goes to `plot`, by default `<out>/compare.png`.
    """
    from orchestrator.runs import compare_runs

    return compare_runs(list(run_ids), Path(out), Path(plot) if plot is not None else None)


def logs(run_id: str, out: str | Path = RUNS, client: str | None = None, lines: int | None = None) -> list[str]:
    """A run's server log, or client `client`'s (`fedsage logs`; CloudWatch for a cloud run), the last `lines` lines."""
    from orchestrator.runs import log_source, read_log

    return read_log(log_source(run_id, Path(out), client), lines)


def follow(run_id: str, out: str | Path = RUNS, client: str | None = None) -> Iterator[str]:
    """The same log line by line as it grows, until the run ends (`fedsage logs --follow`)."""
    from orchestrator.runs import follow_log, log_source

    return follow_log(log_source(run_id, Path(out), client))


def track(run_id: str, mlflow: str, out: str | Path = RUNS, experiment: str = "fedsage") -> str:
    """Log a run that has ended to MLflow (`fedsage runs track`); return the MLflow run id. Needs fedsage[mlflow]."""
    from orchestrator.runs import run_folder
    from orchestrator.tracking import Tracker

    return Tracker.connect(mlflow, experiment).log_run(run_folder(Path(out), run_id).root)


@dataclass(frozen=True)
class InspectedModel:
    """A model file after `fedsage inspect`'s checks: the loaded estimator, and the report `--json` prints.

    `model` is the scikit-learn estimator (its `fedsage_provenance_` says where it came from);
    `report` holds the path, sha256, model summary (family, task, classes or target), the family's
    tables (coefficients, layers or trees), provenance, the metrics
    recorded at the end of the run and, with a test file, the recomputed ones (`report["test"]`).
    """

    path: Path
    model: Any
    report: dict[str, Any]

    @property
    def final_metrics(self) -> dict[str, float | None]:
        """The server's test-set metrics recorded at the end of the run."""
        return self.report.get("final_metrics", {})


def inspect(path: str | Path, test: str | Path | None = None, top: int = 10) -> InspectedModel:
    """Verify a model file against its checksum, load it through the allow-list and describe it (`fedsage inspect`).

    `path`: a run's model.joblib, or a client's model.tar.gz; `test`: a CSV file with the label
    column to recompute the metrics on. BadInput for anything unverified or not a fedsage model.
    """
    from orchestrator.inspect import load_and_describe

    model, report = load_and_describe(Path(path), Path(test) if test is not None else None, top)
    return InspectedModel(Path(path), model, report)


def predict(model: str | Path, input: str | Path, out: str | Path | None = None) -> Any:
    """Score raw rows with a verified model (`fedsage predict`): a DataFrame, or a CSV file written whole.

    `model`: a run's model.joblib (checked against its .sha256; model.skops preferred when present);
    `input`: a CSV file or folder of raw rows (any column order, extra columns ignored). Without
    `out` returns a pandas DataFrame with `prediction` and `probability_<class>` per row (regression:
    `prediction`; an sgd hinge model: `score_<class>`), in input
    order; with `out` writes it there (refusing an existing file) and returns the Predictions
    summary. BadInput for a model that fails the checks, missing columns or unreadable cells.
    """
    from client_code.tabular import DataError, read_channel
    from orchestrator.model_file import load_model
    from orchestrator.predict import predict_file, predict_frame

    if out is not None:
        return predict_file(Path(model), Path(input), Path(out))
    loaded, _ = load_model(Path(model))
    try:
        frame, info = read_channel(Path(input))
    except DataError as exc:
        raise BadInput(str(exc)) from None
    return predict_frame(loaded, frame, str(input), info.locate)
