"""Experiment tracking: a run's folder logged to MLflow once the run has ended, whatever its status.

Optional: MLflow comes with `pip install 'fedsage[mlflow]'` (mlflow-skinny, MLflow's client; the
full `mlflow` package works as well and adds its UI and SQL stores). A run asks for tracking with
`[tracking] mlflow_uri` in federation.toml or `--mlflow URI`; without MLflow installed that is bad
input naming the extra, before anything starts. `Tracker.connect` checks the store before the
run (the experiment is created if new), so a wrong URI fails fast with nothing written.

Nothing here observes the run while it goes on: everything is read back from the run folder
(run.json, metrics.json, model.joblib, report and plots) after `FederationRun.execute` returns or
raises, so a failed or interrupted run is logged too, and `log_run` logs any earlier run folder
(`fedsage runs track`). What an MLflow run gets:

* params: the hyperparameters (`federation.*`, `model.*`), the backend and the clients;
* metrics, step = round: `server.<metric>` (the global model on the test set, round 0 = the
  initial model) and `<client>.<metric>` (what each client reported), as in metrics.csv;
* the model: model.joblib, verified and loaded as `fedsage inspect` does (orchestrator/model_file.py),
  as an MLflow scikit-learn model whose pyfunc flavour predicts class probabilities (a regressor's,
  or an sgd hinge model's, `predict`: values or classes), with a
  signature and an input example built from the feature schema (numeric columns at their
  mean, categoricals at their first level), so no row of the server's test set leaves it;
* artifacts: report.md, run.json, metrics.json/.csv, federation.toml and the plots;
* tags `fedsage.run_id`, `fedsage.status`, `fedsage.backend`, `fedsage.model_sha256`, and the
  MLflow run status: FINISHED (completed), KILLED (interrupted) or FAILED.

run.json's `tracking` then records the tracking URI, the experiment and the MLflow run id.
A tracking failure after the run never fails the run: it becomes a warning.

A `file:` URI is MLflow's file store, which MLflow 3 keeps in maintenance mode and refuses unless
MLFLOW_ALLOW_FILE_STORE is true: naming one is taken as that consent (an explicit
MLFLOW_ALLOW_FILE_STORE=false still refuses it).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import BadInput
from orchestrator.run.folder import RunSummary, write_json

if TYPE_CHECKING:
    from orchestrator.config import Federation
    from orchestrator.run.lifecycle import FederationRun, RunOutcome

log = logging.getLogger(__name__)

EXTRA = "fedsage[mlflow]"
ARTIFACTS = ("report.md", "run.json", "metrics.json", "metrics.csv", "federation.toml")
STATUSES = {"completed": "FINISHED", "interrupted": "KILLED"}  # anything else: FAILED
BATCH = 1000  # MLflow's LogBatch takes at most 1000 metrics per call


def _mlflow() -> Any:
    """The mlflow module; BadInput naming the extra when it is not installed."""
    try:
        import mlflow
    except ImportError:
        raise BadInput(
            f"MLflow tracking (--mlflow or [tracking] mlflow_uri) needs MLflow: pip install '{EXTRA}'"
        ) from None
    if not logging.getLogger().isEnabledFor(logging.DEBUG):  # MLflow's INFO lines would break the progress view
        logging.getLogger("mlflow").setLevel(logging.WARNING)
    return mlflow


@dataclass(frozen=True)
class Tracker:
    """Where runs are logged: an MLflow tracking URI and experiment name."""

    uri: str
    experiment: str

    @classmethod
    def connect(cls, uri: str, experiment: str) -> Tracker:
        """Check that MLflow is installed and `uri` usable, creating `experiment` there if new.

        Raises BadInput (one line) when MLflow is missing or the store refuses: nothing is written
        to a run folder before this succeeds.
        """
        mlflow = _mlflow()
        if uri.startswith("file:") or "://" not in uri:
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            client = mlflow.MlflowClient(tracking_uri=uri)
            if client.get_experiment_by_name(experiment) is None:
                client.create_experiment(experiment)
        except Exception as exc:  # noqa: BLE001 - any refusal of the store is the user's URI to fix
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BadInput(f"MLflow tracking URI {uri} cannot be used: {first}") from None
        return cls(uri, experiment)

    def log_run(self, run_dir: Path) -> str:
        """Log a run folder (see the module docstring) as a new MLflow run; return its id and record it in run.json.

        BadInput when the folder has no readable run.json; MLflow's own errors pass through.
        """
        mlflow = _mlflow()
        run_dir = Path(run_dir)
        summary = RunSummary.load(run_dir / "run.json")
        client = mlflow.MlflowClient(tracking_uri=self.uri)
        experiment = client.get_experiment_by_name(self.experiment)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(self.experiment)
        tags = {"fedsage.run_id": summary.run_id, "fedsage.status": summary.status, "fedsage.backend": summary.backend}
        run = client.create_run(experiment_id, run_name=summary.run_id, tags=tags)
        run_id = run.info.run_id
        try:
            # the model first: MLflow copies the step-0 metrics a run already has to a model logged later
            if (run_dir / "model.joblib").is_file():
                _log_model(mlflow, run_id, run_dir / "model.joblib", self.uri)
            _log_params_and_metrics(client, run_id, summary, run_dir)
            for name in (*ARTIFACTS, *sorted(p.name for p in run_dir.glob("*.png"))):
                if (run_dir / name).is_file():
                    client.log_artifact(run_id, str(run_dir / name))
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id, STATUSES.get(summary.status, "FAILED"))
        tracked = {"mlflow_uri": self.uri, "experiment": self.experiment, "run_id": run_id}
        write_json(run_dir / "run.json", replace(summary, tracking=tracked).to_dict())
        return run_id

    def log_quietly(self, run_dir: Path) -> str | None:
        """log_run, turning any failure into one warning line that says how to retry (None when it worked)."""
        try:
            self.log_run(run_dir)
        except Exception as exc:  # noqa: BLE001 - the run's own result stands
            return (
                f"the run was not logged to MLflow at {self.uri} ({type(exc).__name__}: {exc}); retry with "
                f"`fedsage runs track {run_dir.name} --out {run_dir.parent} --mlflow {self.uri}`"
            )
        return None


def tracker_for(federation: Federation) -> Tracker | None:
    """The connected Tracker the federation's [tracking] asks for (default experiment: its name), or None."""
    settings = federation.tracking
    if settings.mlflow_uri is None:
        return None
    return Tracker.connect(settings.mlflow_uri, settings.experiment or federation.federation.name)


def execute(run: FederationRun, tracker: Tracker | None) -> RunOutcome:
    """Execute `run`; with a tracker, log its folder afterwards whatever happened.

    A logging failure never changes the run's result: it is a warning of the outcome, or, when
    the run itself failed, a warning on the log (the run's own error is what is raised).
    """
    if tracker is None:
        return run.execute()
    try:
        outcome = run.execute()
    except BaseException:
        if run.folder.path("run.json").exists():
            warning = tracker.log_quietly(run.run_dir)
            if warning:
                log.warning("%s", warning)
        raise
    warning = tracker.log_quietly(run.run_dir)
    if warning:
        outcome.warnings.append(warning)
    return outcome


def _log_params_and_metrics(client: Any, run_id: str, summary: RunSummary, run_dir: Path) -> None:
    """The hyperparameters, backend and clients as params; every round's server and client metrics (step = round)."""
    import json

    from mlflow.entities import Metric, Param

    from orchestrator.run.report import setting

    params = {**summary.settings(), "backend": summary.backend, "clients": ",".join(summary.clients)}
    client.log_batch(run_id, params=[Param(k, setting(v)) for k, v in params.items()])
    try:
        rounds = json.loads((run_dir / "metrics.json").read_text()).get("rounds") or []
    except (OSError, ValueError):
        rounds = []
    started = dt.datetime.fromisoformat(summary.started_at) if summary.started_at else dt.datetime.now(dt.UTC)
    elapsed, metrics = 0.0, []
    for record in rounds:  # each round's metrics at the time it ended: the start plus the rounds' seconds
        elapsed += float(record.get("seconds") or 0.0)
        step, timestamp = int(record["round"]), int((started.timestamp() + elapsed) * 1000)
        values = {f"server.{k}": v for k, v in record["server"].items()}
        values |= {f"{name}.{k}": v for name, reported in record["clients"].items() for k, v in reported.items()}
        metrics += [Metric(k, float(v), timestamp, step) for k, v in values.items() if isinstance(v, int | float)]
    for start in range(0, len(metrics), BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + BATCH])


def _log_model(mlflow: Any, run_id: str, path: Path, uri: str) -> None:
    """model.joblib (checksum verified, allow-list unpickled) as an MLflow sklearn model, with signature and example."""
    import warnings
    from importlib import metadata

    from mlflow.models import infer_signature

    from orchestrator.model_file import load_model

    model, digest = load_model(path)
    example = input_example(model)
    # class probabilities where the model has them; a regressor's (or an sgd hinge model's) predictions
    predict = "predict_proba" if hasattr(model, "predict_proba") else "predict"
    signature = infer_signature(example, getattr(model, predict)(example))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's notes on the file store and on pip requirements
        mlflow.set_tracking_uri(uri)
        with mlflow.start_run(run_id=run_id):
            mlflow.sklearn.log_model(
                model,
                name="model",
                signature=signature,
                input_example=example,
                pyfunc_predict_fn=predict,
                pip_requirements=[f"{p}=={metadata.version(p)}" for p in ("scikit-learn", "numpy", "skops")],
            )
            mlflow.set_tag("fedsage.model_sha256", digest)


def input_example(model: Any) -> Any:
    """One raw row the model (a Pipeline that scores raw rows) takes, built from its feature schema alone.

    Numeric columns at their mean and categoricals at their first level: no row of anyone's data
    is logged. A DataFrame named after the schema's columns.
    """
    import pandas as pd

    schema = getattr(model, "fedsage_provenance_", {}).get("schema") or {}
    row = {
        f["name"]: f["levels"][0] if f["kind"] == "categorical" and f.get("levels") else f.get("mean", 0.0)
        for f in schema.get("features", [])
    }
    return pd.DataFrame([row])
