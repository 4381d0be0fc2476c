"""`fedsage image build`: a local training image that behaves like a SageMaker scikit-learn framework image.

The image holds what a client job depends on in the framework image the config names: the same
CPython minor (the archive's wheels are built for it), the same scikit-learn, and the real
sagemaker-training toolkit, whose `train` command SageMaker runs; like the framework images it
has no ENTRYPOINT and sets their interpreter and SM_* variables (images.IMAGE_ENV).

1. The framework version gives the Python (images.py) and the image's requirements: a hash-pinned
   lock next to this module (requirements-<framework>.lock, written by uv; the .in file beside it
   says how). Only frameworks with a lock can be built.
2. The base image is any image with that Python: a Python image (default `python:<minor>-slim`),
   an offline-built one (`.ci/provision-docker` makes `fedsage-base:noble`, Ubuntu 24.04 as the
   real image), or the real SageMaker image pulled from ECR. Its Python is read by running it once;
   another minor is refused before anything is built. A base that already has the toolkit is
   only labelled.
3. pip downloads every wheel (and the two packages published only as source: the toolkit, which
   compiles a small C extension, and inotify-simple) on this machine, each checked against the
   lock's sha256, into the cache; the image is built with `--network none` from those files.
4. The tag is `fedsage-sklearn:<framework>-<digest>`, where the digest covers the Dockerfile, the
   lock and the base image's id: the same inputs give the same tag and are not built again.
   `fedsage-sklearn:<framework>` points at the latest build; the docker backend uses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import BadInput, RunFailed
from orchestrator.imagebuild.daemon import FRAMEWORK_LABEL, INPUTS_LABEL, PYTHON_LABEL, cache_dir, connect
from orchestrator.images import FRAMEWORKS, IMAGE_ENV
from orchestrator.package import download_wheels

LOCKS = Path(__file__).parent
REPOSITORY = "fedsage-sklearn"
DEFAULT_BASE = "python:{python}-slim"
SOURCE_ONLY = ("sagemaker-training", "inotify-simple")  # published as sdists only; built inside the image
TOOLKIT_LABEL = "org.fedsage.toolkit"
DOCKERFILE = """\
# fedsage training image: the training half of SageMaker scikit-learn {framework} (orchestrator/imagebuild/build.py)
ARG BASE
FROM ${{BASE}}
ENV {env}
COPY context /tmp/fedsage-image
RUN if python3 -c "import sagemaker_training" 2>/dev/null; then \\
        echo "the base image has the training toolkit: kept as it is"; \\
    else \\
        python3 -m venv /opt/venv && \\
        /opt/venv/bin/python -m pip install --no-cache-dir --no-index --find-links /tmp/fedsage-image/wheels \\
            --require-hashes -r /tmp/fedsage-image/requirements.lock; \\
    fi && rm -rf /tmp/fedsage-image
ENV PATH=/opt/venv/bin:$PATH
"""


@dataclass(frozen=True)
class LocalImage:
    """A training image on the local daemon: its tag, id, and the Python and framework it emulates."""

    tag: str
    id: str
    python: str
    framework: str


@dataclass(frozen=True)
class Built:
    """What `build` did: the image, its alias tag, whether it existed already, and how long it took (s)."""

    image: LocalImage
    alias: str
    cached: bool
    seconds: float


def frameworks() -> tuple[str, ...]:
    """The framework versions a local image can be built for (those with a lock here)."""
    return tuple(sorted(p.name[len("requirements-") : -len(".lock")] for p in LOCKS.glob("requirements-*.lock")))


def alias(framework: str) -> str:
    """The tag that points at the latest local image of a framework: fedsage-sklearn:<framework>."""
    return f"{REPOSITORY}:{framework}"


def _lock(framework: str) -> Path:
    path = LOCKS / f"requirements-{framework}.lock"
    if framework not in FRAMEWORKS or not path.is_file():
        raise BadInput(
            f"no local image recipe for framework_version {framework!r}; fedsage builds {', '.join(frameworks())}"
        )
    return path


def _split_lock(text: str) -> tuple[str, str]:
    """The lock's requirement blocks as (wheels, source-only packages), each a requirements text."""
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text)
    requirements = [block for block in blocks if re.match(r"[A-Za-z0-9]", block)]
    source = [block for block in requirements if block.split("==")[0].lower() in SOURCE_ONLY]
    wheels = [block for block in requirements if block not in source]
    return "\n".join(wheels) + "\n", "\n".join(source) + "\n"


def _download(lock: Path, python: str, report: Callable[[str], None]) -> Path:
    """Every file of the lock for CPython `python`, hash-checked, in the cache (downloaded once per lock)."""
    text = lock.read_text()
    folder = cache_dir() / "image-wheels" / hashlib.sha256(text.encode()).hexdigest()[:16]
    if (folder / ".complete").is_file():
        return folder
    report(f"downloading the image's wheels for Python {python}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=folder.parent))
    wheels, source = _split_lock(text)
    (staging / "wheels.txt").write_text(wheels)
    (staging / "source.txt").write_text(source)
    download_wheels(["--no-deps", "--require-hashes", "-r", str(staging / "wheels.txt")], staging, python)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps"]
    command += ["--no-binary", ":all:", "--require-hashes", "-r", str(staging / "source.txt"), "--dest", str(staging)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise RunFailed(f"downloading the toolkit's source failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    for name in ("wheels.txt", "source.txt"):
        (staging / name).unlink()
    (staging / ".complete").touch()
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


def _base_python(client, base: str) -> str:
    """The CPython minor of `base` (pulled if it is not here), read by running python3 in it once."""
    from docker.errors import DockerException, ImageNotFound

    try:
        client.images.get(base)
    except ImageNotFound:
        try:
            client.images.pull(base)
        except DockerException as exc:
            raise BadInput(
                f"base image {base} is not here and cannot be pulled ({_reason(exc)}): pass "
                "--base-image with an image you have (`docker images`), e.g. fedsage-base:noble from "
                ".ci/provision-docker, or log in to the registry first"
            ) from None
    try:
        out = client.containers.run(
            base,
            ["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            entrypoint=[],
            network_mode="none",
            remove=True,
        )
    except DockerException as exc:
        raise BadInput(f"base image {base} cannot run python3 ({_reason(exc)})") from None
    return out.decode().strip().splitlines()[-1]


def dockerfile(framework: str) -> str:
    """The Dockerfile of a framework's local image (the base comes in as the BASE build argument)."""
    env = " ".join(f"{key}={json.dumps(value)}" for key, value in IMAGE_ENV.items())
    return DOCKERFILE.format(framework=framework, env=env)


def inspect_image(client, tag: str) -> LocalImage:
    """The local training image `tag`; BadInput when it is missing or was not built by `fedsage image build`."""
    from docker.errors import ImageNotFound

    try:
        image = client.images.get(tag)
    except ImageNotFound:
        raise BadInput(f"no local training image {tag}: build it with `fedsage image build`") from None
    labels = image.labels or {}
    if PYTHON_LABEL not in labels:
        raise BadInput(f"image {tag} has no {PYTHON_LABEL} label: build a training image with `fedsage image build`")
    return LocalImage(tag, image.id, labels[PYTHON_LABEL], labels.get(FRAMEWORK_LABEL, ""))


def build(
    framework: str, base: str | None = None, report: Callable[[str], None] = lambda line: None, client=None
) -> Built:
    """Build (or find) the local training image of `framework` on `base`; see the module docstring.

    Raises BadInput for a framework without a recipe, a base that cannot be had or runs another
    Python, or no Docker daemon; RunFailed when a download or the build itself fails.
    """
    started = time.monotonic()
    lock = _lock(framework)
    python = FRAMEWORKS[framework].python
    base = base or DEFAULT_BASE.format(python=python)
    client = client or connect()
    found = _base_python(client, base)
    if found != python:
        raise BadInput(
            f"base image {base} runs Python {found}, but framework {framework} runs {python}: pass --base-image "
            f"with Python {python}"
        )
    text = dockerfile(framework)
    base_id = client.images.get(base).id
    digest = hashlib.sha256("\n".join([text, lock.read_text(), base_id]).encode()).hexdigest()
    tag = f"{REPOSITORY}:{framework}-{digest[:12]}"
    labels = {PYTHON_LABEL: python, FRAMEWORK_LABEL: framework, INPUTS_LABEL: digest, TOOLKIT_LABEL: _toolkit(lock)}
    from docker.errors import BuildError, ImageNotFound

    try:
        image = client.images.get(tag)
        cached = True
    except ImageNotFound:
        wheels = _download(lock, python, report)
        report(f"building {tag} from {base} (no network)")
        with tempfile.TemporaryDirectory(prefix="fedsage-image-") as tmp:
            context = Path(tmp)
            (context / "Dockerfile").write_text(text)
            shutil.copytree(wheels, context / "context" / "wheels", copy_function=_link_or_copy)
            shutil.copy(lock, context / "context" / "requirements.lock")
            try:
                image, _ = client.images.build(
                    path=str(context),
                    tag=tag,
                    buildargs={"BASE": base},
                    labels=labels,
                    network_mode="none",
                    rm=True,
                    forcerm=True,
                )
            except BuildError as exc:
                lines = [str(chunk.get("stream", chunk.get("error", ""))).strip() for chunk in exc.build_log]
                last = next((line for line in reversed(lines) if line), str(exc))
                raise RunFailed(f"building {tag} failed: {last[:300]}") from None
        cached = False
    image.tag(REPOSITORY, tag=framework)
    local = LocalImage(tag, image.id, python, framework)
    return Built(local, alias(framework), cached, time.monotonic() - started)


def _toolkit(lock: Path) -> str:
    match = re.search(r"^sagemaker-training==(\S+)", lock.read_text(), re.MULTILINE)
    return f"sagemaker-training=={match[1]}" if match else "sagemaker-training"


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _reason(exc: Exception) -> str:
    """The Docker daemon's own words for an error, on one short line."""
    text = getattr(exc, "explanation", None) or str(exc)
    return " ".join(str(text).split())[:200]
