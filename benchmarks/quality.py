"""Learning quality: the federated model against centralized training and the best single client.

For each built-in data set (synthetic-fraud, breast-cancer), partition (iid, dirichlet:0.3,
quantity:0.5) and client count (3, 10), with seed 42:

1. `fedsage data prepare`'s code splits the data (20% test set held out first, the partition,
   20% validation per client); each job balances its training split with SMOTE (ADR 0004);
2. federated: the real local federation (`run_local`: one process per client, TLS on loopback,
   FedAvg, 10 local solver iterations per round) for --rounds rounds;
3. centralized: the same LogisticRegression (`client_code.models.logistic.make_model`, 1,000 iterations)
   trained on the pooled training splits of all clients, each balanced with SMOTE as its job
   balances it, i.e. the same rows the federation saw;
4. single clients: the same model trained on each client's own training split alone; the one
   with the highest test ROC-AUC is reported as the best, and the mean over clients as what a
   typical participant would get without the federation.

All three are scored by `client_code.classification_metrics` on the same held-out test set.
"Rounds to 99%" is the first round whose test ROC-AUC reaches 99% of the run's final ROC-AUC.

Writes benchmarks/results/quality.json and benchmarks/results/quality-roc-auc.png (test ROC-AUC
per round for every setting, with the centralized and best-single-client levels), which
docs/benchmarks.md quotes.

`--families` instead compares the model families (client_code/models) on every data set whose
task they learn: synthetic-fraud and breast-cancer (binary), scikit-learn's bundled digits and
wine (multiclass), diabetes (regression); 3 clients, iid, seed 42, each family's defaults. The
federated run is `run_local --model KIND`; centralized is the same family trained on the pooled
training splits (each balanced with SMOTE as its job balances it) for the same number of local
rounds from the same initial parameters (xgboost: rounds x clients trees, as many as the
federated booster holds; linear: the closed form); single clients the same on their own rows.
Everything is prior-corrected as the run is and scored on the same test set. It also records
each family's training time and the code archive every family ships in (one archive: `fedsage
package`'s size, and the xgboost-cpu wheel's share of it). Writes
benchmarks/results/quality-families.json.

`--strategies` instead compares the aggregation strategies on three partitions, with each
client's gain and the DP privacy/utility curve (benchmarks/quality_strategies.py); writes
benchmarks/results/quality-strategies.json.

Usage: python benchmarks/quality.py [--rounds 20] [--dataset NAME] [--plot-only] | --families [--rounds 10]
       | --strategies
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

from client_code import models
from client_code.metrics import classification_metrics, score
from client_code.models.logistic import fit_local, make_model, set_initial_params
from client_code.resample import balance
from client_code.schema import load_data
from client_code.tabular import Dataset
from orchestrator.data import datasets, layout
from orchestrator.data.prepare import PrepareOptions, prepare
from orchestrator.local import LocalOptions, run_local

RESULTS = Path(__file__).parent / "results"
DATASETS = ("synthetic-fraud", "breast-cancer")
PARTITIONS = ("iid", "dirichlet:0.3", "quantity:0.5")
CLIENTS = (3, 10)
METRICS = ("roc_auc", "pr_auc", "f1", "accuracy")
SEED = 42
CENTRAL_ITERATIONS = 1000


def _metrics(model, data: Dataset) -> dict[str, float]:
    scores = classification_metrics(model, data)
    return {name: scores[name] for name in METRICS}


def _train(data: Dataset, classes: list) -> object:
    """The federation's model, trained to convergence on one data set."""
    model = set_initial_params(make_model(max_iter=CENTRAL_ITERATIONS), data.X.shape[1], classes)
    return fit_local(model, data)


def baselines(prepared: layout.PreparedData) -> dict:
    """Centralized (pooled training splits) and every single client alone, on the same test set."""
    test = load_data(prepared.test, prepared.schema)
    trains = {
        c.name: balance(load_data(c.train, prepared.schema), prepared.classes, "smote", 1.0, SEED).data
        for c in prepared.clients
    }
    pooled = Dataset(
        np.vstack([d.X for d in trains.values()]),
        np.concatenate([d.y for d in trains.values()]),
        test.feature_names,
    )
    singles = {name: _metrics(_train(data, prepared.classes), test) for name, data in trains.items()}
    best = max(singles, key=lambda name: singles[name]["roc_auc"])
    return {
        "centralized": _metrics(_train(pooled, prepared.classes), test),
        "best_single_client": {"client": best, **singles[best]},
        "mean_single_client": {name: float(np.mean([m[name] for m in singles.values()])) for name in METRICS},
        "single_clients": singles,
    }


def partition_summary(out: Path) -> dict:
    """Each client's rows (before its job's SMOTE) and share of the positive class, from the manifest."""
    manifest = json.loads((out / layout.MANIFEST).read_text())
    clients = {}
    for part in manifest["parts"]:
        if part["name"] == "server":
            continue
        entry = clients.setdefault(part["name"], {"rows": 0, "positive": 0})
        counts = part["class_counts"]
        if part["split"] in ("train", "validation"):
            entry["rows"] += part["rows"]
            entry["positive"] += counts[str(manifest["classes"][1])]
    return {
        name: {"rows": c["rows"], "positive_share": round(c["positive"] / c["rows"], 4)}
        for name, c in clients.items()
        if name != "unassigned"
    }


def rounds_to(history: list[float], fraction: float = 0.99) -> int:
    """First round (from 1) whose ROC-AUC reaches `fraction` of the final one."""
    target = fraction * history[-1]
    return next(r for r, value in enumerate(history) if r > 0 and value >= target)


def run_setting(dataset: str, partition: str, clients: int, rounds: int, root: Path) -> dict:
    """Prepare one setting, run its federation and its baselines."""
    builtin = datasets.get(dataset)
    out = root / f"{dataset}-{partition.replace(':', '-')}-{clients}"
    options = PrepareOptions(
        label=builtin.label, clients=clients, categorical=builtin.categorical, partition=partition, seed=SEED
    )
    prepare(builtin.load(SEED), options, out / "data", source=f"built-in:{dataset}")
    prepared = layout.open_prepared(out / "data")
    started = time.perf_counter()
    outcome = run_local(LocalOptions(data_dir=out / "data", rounds=rounds, out=out / "runs", seed=SEED))
    seconds = time.perf_counter() - started
    per_round = [record.server["roc_auc"] for record in outcome.history.rounds]
    result = {
        "dataset": dataset,
        "partition": partition,
        "clients": clients,
        "federated": {
            **{name: outcome.final_metrics[name] for name in METRICS},
            "rounds_to_99pct_roc_auc": rounds_to(per_round),
            "roc_auc_per_round": per_round,
            "wall_seconds": round(seconds, 1),
        },
        **baselines(prepared),
        "partition_clients": partition_summary(out / "data"),
    }
    fed, central, single = result["federated"], result["centralized"], result["best_single_client"]
    result["federated_minus_centralized_roc_auc"] = fed["roc_auc"] - central["roc_auc"]
    result["federated_minus_best_single_roc_auc"] = fed["roc_auc"] - single["roc_auc"]
    return result


def plot(results: list[dict], path: Path) -> None:
    """Test ROC-AUC per round: one panel per data set and partition, one line per client count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    datasets_ = list(dict.fromkeys(r["dataset"] for r in results))
    partitions = list(dict.fromkeys(r["partition"] for r in results))
    fig, axes = plt.subplots(len(datasets_), len(partitions), figsize=(5 * len(partitions), 4 * len(datasets_)))
    axes = np.atleast_2d(axes)
    colours = dict(zip(CLIENTS, ("tab:blue", "tab:orange"), strict=True))
    for row, dataset in enumerate(datasets_):
        for col, partition in enumerate(partitions):
            axis = axes[row, col]
            for result in (r for r in results if r["dataset"] == dataset and r["partition"] == partition):
                colour = colours.get(result["clients"], "tab:green")
                history = result["federated"]["roc_auc_per_round"]
                k = result["clients"]
                axis.plot(
                    range(1, len(history)), history[1:], marker=".", color=colour, label=f"federated, {k} clients"
                )
                axis.axhline(result["centralized"]["roc_auc"], color=colour, linestyle="--", label=f"centralized ({k})")
                axis.axhline(
                    result["best_single_client"]["roc_auc"], color=colour, linestyle=":", label=f"best single ({k})"
                )
            axis.set(title=f"{dataset}, {partition}", xlabel="round", ylabel="test ROC-AUC")
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
            axis.grid(alpha=0.3)
            axis.legend(loc="lower right", fontsize=7)
    fig.suptitle("Test ROC-AUC per round: federated (solid), centralized (dashed), best single client (dotted)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


FAMILY_DATASETS = ("synthetic-fraud", "breast-cancer", "digits", "wine", "diabetes")
PRIMARY = {"binary": ("roc_auc", "pr_auc", "loss"), "multiclass": ("roc_auc", "accuracy", "loss")}
PRIMARY["regression"] = ("r2", "rmse", "mae")


def _frame(name: str):
    """(frame, label, categorical columns, task) of a built-in data set or scikit-learn's digits / wine."""
    if name in datasets.DATASETS:
        builtin = datasets.get(name)
        return builtin.load(SEED), builtin.label, builtin.categorical, builtin.task
    from sklearn.datasets import load_digits, load_wine

    bunch = {"digits": load_digits, "wine": load_wine}[name](as_frame=True)
    return bunch.frame.rename(columns=lambda c: str(c).replace(" ", "_").replace("/", "_")), "target", (), None


def _train_family(family, hp, schema, data: Dataset, rounds: int, raw: dict, trained: dict):
    """The family trained `rounds` local rounds on `data` from the run's initial parameters, prior-corrected."""
    model = family.build(hp, schema, SEED)
    for _ in range(rounds):
        family.fit_round(model, data, {})
    if trained:
        corrected = family.prior_correction(hp, family.get_parameters(model), schema, raw, trained)
        model = family.set_parameters(family.build(hp, schema, SEED), corrected)
    return model


def family_setting(dataset: str, kind: str, rounds: int, root: Path) -> dict:
    """One family on one data set: federated, centralized, every single client, on the same test set."""
    from client_code.resample import class_counts

    frame, label, categorical, task = _frame(dataset)
    out = root / f"{dataset}-{kind}"
    options = PrepareOptions(label=label, clients=3, categorical=categorical, seed=SEED, task=task)
    prepare(frame, options, out / "data", source=f"benchmark:{dataset}")
    prepared = layout.open_prepared(out / "data")
    schema, family = prepared.schema, models.get(kind)
    hp = family.hyperparameters()
    started = time.perf_counter()
    outcome = run_local(LocalOptions(data_dir=out / "data", rounds=rounds, out=out / "runs", seed=SEED, model=kind))
    seconds = time.perf_counter() - started
    test = load_data(prepared.test, schema)
    classes, regression = prepared.classes, schema["task"] == "regression"
    raws = {c.name: load_data(c.train, schema) for c in prepared.clients}
    trains = {n: d if regression else balance(d, classes, "smote", 1.0, SEED).data for n, d in raws.items()}
    local_rounds = rounds * (len(trains) if kind == "xgboost" else 1)

    def counts(datasets_: list[Dataset]) -> dict:
        return {} if regression else {c: float(sum(class_counts(d.y, classes)[c] for d in datasets_)) for c in classes}

    def fit(names: list[str]) -> tuple[dict, float]:
        data = Dataset(
            np.vstack([trains[n].X for n in names]), np.concatenate([trains[n].y for n in names]), test.feature_names
        )
        began = time.perf_counter()
        model = _train_family(
            family, hp, schema, data, local_rounds, counts([raws[n] for n in names]), counts([trains[n] for n in names])
        )
        return score(model, test, schema), time.perf_counter() - began

    central, central_seconds = fit(list(trains))
    singles = {name: fit([name])[0] for name in trains}
    metrics = PRIMARY[schema["task"]]
    first, better = metrics[0], {"loss": min, "rmse": min, "mae": min}.get(metrics[0], max)
    best = better(singles, key=lambda name: singles[name][first])
    pick = lambda m: {name: m[name] for name in metrics}  # noqa: E731
    gains = outcome.history.client_gains(schema["task"])
    return {
        "dataset": dataset,
        "task": schema["task"],
        "family": kind,
        "hyperparameters": hp.model_dump(mode="json"),
        "rows": {"test": len(test), "train": {n: len(d) for n, d in raws.items()}},
        "federated": {**pick(outcome.final_metrics), "wall_seconds": round(seconds, 1)},
        "centralized": {**pick(central), "fit_seconds": round(central_seconds, 2)},
        "best_single_client": {"client": best, **pick(singles[best])},
        "mean_single_client": {m: float(np.mean([s[m] for s in singles.values()])) for m in metrics},
        "client_gain_validation": {n: {m: g[m]["gain"] for m in g} for n, g in gains.items()},
    }


def archive_sizes() -> dict:
    """The code archive every family ships in (Python 3.12), and the xgboost-cpu wheel's share of it."""
    import tarfile

    from orchestrator.package import build

    with tempfile.TemporaryDirectory() as tmp:
        package = build(Path(tmp) / "source.tar.gz", "3.12")
        with tarfile.open(package.path) as tar:
            wheels = {m.name.split("/")[-1]: m.size for m in tar.getmembers() if m.name.startswith("wheels/")}
    xgb = sum(size for name, size in wheels.items() if name.startswith("xgboost_cpu"))
    return {
        "python": "3.12",
        "archive_bytes": package.size,
        "wheels": package.wheels,
        "xgboost_cpu_wheel_bytes": xgb,
        "archive_without_xgboost_bytes": package.size - xgb,
        "note": "one archive serves every family; only xgboost needs the xgboost-cpu wheel",
    }


def families_main(rounds: int, names: list[str]) -> None:
    """Every family on every data set whose task it learns; writes results/quality-families.json."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in names:
            task = _frame(dataset)[3] or ("binary" if dataset in ("synthetic-fraud", "breast-cancer") else "multiclass")
            for kind, family in models.FAMILIES.items():
                if task not in family.tasks:
                    continue
                result = family_setting(dataset, kind, rounds, Path(tmp))
                results.append(result)
                first = PRIMARY[result["task"]][0]
                print(
                    f"{dataset:<16} {kind:<9} {first} federated {result['federated'][first]:.4f}, centralized "
                    f"{result['centralized'][first]:.4f}, best single {result['best_single_client'][first]:.4f}, "
                    f"{result['federated']['wall_seconds']} s",
                    file=sys.stderr,
                )
    payload = {
        "benchmark": "model families: federated vs centralized vs best single client, same test set",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "rounds": rounds,
        "clients": 3,
        "partition": "iid",
        "seed": SEED,
        "archive": archive_sizes(),
        "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quality-families.json").write_text(json.dumps(payload, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None, help="default 20 (10 with --families)")
    parser.add_argument("--dataset", action="append", help="default: every data set of the mode")
    parser.add_argument("--plot-only", action="store_true", help="redraw the PNG from quality.json")
    parser.add_argument("--families", action="store_true", help="compare the model families instead")
    parser.add_argument(
        "--strategies", action="store_true", help="strategies x partitions, per-client gain, DP curve instead"
    )
    args = parser.parse_args()
    if args.strategies:
        import quality_strategies  # benchmarks/quality_strategies.py, beside this file

        quality_strategies.main()
        return
    if args.families:
        families_main(args.rounds or 10, args.dataset or list(FAMILY_DATASETS))
        return
    args.rounds = args.rounds or 20
    if args.plot_only:
        plot(json.loads((RESULTS / "quality.json").read_text())["results"], RESULTS / "quality-roc-auc.png")
        return

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.dataset or DATASETS:
            for partition in PARTITIONS:
                for clients in CLIENTS:
                    result = run_setting(dataset, partition, clients, args.rounds, Path(tmp))
                    results.append(result)
                    fed, central, best = result["federated"], result["centralized"], result["best_single_client"]
                    print(
                        f"{dataset:<16} {partition:<14} {clients:>2} clients: federated {fed['roc_auc']:.4f}, "
                        f"centralized {central['roc_auc']:.4f}, best single {best['roc_auc']:.4f}, "
                        f"99% after {fed['rounds_to_99pct_roc_auc']} round(s), {fed['wall_seconds']} s",
                        file=sys.stderr,
                    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "learning quality: federated vs centralized vs best single client, same test set",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "rounds": args.rounds,
        "local_iterations_per_round": LocalOptions().max_iter,
        "centralized_iterations": CENTRAL_ITERATIONS,
        "seed": SEED,
        "results": results,
    }
    (RESULTS / "quality.json").write_text(json.dumps(payload, indent=2) + "\n")
    plot(results, RESULTS / "quality-roc-auc.png")


if __name__ == "__main__":
    main()
