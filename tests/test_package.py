"""`fedsage package`: a reproducible source.tar.gz with every dependency vendored and hash-checked."""

import hashlib
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser

import pytest
from cli_runner import run_cli
from conftest import CLIENT_ACCOUNTS, REGION
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from orchestrator.package import CODE_DIR, PLATFORMS, build, content_digest, lock_path


def _names(path):
    with tarfile.open(path) as tar:
        return tar.getnames(), {m.name: (m.mtime, m.uid, m.gid, m.mode) for m in tar.getmembers()}


def _lock_pins(python_version="3.12"):
    pins = {}
    for line in lock_path(python_version).read_text().splitlines():
        if "==" in line:
            name, version = line.split(" ")[0].split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_the_archive_is_reproducible_and_holds_exactly_the_client_code(tmp_path):
    first = build(tmp_path / "a" / "source.tar.gz", vendor_wheels=False)
    second = build(tmp_path / "b" / "source.tar.gz", vendor_wheels=False)
    assert first.sha256 == second.sha256 and first.content_sha256 == second.content_sha256
    assert (tmp_path / "a" / "source.tar.gz").read_bytes() == (tmp_path / "b" / "source.tar.gz").read_bytes()
    assert content_digest(first.path) == first.content_sha256
    names, meta = _names(first.path)
    assert names == ["client.py", "constants.py", "requirements.txt", "train.py", "transport.py", "utils.py"]
    assert set(meta.values()) == {(315532800, 0, 0, 0o644)}
    with tarfile.open(first.path) as tar:
        assert tar.extractfile("train.py").read() == (CODE_DIR / "train.py").read_bytes()


def test_the_archive_changes_when_the_client_code_does(tmp_path, monkeypatch):
    from orchestrator import package

    before = build(tmp_path / "a.tar.gz", vendor_wheels=False)
    copy = tmp_path / "client_code"
    shutil.copytree(CODE_DIR, copy)
    with open(copy / "utils.py", "a") as handle:
        handle.write("# one more line\n")
    monkeypatch.setattr(package, "CODE_DIR", copy)
    after = build(tmp_path / "b.tar.gz", vendor_wheels=False)
    assert before.content_sha256 != after.content_sha256 and before.sha256 != after.sha256


def test_the_lock_pins_every_requirement_at_its_version_with_a_hash():
    pins = _lock_pins()
    for line in (CODE_DIR / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            assert pins[requirement.name.lower()] == str(next(iter(requirement.specifier)).version)
    text = lock_path("3.12").read_text()
    assert text.count("--hash=sha256:") == len(pins) >= 30


def test_a_python_without_a_lock_is_bad_input(tmp_path, capsys):
    code, _, err = run_cli(capsys, "package", "--out", str(tmp_path / "s.tar.gz"), "--python-version", "3.19")
    assert code == 2
    assert "no dependency lock for Python 3.19 (requirements-py319.lock)" in err
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_vendored_wheels_are_reproducible_and_install_offline_on_the_container_platform(tmp_path):
    """Builds the real archive: downloads the locked wheels from the package registry."""
    first = build(tmp_path / "a.tar.gz")
    second = build(tmp_path / "b.tar.gz")
    assert first.sha256 == second.sha256 and first.wheels == len(_lock_pins()) > 30
    extracted = tmp_path / "code"
    with tarfile.open(first.path) as tar:
        tar.extractall(extracted, filter="data")
    requirements = (extracted / "requirements.txt").read_text()
    assert "--no-index\n--find-links wheels\n" in requirements and "--hash=sha256:" in requirements
    for wheel in (extracted / "wheels").iterdir():
        assert f"--hash=sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}" in requirements
    # every wheel runs on the container's Python (read from its metadata, whatever this pip checks)
    for wheel in (extracted / "wheels").iterdir():
        with zipfile.ZipFile(wheel) as archive:
            metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            requires = Parser().parsestr(archive.read(metadata).decode()).get("Requires-Python")
        assert requires is None or SpecifierSet(requires).contains("3.12"), (wheel.name, requires)
    # what the container does, without network: install from wheels/ only, every hash checked.
    # (pip before 24 checks Requires-Python against this interpreter, not --python-version: done above.)
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--no-index", "--find-links", "wheels"]
    command += ["--ignore-requires-python"]
    command += ["-r", "requirements.txt", "--target", str(tmp_path / "site"), "--only-binary=:all:"]
    command += ["--python-version", "3.12", "--implementation", "cp", "--abi", "cp312"]
    command += [part for platform in PLATFORMS[:-1] for part in ("--platform", platform)]
    result = subprocess.run(command, cwd=extracted, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_upload_puts_the_archive_at_the_clients_code_uri_with_the_callers_credentials(
    aws, aws_profiles, tmp_path, capsys
):
    aws_profiles({"hospital-a": CLIENT_ACCOUNTS[0]})
    bucket = f"fedsage-{CLIENT_ACCOUNTS[0]}-{REGION}"
    aws.admin(CLIENT_ACCOUNTS[0]).client("s3").create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    path = tmp_path / "federation.toml"
    path.write_text(
        f'[server]\ntest_data = "test.csv"\n\n[[clients]]\nname = "hospital-a"\ntrain_uri = "s3://{bucket}/data/train/"\n'
        f'code_uri = "s3://{bucket}/code/source.tar.gz"\nprofile = "hospital-a"\nregion = "{REGION}"\n'
    )
    code, out, err = run_cli(
        capsys, "package", "--no-wheels", "--out", str(tmp_path / "source.tar.gz"), "--upload", "-c", str(path)
    )
    assert code == 0, err
    stored = (
        aws.admin(CLIENT_ACCOUNTS[0]).client("s3").get_object(Bucket=bucket, Key="code/source.tar.gz")["Body"].read()
    )
    assert stored == (tmp_path / "source.tar.gz").read_bytes()
    assert hashlib.sha256(stored).hexdigest() in out and f"uploaded to s3://{bucket}/code/source.tar.gz" in out
