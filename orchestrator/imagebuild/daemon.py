"""The Docker daemon, reached through the Docker SDK for Python, and what fedsage writes on its objects.

Containers and images fedsage creates carry `org.fedsage.*` labels, so a run's containers can
be found (and stopped) by label even after the process that started them is gone, and an image
says which Python and framework it emulates without being run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import BadInput

if TYPE_CHECKING:
    import docker

RUN_LABEL = "org.fedsage.run"  # the run id, on every container of a run
CLIENT_LABEL = "org.fedsage.client"  # the client name
JOB_LABEL = "org.fedsage.job"  # the training job name (also the container's name)
PYTHON_LABEL = "org.fedsage.python"  # on an image: its CPython minor, "3.12"
FRAMEWORK_LABEL = "org.fedsage.framework"  # on an image: the framework image it emulates, "1.4-2-py312"
INPUTS_LABEL = "org.fedsage.inputs"  # on an image: sha256 of what it was built from
CONNECT_TIMEOUT = 60  # seconds per Docker API call (image builds stream and are not bound by it)


def connect(timeout: int = CONNECT_TIMEOUT) -> docker.DockerClient:
    """A client of the Docker daemon of DOCKER_HOST (default the local socket), checked with a ping.

    Raises BadInput with one line when no daemon answers, naming how to start one.
    """
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except DockerException as exc:
        reason = str(exc).split("(")[0].strip() or type(exc).__name__
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise BadInput(
            f"no Docker daemon answers at {where} ({reason}): start one (dockerd, Docker Desktop; "
            ".ci/provision-docker does it on Debian) or use --backend process"
        ) from None
    return client


def cache_dir() -> Path:
    """Where fedsage keeps downloaded wheels, code archives and installed dependencies for containers.

    FEDSAGE_CACHE_DIR if set, else $XDG_CACHE_HOME/fedsage, else ~/.cache/fedsage. Everything in it
    is keyed by the sha256 of its inputs, so it can be deleted at any time.
    """
    if os.environ.get("FEDSAGE_CACHE_DIR"):
        return Path(os.environ["FEDSAGE_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fedsage"
