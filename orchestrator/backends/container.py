"""The SageMaker side of a training job: the /opt/ml tree a container starts with, and what happens after.

Before SageMaker starts a training container it lays out /opt/ml (AWS's "How Amazon SageMaker
runs your training image" pages): `input/config/hyperparameters.json` (the request's
HyperParameters, values as given), `inputdataconfig.json` (one entry per channel),
`resourceconfig.json` (the host and its instance group), every channel's data under
`input/data/<channel>/` (File mode), and empty `model/` and `output/`. It passes the request's
Environment to the container. After the container exits 0, it packs `model/` as model.tar.gz
under `<S3OutputPath>/<job name>/output/`; after a failure, `output/failure` is the job's
FailureReason (SageMaker keeps its first 1024 characters).

Both local backends play this part from here: the process backend on a tree in the run folder
(`Storage` fetches channels and puts the model where SageMaker would), the docker backend on the
same tree mounted into the container.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from orchestrator.errors import BadInput
from orchestrator.plan import TrainingJobRequest
from orchestrator.run.folder import write_atomic

HOST = "algo-1"  # the single host of a one-instance job (resourceconfig.json, and its DNS name)
GROUP = "homogeneousCluster"
FAILURE_REASON_LIMIT = 1024  # characters of the failure file that DescribeTrainingJob reports


class Storage(Protocol):
    """Moves channel data and artifacts between their URIs and the job's /opt/ml tree."""

    def download(self, uri: str, dest: Path) -> None:
        """Make the object or prefix at `uri` available as the folder `dest`."""

    def upload(self, path: Path, uri: str) -> None:
        """Store the local file `path` at `uri`."""


def file_path(uri: str) -> Path:
    """The local path of a file:// URI; ValueError for any other URI."""
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


def resource_config(request: TrainingJobRequest) -> dict[str, Any]:
    """resourceconfig.json of a one-instance job, in the form SageMaker writes it."""
    instance_type = request.get("ResourceConfig", {}).get("InstanceType", "local")
    return {
        "current_host": HOST,
        "current_instance_type": instance_type,
        "current_group_name": GROUP,
        "hosts": [HOST],
        "instance_groups": [{"instance_group_name": GROUP, "instance_type": instance_type, "hosts": [HOST]}],
        "network_interface_name": "eth0",
    }


def input_data_config(request: TrainingJobRequest) -> dict[str, Any]:
    """inputdataconfig.json: every channel's content type and input mode, by channel name."""
    return {
        channel["ChannelName"]: {
            "ContentType": channel.get("ContentType", ""),
            "TrainingInputMode": channel.get("InputMode", "File"),
            "S3DistributionType": channel["DataSource"]["S3DataSource"].get(
                "S3DataDistributionType", "FullyReplicated"
            ),
            "RecordWrapperType": channel.get("RecordWrapperType", "None"),
        }
        for channel in request.get("InputDataConfig", [])
    }


@dataclass(frozen=True)
class JobTree:
    """A job's /opt/ml tree on this machine, laid out as SageMaker lays it out for the container.

    `mounts` are channels that stay where they are (a local folder the container mounts) instead
    of being copied under input/data/.
    """

    request: TrainingJobRequest
    root: Path
    mounts: dict[str, Path] = field(default_factory=dict)

    @property
    def code_dir(self) -> Path:
        """/opt/ml/code: the unpacked code location, the program's working directory."""
        return self.root / "code"

    @property
    def model_dir(self) -> Path:
        """SM_MODEL_DIR (/opt/ml/model)."""
        return self.root / "model"

    @property
    def failure_file(self) -> Path:
        """/opt/ml/output/failure, written by the program or the toolkit when the job fails."""
        return self.root / "output" / "failure"

    def failure_reason(self) -> str | None:
        """The failure file as DescribeTrainingJob's FailureReason: one line, at most 1024 characters."""
        if self.failure_file.is_file():
            text = " ".join(self.failure_file.read_text(errors="replace").split())
            return text[:FAILURE_REASON_LIMIT] or None
        return None

    def artifact_uri(self) -> str:
        """Where SageMaker puts this job's model.tar.gz."""
        output = self.request["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        return f"{output}/{self.request['TrainingJobName']}/output/model.tar.gz"


def lay_out(request: TrainingJobRequest, root: Path, storage: Storage, mount_local: bool = False) -> JobTree:
    """Lay out /opt/ml under `root` for `request`: config files, channels, empty model/ and output/.

    With `mount_local`, file:// channels are left in place (for a container to mount) instead of
    being linked under input/data/. The code location is not fetched here: the toolkit fetches
    it in a container, the process backend with `unpack_code`.
    """
    root = Path(root).resolve()
    config_dir = root / "input" / "config"
    data_dir = root / "input" / "data"
    for folder in (config_dir, data_dir, root / "model", root / "output" / "data"):
        folder.mkdir(parents=True, exist_ok=True)
    mounts = {}
    for channel in request.get("InputDataConfig", []):
        name, uri = channel["ChannelName"], channel["DataSource"]["S3DataSource"]["S3Uri"]
        if mount_local and uri.startswith("file://"):
            mounts[name] = file_path(uri).resolve()
            (data_dir / name).mkdir(exist_ok=True)  # the mount point
        else:
            storage.download(uri, data_dir / name)
    write_atomic(config_dir / "hyperparameters.json", json.dumps(request["HyperParameters"]))
    write_atomic(config_dir / "inputdataconfig.json", json.dumps(input_data_config(request)))
    write_atomic(config_dir / "resourceconfig.json", json.dumps(resource_config(request)))
    if "CheckpointConfig" in request:
        checkpoint = {"LocalPath": "/opt/ml/checkpoints", "S3Uri": request["CheckpointConfig"]["S3Uri"]}
        write_atomic(config_dir / "checkpointconfig.json", json.dumps(checkpoint))
    return JobTree(request, root, mounts)


def unpack_code(tree: JobTree, storage: Storage, uri: str) -> None:
    """Fetch the code location into code/ as the toolkit does: a tar.gz is extracted, a folder copied."""
    scratch = tree.root / "input" / ".code"
    storage.download(uri, scratch)
    files = list(scratch.iterdir()) if scratch.is_dir() else []
    archives = [p for p in files if p.name.endswith((".tar.gz", ".tgz"))]
    tree.code_dir.mkdir(parents=True, exist_ok=True)
    if len(archives) == 1 and len(files) == 1:
        with tarfile.open(archives[0]) as archive:
            archive.extractall(tree.code_dir, filter="data")
    else:
        shutil.copytree(scratch, tree.code_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    if scratch.is_symlink():
        scratch.unlink()
    else:
        shutil.rmtree(scratch)


def point_toolkit_at(tree: JobTree, code_location: str) -> None:
    """Rewrite hyperparameters.json's sagemaker_submit_directory to where the local code is for the toolkit.

    A local code location has no s3:// URI the toolkit could fetch, so it is given the path the
    code has inside the container (a mounted folder or archive), as SageMaker's local mode does.
    """
    hyperparameters = {**tree.request["HyperParameters"], "sagemaker_submit_directory": json.dumps(code_location)}
    write_atomic(tree.root / "input" / "config" / "hyperparameters.json", json.dumps(hyperparameters))


def package_model(tree: JobTree, storage: Storage) -> str:
    """Pack model/ into model.tar.gz and store it at the job's output path; return its URI."""
    archive = tree.root / "output" / "model.tar.gz"
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:gz") as tar:
        for path in sorted(tree.model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    write_atomic(archive, packed.getvalue())
    uri = tree.artifact_uri()
    storage.upload(archive, uri)
    return uri


def platform_environment(request: TrainingJobRequest) -> dict[str, str]:
    """What SageMaker adds to a training container's environment besides the request's Environment."""
    return {"TRAINING_JOB_NAME": request["TrainingJobName"]}


def max_runtime_exceeded(request: TrainingJobRequest, started: float) -> bool:
    """True once the job has run longer than its StoppingCondition's MaxRuntimeInSeconds (`started`: monotonic)."""
    limit = request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
    return limit is not None and time.monotonic() - started > limit


def check_local_channels(backend: str, federation, schema: dict | None) -> None:
    """Check every client's channels by their headers (run/inputs.py); BadInput naming what is unusable.

    A channel of a local backend must be a file:// folder; `backend` names the backend in the message.
    """
    from orchestrator.run import inputs

    channels: dict[str, dict[str, Path]] = {}
    for client in federation.clients:
        for channel, uri in client.channels.items():
            if not uri.startswith("file://"):
                raise BadInput(
                    f"client {client.name!r} {channel}_uri {uri} is not a local folder; the {backend} "
                    "backend reads file:// channels only (use `fedsage launch` for S3 data)"
                )
            channels.setdefault(client.name, {})[channel] = file_path(uri)
    inputs.check_local_channels(federation, channels, schema)
