"""Overhead and memory of `fedsage local`: 3 clients x 5 rounds, about 20k rows per client.

Runs the real command as a user would (console script, separate client processes, TLS on
loopback), then repeats exactly the same computation in one process from the same prepared
data: per round, every client's local fit and scoring, the weighted average, the server's
test-set evaluation and every client's validation scoring. Writes
benchmarks/results/overhead.json, which docs/benchmarks.md quotes.

Per-round overhead is reported two ways:

* `vs_one_process`: (federated round time - one-process round time). The federation runs its
  clients in parallel, the one-process baseline sequentially, so on several cores this can be
  negative;
* `messaging`: federated round time minus the slowest client's fit (measured inside the client
  process), the server's evaluation and the slowest validation scoring: what the federation
  adds on top of the computation (serialisation, gRPC over TLS, scheduling).

Usage: python benchmarks/overhead.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from client_code.metrics import classification_metrics
from client_code.models.logistic import (
    fit_local,
    get_model_parameters,
    make_model,
    set_initial_params,
    set_model_params,
)
from client_code.resample import balance
from client_code.schema import load_data
from orchestrator.data import datasets, layout
from orchestrator.data.prepare import PrepareOptions, prepare

RESULTS = Path(__file__).parent / "results" / "overhead.json"
ROUNDS = 5


def run_fedsage(out: Path) -> tuple[float, Path]:
    """`fedsage local` with defaults, timed from the outside."""
    fedsage = shutil.which("fedsage", path=os.path.dirname(sys.executable)) or "fedsage"
    started = time.perf_counter()
    subprocess.run([fedsage, "local", "--out", str(out)], check=True, capture_output=True)
    wall = time.perf_counter() - started
    return wall, next(out.iterdir())


def one_process(run_dir: Path) -> dict:
    """The same training, sequentially, in this process, from the run's prepared data.

    BLAS runs single-threaded, its fastest setting for a model this small (the federation's
    clients get one thread each on this machine too).
    """
    with threadpool_limits(limits=1):
        return _one_process(run_dir)


def _one_process(run_dir: Path) -> dict:
    started = time.perf_counter()
    data = layout.open_prepared(run_dir / "data")

    def load(folder, smote=False):
        loaded = load_data(folder, data.schema)
        return balance(loaded, data.classes, "smote", 1.0, 42).data if smote else loaded  # as each job balances

    clients = [(load(c.train, smote=True), load(c.validation)) for c in data.clients]
    test = load(data.test)
    load_seconds = time.perf_counter() - started

    n_features = len(test.feature_names)
    server = set_initial_params(make_model(), n_features, data.classes)
    models = [set_initial_params(make_model(), n_features, data.classes) for _ in clients]
    global_params = get_model_parameters(server)
    rounds, fits, evals, validations = [], [], [], []
    for _ in range(ROUNDS):
        round_start = time.perf_counter()
        updates = []
        for model, (train, _) in zip(models, clients, strict=True):
            t = time.perf_counter()
            set_model_params(model, global_params)
            fit_local(model, train)
            classification_metrics(model, train)
            fits.append(time.perf_counter() - t)
            updates.append((get_model_parameters(model), len(train)))
        total = sum(n for _, n in updates)
        global_params = [sum(p[i] * n for p, n in updates) / total for i in (0, 1)]
        t = time.perf_counter()
        classification_metrics(set_model_params(server, global_params), test)
        evals.append(time.perf_counter() - t)
        for model, (_, validation) in zip(models, clients, strict=True):
            t = time.perf_counter()
            classification_metrics(set_model_params(model, global_params), validation)
            validations.append(time.perf_counter() - t)
        rounds.append(time.perf_counter() - round_start)
    return {
        "total_seconds": time.perf_counter() - started,
        "load_seconds": load_seconds,
        "round_seconds": rounds,
        "client_fit_seconds_mean": statistics.mean(fits),
        "server_eval_seconds_mean": statistics.mean(evals),
        "client_validation_seconds_mean": statistics.mean(validations),
        "final_roc_auc": classification_metrics(set_model_params(server, global_params), test)["roc_auc"],
    }


def data_preparation_seconds() -> float:
    """Generating and preparing the built-in data, as `fedsage local` does before its server starts."""
    dataset = datasets.get(datasets.DEFAULT)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        options = PrepareOptions(label=dataset.label, clients=3, categorical=dataset.categorical)
        prepare(dataset.load(42), options, Path(tmp) / "data")
        return time.perf_counter() - started


def federated(run_dir: Path, wall: float) -> dict:
    """Per-round figures of the federated run, from its metrics and logs."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rounds = [r for r in metrics["rounds"] if r["round"] > 0]
    client_peaks = []
    for log in (run_dir / "clients").glob("*/client.log"):
        found = re.search(r"peak memory (\d+) MB", log.read_text())
        client_peaks.append(int(found.group(1)))
    rows = {name: c["num_examples"] for name, c in rounds[-1]["clients"].items()}
    return {
        "wall_seconds": wall,
        "round_seconds": [r["seconds"] for r in rounds],
        "slowest_fit_seconds": [max(c["fit_seconds"] for c in r["clients"].values()) for r in rounds],
        "startup_seconds": metrics["rounds"][0]["seconds"],
        "server_peak_memory_mb": metrics["peak_memory_mb"],
        "client_peak_memory_mb": client_peaks,
        "train_rows_per_client_after_smote": rows,
        "final_roc_auc": rounds[-1]["server"]["roc_auc"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    samples = []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            wall, run_dir = run_fedsage(Path(tmp) / "runs")
            samples.append({"federated": federated(run_dir, wall), "one_process": one_process(run_dir)})
        print(f"repeat {repeat + 1}: fedsage local {wall:.1f} s", file=sys.stderr)

    med = statistics.median
    fed_round = med(s for x in samples for s in x["federated"]["round_seconds"])
    one_round = med(s for x in samples for s in x["one_process"]["round_seconds"])
    slowest_fit = med(s for x in samples for s in x["federated"]["slowest_fit_seconds"])
    server_eval = med(x["one_process"]["server_eval_seconds_mean"] for x in samples)
    validation = med(x["one_process"]["client_validation_seconds_mean"] for x in samples)
    result = {
        "benchmark": "fedsage local, defaults: synthetic-fraud, 3 clients x 5 rounds",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "repeats": args.repeats,
        "blas_threads": {"federated_per_client": "cpus // clients (local backend)", "one_process": 1},
        "fedsage_local_wall_seconds": med(x["federated"]["wall_seconds"] for x in samples),
        "fedsage_local_breakdown_seconds": {
            "data_generation_and_preparation": med(data_preparation_seconds() for _ in range(args.repeats)),
            "client_start_until_round_0": med(x["federated"]["startup_seconds"] for x in samples),
            "five_rounds": med(sum(x["federated"]["round_seconds"]) for x in samples),
        },
        "one_process_total_seconds": med(x["one_process"]["total_seconds"] for x in samples),
        "round_seconds": {"federated": fed_round, "one_process": one_round},
        "per_round_overhead_seconds": {
            "vs_one_process": fed_round - one_round,
            "messaging": fed_round - slowest_fit - server_eval - validation,
        },
        "per_round_components_seconds": {
            "slowest_client_fit": slowest_fit,
            "server_test_evaluation": server_eval,
            "client_validation_scoring": validation,
        },
        "peak_memory_mb": {
            "server_process": med(x["federated"]["server_peak_memory_mb"] for x in samples),
            "client_process": med(p for x in samples for p in x["federated"]["client_peak_memory_mb"]),
        },
        "final_roc_auc": {
            "federated": samples[-1]["federated"]["final_roc_auc"],
            "one_process": samples[-1]["one_process"]["final_roc_auc"],
        },
        "train_rows_per_client_after_smote": samples[-1]["federated"]["train_rows_per_client_after_smote"],
        "samples": samples,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    summary = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
