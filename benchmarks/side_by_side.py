"""fedsage against bare Flower and Flower's Simulation Engine, side by side, on the same job (issue 15).

Both competitors are built here from the installed flwr and the same client-side computation
(client_code's schema encoding, SMOTE balancing and logistic model family, so the final models
agree); fedsage runs as a user runs it (`fedsage local`, console script, run folder):

* bare Flower: `flwr.server.start_server` + one `flwr.client.start_client` process per client,
  TLS with a generated CA, BLAS threads capped to cores/clients as the process backend caps them,
  FedAvg with the server's test-set evaluation and the clients' evaluation on their validation rows;
* Flower simulation: `flwr.simulation.start_simulation` (Ray) with the same client and strategy,
  Flower's default client resources (one CPU per virtual client);
* fedsage: `fedsage local` with the process backend and with `--backend simulation`.

Measured: CLI start-up (`fedsage --help`, `fedsage local --help`, `flwr --help`: median wall and
CPU seconds of --repeats + 2 runs); the default job on prepared data
(3 clients x 5 rounds, ~20k rows per client) and the built-in default (`fedsage local`, data cached
and not); 10/25/50/100 clients x 3 rounds; a wide model (2,000 features x 10 classes). Wall time is
taken from outside; peak memory is the sum of RSS over the whole process tree (sampled every
0.25 s: an upper bound, shared pages counted per process). The machine's load (`uptime`) is
recorded before and after. Writes benchmarks/results/side-by-side.json.

Usage: python benchmarks/side_by_side.py [--quick] [--repeats 3] [--only default,scaling,wide,cli,builtin]
       [--process-clients 10,25,50] [--simulation-clients 10,25,50,100]
(--quick: tiny sizes, a smoke test of the script itself. The CLI start-up alone:
`--only cli --repeats 9 --out benchmarks/results/cli-startup.json`.)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "side-by-side.json"
BIN = Path(sys.executable).parent
ENV = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "PYTHONUNBUFFERED": "1"}


# ----------------------------------------------------------------------------- the bare Flower job


def _job(data_dir: Path, seed: int):
    """The shared computation: the schema, the logistic family and its default hyperparameters."""
    from client_code import models

    schema = json.loads((data_dir / "schema.json").read_text())
    family = models.get("logistic")
    return schema, family, family.hyperparameters()


def _client(data_dir: Path, index: int, seed: int):
    from flwr.client import NumPyClient

    from client_code.metrics import score
    from client_code.resample import balance
    from client_code.schema import load_data

    schema, family, hp = _job(data_dir, seed)
    folder = sorted((data_dir / "clients").iterdir())[index]
    train = load_data(folder / "train", schema)
    validation = load_data(folder / "validation", schema)
    data = balance(train, list(schema["classes"]), "smote", 1.0, seed).data

    class BareClient(NumPyClient):
        model = family.build(hp, schema, seed, None)

        def fit(self, parameters, config):
            family.set_parameters(self.model, parameters)
            family.fit_round(self.model, data, config)
            return family.update_from(self.model), len(data), {}

        def evaluate(self, parameters, config):
            scores = score(family.set_parameters(self.model, parameters), validation, schema)
            return scores["loss"], len(validation), {}

    return BareClient()


def _strategy(data_dir: Path, clients: int, seed: int, result: dict):
    from flwr.common import ndarrays_to_parameters
    from flwr.server.strategy import FedAvg

    from client_code.metrics import score
    from client_code.schema import load_data

    schema, family, hp = _job(data_dir, seed)
    test = load_data(data_dir / "test.csv", schema)
    model = family.build(hp, schema, seed, None)

    def evaluate_fn(server_round, parameters, config):
        scores = score(family.set_parameters(model, parameters), test, schema)
        result.update(round=server_round, roc_auc=scores.get("roc_auc"), loss=scores["loss"], at=time.time())
        return scores["loss"], {}

    return FedAvg(
        fraction_fit=1.0,
        fraction_evaluate=1.0,
        min_fit_clients=clients,
        min_evaluate_clients=clients,
        min_available_clients=clients,
        evaluate_fn=evaluate_fn,
        initial_parameters=ndarrays_to_parameters(family.initial_parameters(hp, schema, seed)),
    )


def role_server(data_dir: str, port: str, rounds: str, clients: str, tls: str) -> None:
    from flwr.server import ServerConfig, start_server

    result: dict = {}
    folder = Path(tls)
    certificates = tuple((folder / name).read_bytes() for name in ("ca.pem", "server.pem", "server.key"))
    strategy = _strategy(Path(data_dir), int(clients), 42, result)
    start_server(
        server_address=f"127.0.0.1:{port}",
        config=ServerConfig(num_rounds=int(rounds)),
        strategy=strategy,
        certificates=certificates,
    )
    print("RESULT " + json.dumps(result), flush=True)


def role_client(data_dir: str, port: str, index: str, tls: str) -> None:
    from flwr.client import start_client

    client = _client(Path(data_dir), int(index), 42)
    ca = (Path(tls) / "ca.pem").read_bytes()
    for _ in range(600):  # the server may not listen yet
        try:
            start_client(server_address=f"127.0.0.1:{port}", client=client.to_client(), root_certificates=ca)
            return
        except Exception:  # noqa: BLE001 - connection refused before the server listens
            time.sleep(0.1)


_CACHE: dict = {}


def _sim_client_fn(data_dir: str, context):
    index = int(context.node_config["partition-id"])
    if index not in _CACHE:  # a bare simulation user loads each partition once per actor
        _CACHE[index] = _client(Path(data_dir), index, 42)
    return _CACHE[index].to_client()


def role_simulation(data_dir: str, rounds: str, clients: str) -> None:
    import functools

    import ray
    from flwr.server import ServerConfig
    from flwr.simulation import start_simulation

    result: dict = {}
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    start_simulation(
        client_fn=functools.partial(_sim_client_fn, data_dir),
        num_clients=int(clients),
        config=ServerConfig(num_rounds=int(rounds)),
        strategy=_strategy(Path(data_dir), int(clients), 42, result),
        client_resources={"num_cpus": 1, "num_gpus": 0.0},
        ray_init_args={"include_dashboard": False, "ignore_reinit_error": True, "log_to_driver": False},
    )
    ray.shutdown()
    print("RESULT " + json.dumps(result), flush=True)
    os._exit(0)  # start_simulation leaves a 10 s resource-check timer behind


# ----------------------------------------------------------------------------- measuring


def _tree(root):
    import psutil

    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _kind(command: str, root: bool) -> str:
    """Which part of a job a process is, from its command line: server, client, plotter or other."""
    if "fedsage_client" in command or " _client " in command:
        return "client"
    if "orchestrator.run.plotter" in command:
        return "plotter"
    return "server" if root else "other"


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's waited-for descendants so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(commands: list[list[str]], env: dict | None = None, timeout: float = 900) -> dict:
    """Start `commands` (the first is the main one), wait for all; wall time, CPU and peak RSS over their trees.

    `cpu_s`: CPU seconds of every process of the trees that its parent waited for (getrusage of
    the waited-for descendants: exact for the process backend and bare Flower; Ray's daemons are
    not waited for, so it undercounts both simulations). `cpu_by_kind`: the split by `_kind`
    (server: a command itself, e.g. the fedsage CLI or bare Flower's server; client; plotter;
    other: e.g. Ray's workers), from each process's last sample, so each misses up to its last
    0.25 s (a lower bound).
    """
    import psutil

    cpu_before = _children_cpu()
    started = time.perf_counter()
    logs = [tempfile.TemporaryFile() for _ in commands]  # noqa: SIM115 - closed below, after the processes
    procs = []
    for command, log in zip(commands, logs, strict=True):
        procs.append(
            subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env or ENV, start_new_session=True)
        )
    roots = [psutil.Process(p.pid) for p in procs]
    peak = 0
    seen: set[int] = set()
    cpu: dict[int, tuple[str, float]] = {}  # pid -> (kind, CPU seconds at its last sample)
    done = threading.Event()

    def sample() -> None:  # peak memory every 0.25 s, in a thread: the end is taken from the wait, not a poll
        nonlocal peak
        while not done.is_set():
            rss = 0
            for root in roots:
                for p in _tree(root):
                    try:
                        with p.oneshot():
                            rss += p.memory_info().rss
                            times = p.cpu_times()
                            kind = cpu[p.pid][0] if p.pid in cpu else _kind(" ".join(p.cmdline()), p in roots)
                        cpu[p.pid] = (kind, times.user + times.system)
                        seen.add(p.pid)
                    except psutil.Error:
                        pass
            peak = max(peak, rss)
            done.wait(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        for p in procs:
            p.wait(timeout=max(1.0, timeout - (time.perf_counter() - started)))
    except subprocess.TimeoutExpired:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    wall = time.perf_counter() - started
    ended = time.time()
    done.set()
    sampler.join()
    outputs = []
    for log in logs:
        log.seek(0)
        outputs.append(log.read().decode(errors="replace"))
    for p in procs:  # anything of these sessions still alive is ours: end it by its process group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
    for log in logs:
        log.close()
    by_kind: dict[str, float] = {}
    for kind, seconds in cpu.values():
        by_kind[kind] = round(by_kind.get(kind, 0.0) + seconds, 2)
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(_children_cpu() - cpu_before, 2),
        "cpu_by_kind": by_kind,
        "peak_rss_mb": round(peak / 2**20),
        "processes": len(seen),
        "rc": [p.returncode for p in procs],
        "ended": ended,
        "output": outputs[0][-4000:],
    }


def _result_line(output: str) -> dict:
    found = re.findall(r"^RESULT (.*)$", output, flags=re.M)
    return json.loads(found[-1]) if found else {}


def bare_flower(data_dir: Path, clients: int, rounds: int, tls: Path) -> dict:
    from orchestrator.backends import process as process_backend

    port = _free_port()
    threads = str(max(1, (os.cpu_count() or 1) // clients))
    env = {**ENV, **{v: threads for v in process_backend.THREAD_VARIABLES}}
    me = [sys.executable, __file__]
    commands = [[*me, "_server", str(data_dir), str(port), str(rounds), str(clients), str(tls)]]
    commands += [[*me, "_client", str(data_dir), str(port), str(i), str(tls)] for i in range(clients)]
    run = measure(commands, env)
    result = _result_line(run.pop("output"))
    return {**run, "roc_auc": result.get("roc_auc"), "tail_s": _tail(result.get("at"), run["ended"])}


def flower_simulation(data_dir: Path, clients: int, rounds: int) -> dict:
    run = measure([[sys.executable, __file__, "_simulation", str(data_dir), str(rounds), str(clients)]])
    result = _result_line(run.pop("output"))
    return {**run, "roc_auc": result.get("roc_auc"), "tail_s": _tail(result.get("at"), run["ended"])}


def fedsage(args: list[str], out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    run = measure([[str(BIN / "fedsage"), "local", "--out", str(out), *args]])
    output = run.pop("output")
    folders = sorted(p for p in out.iterdir() if (p / "run.json").is_file())
    if run["rc"] != [0] or not folders:
        return {**run, "error": output[-600:]}
    folder = folders[-1]
    metrics = json.loads((folder / "metrics.json").read_text())
    final = metrics["rounds"][-1]["server"] if "rounds" in metrics else {}
    last_round = _last_round_time(folder / "server.log")
    shutil.rmtree(folder, ignore_errors=True)
    return {**run, "roc_auc": final.get("roc_auc"), "tail_s": _tail(last_round, run["ended"])}


def _last_round_time(log: Path) -> float | None:
    """time.time() of the server's last round evaluation, from server.log's timestamps."""
    stamps = [line[:23] for line in log.read_text(errors="replace").splitlines() if "aggregate_evaluate" in line]
    if not stamps:
        return None
    return datetime.strptime(stamps[-1], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _tail(last_round: float | None, ended: float) -> float | None:
    return round(ended - last_round, 2) if last_round else None


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tls(folder: Path) -> Path:
    from orchestrator.federation import tls

    material = tls.generate(["127.0.0.1"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ca.pem").write_bytes(material.ca_certificate)
    (folder / "server.pem").write_bytes(material.server_certificate)
    (folder / "server.key").write_bytes(material.server_key)
    return folder


def prepared(root: Path, clients: int, rows: int | None = None) -> Path:
    """The built-in synthetic-fraud set (75,000 rows, or `rows`) prepared for `clients` clients."""
    from orchestrator.data import datasets, synth
    from orchestrator.data.prepare import PrepareOptions, prepare

    out = root / f"fraud-{clients}-{rows or 'all'}"
    if not out.exists():
        dataset = datasets.get("synthetic-fraud")
        frame = synth.generate_fraud(rows=rows, seed=42) if rows else dataset.load(42)
        prepare(frame, PrepareOptions(label=dataset.label, clients=clients, categorical=dataset.categorical), out)
    return out


def wide(root: Path, features: int, classes: int, rows: int) -> Path:
    """A wide multiclass set: `features` numeric features, `classes` classes (make_classification), 3 clients."""
    import pandas as pd
    from sklearn.datasets import make_classification

    from orchestrator.data.prepare import PrepareOptions, prepare

    out = root / f"wide-{features}x{classes}"
    if not out.exists():
        X, y = make_classification(
            n_samples=rows, n_features=features, n_informative=40, n_classes=classes, random_state=0
        )
        frame = pd.DataFrame(X.round(3), columns=[f"x{i}" for i in range(features)]).assign(label=y)
        prepare(frame, PrepareOptions(label="label", clients=3, min_class_rows=1), out)
    return out


def _median(runs: list[dict]) -> dict:
    keys = ("wall_s", "cpu_s", "peak_rss_mb", "tail_s")
    summary = {
        k: statistics.median([r[k] for r in runs if r.get(k) is not None])
        for k in keys
        if any(r.get(k) is not None for r in runs)
    }
    return {**summary, "roc_auc": runs[-1].get("roc_auc"), "runs": runs}


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cli_startup(repeats: int) -> dict:
    """Median wall seconds of each command over `repeats` runs, and the median CPU seconds (user + sys).

    The CPU time is what the command itself spent, so it moves less with the machine's load.
    """

    def timed(command):
        times, cpu = [], []
        for _ in range(repeats):
            started, cpu_before = time.perf_counter(), _children_cpu()
            subprocess.run(command, capture_output=True, env=ENV, check=False)
            times.append(time.perf_counter() - started)
            cpu.append(_children_cpu() - cpu_before)
        return round(statistics.median(times), 3), round(statistics.median(cpu), 3)

    commands = {
        "fedsage --help": [str(BIN / "fedsage"), "--help"],
        "fedsage local --help": [str(BIN / "fedsage"), "local", "--help"],
        "flwr --help": [str(BIN / "flwr"), "--help"],
    }
    measured = {name: timed(command) for name, command in commands.items()}
    return {
        **{name: wall for name, (wall, _) in measured.items()},
        "cpu_s": {name: cpu for name, (_, cpu) in measured.items()},
        "runs": repeats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="cli,default,builtin,scaling,wide")
    parser.add_argument("--process-clients", default="10,25,50")
    parser.add_argument("--simulation-clients", default="10,25,50,100")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    parts = set(args.only.split(","))
    quick = args.quick
    rows = 6000 if quick else None
    root = Path(tempfile.mkdtemp(prefix="side-by-side-"))
    tls = _tls(root / "tls")
    report: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "load_before": _uptime(),
        "quick": quick,
        "started": datetime.now().isoformat(timespec="seconds"),
    }
    try:
        if "cli" in parts:
            report["cli_startup_s"] = cli_startup(args.repeats + 2)
        if "default" in parts:
            data = prepared(root, 3, rows)
            rounds = 2 if quick else 5
            runs: dict[str, list[dict]] = {
                "bare_flower": [],
                "flower_simulation": [],
                "fedsage": [],
                "fedsage_simulation": [],
            }
            for _ in range(args.repeats):  # interleaved
                runs["bare_flower"].append(bare_flower(data, 3, rounds, tls))
                runs["flower_simulation"].append(flower_simulation(data, 3, rounds))
                runs["fedsage"].append(fedsage(["--data-dir", str(data), "--rounds", str(rounds)], root / "runs"))
                runs["fedsage_simulation"].append(
                    fedsage(
                        ["--data-dir", str(data), "--rounds", str(rounds), "--backend", "simulation"], root / "runs"
                    )
                )
            report["default_job"] = {"clients": 3, "rounds": rounds, **{k: _median(v) for k, v in runs.items()}}
        if "builtin" in parts:
            cache = root / "cache"
            env = {**ENV, "FEDSAGE_CACHE_DIR": str(cache)}
            cold, warm = [], []
            for _ in range(args.repeats):
                shutil.rmtree(cache, ignore_errors=True)
                for target in (cold, warm):
                    run = measure([[str(BIN / "fedsage"), "local", "--out", str(root / "builtin")]], env)
                    run.pop("output")
                    target.append(run)
            report["builtin_default"] = {"data_prepared": _median(cold), "data_from_cache": _median(warm)}
        if "scaling" in parts:
            scaling: dict[str, dict] = {}
            sizes = sorted({int(n) for n in (args.process_clients + "," + args.simulation_clients).split(",") if n})
            for n in [3, 4] if quick else sizes:
                data = prepared(root, n, rows)
                row: dict[str, dict] = {}
                common = ["--data-dir", str(data), "--rounds", "3"]
                if quick or str(n) in args.simulation_clients.split(","):
                    row["flower_simulation"] = flower_simulation(data, n, 3)
                    row["fedsage_simulation"] = fedsage([*common, "--backend", "simulation"], root / "runs")
                if quick or str(n) in args.process_clients.split(","):
                    row["bare_flower"] = bare_flower(data, n, 3, tls)
                    row["fedsage"] = fedsage(common, root / "runs")
                scaling[str(n)] = row
                print(n, {k: (v.get("wall_s"), v.get("peak_rss_mb")) for k, v in row.items()}, flush=True)
            report["clients_x_3_rounds"] = scaling
        if "wide" in parts:
            features, classes, wide_rows = (200, 10, 3000) if quick else (2000, 10, 6000)
            data = wide(root, features, classes, wide_rows)
            report["wide_model"] = {
                "features": features,
                "classes": classes,
                "rows": wide_rows,
                "rounds": 3,
                "bare_flower": bare_flower(data, 3, 3, tls),
                "fedsage": fedsage(["--data-dir", str(data), "--rounds", "3"], root / "runs"),
            }
    finally:
        report["load_after"] = _uptime()
        shutil.rmtree(root, ignore_errors=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        print(json.dumps(report, indent=1)[:6000])


ROLES = {"_server": role_server, "_client": role_client, "_simulation": role_simulation}

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ROLES:
        ROLES[sys.argv[1]](*sys.argv[2:])
    else:
        main()
