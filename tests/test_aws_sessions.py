"""Sessions into client accounts: assumed with the ExternalId, named after the run, self-refreshing."""

import datetime as dt

from conftest import CLIENT_ACCOUNTS, SERVER_ACCOUNT

from orchestrator import config
from orchestrator.aws import sessions


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


def test_credentials_refresh_themselves_when_they_expire(aws):
    session = sessions.client_session(aws.server, _client(), run_id="r1")
    sts = session.client("sts")
    sts.get_caller_identity()
    credentials = session._session._credentials
    first_key = credentials.get_frozen_credentials().access_key
    # an hour later: the credentials and the fetcher's cached AssumeRole response have both expired
    credentials._expiry_time = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    credentials._refresh_using.__self__._cache.clear()
    assert sts.get_caller_identity()["Account"] == "222222222222"
    assert credentials.get_frozen_credentials().access_key != first_key
    assert len(aws.assumed_roles("222222222222")) == 2


def test_session_name_carries_the_run_id_within_sts_limits():
    assert sessions.session_name("20261121-101500-a1b2") == "fedsage-20261121-101500-a1b2"
    assert len(sessions.session_name("x" * 100)) == 64
    assert sessions.session_name("run id/with spaces") == "fedsage-run-id-with-spaces"
