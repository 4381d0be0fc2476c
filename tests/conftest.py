"""Shared fixtures: small prepared data sets and helpers to run real federations on loopback."""

import contextlib
import os
import shutil
import signal
from pathlib import Path

os.environ["FLWR_TELEMETRY_ENABLED"] = "0"  # no network beyond 127.0.0.1, ever

# Commands started by the tests get SIGINT at its default, as from a terminal, even where this runner was
# started with it ignored (a background job of a shell without job control): a Python handler is reset to the
# default by exec, an ignored signal is not. This replaces a preexec_fn, which ran Python in the forked child
# of a process with gRPC loaded; gRPC's fork handlers then wrote an epoll error onto the child's stderr.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import pytest

from orchestrator.data import layout
from orchestrator.data.prepare import PrepareOptions, prepare
from orchestrator.data.synth import LABEL, generate_fraud

# pytest-xdist's workers start with COLUMNS=80 and LINES=24 in their environment. fedsage's consoles, built when
# orchestrator.cli is first imported (by the test modules, after this file), would take them as the terminal's
# fixed size, and the tests that set COLUMNS would not be heard.
for _size in ("COLUMNS", "LINES"):
    os.environ.pop(_size, None)

# The failing inputs of issue 9 (../shared/cases beside the checkout: /work/shared locally, beside the clone in CI)
CASES = next(
    (p / "shared" / "cases" for p in Path(__file__).resolve().parents if (p / "shared" / "cases").is_dir()),
    Path("shared-cases-not-found"),
)
needs_cases = pytest.mark.skipif(not CASES.is_dir(), reason="../shared/cases is not beside this checkout")


# The tests run on two pytest-xdist workers (pyproject.toml). Tests that use one thing of the whole machine run on
# one worker, one after the other: the Docker daemon with the images and dependency caches its tests build, and
# Ray's node (a session of well-known ports and /tmp/ray). Keyed by test module.
MACHINE_WIDE = {
    "test_docker.py": "docker",
    "test_launch_docker.py": "docker",
    "test_toolkit.py": "docker",
    "test_simulation.py": "ray",
    "test_simulation_faults.py": "ray",
}


def pytest_collection_modifyitems(config, items):
    """Put each test of MACHINE_WIDE's modules (or marked docker) in its xdist group (--dist loadgroup)."""
    for item in items:
        group = MACHINE_WIDE.get(item.path.name) or ("docker" if item.get_closest_marker("docker") else None)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(autouse=True)
def data_cache(tmp_path_factory, monkeypatch) -> Path:
    """A fresh, empty fedsage cache per test (orchestrator/data/cache.py), never the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("fedsage-cache")
    monkeypatch.setenv("FEDSAGE_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def fraud_frame():
    """4,000 synthetic providers: big enough to learn, small enough to be quick."""
    return generate_fraud(rows=4000, seed=7)


@pytest.fixture(scope="session")
def prepared_dir(tmp_path_factory, fraud_frame) -> Path:
    """A prepared-data folder with 3 clients (read-only: copy it before changing it)."""
    out = tmp_path_factory.mktemp("prepared") / "data"
    prepare(fraud_frame, PrepareOptions(label=LABEL, clients=3, categorical=("region",), seed=7), out)
    return out


@pytest.fixture
def data_copy(prepared_dir, tmp_path) -> Path:
    """A private copy of the prepared data that a test may break."""
    target = tmp_path / "data"
    shutil.copytree(prepared_dir, target)
    return target


@pytest.fixture
def prepared(prepared_dir) -> layout.PreparedData:
    return layout.open_prepared(prepared_dir)


@pytest.fixture
def small_disk(tmp_path):
    """Mount small tmpfs file systems in tmp_path: `small_disk("out", "1m", read_only=False)` -> its path.

    Needs root (CAP_SYS_ADMIN); elsewhere the test is skipped, saying so. Unmounted afterwards.
    """
    import subprocess

    mounted: list[Path] = []

    def mount(name: str, size: str = "1m", read_only: bool = False) -> Path:
        target = tmp_path / name
        target.mkdir()
        options = f"size={size},mode=0777" + (",ro" if read_only else "")
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True, text=True
        )
        if result.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here ({result.stderr.strip()}); run as root to test a full disk")
        mounted.append(target)
        return target

    yield mount
    for target in reversed(mounted):
        subprocess.run(["umount", "--lazy", str(target)], check=False)


def fill(disk: Path) -> int:
    """Write zeros into disk/filler until the disk is full (ENOSPC); return the bytes written."""
    import errno

    written = 0
    with open(disk / "filler", "wb", buffering=0) as file:
        chunk = b"\0" * 65536
        while True:
            try:
                written += file.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                chunk = chunk[: len(chunk) // 2]
                if not chunk:
                    return written


RUN_OUTPUTS = (
    "model.joblib",
    "model.joblib.sha256",
    "model.skops",
    "model.skops.sha256",
    "schema.json",
    "calibration.png",
    "metrics.json",
    "metrics.csv",
    "metrics.png",
    "test_curves.png",
    "report.md",
    "run.json",
    "federation.toml",
    "server.log",
)


@pytest.fixture
def fit_results(monkeypatch):
    """What every client returned in every round, as the server received it (every validating strategy)."""
    from flwr.common import parameters_to_ndarrays

    from orchestrator.federation.strategy import ValidatingStrategy

    seen = {}
    original = ValidatingStrategy.aggregate_fit

    def spy(self, server_round, results, failures):
        seen[server_round] = {
            proxy.cid: (parameters_to_ndarrays(res.parameters), res.num_examples) for proxy, res in results
        }
        return original(self, server_round, results, failures)

    monkeypatch.setattr(ValidatingStrategy, "aggregate_fit", spy)
    return seen


@pytest.fixture
def assert_run_outputs():
    """Check a finished run folder holds every file the run promises."""

    def check(run_dir: Path) -> None:
        for name in RUN_OUTPUTS:
            assert (run_dir / name).is_file(), name

    return check


# ----------------------------------------------------------------------------- AWS through moto

SERVER_ACCOUNT = "111111111111"
CLIENT_ACCOUNTS = ("222222222222", "333333333333")
REGION = "eu-west-1"


class MotoAccounts:
    """Sessions into separate moto accounts, each an administrator of its own account.

    moto gives a request the account of the role whose credentials signed it, so an
    administrator session in any account is an assumed role there.
    """

    def __init__(self):
        import boto3

        self._root = boto3.Session(region_name=REGION)
        self.server = self.admin(SERVER_ACCOUNT)

    def admin(self, account_id: str, region: str = REGION):
        import boto3

        creds = self._root.client("sts").assume_role(
            RoleArn=f"arn:aws:iam::{account_id}:role/admin", RoleSessionName="test-admin"
        )["Credentials"]
        return boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=region,
        )

    @staticmethod
    def assumed_roles(account_id: str):
        """Every AssumeRole call moto recorded into this account: (role ARN, session name, ExternalId)."""
        from moto.sts.models import sts_backends

        return [(r.role_arn, r.session_name, r.external_id) for r in sts_backends[account_id]["aws"].assumed_roles]


@contextlib.contextmanager
def moto_accounts(monkeypatch):
    """Inside the block, a moto AWS with separate accounts; no request leaves the process."""
    for key in ("MOTO_ACCOUNT_ID", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    from moto import mock_aws

    with mock_aws():
        yield MotoAccounts()


@pytest.fixture
def aws(monkeypatch):
    """A moto AWS with separate accounts; no request leaves the process."""
    with moto_accounts(monkeypatch) as accounts:
        yield accounts


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """A whole federation deployed into moto with `fedsage infra deploy`'s steps, code and data uploaded.

    An infra_fixtures.Deployment (aws, federation with the stacks' ids, outputs by step key, steps).
    Module-scoped, as deploying takes seconds. moto's state is process-wide and a nested mock_aws
    neither resets nor clears it. So in a module that uses this fixture, a test that also asks for
    `aws` runs inside this deployment (fine for adding a profile, wrong for deploying other stacks),
    and a test that changes what other tests look at undoes it (test_doctor.py's `undo`).
    """
    from infra_fixtures import deploy, patch_moto, upload_client_objects

    with pytest.MonkeyPatch.context() as patch, moto_accounts(patch) as accounts:
        patch_moto(patch)
        deployment = deploy(accounts, tmp_path_factory.mktemp("deployed"))
        upload_client_objects(accounts, deployment.federation.clients)
        yield deployment


@pytest.fixture
def aws_profiles(aws, tmp_path, monkeypatch):
    """Make named AWS profiles resolve to IAM users in given moto accounts.

    `aws_profiles({"server": "111111111111"})` writes a shared-credentials file with a
    `[server]` profile whose access key belongs to a user in that account, so code that opens
    `boto3.Session(profile_name="server")` acts in that account, as it would in AWS.
    """
    path = tmp_path / "aws-credentials"
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))
    written: dict[str, str] = {}

    def make(profiles: dict[str, str]) -> None:
        for profile, account in profiles.items():
            iam = aws.admin(account).client("iam")
            iam.create_user(UserName=f"user-{profile}")
            key = iam.create_access_key(UserName=f"user-{profile}")["AccessKey"]
            written[profile] = (
                f"[{profile}]\naws_access_key_id = {key['AccessKeyId']}\n"
                f"aws_secret_access_key = {key['SecretAccessKey']}\nregion = {REGION}\n"
            )
        path.write_text("\n".join(written.values()))

    return make
