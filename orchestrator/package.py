"""`fedsage package`: build source.tar.gz, the only code that touches a data owner's data.

The archive is what SageMaker unpacks into /opt/ml/code:

```
fedsage_client.py  the sagemaker_program: runs client_code.train
client_code/*.py   the client package (every module under client_code/, nothing else)
requirements.txt   --no-index --find-links wheels, then every pin with its sha256
wheels/*.whl       every dependency, built for the container's Python and platform
```

Jobs in private subnets without NAT or PyPI install only from wheels/, and pip checks every
wheel against its hash. Dependencies come from a lock committed next to the client code, one
per supported container Python (`client_code/requirements-py311.lock`, `-py312`, `-py313`),
so the same commit always packages the same bytes. uv writes the locks: `uv pip compile
--generate-hashes --only-binary :all:` resolves requirements.txt for CPython 3.X on
`x86_64-manylinux_2_28` and records the sha256 of every file of each pinned release (pip then
accepts the one wheel that fits). Regenerate one with `fedsage package --relock --python-version
3.12`: pins already in the lock are kept unless requirements.txt moves them; delete the lock
first to take the newest releases. A new lock is how a new container Python becomes supported.

The archive is reproducible: entries sorted, fixed timestamps and owners, gzip without a
timestamp. Two digests are printed: the archive's sha256, and the sha256 of the uncompressed tar
stream (the content digest), which does not depend on the gzip implementation. A data owner
rebuilds from the same commit and compares before trusting the archive.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import client_code
from client_code.constants import ENTRY_POINT, ENTRY_SOURCE
from orchestrator.errors import BadInput, RunFailed
from orchestrator.paths import output_file

CODE_DIR = Path(client_code.__file__).parent
REQUIREMENTS = CODE_DIR / "requirements.txt"
GLIBC_MINOR = 28  # the container's platform: manylinux_2_28 x86_64 (glibc 2.28 or newer)
UV_PLATFORM = f"x86_64-manylinux_2_{GLIBC_MINOR}"  # uv's name for it: wheels for glibc <= 2.28
# pip's names for the same set (pip does not widen manylinux_2_28 to older glibc tags by itself;
# manylinux2014 widens to manylinux2010 and manylinux1); "any" stays last
PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(GLIBC_MINOR, 16, -1)),
    "manylinux2014_x86_64",
    "any",
)
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
    """The committed lock for a container Python version ("3.12" -> requirements-py312.lock)."""
    return CODE_DIR / f"requirements-py{python_version.replace('.', '')}.lock"


def supported_pythons() -> tuple[str, ...]:
    """The container Python versions that have a committed lock, oldest first, e.g. ("3.11", "3.12")."""
    found = (
        re.fullmatch(r"requirements-py3(\d+)\.lock", path.name) for path in CODE_DIR.glob("requirements-py3*.lock")
    )
    return tuple(f"3.{minor}" for minor in sorted(int(match[1]) for match in found if match))


def require_lock(python_version: str) -> Path:
    """The lock for `python_version`, or BadInput naming the supported versions and how to add one."""
    path = lock_path(python_version)
    if not path.is_file():
        raise BadInput(
            f"no dependency lock for Python {python_version} ({path.name}); supported: "
            f"{', '.join(supported_pythons()) or 'none'} (add one with "
            f"`fedsage package --relock --python-version {python_version}`)"
        )
    return path


def _one_line(stderr: str, default: str) -> str:
    """One line from a tool's error output: its first line, with the first `cause:` line if any."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return default
    cause = next((line.removeprefix("cause:").strip() for line in lines if line.startswith("cause:")), None)
    first = lines[0].removeprefix("error:").strip()
    return f"{first} ({cause})" if cause else first


def download_wheels(args: list[str], dest: Path, python_version: str) -> None:
    """Download wheels for the container (CPython `python_version`, manylinux x86_64) into `dest`.

    `args` are pip's requirement arguments (e.g. `--require-hashes -r LOCK`). Raises RunFailed
    with pip's last line when a wheel cannot be downloaded.
    """
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
    """Resolve requirements.txt for a container Python with uv and write its hash-pinned lock.

    Runs `uv pip compile --generate-hashes --only-binary :all: --python-version X
    --python-platform x86_64-manylinux_2_28` (uv's own index settings apply, e.g. UV_INDEX_URL).
    Pins already in the lock are preferred. Returns the lock's path; the old lock stays untouched
    unless uv succeeds. Raises BadInput for a malformed version, RunFailed when uv cannot resolve.
    """
    from uv import find_uv_bin

    if not re.fullmatch(r"3\.\d+", python_version):
        raise BadInput(f"--python-version {python_version!r} is not a Python version like 3.12")
    path = lock_path(python_version)
    staged = path.with_name(path.name + ".tmp")
    if path.is_file():
        staged.write_bytes(path.read_bytes())  # uv keeps the pins (and their hashes) of its output file
    command = [find_uv_bin(), "pip", "compile", "--quiet", "--generate-hashes", "--only-binary", ":all:"]
    command += ["--python-version", python_version, "--python-platform", UV_PLATFORM]
    command += ["--custom-compile-command", f"fedsage package --relock --python-version {python_version}"]
    # run beside requirements.txt so the lock names it relatively ("# via -r requirements.txt")
    command += [REQUIREMENTS.name, "--output-file", str(staged)]
    result = subprocess.run(command, cwd=REQUIREMENTS.parent, capture_output=True, text=True)
    if result.returncode != 0:
        staged.unlink(missing_ok=True)
        reason = _one_line(result.stderr, "uv failed")
        raise RunFailed(f"locking requirements.txt for Python {python_version} failed: {reason}")
    os.replace(staged, path)
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


def code_entries(lock: str | None = None) -> dict[str, bytes]:
    """The archive's code entries: the entry script, every .py file of client_code, and requirements.txt.

    `lock` is the hash-pinned lock whose wheels the archive vendors (requirements.txt then installs
    them offline); None gives requirements.txt with client_code's plain pins (what `--no-wheels` ships,
    and what the process backend lays out: it runs this machine's packages and installs nothing).
    """
    entries = {ENTRY_POINT: ENTRY_SOURCE.encode(), "requirements.txt": _archive_requirements(lock).encode()}
    for path in sorted(CODE_DIR.rglob("*.py")):
        if "__pycache__" not in path.parts:
            entries[f"client_code/{path.relative_to(CODE_DIR).as_posix()}"] = path.read_bytes()
    return entries


def build(out: Path, python_version: str = "3.12", vendor_wheels: bool = True) -> Package:
    """Build source.tar.gz at `out`; with `vendor_wheels`, include every dependency as a wheel.

    The wheels are those of the committed lock for CPython `python_version` ("3.12"), downloaded
    by pip for manylinux x86_64 with every hash checked; without `vendor_wheels` the archive's
    requirements.txt is client_code's plain pins (the container then needs a package index).
    Returns the archive's path, sha256, content sha256, file and wheel counts and size in bytes.
    Raises BadInput when there is no lock for `python_version` or `out` is a folder (before
    anything is written), RunFailed when a wheel cannot be downloaded.
    """
    out = output_file(out, "--out", "source.tar.gz")
    lock = None
    path = require_lock(python_version)  # an unsupported Python is refused with or without wheels
    with tempfile.TemporaryDirectory() as tmp:
        wheels: list[Path] = []
        if vendor_wheels:
            lock = path.read_text()
            download_wheels(["--no-deps", "--require-hashes", "-r", str(path)], Path(tmp), python_version)
            wheels = sorted(Path(tmp).glob("*.whl"), key=lambda p: p.name)
        entries = code_entries(lock)
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
