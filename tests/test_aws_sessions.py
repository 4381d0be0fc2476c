"""Sessions into client accounts: assumed with the ExternalId, named after the run, self-refreshing."""

from pathlib import Path

import pytest
from cli_runner import assert_bad_input
from conftest import CLIENT_ACCOUNTS, SERVER_ACCOUNT, free_port

from orchestrator import config
from orchestrator.aws import sessions

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "federation.toml"
KICKOFF_ROLE = "arn:aws:iam::222222222222:role/FL-kickoff-client-job"


def _client(account="222222222222", external_id="ext-a"):
    return config.ClientSettings(
        name="hospital-a",
        train_uri="s3://b/train/",
        account_id=account,
        region="eu-west-1",
        kickoff_role_arn=f"arn:aws:iam::{account}:role/FL-kickoff-client-job",
        external_id=external_id,
    )


def test_client_session_is_the_kickoff_role_in_the_client_account(aws):
    session = sessions.client_session(aws.server, _client(), run_id="20261121-101500-a1b2")
    arn = sessions.check_assumable(session, _client())
    assert arn == "arn:aws:sts::222222222222:assumed-role/FL-kickoff-client-job/fedsage-20261121-101500-a1b2"
    assert aws.assumed_roles("222222222222") == [
        ("arn:aws:iam::222222222222:role/FL-kickoff-client-job", "fedsage-20261121-101500-a1b2", "ext-a")
    ]
    # resources created through it live in the client account only
    session.client("s3").create_bucket(
        Bucket="client-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    assert [b["Name"] for b in aws.admin(CLIENT_ACCOUNTS[0]).client("s3").list_buckets()["Buckets"]] == [
        "client-bucket"
    ]
    assert aws.admin(SERVER_ACCOUNT).client("s3").list_buckets()["Buckets"] == []


def test_credentials_are_reused_until_botocore_refresh_window(aws):
    session = sessions.client_session(aws.server, _client(), run_id="r1")
    sts = session.client("sts")
    keys = set()
    for _ in range(3):
        assert sts.get_caller_identity()["Account"] == "222222222222"
        keys.add(session.get_credentials().get_frozen_credentials().access_key)
    assert len(keys) == 1  # an hour-long credential is not renewed on every call
    assert aws.assumed_roles("222222222222") == [(KICKOFF_ROLE, "fedsage-r1", "ext-a")]


def test_credentials_refresh_themselves_before_they_expire(aws):
    """Credentials that expire within 15 minutes are in botocore's refresh window: each use renews them."""
    session = sessions.assume_role(
        aws.server, KICKOFF_ROLE, "ext-a", sessions.session_name("r1"), "eu-west-1", duration_seconds=900
    )
    sts = session.client("sts")
    credentials = session.get_credentials()
    assert sts.get_caller_identity()["Account"] == "222222222222"
    first_key = credentials.get_frozen_credentials().access_key
    assert sts.get_caller_identity()["Account"] == "222222222222"
    assert credentials.get_frozen_credentials().access_key != first_key
    renewals = aws.assumed_roles("222222222222")
    assert len(renewals) >= 2 and set(renewals) == {(KICKOFF_ROLE, "fedsage-r1", "ext-a")}


def test_session_name_carries_the_run_id_within_sts_limits():
    assert sessions.session_name("20261121-101500-a1b2") == "fedsage-20261121-101500-a1b2"
    assert len(sessions.session_name("x" * 100)) == 64
    assert sessions.session_name("run id/with spaces") == "fedsage-run-id-with-spaces"


# ----------------------------------------------------------------------------- issue 10, item 23

COMMANDS = [("doctor",), ("status",), ("stop", "--run-id", "20261121-101500-a1b2"), ("launch",)]


@pytest.fixture
def no_aws_credentials(monkeypatch, tmp_path):
    """An environment where botocore's default chain finds nothing (and never asks instance metadata)."""
    for key in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.parametrize("command", COMMANDS)
def test_no_credentials_is_one_line_naming_the_credential_chain(capsys, tmp_path, no_aws_credentials, command):
    assert_bad_input(
        capsys,
        *command,
        "-c",
        str(EXAMPLE),
        message="no AWS credentials for the server in the default credential chain (environment variables, "
        "AWS_PROFILE, ~/.aws, SSO, container or instance role); set [server] profile or AWS_PROFILE",
        folder=tmp_path,
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_no_network_is_one_line_and_bounded(capsys, tmp_path, no_aws_credentials, monkeypatch, command):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    assert_bad_input(
        capsys,
        *command,
        "-c",
        str(EXAMPLE),
        message="cannot reach AWS to check the server's credentials (Could not connect to the endpoint URL",
        folder=tmp_path,
    )


def test_a_named_profile_that_is_missing(capsys, tmp_path, no_aws_credentials):
    text = EXAMPLE.read_text().replace('# profile = "fl-server"', 'profile = "fl-server"')
    config_path = tmp_path / "federation.toml"
    config_path.write_text(text)
    assert_bad_input(
        capsys, "status", "-c", str(config_path), message="AWS profile 'fl-server' for the server not found"
    )


def test_every_session_bounds_its_connect_timeout(aws):
    server = sessions.profile_session(None, "eu-west-1", "the server")
    client = sessions.client_session(server, _client(), run_id="r1")
    for session in (server, client):
        for service in ("sts", "ec2", "sagemaker"):
            made = session.client(service).meta.config
            assert made.connect_timeout == sessions.CONNECT_TIMEOUT
            assert made.retries["mode"] == "standard"
