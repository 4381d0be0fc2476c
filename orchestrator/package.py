"""`fedsage package`: build source.tar.gz, the only code that touches a data owner's data.

The archive is what SageMaker unpacks into /opt/ml/code:

```
train.py client.py transport.py utils.py   client_code/, the sagemaker_program and its modules
requirements.txt   --no-index --find-links wheels, then every pin with its sha256
wheels/*.whl       every dependency, built for the container's Python and platform
```

Jobs in private subnets without NAT or PyPI install only from wheels/, and pip checks every
wheel against its hash. Dependencies come from a lock committed next to the client code
(`client_code/requirements-py3XX.lock`, regenerated with `fedsage package --relock`), so the
same commit always packages the same bytes.

The archive is reproducible: entries sorted, fixed timestamps and owners, gzip without a
timestamp. Two digests are printed: the archive's sha256, and the sha256 of the uncompressed tar
stream (the content digest), which does not depend on the gzip implementation. A data owner
rebuilds from the same commit and compares before trusting the archive.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import client_code
from orchestrator.errors import BadInput, RunFailed

CODE_FILES = ("train.py", "client.py", "transport.py", "utils.py", "constants.py")
CODE_DIR = Path(client_code.__file__).parent
REQUIREMENTS = CODE_DIR / "requirements.txt"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any")
FIXED_MTIME = 315532800  # 1980-01-01, as wheels and zip files use for reproducible builds


@dataclass(frozen=True)
class Package:
    """A built source.tar.gz and what identifies it."""

    path: Path
    sha256: str
    content_sha256: str
    files: int
    wheels: int
    size: int


def lock_path(python_version: str) -> Path:
    """The committed lock for a container Python version, e.g. requirements-py312.lock."""
    return CODE_DIR / f"requirements-py{python_version.replace('.', '')}.lock"


def _pip_download(args: list[str], dest: Path, python_version: str) -> None:
    """Download wheels for the container (CPython `python_version`, manylinux x86_64)."""
    abi = f"cp{python_version.replace('.', '')}"
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--dest", str(dest)]
    command += ["--only-binary=:all:", "--implementation", "cp", "--python-version", python_version]
    command += [part for tag in (abi, "abi3", "none") for part in ("--abi", tag)]
    command += [part for platform in PLATFORMS for part in ("--platform", platform)]
    result = subprocess.run(command + args, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise RunFailed(f"downloading the container's wheels failed: {last}")


def relock(python_version: str) -> Path:
    """Resolve requirements.txt for the container and write the hash-pinned lock; return its path."""
    from packaging.utils import parse_wheel_filename

    with tempfile.TemporaryDirectory() as tmp:
        _pip_download(["-r", str(REQUIREMENTS)], Path(tmp), python_version)
        lines = []
        for wheel in sorted(Path(tmp).glob("*.whl"), key=lambda p: p.name.lower()):
            name, version, _, _ = parse_wheel_filename(wheel.name)
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            lines.append(f"{name}=={version} \\\n    --hash=sha256:{digest}")
    header = (
        f"# Every dependency of client_code for CPython {python_version} on manylinux x86_64, with hashes.\n"
        f"# Generated from requirements.txt by `fedsage package --relock --python-version {python_version}`.\n"
    )
    path = lock_path(python_version)
    path.write_text(header + "\n".join(lines) + "\n")
    return path


class _HashingWriter(io.RawIOBase):
    """Passes bytes through to a file while hashing them (the content digest of the tar stream)."""

    def __init__(self, target) -> None:
        self.target = target
        self.digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.digest.update(data)
        return self.target.write(data)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), FIXED_MTIME, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def _archive_requirements(lock: str | None) -> str:
    """The requirements.txt inside the archive: vendored and hash-checked, or plain pins."""
    if lock is None:
        return REQUIREMENTS.read_text()
    header = "# installed offline from the vendored wheels, each checked against its hash\n"
    return header + "--no-index\n--find-links wheels\n" + lock


def build(out: Path, python_version: str = "3.12", vendor_wheels: bool = True) -> Package:
    """Build source.tar.gz at `out`; with `vendor_wheels`, include every dependency as a wheel."""
    out = Path(out)
    lock = None
    with tempfile.TemporaryDirectory() as tmp:
        wheels: list[Path] = []
        if vendor_wheels:
            path = lock_path(python_version)
            if not path.is_file():
                raise BadInput(
                    f"no dependency lock for Python {python_version} ({path.name}); create it with "
                    f"`fedsage package --relock --python-version {python_version}`"
                )
            lock = path.read_text()
            _pip_download(["--no-deps", "--require-hashes", "-r", str(path)], Path(tmp), python_version)
            wheels = sorted(Path(tmp).glob("*.whl"), key=lambda p: p.name)
        entries = {name: (CODE_DIR / name).read_bytes() for name in CODE_FILES}
        entries["requirements.txt"] = _archive_requirements(lock).encode()
        entries.update({f"wheels/{wheel.name}": wheel.read_bytes() for wheel in wheels})

        out.parent.mkdir(parents=True, exist_ok=True)
        staging = out.with_name(out.name + ".tmp")
        with (
            open(staging, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
        ):
            hashing = _HashingWriter(gz)
            with tarfile.open(fileobj=hashing, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for name in sorted(entries):
                    _add(tar, name, entries[name])
        staging.replace(out)
    data = out.read_bytes()
    return Package(
        path=out,
        sha256=hashlib.sha256(data).hexdigest(),
        content_sha256=hashing.digest.hexdigest(),
        files=len(entries),
        wheels=len(wheels),
        size=len(data),
    )


def content_digest(archive: Path) -> str:
    """The sha256 of an archive's uncompressed tar stream, to compare with a fresh build."""
    digest = hashlib.sha256()
    with gzip.open(archive, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
