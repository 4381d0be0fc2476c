"""The process backend starts a program exactly as SageMaker's real training toolkit does.

The same request runs twice with a probe as its program: once in a container through the real
sagemaker-training toolkit (docker backend), once as a process (the process backend's emulation,
orchestrator/backends/toolkit.py). The probe records its arguments, environment, working
directory and the config files it sees; apart from where /opt/ml is and what the image itself
sets (PATH, HOME, HOSTNAME, the interpreter's own sys.path), they must be the same.
"""

import json
import time

import pytest
from docker_support import docker_client, training_image  # noqa: F401 - fixtures

from orchestrator.backends import COMPLETED
from orchestrator.backends.docker import DockerBackend
from orchestrator.backends.process import THREAD_VARIABLES, ProcessBackend
from orchestrator.plan import CLIENT_TAG, ENVIRONMENT, RUN_ID_TAG

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PROBE = """
import json, os, sys
config = os.environ["SM_INPUT_CONFIG_DIR"]
seen = {
    "argv": sys.argv,
    "cwd": os.getcwd(),
    "env": dict(os.environ),
    "config": {name: json.load(open(os.path.join(config, name))) for name in sorted(os.listdir(config))},
}
with open(os.path.join(os.environ["SM_MODEL_DIR"], "probe.json"), "w") as out:
    json.dump(seen, out)
"""
CONTAINER_ONLY = {"HOME", "HOSTNAME", "PATH"}  # the image's and the machine's own


def _request(tmp_path, code, backend):
    train = tmp_path / "train"
    train.mkdir(exist_ok=True)
    (train / "part.csv").write_text("a,y\n1,0\n")
    hyperparameters = {
        "sagemaker_program": json.dumps("probe.py"),
        "sagemaker_submit_directory": json.dumps(code.as_uri()),
        "sagemaker_container_log_level": "20",
        "sagemaker_region": json.dumps("eu-west-1"),
        "sagemaker_custom_flag": json.dumps("kept?"),
        "epochs": "3",
        "lr": "0.01",
        "name": json.dumps("hello world"),
        "flag": "true",
        "cfg": json.dumps({"b": [1, 2], "a": "x y"}),
        "lst": "[1, 2, 3]",
        "raw": "not-json",
        "none": "null",
        "b": json.dumps("1"),
        "Upper-Key": json.dumps("v"),
        "empty": json.dumps(""),
        "zz-last": json.dumps('"quoted"'),
    }
    return {
        "TrainingJobName": f"probe-{backend}",
        "AlgorithmSpecification": {"TrainingImage": "local", "TrainingInputMode": "File"},
        "HyperParameters": hyperparameters,
        "Environment": dict(ENVIRONMENT),
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": train.as_uri()}},
                "ContentType": "text/csv",
                "InputMode": "File",
            }
        ],
        "OutputDataConfig": {"S3OutputPath": (tmp_path / "artifacts" / backend).as_uri()},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "Tags": [{"Key": RUN_ID_TAG, "Value": "probe"}, {"Key": CLIENT_TAG, "Value": "client-1"}],
    }


def _run(backend, request, timeout=180):
    backend.launch(request)
    deadline = time.monotonic() + timeout
    while not (status := backend.poll(request["TrainingJobName"])).terminal:
        assert time.monotonic() < deadline, "the probe did not finish"
        time.sleep(0.3)
    assert status.status == COMPLETED, (status, backend.logs(request["TrainingJobName"], 30))


def test_the_process_backend_starts_the_program_as_the_real_toolkit_does(
    tmp_path,
    docker_client,
    training_image,
    monkeypatch,
):
    for variable in THREAD_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    code = tmp_path / "code"
    code.mkdir()
    (code / "probe.py").write_text(PROBE)

    docker = DockerBackend(tmp_path / "docker", training_image, client=docker_client)
    _run(docker, _request(tmp_path, code, "docker"))
    process = ProcessBackend(tmp_path / "process", storage=None)
    _run(process, _request(tmp_path, code, "process"))

    real = json.loads((tmp_path / "docker" / "client-1" / "opt" / "ml" / "model" / "probe.json").read_text())
    root = str((tmp_path / "process" / "client-1" / "opt" / "ml").resolve())
    text = (tmp_path / "process" / "client-1" / "opt" / "ml" / "model" / "probe.json").read_text()
    emulated = json.loads(text.replace(root, "/opt/ml").replace("probe-process", "probe-docker"))

    assert emulated["argv"] == real["argv"]
    assert real["argv"][-2:] == ["--zz-last", "quoted"]  # the toolkit strips the quotes of the last argument
    assert emulated["cwd"] == real["cwd"] == "/opt/ml/code"
    assert emulated["config"] == real["config"]
    real_env, emulated_env = real["env"], emulated["env"]
    assert real_env["PYTHONPATH"].split(":")[0] == emulated_env["PYTHONPATH"].split(":")[0] == "/opt/ml/code"
    differing = {
        key: (real_env[key], emulated_env.get(key))
        for key in sorted(set(real_env) - CONTAINER_ONLY - {"PYTHONPATH"})
        if emulated_env.get(key) != real_env[key]
    }
    assert differing == {}
    extra = sorted(key for key in emulated_env if key.startswith("SM_") and key not in real_env)
    assert extra == []
    assert real_env["PIP_TARGET"] == ENVIRONMENT["PIP_TARGET"] and "SM_HP_UPPER-KEY" in real_env
