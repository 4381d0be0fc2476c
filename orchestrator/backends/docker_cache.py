"""What the docker backend keeps between runs: code archives per Python, installed dependencies per image.

Both live in the cache folder (imagebuild/daemon.py `cache_dir`) under a sha256 of their inputs,
so a stale entry is never used and any entry can be deleted:

* `archives/source-py<XY>-<key>.tar.gz`: `fedsage package`'s archive for a container Python,
  keyed by the client code and the lock (a build downloads every wheel, so it is done once);
* `deps/<key>/`: what the toolkit's `pip install -r requirements.txt` put into PIP_TARGET, keyed
  by the archive's requirements.txt (which pins every wheel's sha256) and the image id, copied
  out of the first container that installed it and exited 0.
"""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
import tarfile
import tempfile
from pathlib import Path

from orchestrator.backends.container import file_path
from orchestrator.imagebuild.daemon import cache_dir
from orchestrator.package import build, code_entries, require_lock

log = logging.getLogger(__name__)


def code_archive(python: str) -> Path:
    """source.tar.gz with every wheel for CPython `python`, built once per (client code, lock) and kept.

    Raises BadInput when there is no lock for `python`, RunFailed when a wheel cannot be downloaded.
    """
    digest = hashlib.sha256(require_lock(python).read_bytes())
    for name, content in sorted(code_entries().items()):
        digest.update(name.encode() + b"\0" + content)
    path = cache_dir() / "archives" / f"source-py{python.replace('.', '')}-{digest.hexdigest()[:16]}.tar.gz"
    if not path.is_file():
        build(path, python)
    return path


def dependency_key(code_uri: str, image_id: str) -> str | None:
    """sha256 of a local archive's requirements.txt and the image id; None for code that is not a local archive."""
    if not code_uri.startswith("file://") or not code_uri.endswith(".tar.gz"):
        return None
    with tarfile.open(file_path(code_uri)) as archive:
        for member in archive:
            if member.name == "requirements.txt":
                data = archive.extractfile(member).read()
                return hashlib.sha256(data + image_id.encode()).hexdigest()[:24]
    return None


def keep_dependencies(container, target: str, cached: Path) -> None:
    """Copy `target` (the container's PIP_TARGET) to `cached`, unless it is there already; best effort."""
    from docker.errors import APIError

    if cached.is_dir():
        return
    cached.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".deps-", dir=cached.parent))
    try:
        stream, _ = container.get_archive(target)
        with tarfile.open(fileobj=io.BufferedReader(_Chunks(stream), 1 << 20), mode="r|") as archive:
            archive.extractall(staging, filter="data")
        (staging / Path(target).name).rename(cached)
    except (APIError, OSError, tarfile.TarError) as exc:
        log.warning("could not cache the installed dependencies: %s", exc)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class _Chunks(io.RawIOBase):
    """A raw reader over the Docker SDK's stream of byte chunks (wrapped in a BufferedReader for tarfile)."""

    def __init__(self, chunks) -> None:
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size
