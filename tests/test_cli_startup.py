"""`fedsage --help` stays fast: the CLI, every command's help and its argument errors import no heavy library.

Each check runs in a fresh interpreter (a subprocess), because this test process has long imported
everything. The measured start-up times are in benchmarks/cli_startup.py, not here.
"""

import json
import subprocess
import sys

import pytest

# What the commands import when they run, never to parse arguments or print help (~1 s of imports).
HEAVY = (
    "sklearn",
    "scipy",
    "pandas",
    "flwr",
    "grpc",
    "boto3",
    "botocore",
    "docker",
    "matplotlib",
    "xgboost",
    "mlflow",
)

_EVERY_HELP = """
import contextlib, io, json, sys
import click, typer
from orchestrator.cli import app, main

def paths(command, prefix=()):
    yield prefix
    for name, sub in getattr(command, "commands", {}).items():
        yield from paths(sub, (*prefix, name))

def run(args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            return exc.code, out.getvalue() + err.getvalue()
    return 0, out.getvalue() + err.getvalue()

results = {" ".join(path) or "fedsage": run([*path, "--help"]) for path in paths(typer.main.get_command(app))}
results["local --rounds x"] = run(["local", "--rounds", "x"])
results["inspect"] = run(["inspect"])
print(json.dumps({"results": results, "modules": sorted(sys.modules)}))
"""


def _fresh(code: str) -> dict:
    """Run `code` in a new interpreter and return what it printed, as JSON."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def _heavy(modules: list[str]) -> list[str]:
    return sorted({name.split(".")[0] for name in modules} & set(HEAVY))


def test_every_help_and_argument_error_imports_no_heavy_library():
    report = _fresh(_EVERY_HELP)
    results = report["results"]
    # every command was found and printed its own help (exit 0), the argument errors their one line (exit 2)
    assert {"fedsage", "local", "inspect", "data", "data profile", "runs", "infra", "image", "doctor"} <= set(results)
    for command, (code, text) in results.items():
        if command in ("local --rounds x", "inspect"):
            assert code == 2, (command, text)
            assert text.startswith("error: "), (command, text)
        else:
            assert code == 0, (command, text)
            assert "Usage:" in text, (command, text)
    assert "--max-iter" in results["local"][1]
    assert _heavy(report["modules"]) == []


def test_config_imports_no_estimator_or_data_library():
    """The [model] kinds and their keys are declared without scikit-learn, pandas or xgboost."""
    report = _fresh(
        "import json, sys\n"
        "from orchestrator.config import model_settings\n"
        "model_settings(kind='mlp', hidden_layer_sizes=[8])\n"
        "print(json.dumps({'modules': sorted(sys.modules)}))"
    )
    assert _heavy(report["modules"]) == []


# as the console script: Python's start-up (its site module) and the import of the tiny entry module come
# before any handler of fedsage can hold (a few milliseconds); from "started" on, fedsage's code runs
_AFTER_START_UP = """
import sys
from orchestrator.entry import main
sys.argv = ["fedsage", *sys.argv[1:]]
sys.stderr.write("started\\n"); sys.stderr.flush(); main()
"""


@pytest.mark.parametrize(("signum", "code", "word"), [(2, 130, "interrupted"), (15, 143, "terminated")])
def test_ctrl_c_or_sigterm_at_any_moment_of_the_start_is_one_line_and_its_exit_code(tmp_path, signum, code, word):
    """SIGINT or SIGTERM during the imports, the option checks or the run's start: never a traceback, 130/143 or done.

    SIGTERM's default action would end the process silently with -15 before the CLI's handler holds.
    """
    import time

    # from 20 ms: the child's few steps from the "started" line into main() are not fedsage's to guard
    for delay in (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8):
        command = [sys.executable, "-c", _AFTER_START_UP, "local", "--rounds", "1", "--out", str(tmp_path / "runs")]
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr.readline() == "started\n"
        time.sleep(delay)
        process.send_signal(signum)
        out, err = process.communicate(timeout=120)
        assert "Traceback" not in out + err, (delay, err)
        assert process.returncode in (code, 0, 2), (delay, process.returncode, err)
        if process.returncode == code:
            assert err.strip().splitlines()[-1].startswith(word), (delay, err)


# `fedsage local` as the console script, its process backend's launch replaced by a probe that records what
# the CLI had imported when the first job would have started, then ends the command
_AT_FIRST_LAUNCH = """
import json, os, sys, threading
from orchestrator.backends import process
from orchestrator.entry import main
first = threading.Lock()  # the jobs launch in parallel: one probe reports, the others wait for the exit

def probe(self, request):
    first.acquire()
    print(json.dumps({"modules": sorted(sys.modules)}), flush=True)
    os._exit(0)

process.ProcessBackend.launch = probe
sys.argv = ["fedsage", *sys.argv[1:]]
main()
"""


def _modules_at_first_launch(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _AT_FIRST_LAUNCH, "local", *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])["modules"]


def test_local_launches_its_jobs_before_importing_flower_or_the_data_stack(prepared_dir, tmp_path):
    """Issue 15: a client job needs seconds to import its libraries; the CLI starts it before its own ~1 s of them.

    The run listens with grpc alone (federation/listener.py); Flower's server, pandas and
    scikit-learn (the input check, the test set) are imported while the jobs start. So for the
    built-in data set copied from the cache (the second run of `fedsage local`; the first
    generates it, with pandas).
    """
    runs = ("--out", str(tmp_path / "runs"))
    generated = _modules_at_first_launch(*runs)
    assert "pandas" in _heavy(generated)  # the data set was made for this run: its pandas is no extra
    for modules in (_modules_at_first_launch("--data-dir", str(prepared_dir), *runs), _modules_at_first_launch(*runs)):
        assert "grpc" in _heavy(modules)  # it listens already: the jobs are given its port
        assert set(_heavy(modules)) & {"flwr", "pandas", "sklearn", "scipy", "matplotlib"} == set()
