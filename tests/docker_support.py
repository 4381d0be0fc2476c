"""Fixtures of the docker tests: the daemon, the local training image, a cache, moto in server mode.

The tests need a Docker daemon; `.ci/provision-docker` (part of the README's test command) starts
one and builds the offline base image `fedsage-base:noble`. Without a daemon every docker test
skips, saying why; with a daemon, a missing base image is a failure, not a skip.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from orchestrator.errors import BadInput

BASE_IMAGE = os.environ.get("FEDSAGE_BASE_TAG", "fedsage-base:noble")  # as .ci/provision-docker names it
FRAMEWORK = "1.4-2-py312"


@pytest.fixture(scope="session")
def docker_client():
    """The Docker daemon, or a skip naming why there is none (and what .ci/provision-docker said)."""
    from orchestrator.imagebuild.daemon import cache_dir, connect

    try:
        return connect()
    except BadInput as exc:
        status = cache_dir() / "provision-docker.status"
        said = f"; .ci/provision-docker said: {status.read_text().strip()}" if status.is_file() else ""
        pytest.skip(f"{exc}{said}")


@pytest.fixture(scope="session")
def training_image(docker_client):
    """The local training image of the default framework, built once on the offline base (cached by tag)."""
    from orchestrator.imagebuild.build import build

    try:
        return build(FRAMEWORK, BASE_IMAGE, client=docker_client).image
    except BadInput as exc:
        pytest.fail(f"cannot build the training image: {exc} (run .ci/provision-docker)")


@pytest.fixture(scope="session")
def docker_cache(tmp_path_factory) -> Path:
    """A cache folder for the session: its own installed-dependency cache (so the session installs for
    real once), the machine's code archives and image wheels (keyed by content, safe to share)."""
    from orchestrator.imagebuild.daemon import cache_dir

    folder = tmp_path_factory.mktemp("fedsage-cache")
    for shared in ("archives", "image-wheels"):
        (cache_dir() / shared).mkdir(parents=True, exist_ok=True)
        (folder / shared).symlink_to(cache_dir() / shared, target_is_directory=True)
    return folder


@pytest.fixture
def use_docker_cache(docker_cache, monkeypatch) -> Path:
    """Point fedsage (and the processes it starts) at the session's cache."""
    monkeypatch.setenv("FEDSAGE_CACHE_DIR", str(docker_cache))
    return docker_cache


def run_containers(client, run_id: str) -> list:
    """Every container (running or not) labelled with this run id."""
    from orchestrator.imagebuild.daemon import RUN_LABEL

    return client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})


def wait_for_no_containers(client, run_id: str, timeout: float = 30.0) -> list[str]:
    """Wait until no container of the run is left; return the names of those still there at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        left = [c.name for c in run_containers(client, run_id)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


@pytest.fixture
def moto_server(monkeypatch):
    """moto in server mode on 127.0.0.1, with this process's AWS calls going to it; yields its URL.

    Containers on the host network reach the same endpoint; the moto state stays in this process,
    so tests still read and drive it directly (tests/fake_sagemaker.py).
    """
    from conftest import REGION, free_port
    from moto.server import ThreadedMotoServer

    for key in ("MOTO_ACCOUNT_ID", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    try:
        yield endpoint
    finally:
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=30)
        server.stop()
