"""`fedsage data upload`: each client's folders land in its own account's bucket, with its own credentials."""

import pytest
from cli_runner import assert_bad_input, run_cli
from conftest import CLIENT_ACCOUNTS, REGION, SERVER_ACCOUNT

from orchestrator.data.prepare import PrepareOptions, prepare
from orchestrator.data.synth import LABEL

CLIENTS = {"hospital-a": CLIENT_ACCOUNTS[0], "hospital-b": CLIENT_ACCOUNTS[1]}


def _bucket(name):
    return f"fedsage-{CLIENTS[name]}-{REGION}"


@pytest.fixture(scope="module")
def named_data(tmp_path_factory, fraud_frame):
    """Prepared data whose client folders carry the config's client names."""
    out = tmp_path_factory.mktemp("named") / "data"
    options = PrepareOptions(label=LABEL, categorical=("region",), client_names=tuple(CLIENTS), seed=7)
    prepare(fraud_frame.head(1500), options, out)
    return out


def _client_table(name, train_uri=None, validation_uri=None, extra=""):
    bucket = _bucket(name)
    train_uri = train_uri or f"s3://{bucket}/data/train/"
    validation_uri = validation_uri or f"s3://{bucket}/data/validation/"
    return (
        f'[[clients]]\nname = "{name}"\naccount_id = "{CLIENTS[name]}"\nregion = "{REGION}"\n'
        f'profile = "{name}"\ntrain_uri = "{train_uri}"\nvalidation_uri = "{validation_uri}"\n{extra}\n'
    )


def _config(tmp_path, data, tables=None):
    tables = tables if tables is not None else [_client_table(name) for name in CLIENTS]
    path = tmp_path / "federation.toml"
    path.write_text(f'[server]\ntest_data = "{data / "test.csv"}"\n\n' + "".join(tables))
    return path


@pytest.fixture
def cloud(aws, aws_profiles):
    """Two client accounts, each with its bucket and a data owner profile named after the client."""
    aws_profiles(CLIENTS)
    for name, account in CLIENTS.items():
        aws.admin(account).client("s3").create_bucket(
            Bucket=_bucket(name), CreateBucketConfiguration={"LocationConstraint": REGION}
        )
    return aws


def _objects(aws, name):
    s3 = aws.admin(CLIENTS[name]).client("s3")
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket=_bucket(name)).get("Contents", []))


def _access_key_last_used(aws, name):
    iam = aws.admin(CLIENTS[name]).client("iam")
    (key,) = iam.list_access_keys(UserName=f"user-{name}")["AccessKeyMetadata"]
    return iam.get_access_key_last_used(AccessKeyId=key["AccessKeyId"])["AccessKeyLastUsed"]


def test_each_client_uploads_into_its_own_account_with_its_own_profile(capsys, cloud, tmp_path, named_data):
    code, stdout, err = run_cli(
        capsys, "data", "upload", "--dir", str(named_data), "-c", str(_config(tmp_path, named_data))
    )
    assert code == 0, err
    expected = ["data/train/train.csv", "data/validation/validation.csv"]
    for name, account in CLIENTS.items():
        assert _objects(cloud, name) == expected
        s3 = cloud.admin(account).client("s3")
        body = s3.get_object(Bucket=_bucket(name), Key="data/train/train.csv")["Body"].read()
        assert body == (named_data / "clients" / name / "train" / "train.csv").read_bytes()
        # the data owner's own access key did the work
        assert _access_key_last_used(cloud, name)["ServiceName"] == "s3"
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [_bucket(name)]
    # the server account holds nothing
    assert cloud.admin(SERVER_ACCOUNT).client("s3").list_buckets()["Buckets"] == []
    assert "uploaded 4 files for 2 client(s)" in stdout
    assert f"s3://{_bucket('hospital-b')}/data/validation/" in stdout


def test_upload_again_replaces_the_same_objects(capsys, cloud, tmp_path, named_data):
    config = str(_config(tmp_path, named_data))
    assert run_cli(capsys, "data", "upload", "--dir", str(named_data), "-c", config)[0] == 0
    assert run_cli(capsys, "data", "upload", "--dir", str(named_data), "-c", config)[0] == 0
    assert len(_objects(cloud, "hospital-a")) == 2


def test_one_data_owner_uploads_only_its_client(capsys, cloud, tmp_path, named_data):
    config = str(_config(tmp_path, named_data))
    code, _, err = run_cli(capsys, "data", "upload", "--dir", str(named_data), "-c", config, "--client", "hospital-b")
    assert code == 0, err
    assert _objects(cloud, "hospital-a") == [] and len(_objects(cloud, "hospital-b")) == 2


def test_dry_run_uploads_nothing(capsys, cloud, tmp_path, named_data):
    config = str(_config(tmp_path, named_data))
    code, stdout, err = run_cli(capsys, "data", "upload", "--dir", str(named_data), "-c", config, "--dry-run")
    assert code == 0, err
    assert f"s3://{_bucket('hospital-a')}/data/train/train.csv" in stdout
    assert _objects(cloud, "hospital-a") == [] == _objects(cloud, "hospital-b")


def test_kms_key_encrypts_the_objects(capsys, cloud, tmp_path, named_data):
    key = f"arn:aws:kms:{REGION}:{CLIENTS['hospital-a']}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    tables = [_client_table("hospital-a", extra=f'kms_key_id = "{key}"'), _client_table("hospital-b")]
    config = str(_config(tmp_path, named_data, tables))
    assert run_cli(capsys, "data", "upload", "--dir", str(named_data), "-c", config)[0] == 0
    head = (
        cloud.admin(CLIENTS["hospital-a"])
        .client("s3")
        .head_object(Bucket=_bucket("hospital-a"), Key="data/train/train.csv")
    )
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key


def _assert_refused(capsys, cloud, args, message):
    assert_bad_input(capsys, *args, message=message)
    if cloud is not None:  # checked before the first byte moved
        assert _objects(cloud, "hospital-a") == [] == _objects(cloud, "hospital-b")


def test_credentials_of_another_account_are_refused_before_any_upload(capsys, aws, aws_profiles, tmp_path, named_data):
    aws_profiles({"hospital-a": CLIENTS["hospital-a"], "hospital-b": CLIENTS["hospital-a"]})
    for name, account in CLIENTS.items():
        aws.admin(account).client("s3").create_bucket(
            Bucket=_bucket(name), CreateBucketConfiguration={"LocationConstraint": REGION}
        )
    _assert_refused(
        capsys,
        aws,
        ("data", "upload", "--dir", str(named_data), "-c", str(_config(tmp_path, named_data))),
        f"client 'hospital-b' (profile hospital-b): the credentials are for account {CLIENTS['hospital-a']}, "
        f"not the client's account_id {CLIENTS['hospital-b']}",
    )


def test_other_objects_under_a_prefix_are_refused(capsys, cloud, tmp_path, named_data):
    s3 = cloud.admin(CLIENTS["hospital-b"]).client("s3")
    s3.put_object(Bucket=_bucket("hospital-b"), Key="data/train/old.csv", Body=b"a,b\n1,2\n")
    code, _, err = run_cli(capsys, "data", "upload", "--dir", str(named_data), "-c", str(_config(tmp_path, named_data)))
    assert code == 2
    assert "already holds 1 other object(s) (e.g. data/train/old.csv), which the training job would read" in err
    assert _objects(cloud, "hospital-a") == []


def test_missing_bucket(capsys, cloud, tmp_path, named_data):
    tables = [_client_table("hospital-a", train_uri="s3://no-such-bucket-here/train/"), _client_table("hospital-b")]
    _assert_refused(
        capsys,
        cloud,
        ("data", "upload", "--dir", str(named_data), "-c", str(_config(tmp_path, named_data, tables))),
        "client 'hospital-a' (profile hospital-a): cannot use its bucket (NoSuchBucket",
    )


def test_missing_profile(capsys, aws, tmp_path, named_data):
    _assert_refused(
        capsys,
        None,
        ("data", "upload", "--dir", str(named_data), "-c", str(_config(tmp_path, named_data))),
        "AWS profile 'hospital-a' for client 'hospital-a' not found",
    )


# ----------------------------------------------------------------------------- matching, no AWS call


def _refused_offline(capsys, tmp_path, data, tables, message, *extra):
    _assert_refused(
        capsys,
        None,
        ("data", "upload", "--dir", str(data), "-c", str(_config(tmp_path, data, tables)), *extra),
        message,
    )


def test_a_client_without_a_folder(capsys, tmp_path, named_data):
    clinic = _client_table("hospital-a").replace('"hospital-a"', '"clinic-c"')
    tables = [_client_table(n) for n in CLIENTS] + [clinic.replace(CLIENTS["hospital-a"], "444444444444")]
    _refused_offline(capsys, tmp_path, named_data, tables, "client 'clinic-c' has no folder")


def test_a_folder_without_a_client(capsys, tmp_path, named_data):
    _refused_offline(
        capsys,
        tmp_path,
        named_data,
        [
            _client_table("hospital-a"),
            _client_table("hospital-b").replace('"hospital-b"\naccount', '"hospital-x"\naccount'),
        ],
        "has no client named 'hospital-b' in the config",
    )


def test_unknown_client_option(capsys, tmp_path, named_data):
    _refused_offline(capsys, tmp_path, named_data, None, "--client 'nope' is not in the config", "--client", "nope")


def test_file_uris_are_not_uploaded(capsys, tmp_path, named_data):
    tables = [_client_table("hospital-a", train_uri="file:///data/train/"), _client_table("hospital-b")]
    _refused_offline(capsys, tmp_path, named_data, tables, "train_uri file:///data/train/ is not an s3:// URI")


def test_overlapping_channel_prefixes(capsys, tmp_path, named_data):
    bucket = _bucket("hospital-a")
    tables = [
        _client_table("hospital-a", train_uri=f"s3://{bucket}/data", validation_uri=f"s3://{bucket}/data/validation/"),
        _client_table("hospital-b"),
    ]
    _refused_offline(capsys, tmp_path, named_data, tables, "train_uri and validation_uri overlap")


def test_validation_folder_without_validation_uri(capsys, tmp_path, named_data):
    table = _client_table("hospital-a").replace(f'validation_uri = "s3://{_bucket("hospital-a")}/data/validation/"', "")
    _refused_offline(
        capsys,
        tmp_path,
        named_data,
        [table, _client_table("hospital-b")],
        "has a validation folder (" + str(named_data),
    )


def test_data_the_servers_schema_cannot_read(capsys, tmp_path, named_data, fraud_frame):
    other = tmp_path / "other"
    prepare(fraud_frame.tail(1500).assign(extra=1.0), PrepareOptions(label=LABEL, categorical=("region",)), other)
    path = tmp_path / "federation.toml"
    path.write_text(f'[server]\ntest_data = "{other / "test.csv"}"\n\n' + "".join(_client_table(n) for n in CLIENTS))
    _assert_refused(
        capsys,
        None,
        ("data", "upload", "--dir", str(named_data), "-c", str(path)),
        "column 'extra' required by the feature schema is missing",
    )
