"""The SageMaker container contract, as the local backends reproduce it (the real toolkit: test_toolkit.py)."""

import io
import json
import tarfile
from pathlib import Path

from orchestrator.backends.container import FileStorage, lay_out, package_model, unpack_code
from orchestrator.backends.toolkit import (
    decode_hyperparameters,
    env_value,
    program_command,
    program_environment,
    split_hyperparameters,
    to_cmd_args,
)


def test_hyperparameters_are_decoded_one_by_one_like_the_training_toolkit():
    # a value that is not JSON stays the raw string; the others are still decoded
    assert decode_hyperparameters({"a": '"x"', "b": "10", "c": "not json"}) == {"a": "x", "b": 10, "c": "not json"}
    toolkit, user = split_hyperparameters({"sagemaker_program": "p.py", "sagemaker_other": 1, "lr": 0.1})
    assert toolkit == {"sagemaker_program": "p.py", "sagemaker_other": 1} and user == {"lr": 0.1}


def test_cmd_args_are_sorted_and_formatted_like_the_training_toolkit():
    args = to_cmd_args({"zeta": 1, "alpha": "b", "c": 2.5, "flag": True, "none": None, "cfg": {"b": [1], "a": "x"}})
    assert args == ["--alpha", "b", "-c", "2.5", "--cfg", "a=x,b=[1]", "--flag", "True", "--none", "", "--zeta", "1"]
    assert env_value({"b": 1, "a": None}) == '{"a":null,"b":1}' and env_value(None) == "" and env_value("x y") == "x y"


def _request(tmp_path: Path, code_uri: str) -> dict:
    train = tmp_path / "data" / "train"
    train.mkdir(parents=True)
    (train / "part.csv").write_text("a,y\n1,0\n")
    return {
        "TrainingJobName": "fedsage-run-client-1",
        "HyperParameters": {
            "sagemaker_program": json.dumps("train.py"),
            "sagemaker_submit_directory": json.dumps(code_uri),
            "max-iter": json.dumps(10),
            "name": json.dumps('"quoted"'),
        },
        "Environment": {"PIP_TARGET": "/opt/fedsage/deps"},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3Uri": train.as_uri()}},
                "ContentType": "text/csv",
            }
        ],
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "OutputDataConfig": {"S3OutputPath": (tmp_path / "artifacts").as_uri()},
    }


def test_the_tree_is_laid_out_as_sagemaker_does_and_the_program_started_as_the_toolkit_would(tmp_path):
    archive = tmp_path / "source.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        payload = b"print('hello')\n"
        info = tarfile.TarInfo("train.py")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    request = _request(tmp_path, archive.as_uri())
    tree = lay_out(request, tmp_path / "job" / "opt" / "ml", FileStorage())
    unpack_code(tree, FileStorage(), archive.as_uri())

    root = (tmp_path / "job" / "opt" / "ml").resolve()
    assert tree.root == root
    assert (root / "code" / "train.py").read_text() == "print('hello')\n"
    assert (root / "input" / "data" / "train" / "part.csv").exists()
    assert (root / "input" / "data" / "train").is_symlink()  # mounted, not copied
    config = root / "input" / "config"
    assert json.loads((config / "hyperparameters.json").read_text()) == request["HyperParameters"]
    assert json.loads((config / "resourceconfig.json").read_text())["current_instance_type"] == "ml.m5.large"
    assert json.loads((config / "inputdataconfig.json").read_text())["train"]["TrainingInputMode"] == "File"
    # the last argument loses its quotes, as the toolkit strips them
    assert program_command("python3", root) == ["python3", "train.py", "--max-iter", "10", "--name", "quoted"]
    env = program_environment(root, {"TRAINING_JOB_NAME": "fedsage-run-client-1"}, 2)
    assert env["SM_CHANNEL_TRAIN"] == str(root / "input" / "data" / "train")
    assert env["SM_MODEL_DIR"] == str(root / "model") and env["SM_OUTPUT_DIR"] == str(root / "output")
    assert json.loads(env["SM_CHANNELS"]) == ["train"] and env["SM_HP_MAX-ITER"] == "10"
    assert json.loads(env["SM_USER_ARGS"]) == ["--max-iter", "10", "--name", '"quoted"']
    assert json.loads(env["SM_TRAINING_ENV"])["job_name"] == "fedsage-run-client-1"
    assert env["PYTHONPATH"].split(":")[0] == str(root / "code")


def test_a_code_folder_is_copied_and_the_model_packed_where_sagemaker_puts_it(tmp_path):
    code = tmp_path / "code-src"
    code.mkdir()
    (code / "train.py").write_text("")
    tree = lay_out(_request(tmp_path, code.as_uri()), tmp_path / "ml", FileStorage())
    unpack_code(tree, FileStorage(), code.as_uri())
    assert (tree.code_dir / "train.py").exists() and not tree.code_dir.is_symlink()

    (tree.model_dir / "model.joblib").write_bytes(b"model")
    uri = package_model(tree, FileStorage())
    assert uri == f"{(tmp_path / 'artifacts').as_uri()}/fedsage-run-client-1/output/model.tar.gz"
    with tarfile.open(tmp_path / "artifacts" / "fedsage-run-client-1" / "output" / "model.tar.gz") as tar:
        assert tar.getnames() == ["model.joblib"]


def test_failure_reason_is_the_failure_file_on_one_line_within_sagemakers_limit(tmp_path):
    tree = lay_out(_request(tmp_path, tmp_path.as_uri()), tmp_path / "ml", FileStorage())
    assert tree.failure_reason() is None
    tree.failure_file.write_text("ExecuteUserScriptError:\nExitCode 1\n" + "x" * 2000)
    reason = tree.failure_reason()
    assert reason.startswith("ExecuteUserScriptError: ExitCode 1 x") and len(reason) == 1024


def _sleeper(tmp_path, limit):
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "sleep.py").write_text("import time\ntime.sleep(60)\n")
    request = _request(tmp_path, code.as_uri())
    request["HyperParameters"]["sagemaker_program"] = json.dumps("sleep.py")
    request["StoppingCondition"] = {"MaxRuntimeInSeconds": limit}
    request["Tags"] = [{"Key": "fedsage:run-id", "Value": "r"}, {"Key": "fedsage:client", "Value": "client-1"}]
    return request


def test_the_process_backend_stops_a_job_past_its_max_runtime_as_sagemaker_does(tmp_path):
    import time

    from orchestrator.backends import STOPPED
    from orchestrator.backends.process import ProcessBackend

    backend = ProcessBackend(tmp_path / "jobs")
    backend.launch(_sleeper(tmp_path, 1))
    deadline = time.monotonic() + 30
    while not (status := backend.poll("fedsage-run-client-1")).terminal:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert (status.status, status.secondary_status) == (STOPPED, "MaxRuntimeExceeded")
    assert "MaxRuntimeInSeconds (1 s)" in status.failure_reason
    assert backend.processes()["fedsage-run-client-1"].poll() is not None
