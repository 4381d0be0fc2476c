"""Where the time after the last round goes: read a py-spy raw profile of `fedsage local` (main thread).

Record: py-spy record --idle -r 200 --format raw -o tail.raw -- fedsage local --out /tmp/runs
Then:   python benchmarks/tail_profile.py tail.raw [--rate 200]  -> JSON: seconds per phase of the run.

Each main-thread sample is attributed to the first phase marker found in its stack (innermost
phases first), so the phases do not overlap.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

# (phase, a substring of a frame), innermost first
PHASES = [
    ("figures: PNGs from the plotter (or drawn here)", "Plotter.png"),
    ("figures: computed and handed to the plotter", "FederationRun._draw_figures"),
    ("report.md", "write_report"),
    ("metrics.json/csv", "write_metrics_"),
    ("run.json (summary)", "RunRecord.summary"),
    ("stop jobs / server", "FederationRun._finish"),
    ("save model (server)", "save_model (orchestrator/run/saving.py"),
    ("wait for the jobs to exit", "JobWatcher.wait_all"),
    ("federation (rounds)", "FederationRun._watch"),
    ("launch jobs (and wait for the input check)", "FederationRun._launch"),
    ("bind server + TLS", "FederationRun._bind"),
    ("prepare data / set up run", "build_local_run"),
    ("CLI after the run (summary table, tracking)", "print_outcome"),
    ("imports", "_find_and_load"),
]


def breakdown(path: str, rate: float) -> dict[str, float]:
    counts: Counter[str] = Counter()
    with open(path) as handle:
        for line in handle:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack.startswith("<module> (fedsage"):
                continue  # other threads: the Flower server, gRPC, job waiters
            phase = next((name for name, marker in PHASES if marker in stack), "other (main thread)")
            counts[phase] += int(count)
    return {phase: round(n / rate, 3) for phase, n in counts.most_common()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw")
    parser.add_argument("--rate", type=float, default=200.0)
    args = parser.parse_args()
    print(json.dumps(breakdown(args.raw, args.rate), indent=1))


if __name__ == "__main__":
    main()
