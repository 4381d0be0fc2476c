"""Run a TrainingJobRequest the way the SageMaker scikit-learn container runs script mode.

This is the contract client_code/train.py relies on, reproduced outside SageMaker so that the
local backend (and the tests' stand-in for SageMaker) execute the very request the
cloud backend sends:

* an /opt/ml tree: code/, input/config/*.json, input/data/<channel>/, model/, output/;
* the code archive (`sagemaker_submit_directory`) unpacked into code/;
* every channel's data under input/data/<channel>/ (a local folder is mounted as a symlink);
* hyperparameters decoded from JSON and passed as sorted `--key value` arguments, without the
  `sagemaker_*` ones, as sagemaker-training-toolkit does;
* the SM_* environment the toolkit sets;
* afterwards, model/ packed as model.tar.gz under <S3OutputPath>/<job name>/output/.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from orchestrator.plan import TrainingJobRequest
from orchestrator.run.folder import write_atomic

HOST = "algo-1"


class Storage(Protocol):
    """Moves channel data and artifacts between their URIs and the emulated container."""

    def download(self, uri: str, dest: Path) -> None:
        """Make the object or prefix at `uri` available as the folder `dest`."""

    def upload(self, path: Path, uri: str) -> None:
        """Store the local file `path` at `uri`."""


def file_path(uri: str) -> Path:
    """The local path of a file:// URI."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise ValueError(f"{uri} is not a file:// URI")
    return Path(unquote(parsed.path))


class FileStorage:
    """Storage for file:// URIs: folders are mounted by symlink, files copied."""

    def download(self, uri: str, dest: Path) -> None:
        """Mount a folder (symlink) or copy a single file into `dest`."""
        source = file_path(uri)
        if source.is_dir():
            dest.symlink_to(source.resolve(), target_is_directory=True)
        elif source.is_file():
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / source.name)
        else:
            raise FileNotFoundError(f"{uri} does not exist")

    def upload(self, path: Path, uri: str) -> None:
        """Copy `path` to the file:// location `uri`, whole or not at all."""
        target = file_path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, path.read_bytes())


def decode_hyperparameters(raw: dict[str, str]) -> dict[str, Any]:
    """Decode hyperparameter values as the toolkit does: all as JSON, or all as plain strings."""
    try:
        return {key: json.loads(value) for key, value in raw.items()}
    except (json.JSONDecodeError, TypeError):
        return dict(raw)


def to_cmd_args(hyperparameters: dict[str, Any]) -> list[str]:
    """User hyperparameters as sorted `--key value` arguments (sagemaker_* ones excluded)."""
    args: list[str] = []
    for key in sorted(hyperparameters):
        if key.startswith("sagemaker_"):
            continue
        args += [f"--{key}" if len(key) > 1 else f"-{key}", str(hyperparameters[key])]
    return args


@dataclass(frozen=True)
class Container:
    """An emulated training container, ready to run: its /opt/ml root, command and environment."""

    request: TrainingJobRequest
    root: Path
    argv: list[str]
    env: dict[str, str]

    @property
    def code_dir(self) -> Path:
        """Where the code archive was unpacked (/opt/ml/code); also the working directory."""
        return self.root / "code"

    @property
    def model_dir(self) -> Path:
        """SM_MODEL_DIR (/opt/ml/model)."""
        return self.root / "model"

    @property
    def failure_file(self) -> Path:
        """/opt/ml/output/failure, written by the program when it fails."""
        return self.root / "output" / "failure"

    def failure_reason(self) -> str | None:
        """The program's one-line failure reason, if it wrote one."""
        if self.failure_file.is_file():
            return self.failure_file.read_text().strip() or None
        return None

    def artifact_uri(self) -> str:
        """Where SageMaker would put this job's model.tar.gz."""
        output = self.request["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        return f"{output}/{self.request['TrainingJobName']}/output/model.tar.gz"


def _unpack_code(storage: Storage, uri: str, code_dir: Path, scratch: Path) -> None:
    """Fetch the code location and unpack it into code/, as the toolkit does with source.tar.gz."""
    storage.download(uri, scratch)
    files = [p for p in scratch.iterdir()] if scratch.is_dir() else []
    archives = [p for p in files if p.name.endswith((".tar.gz", ".tgz"))]
    code_dir.mkdir(parents=True, exist_ok=True)
    if len(archives) == 1 and len(files) == 1:
        with tarfile.open(archives[0]) as archive:
            archive.extractall(code_dir, filter="data")
    else:
        shutil.copytree(scratch, code_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    if scratch.is_symlink():
        scratch.unlink()
    else:
        shutil.rmtree(scratch)


def build_container(
    request: TrainingJobRequest, root: Path, storage: Storage, python: str = sys.executable
) -> Container:
    """Lay out /opt/ml under `root` for `request` and return how to run its program.

    Paths in the environment are absolute, because the program runs with code/ as its
    working directory.
    """
    root = Path(root).resolve()
    hyperparameters = decode_hyperparameters(request["HyperParameters"])
    program = hyperparameters["sagemaker_program"]
    config_dir = root / "input" / "config"
    data_dir = root / "input" / "data"
    for folder in (config_dir, data_dir, root / "model", root / "output" / "data"):
        folder.mkdir(parents=True, exist_ok=True)

    _unpack_code(storage, hyperparameters["sagemaker_submit_directory"], root / "code", root / "input" / ".code")
    channels = []
    for channel in request.get("InputDataConfig", []):
        name = channel["ChannelName"]
        storage.download(channel["DataSource"]["S3DataSource"]["S3Uri"], data_dir / name)
        channels.append(name)

    write_atomic(config_dir / "hyperparameters.json", json.dumps(request["HyperParameters"]))
    write_atomic(
        config_dir / "inputdataconfig.json",
        json.dumps(
            {
                c["ChannelName"]: {"ContentType": c.get("ContentType", ""), "TrainingInputMode": "File"}
                for c in request.get("InputDataConfig", [])
            }
        ),
    )
    write_atomic(config_dir / "resourceconfig.json", json.dumps({"current_host": HOST, "hosts": [HOST]}))

    args = to_cmd_args(hyperparameters)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    env.update(
        {
            "SM_MODEL_DIR": str(root / "model"),
            "SM_INPUT_DIR": str(root / "input"),
            "SM_INPUT_CONFIG_DIR": str(config_dir),
            "SM_OUTPUT_DIR": str(root / "output"),
            "SM_OUTPUT_DATA_DIR": str(root / "output" / "data"),
            "SM_CHANNELS": json.dumps(sorted(channels)),
            "SM_CURRENT_HOST": HOST,
            "SM_HOSTS": json.dumps([HOST]),
            "SM_NUM_CPUS": str(os.cpu_count() or 1),
            "SM_NUM_GPUS": "0",
            "SM_USER_ENTRY_POINT": program,
            "SM_MODULE_DIR": hyperparameters["sagemaker_submit_directory"],
            "SM_LOG_LEVEL": str(hyperparameters.get("sagemaker_container_log_level", 20)),
            "PYTHONUNBUFFERED": "1",
            "FLWR_TELEMETRY_ENABLED": "0",
        }
    )
    env.update({f"SM_CHANNEL_{name.upper()}": str(data_dir / name) for name in channels})
    return Container(request=request, root=root, argv=[python, program, *args], env=env)


def package_model(container: Container, storage: Storage) -> str:
    """Pack model/ into model.tar.gz and store it at the job's output path; return its URI."""
    archive = container.root / "output" / "model.tar.gz"
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:gz") as tar:
        for path in sorted(container.model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    write_atomic(archive, packed.getvalue())
    uri = container.artifact_uri()
    storage.upload(archive, uri)
    return uri
