"""The SageMaker container contract, as the local backend reproduces it."""

import io
import json
import tarfile
from pathlib import Path

from orchestrator.backends.container import (
    FileStorage,
    build_container,
    decode_hyperparameters,
    package_model,
    to_cmd_args,
)


def test_hyperparameters_are_decoded_like_the_training_toolkit():
    assert decode_hyperparameters({"a": '"x"', "b": "10"}) == {"a": "x", "b": 10}
    # one value that is not JSON: the toolkit gives up and passes every value through raw
    assert decode_hyperparameters({"a": '"x"', "b": "not json"}) == {"a": '"x"', "b": "not json"}


def test_cmd_args_are_sorted_without_sagemaker_keys_and_short_keys_get_one_dash():
    args = to_cmd_args({"zeta": 1, "alpha": "b", "sagemaker_program": "train.py", "c": 2.5})
    assert args == ["--alpha", "b", "-c", "2.5", "--zeta", "1"]


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
        },
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3Uri": train.as_uri()}},
                "ContentType": "text/csv",
            }
        ],
        "OutputDataConfig": {"S3OutputPath": (tmp_path / "artifacts").as_uri()},
    }


def test_container_lays_out_opt_ml_from_a_code_archive(tmp_path):
    archive = tmp_path / "source.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        payload = b"print('hello')\n"
        info = tarfile.TarInfo("train.py")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    request = _request(tmp_path, archive.as_uri())
    container = build_container(request, tmp_path / "job" / "opt" / "ml", FileStorage(), python="python3")

    root = (tmp_path / "job" / "opt" / "ml").resolve()
    assert container.root == root
    assert (root / "code" / "train.py").read_text() == "print('hello')\n"
    assert (root / "input" / "data" / "train" / "part.csv").exists()
    assert (root / "input" / "data" / "train").is_symlink()  # mounted, not copied
    assert json.loads((root / "input" / "config" / "hyperparameters.json").read_text()) == request["HyperParameters"]
    assert container.argv == ["python3", "train.py", "--max-iter", "10"]
    env = container.env
    assert env["SM_CHANNEL_TRAIN"] == str(root / "input" / "data" / "train")
    assert env["SM_MODEL_DIR"] == str(root / "model") and env["SM_OUTPUT_DIR"] == str(root / "output")
    assert json.loads(env["SM_CHANNELS"]) == ["train"]
    assert env["FLWR_TELEMETRY_ENABLED"] == "0"
    assert all(Path(env[k]).is_absolute() for k in ("SM_MODEL_DIR", "SM_OUTPUT_DIR", "SM_CHANNEL_TRAIN"))


def test_container_copies_a_code_folder_and_packs_the_model_where_sagemaker_would(tmp_path):
    code = tmp_path / "code-src"
    code.mkdir()
    (code / "train.py").write_text("")
    container = build_container(_request(tmp_path, code.as_uri()), tmp_path / "ml", FileStorage())
    assert (container.code_dir / "train.py").exists() and not container.code_dir.is_symlink()

    (container.model_dir / "model.joblib").write_bytes(b"model")
    uri = package_model(container, FileStorage())
    assert uri == f"{(tmp_path / 'artifacts').as_uri()}/fedsage-run-client-1/output/model.tar.gz"
    with tarfile.open(tmp_path / "artifacts" / "fedsage-run-client-1" / "output" / "model.tar.gz") as tar:
        assert tar.getnames() == ["model.joblib"]


def test_failure_reason_comes_from_the_failure_file(tmp_path):
    code = tmp_path / "code-src"
    code.mkdir()
    container = build_container(_request(tmp_path, code.as_uri()), tmp_path / "ml", FileStorage())
    assert container.failure_reason() is None
    container.failure_file.write_text("bad data\n")
    assert container.failure_reason() == "bad data"
