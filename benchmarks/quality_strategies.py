"""Learning quality by aggregation strategy and partition, what each client gains, and DP's privacy/utility curve.

Run through `python benchmarks/quality.py --strategies` (about 4 minutes on 2 shared cores).

Set-up: the built-in synthetic-fraud data, 5 clients (Krum with f = 1 needs 2f + 3 = 5), seed 42,
ROUNDS rounds, the default logistic model (10 local iterations per round) and SMOTE in each job,
the default relative norm bound (factor 10) on. Partitions (`fedsage data prepare`'s code):

* `iid`; `dirichlet:0.3` (label skew); `classes:0/0/1/1/0,1` (class lists: clients 1, 2 list only
  the majority class, clients 3, 4 only the minority, client 5 both; a client gets 5% of each
  class it does not list - every client needs rows of every class);

Strategies, each with the parameters listed in STRATEGIES (Flower's defaults otherwise). For each
run: the final test ROC-AUC and PR-AUC, and each client's local-only vs federated ROC-AUC on its
own validation split (the job trains both; only the scores leave) - the mean and the smallest gain.

DP curve: FedAvg on the iid partition under central DP and under local DP, clipping norm C = 0.5
(about the median update norm of a clean run's early rounds), noise multipliers in NOISE; epsilon
at delta 1e-5 from the run's accountant (orchestrator/federation/privacy.py).

The clients run as threads of this process (tests/federation_support.py InProcessClients: the
real FederationClient over the real TLS transport on 127.0.0.1) rather than as one process each:
the same computation, about five times faster. Writes benchmarks/results/quality-strategies.json.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # federation_support

from federation_support import InProcessClients, run_with  # noqa: E402

from orchestrator import defaults  # noqa: E402
from orchestrator.data import datasets  # noqa: E402
from orchestrator.data.prepare import PrepareOptions, prepare  # noqa: E402
from orchestrator.local import LocalOptions, build_local_run  # noqa: E402

RESULTS = Path(__file__).parent / "results"
DATASET = "synthetic-fraud"
CLIENTS = 5
ROUNDS = 10
SEED = 42
PARTITIONS = ("iid", "dirichlet:0.3", "classes:0/0/1/1/0,1")
OTHER_FRACTION = 0.05
STRATEGIES: dict[str, dict[str, float]] = {
    "fedavg": {},
    "fedprox": {"proximal_mu": 0.1},
    "fedavgm": {"server_momentum": 0.9},
    "fedadam": {"eta": 0.1},
    "fedyogi": {"eta": 0.1},
    "fedadagrad": {"eta": 0.1},
    "fedmedian": {},
    "fedtrimmedavg": {"beta": 0.2},
    "krum": {"num_malicious_clients": 1},
    "bulyan": {"num_malicious_clients": 0},
}
CLIPPING_NORM = 0.5
NOISE = (0.3, 0.5, 1.0, 2.0, 4.0)
DELTA = 1e-5


def prepared(partition: str, root: Path) -> Path:
    """The built-in data split over CLIENTS clients by `partition`; the prepared folder."""
    builtin = datasets.get(DATASET)
    out = root / partition.replace(":", "-").replace("/", "_").replace(",", "")
    options = PrepareOptions(
        label=builtin.label,
        clients=CLIENTS,
        categorical=builtin.categorical,
        partition=partition,
        seed=SEED,
        other_fraction=OTHER_FRACTION,
    )
    prepare(builtin.load(SEED), options, out / "data", source=f"built-in:{DATASET}")
    return out


def one_run(folder: Path, name: str, strategy: str, parameters: dict, privacy: dict | None = None) -> dict:
    """One federation on a prepared folder: final test scores, per-client gains, privacy spent, wall time."""
    options = LocalOptions(
        data_dir=folder / "data",
        out=folder / name,
        rounds=ROUNDS,
        seed=SEED,
        strategy=strategy,
        strategy_parameters=parameters,
        privacy=privacy,
    )
    run = build_local_run(options)
    run = run_with(run, InProcessClients(run.backend))
    started = time.perf_counter()
    outcome = run.execute()
    seconds = time.perf_counter() - started
    gains = {client: scores["roc_auc"] for client, scores in outcome.history.client_gains("binary").items()}
    rejected = sum("left out" in w for w in outcome.warnings)
    return {
        "roc_auc": outcome.final_metrics["roc_auc"],
        "pr_auc": outcome.final_metrics["pr_auc"],
        "roc_auc_per_round": [r.server["roc_auc"] for r in outcome.history.rounds],
        "clients": {c: {k: g[k] for k in ("local", "federated", "gain")} for c, g in gains.items()},
        "mean_gain_roc_auc": statistics.fmean(g["gain"] for g in gains.values()),
        "min_gain_roc_auc": min(g["gain"] for g in gains.values()),
        "updates_rejected": rejected,
        "privacy": outcome.privacy or None,
        "wall_seconds": round(seconds, 1),
    }


def main() -> None:
    """Every strategy on every partition, then the DP curve; writes results/quality-strategies.json."""
    warnings.filterwarnings("ignore")  # lbfgs stops at 10 iterations per round by design
    results, curve = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folders = {partition: prepared(partition, Path(tmp)) for partition in PARTITIONS}
        for partition, folder in folders.items():
            for strategy, parameters in STRATEGIES.items():
                result = {"partition": partition, "strategy": strategy, "parameters": parameters}
                result |= one_run(folder, strategy, strategy, parameters)
                results.append(result)
                print(
                    f"{partition:<20} {strategy:<14} ROC-AUC {result['roc_auc']:.4f}  PR-AUC {result['pr_auc']:.4f}  "
                    f"gain mean {result['mean_gain_roc_auc']:+.4f} min {result['min_gain_roc_auc']:+.4f}  "
                    f"{result['wall_seconds']} s",
                    file=sys.stderr,
                )
        for mode in ("central", "local"):
            for z in NOISE:
                privacy = {"mode": mode, "clipping_norm": CLIPPING_NORM, "noise_multiplier": z, "delta": DELTA}
                point = {"mode": mode, "noise_multiplier": z}
                point |= one_run(folders["iid"], f"dp-{mode}-{z}", "fedavg", {}, privacy)
                curve.append(point)
                print(
                    f"{mode} DP z {z:<4} epsilon {point['privacy']['epsilon']:8.2f}  ROC-AUC {point['roc_auc']:.4f}",
                    file=sys.stderr,
                )
    payload = {
        "benchmark": "strategies x partitions, per-client gain, DP privacy/utility curve (synthetic-fraud)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "dataset": DATASET,
        "clients": CLIENTS,
        "rounds": ROUNDS,
        "seed": SEED,
        "other_fraction": OTHER_FRACTION,
        "update_norm_factor": defaults.UPDATE_NORM_FACTOR,
        "dp": {"clipping_norm": CLIPPING_NORM, "delta": DELTA, "strategy": "fedavg", "partition": "iid"},
        "results": results,
        "dp_curve": curve,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quality-strategies.json").write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
