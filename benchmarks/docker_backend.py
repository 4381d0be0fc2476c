"""The docker backend against the process backend on the default job (3 clients x 5 rounds).

Measures, on this machine's Docker daemon:

* `fedsage image build`: cold (the image removed, the wheels downloaded into an empty cache) and
  cached (the same inputs: the tag exists, nothing is built);
* `fedsage local --backend docker` with defaults: a first run with an empty dependency cache
  (every container's toolkit installs the archive's 62 wheels, as SageMaker does on every job),
  then cached runs (the toolkit's pip resolves and hash-checks the wheels, the install is reused);
* `fedsage local` (process backend) with defaults, the same number of times.

For each run: total wall time (the console script, timed from outside), the time until the
console prints round 0 (the clients joined, the statistics phase done, the test set scored),
seconds per round, each client program's peak memory (its own VmHWM, as client.log reports it;
inside a container the toolkit's process is not included).
Writes benchmarks/results/docker.json, which docs/benchmarks.md quotes.

Usage: python benchmarks/docker_backend.py [--repeats 3] [--base-image fedsage-base:noble]
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

from orchestrator.imagebuild.build import REPOSITORY, build
from orchestrator.imagebuild.daemon import cache_dir, connect

RESULTS = Path(__file__).parent / "results" / "docker.json"
FRAMEWORK = "1.4-2-py312"


def image_build(base: str) -> dict:
    """Cold and cached `fedsage image build` (the cold one with an empty wheel cache)."""
    client = connect()
    for image in client.images.list(name=REPOSITORY):
        for tag in image.tags:
            if tag.startswith(f"{REPOSITORY}:{FRAMEWORK}"):
                client.images.remove(tag)
    with tempfile.TemporaryDirectory() as empty:
        os.environ["FEDSAGE_CACHE_DIR"] = empty
        cold = build(FRAMEWORK, base, client=client)
        del os.environ["FEDSAGE_CACHE_DIR"]
    cached = build(FRAMEWORK, base, client=client)
    assert not cold.cached and cached.cached
    return {"cold_seconds": cold.seconds, "cached_seconds": cached.seconds, "tag": cold.image.tag}


def run(out: Path, *extra: str, env: dict | None = None) -> dict:
    """`fedsage local` with defaults (and `extra` options), timed from outside; its run's figures."""
    fedsage = shutil.which("fedsage", path=os.path.dirname(sys.executable)) or "fedsage"
    started, round_0 = time.perf_counter(), None
    command = [fedsage, "local", "--out", str(out), *extra]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as job:
        for line in job.stdout:  # the console's "round 0/5 ..." line: the test set scored before round 1
            if round_0 is None and line.startswith("round 0/"):
                round_0 = time.perf_counter() - started
        error = job.stderr.read()
    wall = time.perf_counter() - started
    if job.returncode != 0 or round_0 is None:
        raise SystemExit(f"fedsage local {' '.join(extra)} failed ({job.returncode}): {error.strip()}")
    run_dir = next(out.iterdir())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rounds = [r for r in metrics["rounds"] if r["round"] > 0]
    logs = (run_dir / "clients").glob("*/client.log")
    peaks = [int(re.search(r"peak memory (\d+) MB", log.read_text())[1]) for log in logs]
    return {
        "wall_seconds": wall,
        "start_until_round_0_seconds": round_0,
        "round_seconds": [r["seconds"] for r in rounds],
        "client_peak_memory_mb": peaks,
        "final_roc_auc": rounds[-1]["server"]["roc_auc"],
    }


def summary(samples: list[dict]) -> dict:
    """Medians over runs."""
    med = statistics.median
    return {
        "wall_seconds": med(s["wall_seconds"] for s in samples),
        "start_until_round_0_seconds": med(s["start_until_round_0_seconds"] for s in samples),
        "round_seconds": med(r for s in samples for r in s["round_seconds"]),
        "client_peak_memory_mb": med(p for s in samples for p in s["client_peak_memory_mb"]),
        "final_roc_auc": samples[-1]["final_roc_auc"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--base-image", default="fedsage-base:noble")
    args = parser.parse_args()

    images = image_build(args.base_image)
    print(f"image build: cold {images['cold_seconds']:.1f} s, cached {images['cached_seconds']:.1f} s", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"  # an empty dependency cache; the code archives are the machine's
        cache.mkdir()
        (cache / "archives").symlink_to(cache_dir() / "archives", target_is_directory=True)
        env = {**os.environ, "FEDSAGE_CACHE_DIR": str(cache)}
        first = run(Path(tmp) / "first", "--backend", "docker", env=env)
        print(f"docker, installing: {first['wall_seconds']:.1f} s", file=sys.stderr)
        docker, process = [], []
        for repeat in range(args.repeats):
            docker.append(run(Path(tmp) / f"docker-{repeat}", "--backend", "docker", env=env))
            process.append(run(Path(tmp) / f"process-{repeat}"))
            print(
                f"repeat {repeat + 1}: docker {docker[-1]['wall_seconds']:.1f} s, "
                f"process {process[-1]['wall_seconds']:.1f} s",
                file=sys.stderr,
            )
    cached, local = summary(docker), summary(process)
    result = {
        "benchmark": "fedsage local defaults (synthetic-fraud, 3 clients x 5 rounds): docker vs process backend",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "repeats": args.repeats,
        "image_build": images,
        "docker_first_run_installing": first,
        "docker_cached": cached,
        "process": local,
        "docker_cached_over_process_wall": cached["wall_seconds"] / local["wall_seconds"],
        "target": "a cached docker run within 2x the process backend's wall time",
        "samples": {"docker": docker, "process": process},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))


if __name__ == "__main__":
    main()
