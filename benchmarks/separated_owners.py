"""Separated owners: three raw exports, the statistics phase, 10 rounds, against the pooled pipeline.

Three data owners each hold one raw CSV export of the built-in synthetic-fraud generator (different
seeds, so different providers) with the quirks real exports have: owner 2 writes its columns in
reverse order and across two Hive-style part files, owner 1 in another row order, and only owner 3
has providers in region "islands". The server holds a fourth export as its test set. Nothing is
prepared, pooled or written beside the data: the run computes its schema in the statistics phase.

1. federated: `run_local` on that folder (one process per client, TLS on loopback, statistics
   phase, SMOTE inside each job, FedAvg, prior correction) for 10 rounds;
2. pooled pipeline: what one party holding all three exports would do: the schema from the pooled
   rows (`data prepare`'s code), the same LogisticRegression trained to convergence (1,000
   iterations) on the pooled rows balanced with SMOTE, the same prior correction.

Both are scored on the same test set. Reported: test ROC-AUC of both and their difference, the
schema's largest difference from the pooled one (means and scales), the statistics phase's time,
the run's wall time, and the mean predicted probability against the true rate (calibration).

Writes benchmarks/results/separated-owners.json, which docs/benchmarks.md quotes.

Usage: python benchmarks/separated_owners.py [--rows 20000] [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from client_code.metrics import calibration, classification_metrics
from client_code.models.logistic import fit_local, make_model, prior_correction, set_initial_params
from client_code.resample import balance
from client_code.schema import load_data, to_dataset
from client_code.tabular import read_channel
from orchestrator.data.prepare import PrepareOptions, pooled_schema
from orchestrator.data.synth import LABEL, generate_fraud
from orchestrator.local import LocalOptions, run_local

RESULTS = Path(__file__).parent / "results"
SEED = 42


def write_exports(root: Path, rows: int) -> list[Path]:
    """Three owners' raw exports under root/clients/<owner>/train/ and the server's test.csv."""
    exports = [generate_fraud(rows=rows, seed=SEED + i) for i in range(4)]
    root.mkdir(parents=True)
    exports[3].to_csv(root / "test.csv", index=False)
    owners = []
    for i, frame in enumerate(exports[:3], start=1):
        folder = root / "clients" / f"owner-{i}" / "train"
        if i == 1:
            frame = frame.sample(frac=1.0, random_state=SEED)
        if i == 3:
            frame = pd.concat([frame, frame.sample(200, random_state=SEED).assign(region="islands")])
        if i == 2:
            frame = frame[list(reversed(frame.columns))]
            half = len(frame) // 2
            for part, rows_ in enumerate((frame.iloc[:half], frame.iloc[half:])):
                (folder / f"month=2024-0{part + 1}").mkdir(parents=True)
                rows_.to_csv(folder / f"month=2024-0{part + 1}" / f"part-0000{part}.csv", index=False)
        else:
            folder.mkdir(parents=True)
            frame.to_csv(folder / "export.csv", index=False)
        owners.append(folder)
    return owners


def pooled_pipeline(owners: list[Path], test: Path) -> tuple[dict, dict, float]:
    """The schema, test metrics and calibration of one LogisticRegression trained on the pooled exports."""
    frame = pd.concat([read_channel(folder)[0] for folder in owners], ignore_index=True)
    schema, _ = pooled_schema(frame, PrepareOptions(label=LABEL))
    classes = list(schema["classes"])
    data = to_dataset(frame, schema)
    balanced = balance(data, classes, "smote", 1.0, SEED)
    model = set_initial_params(make_model(max_iter=1000), data.X.shape[1], classes)
    fit_local(model, balanced.data)
    counts = {c: int(np.sum(data.y == c)) for c in classes}
    model.intercept_ = prior_correction([model.coef_, model.intercept_], classes, counts, balanced.trained_counts)[1]
    test_data = load_data(test, schema)
    return schema, classification_metrics(model, test_data), calibration(model, test_data)["mean_predicted"]


def largest_difference(schema: dict, pooled: dict) -> float:
    """The largest absolute difference between the two schemas' numeric means and scales."""
    worst = 0.0
    for mine, theirs in zip(schema["features"], pooled["features"], strict=True):
        assert mine["name"] == theirs["name"] and mine.get("levels") == theirs.get("levels")
        if mine["kind"] == "numeric":
            worst = max(worst, abs(mine["mean"] - theirs["mean"]), abs(mine["scale"] - theirs["scale"]))
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows per export (owners and test set)")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "owners"
        owners = write_exports(root, args.rows)
        started = time.perf_counter()
        outcome = run_local(LocalOptions(data_dir=root, label=LABEL, rounds=args.rounds, out=Path(tmp) / "runs"))
        wall = time.perf_counter() - started
        summary = json.loads((outcome.run_dir / "run.json").read_text())
        schema = json.loads((outcome.run_dir / "schema.json").read_text())
        pooled, pooled_metrics, pooled_mean = pooled_pipeline(owners, root / "test.csv")
        test_rate = float((pd.read_csv(root / "test.csv")[LABEL] == 1).mean())
    federated = outcome.final_metrics
    result = {
        "setting": {
            "owners": 3,
            "rows_per_export": args.rows,
            "rounds": args.rounds,
            "quirks": "owner-1 shuffled rows; owner-2 reversed columns in 2 nested part files; "
            "region 'islands' at owner-3 only (200 rows)",
            "balance": "smote, prior-corrected",
        },
        "federated": {
            "roc_auc": federated["roc_auc"],
            "pr_auc": federated["pr_auc"],
            "brier": federated["brier"],
            "mean_predicted_probability": summary["calibration"]["mean_predicted"],
            "statistics_phase_seconds": summary["statistics"]["seconds"],
            "wall_seconds": round(wall, 1),
        },
        "pooled_pipeline": {
            "roc_auc": pooled_metrics["roc_auc"],
            "pr_auc": pooled_metrics["pr_auc"],
            "brier": pooled_metrics["brier"],
            "mean_predicted_probability": pooled_mean,
        },
        "roc_auc_difference": federated["roc_auc"] - pooled_metrics["roc_auc"],
        "schema_largest_difference": largest_difference(schema, pooled),
        "test_positive_rate": test_rate,
        "inferred_categorical": summary["statistics"]["inferred_categorical"],
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": sys.platform},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "separated-owners.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
