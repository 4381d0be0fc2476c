"""`fedsage local --backend docker`: client jobs as containers run by SageMaker's real training toolkit.

Every test here needs a Docker daemon (`.ci/provision-docker`) and the local training image
(built once per machine on the offline base image). The session installs the code archive's
wheels for real through the toolkit (the isolation test, and the first federation); later
federations reuse that install from the session's dependency cache.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import pytest
from cli_runner import run_cli
from docker_support import (  # noqa: F401 - fixtures
    docker_cache,
    docker_client,
    run_containers,
    training_image,
    use_docker_cache,
    wait_for_no_containers,
)

from orchestrator import config
from orchestrator.backends import COMPLETED
from orchestrator.backends.docker import DockerBackend
from orchestrator.data import layout
from orchestrator.data.prepare import PrepareOptions, prepare
from orchestrator.data.synth import LABEL
from orchestrator.errors import BadInput, RunFailed
from orchestrator.imagebuild.daemon import CLIENT_LABEL, JOB_LABEL, RUN_LABEL
from orchestrator.local import LocalOptions, build_local_run
from orchestrator.plan import CLIENT_TAG, ENVIRONMENT, RUN_ID_TAG
from orchestrator.run.events import JobLog, RoundFinished

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# A program that starts as fedsage_client.py does (client_code/constants.py ENTRY_SOURCE), then
# records where its libraries come from, whether the toolkit's environment still imports, and pip check.
ISOLATION_PROBE = """
import json, os, subprocess, sys
sys.path.insert(1, os.environ["PIP_TARGET"])
import flwr, google.protobuf, numpy, sklearn, urllib3
modules = (flwr, google.protobuf, numpy, sklearn, urllib3)
program = {m.__name__: [m.__version__, m.__file__] for m in modules}
check = (
    "import sagemaker_training.trainer, sagemaker_training.recordio, sagemaker_training.encoders, boto3; "
    "import google.protobuf as p, numpy as n, urllib3 as u; print(p.__version__, n.__version__, u.__version__)"
)
toolkit = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
env = {k: v for k, v in os.environ.items() if k != "PIP_TARGET"}
pip = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, env=env)
result = {
    "program": program,
    "toolkit": [toolkit.returncode, toolkit.stdout + toolkit.stderr],
    "pip_check": [pip.returncode, pip.stdout + pip.stderr],
    "bytecode": sum(name.endswith(".pyc") for _, _, names in os.walk(os.environ["PIP_TARGET"]) for name in names),
}
json.dump(result, open(os.path.join(os.environ["SM_MODEL_DIR"], "isolation.json"), "w"))
"""


@pytest.fixture(scope="module")
def two_clients(tmp_path_factory, fraud_frame) -> Path:
    """A prepared-data folder with 2 clients (read-only)."""
    out = tmp_path_factory.mktemp("two-clients") / "data"
    prepare(fraud_frame, PrepareOptions(label=LABEL, clients=2, categorical=("region",), seed=7), out)
    return out


def _options(data: Path, out: Path, **given) -> LocalOptions:
    base = {"data_dir": data, "out": out, "rounds": 2, "join_timeout": 240, "round_timeout": 120, "seed": 11}
    return LocalOptions(**{**base, **given})


def _program_request(name, code, program, tmp_path, *, run="probe", client="client-1", **overrides) -> dict:
    """A one-job request whose program is `program` in the local code folder `code`."""
    request = {
        "TrainingJobName": name,
        "HyperParameters": {
            "sagemaker_program": json.dumps(program),
            "sagemaker_submit_directory": json.dumps(code.as_uri()),
        },
        "Environment": dict(ENVIRONMENT),
        "OutputDataConfig": {"S3OutputPath": (tmp_path / "artifacts").as_uri()},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 900},
        "Tags": [{"Key": RUN_ID_TAG, "Value": run}, {"Key": CLIENT_TAG, "Value": client}],
    }
    return request | overrides


def _wait(backend, name: str, timeout: float):
    """Poll a job until it ends; its last status."""
    deadline = time.monotonic() + timeout
    while not (status := backend.poll(name)).terminal:
        assert time.monotonic() < deadline, f"{name} did not end within {timeout:g} s"
        time.sleep(0.3)
    return status


def _parameters(model_path: Path) -> np.ndarray:
    model = joblib.load(model_path)[-1]  # the Pipeline's estimator
    return np.concatenate([model.coef_.ravel(), model.intercept_.ravel()])


def test_the_toolkit_installs_the_wheels_apart_and_still_imports_and_runs_after(
    tmp_path,
    docker_client,
    training_image,
):
    """The real archive's wheels go to PIP_TARGET; the program imports them, the toolkit keeps its own."""
    import tarfile

    from orchestrator.backends.docker_cache import code_archive

    code = tmp_path / "code"
    with tarfile.open(code_archive(training_image.python)) as archive:
        archive.extractall(code, filter="data")
    (code / "probe.py").write_text(ISOLATION_PROBE)
    request = _program_request("isolation-probe", code, "probe.py", tmp_path, run="isolation")
    backend = DockerBackend(tmp_path / "jobs", training_image, client=docker_client)
    backend.launch(request)
    status = _wait(backend, "isolation-probe", 600)
    log = (tmp_path / "jobs" / "client-1" / "client.log").read_text()
    assert status.status == COMPLETED, log[-3000:]
    assert "Installing dependencies from requirements.txt" in log and "Reporting training SUCCESS" in log
    seen = json.loads((tmp_path / "jobs" / "client-1" / "opt" / "ml" / "model" / "isolation.json").read_text())
    target = ENVIRONMENT["PIP_TARGET"]
    assert all(path.startswith(target) for _, path in seen["program"].values()), seen["program"]
    assert seen["program"]["google.protobuf"][0].startswith("6.") and seen["program"]["flwr"][0] == "1.41.0"
    code, output = seen["toolkit"]
    assert code == 0, output
    assert output.split()[:2] == ["3.20.2", "2.1.0"]  # the image's protobuf and numpy, untouched
    assert seen["pip_check"][0] == 0, seen["pip_check"][1]
    assert seen["bytecode"] == 0  # pip compiled nothing (PIP_COMPILE=0), nor did the imports (the image's setting)
    assert backend.containers() == []


def test_a_docker_federation_gives_the_process_backends_parameters(
    two_clients,
    tmp_path,
    docker_client,
    training_image,
    use_docker_cache,
):
    docker_run = build_local_run(_options(two_clients, tmp_path / "docker", backend="docker"))
    docker = docker_run.execute()
    process = build_local_run(_options(two_clients, tmp_path / "process")).execute()

    assert docker.history.final().round == process.history.final().round == 2
    np.testing.assert_allclose(_parameters(docker.model_path), _parameters(process.model_path), rtol=0, atol=1e-9)
    summary = json.loads((docker.run_dir / "run.json").read_text())
    assert summary["backend"] == DockerBackend.description
    assert {c["status"] for c in summary["clients"].values()} == {COMPLETED}
    for client in ("client-1", "client-2"):
        log = (docker.run_dir / "clients" / client / "client.log").read_text()
        assert "sagemaker-training-toolkit" in log and "Reporting training SUCCESS" in log
    assert run_containers(docker_client, docker.run_id) == []
    # the installed dependencies were kept for the next run, with the bytecode of what the client imported
    (deps,) = (use_docker_cache / "deps").iterdir()
    compiled, sources = (len(list(deps.rglob(pattern))) for pattern in ("*.pyc", "*.py"))
    assert list(deps.glob("flwr/client/__pycache__/*.pyc")) and compiled < sources / 2  # not all of it


def test_a_client_failing_in_its_container_is_reported_with_its_reason_and_log(
    two_clients,
    tmp_path,
    docker_client,
    training_image,
    use_docker_cache,
):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(two_clients, data)
    logs: list = []
    run = build_local_run(_options(data, tmp_path / "runs", backend="docker"), observer=logs.append)
    launch = run.backend.launch

    def launch_broken(request):  # client-2's job gets a value its program refuses: it fails before it joins
        if request["TrainingJobName"].endswith("client-2"):
            hyperparameters = {**request["HyperParameters"], "connect-timeout": json.dumps("soon")}
            request = {**request, "HyperParameters": hyperparameters}
        launch(request)

    run.backend.launch = launch_broken
    with pytest.raises(RunFailed, match=r"client 'client-2' job failed: .*connect-timeout"):
        run.execute()
    tails = [event for event in logs if isinstance(event, JobLog)]
    assert tails and tails[0].client == "client-2"
    assert any("ExecuteUserScriptError" in line or "fedsage.client" in line for line in tails[0].lines)
    summary = json.loads((run.run_dir / "run.json").read_text())
    assert "connect-timeout" in summary["clients"]["client-2"]["failure_reason"]
    assert wait_for_no_containers(docker_client, run.run_id, 10) == []


def test_ctrl_c_leaves_no_container_of_the_run(
    two_clients,
    tmp_path,
    docker_client,
    training_image,
    use_docker_cache,
):
    def interrupt(event):
        if isinstance(event, RoundFinished) and event.record.round == 1:
            raise KeyboardInterrupt

    run = build_local_run(_options(two_clients, tmp_path, backend="docker", rounds=50), observer=interrupt)
    with pytest.raises(KeyboardInterrupt):
        run.execute()
    assert run_containers(docker_client, run.run_id) == []
    assert json.loads((run.run_dir / "run.json").read_text())["status"] == "interrupted"


def test_a_killed_client_fails_the_run_and_leaves_no_container(
    two_clients,
    tmp_path,
    docker_client,
    training_image,
    use_docker_cache,
):
    def kill_client_2(event):
        if isinstance(event, RoundFinished) and event.record.round == 1:
            (victim,) = docker_client.containers.list(filters={"label": f"{CLIENT_LABEL}=client-2"})
            victim.kill()

    run = build_local_run(_options(two_clients, tmp_path, backend="docker", rounds=50), observer=kill_client_2)
    with pytest.raises(RunFailed, match=r"client 'client-2' job failed: .*code 137"):
        run.execute()
    assert wait_for_no_containers(docker_client, run.run_id, 10) == []


def test_sigterm_of_fedsage_leaves_no_container_of_the_run(
    two_clients,
    tmp_path,
    docker_client,
    training_image,
    use_docker_cache,
):
    out = tmp_path / "runs"
    command = [sys.executable, "-m", "orchestrator", "local", "--backend", "docker", "--data-dir", str(two_clients)]
    command += ["--rounds", "200", "--out", str(out)]
    fedsage = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob("*/checkpoints/round-001.npz")):  # the clients joined and trained
            assert fedsage.poll() is None and time.monotonic() < deadline, "the run did not reach round 1"
            time.sleep(0.5)
        (run_dir,) = out.iterdir()
        assert len(run_containers(docker_client, run_dir.name)) == 2
        fedsage.send_signal(signal.SIGTERM)
        fedsage.wait(60)
    finally:
        if fedsage.poll() is None:
            fedsage.kill()
    assert wait_for_no_containers(docker_client, run_dir.name, 30) == []


def test_fedsage_stop_finds_leftover_containers_by_label(
    tmp_path,
    capsys,
    monkeypatch,
    docker_client,
    training_image,
):
    monkeypatch.setenv("COLUMNS", "250")
    run_id = f"leftover-{os.getpid()}"
    for client in ("client-1", "client-2"):
        docker_client.containers.run(
            training_image.tag,
            ["sleep", "600"],
            name=f"fedsage-{run_id}-{client}",
            labels={RUN_LABEL: run_id, CLIENT_LABEL: client, JOB_LABEL: f"fedsage-{run_id}-{client}"},
            network_mode="none",
            init=True,  # as fedsage starts them: SIGTERM reaches the command
            detach=True,
        )
    try:
        code, out, _ = run_cli(capsys, "status", "--backend", "docker", "--run-id", run_id)
        assert code == 0 and f"fedsage-{run_id}-client-1" in out and f"fedsage-{run_id}-client-2" in out
        code, out, _ = run_cli(capsys, "stop", "--backend", "docker", "--run-id", run_id)
        assert code == 0 and out.count("stopped and removed") == 2
        assert run_containers(docker_client, run_id) == []
    finally:
        for container in run_containers(docker_client, run_id):
            container.remove(force=True)
    code, _, err = run_cli(capsys, "stop", "--backend", "docker", "--run-id", run_id)
    assert code == 2 and f"no containers of run {run_id}" in err


def test_an_image_whose_python_is_not_the_wheels_is_refused_before_any_container(
    two_clients,
    tmp_path,
    docker_client,
    training_image,
):
    from orchestrator.run.inputs import server_schema

    backend = DockerBackend(tmp_path, training_image, client=docker_client)
    federation = config.parse(
        {
            "container": {"python_version": "3.11"},  # wheels for 3.11, image 3.12
            "server": {"test_data": str(two_clients / layout.TEST)},
            "clients": [
                {"name": c.name, "train_uri": c.train.as_uri()} for c in layout.open_prepared(two_clients).clients
            ],
        }
    )
    with pytest.raises(BadInput) as refused:
        backend.check_inputs(federation, server_schema(federation))
    message = str(refused.value)
    assert "\n" not in message and "python_version = '3.11'" in message and "Python 3.12" in message
    assert backend.containers() == []


def test_a_container_gets_its_instance_types_limits_and_is_stopped_past_its_max_runtime(
    tmp_path,
    docker_client,
    training_image,
):
    from orchestrator.backends import STOPPED

    code = tmp_path / "code"
    code.mkdir()
    (code / "sleep.py").write_text("import time\ntime.sleep(120)\n")
    request = _program_request(
        "sleeper",
        code,
        "sleep.py",
        tmp_path,
        run="sleeper",
        ResourceConfig={"InstanceType": "ml.t3.medium", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 3},
    )
    backend = DockerBackend(tmp_path / "jobs", training_image, client=docker_client)
    backend.launch(request)
    (container,) = run_containers(docker_client, "sleeper")
    host = container.attrs["HostConfig"]
    assert host["Memory"] == 4 * 1024**3 and host["NanoCpus"] == int(min(2, os.cpu_count()) * 1e9)
    assert container.name == "sleeper" and host["Init"] is True and host["NetworkMode"] == "host"
    status = _wait(backend, "sleeper", 60)
    assert (status.status, status.secondary_status) == (STOPPED, "MaxRuntimeExceeded")
    assert run_containers(docker_client, "sleeper") == []
    assert "Invoking user script" in (tmp_path / "jobs" / "client-1" / "client.log").read_text()


NETWORK_PROBE = """
import json, os, socket
try:
    socket.create_connection(("127.0.0.1", int(os.environ["PROBE_PORT"])), timeout=5).close()
    seen = "connected"
except OSError as exc:
    seen = type(exc).__name__
json.dump(seen, open(os.path.join(os.environ["SM_MODEL_DIR"], "network.json"), "w"))
"""


def test_containers_on_no_network_cannot_reach_the_server_they_reach_on_the_host_network(
    two_clients,
    tmp_path,
    docker_client,
    training_image,
):
    import socket

    code = tmp_path / "code"
    code.mkdir()
    (code / "probe.py").write_text(NETWORK_PROBE)
    server = socket.create_server(("127.0.0.1", 0))
    seen = {}
    try:
        for network in ("host", "none"):
            environment = {"PROBE_PORT": str(server.getsockname()[1])}
            request = _program_request(
                f"network-{network}", code, "probe.py", tmp_path, client=network, Environment=environment
            )
            backend = DockerBackend(tmp_path / "jobs", training_image, client=docker_client, network=network)
            backend.launch(request)
            _wait(backend, request["TrainingJobName"], 60)
            seen[network] = json.loads(
                (tmp_path / "jobs" / network / "opt" / "ml" / "model" / "network.json").read_text()
            )
    finally:
        server.close()
    assert seen["host"] == "connected" and seen["none"] != "connected"
    # `fedsage local --network` reaches the backend
    run = build_local_run(_options(two_clients, tmp_path / "runs", backend="docker", network="none"))
    assert run.backend.network == "none"
