"""federation.toml validation: every error names the key, the value and the fix."""

import pytest

from orchestrator import config
from orchestrator.errors import BadInput

BASE = {
    "server": {"test_data": "test.csv"},
    "clients": [{"name": "a", "train_uri": "file:///data/a/"}, {"name": "b", "train_uri": "file:///data/b/"}],
}


def _with(**changes):
    data = {**BASE, **changes}
    return config.parse(data)


def test_defaults_work_and_min_clients_means_all():
    federation = _with()
    assert federation.federation.rounds == 5 and federation.model.penalty == "l2"
    assert federation.min_clients() == 2
    assert federation.server.resolved_schema().name == "schema.json"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"federation": {"rounds": 0}},
            r"federation\.rounds = 0: Input should be greater than or equal to 1 \(expected number of federated rounds",
        ),
        ({"federation": {"round": 3}}, r"unknown key federation\.round; remove it or check its spelling"),
        ({"model": {"penalty": "l3"}}, r"model\.penalty = 'l3'.*\(expected one of l2, l1, elasticnet, none\)"),
        (
            {"clients": [{"name": "bad_name", "train_uri": "file:///x/"}]},
            r"clients\[0\]\.name = 'bad_name'.*letters, digits and single hyphens",
        ),
        (
            {"clients": [{"name": "a", "train_uri": "http://x/"}]},
            r"clients\[0\]\.train_uri = 'http://x/': must start with s3:// or file://",
        ),
        ({"clients": []}, r"clients: List should have at least 1 item"),
        (
            {"clients": [{"name": "a", "train_uri": "s3://x/"}]},
            r"1 \[\[clients\]\] table: a federation needs at least 2 clients .*; add a \[\[clients\]\] table",
        ),
        (
            {"clients": [{"name": "a", "train_uri": "s3://x/"}, {"name": "a", "train_uri": "s3://y/"}]},
            "client name 'a' is used twice",
        ),
        ({"federation": {"min_clients": 3}}, "min_clients = 3 is more than the 2 clients configured"),
        ({"server": {}}, r"server\.test_data is required"),
    ],
)
def test_errors_name_key_value_and_fix(changes, message):
    with pytest.raises(BadInput, match=message):
        _with(**changes)


def test_load_resolves_paths_relative_to_the_file_and_round_trips(tmp_path):
    path = tmp_path / "federation.toml"
    clients = "".join(f'[[clients]]\nname = "{n}"\ntrain_uri = "s3://b/{n}/"\n\n' for n in ("a", "b"))
    path.write_text(f'[server]\ntest_data = "data/test.csv"\n\n{clients}')
    federation = config.load(path)
    assert federation.server.test_data == tmp_path / "data" / "test.csv"
    again = tmp_path / "again.toml"
    again.write_text(federation.to_toml())
    assert config.load(again).model_dump() == federation.model_dump()


def test_load_reports_missing_and_malformed_files(tmp_path):
    with pytest.raises(BadInput, match="not found"):
        config.load(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n")
    with pytest.raises(BadInput, match="is not valid TOML"):
        config.load(bad)


EXAMPLE = __import__("pathlib").Path(__file__).resolve().parent.parent / "examples" / "federation.toml"


def test_the_annotated_example_is_valid_and_ready_for_launch():
    federation = config.load(EXAMPLE)
    federation.require_launchable()
    assert [c.account_id for c in federation.clients] == ["222222222222", "333333333333"]
    assert federation.clients[1].instance_type == "ml.m5.large"  # defaults fill the rest


def _cloud_client(**changes):
    client = {
        "name": "a",
        "train_uri": "s3://b/train/",
        "account_id": "222222222222",
        "region": "eu-west-1",
        "kickoff_role_arn": "arn:aws:iam::222222222222:role/FL-kickoff-client-job",
        "external_id": "ext",
        "execution_role_arn": "arn:aws:iam::222222222222:role/exec",
        "code_uri": "s3://b/code/source.tar.gz",
        "output_uri": "s3://b/out/",
        "subnets": ["subnet-0abc"],
        "security_groups": ["sg-0abc"],
    }
    client.update(changes)
    return client


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"account_id": "2222"},
            r"clients\[0\]\.account_id = '2222'.*\(expected the client's 12-digit AWS account id\)",
        ),
        ({"kickoff_role_arn": "arn:aws:iam::333333333333:role/x"}, "is not in account_id 222222222222"),
        ({"security_groups": ["sg-1", "sg-2", "sg-3", "sg-4", "sg-5", "sg-6"]}, r"security_groups.*at most 5 items"),
        ({"subnets": ["vpc-123"]}, r"clients\[0\]\.subnets\[0\] = 'vpc-123'"),
        ({"instance_count": 2}, r"instance_count = 2.*\(expected 1: each training job is exactly one Flower client\)"),
        ({"spot": True}, r"clients\[0\]: spot = true is not supported yet: .* cannot rejoin .*; remove spot$"),
        ({"tags": {"fedsage:run-id": "x"}}, "reserved"),
        ({"code_uri": "s3://b/code/"}, r"code_uri = 's3://b/code/'.*source.tar.gz"),
    ],
)
def test_cloud_client_errors_name_key_value_and_fix(changes, message):
    with pytest.raises(BadInput, match=message):
        _with(clients=[_cloud_client(**changes)])


def test_launch_readiness_lists_every_missing_key():
    federation = _with(clients=[_cloud_client(), {"name": "b", "train_uri": "file:///data/b/"}])
    with pytest.raises(BadInput) as failure:
        federation.require_launchable()
    message = str(failure.value)
    assert "server: set region, advertised_address, port (a fixed port the security groups allow)" in message
    assert "clients[1] (b): set account_id, region, kickoff_role_arn, external_id" in message
    assert "train_uri (an s3:// URI)" in message
    assert "clients[0]" not in message


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"model": {"hidden_layer_sizes": [8]}},
            r'model\.hidden_layer_sizes is a key of kind "mlp", not of kind "logistic"; remove it or set kind = "mlp"',
        ),
        ({"model": {"kind": "forest"}}, r"model\.kind = 'forest' is not a model kind; choose one of 'logistic', 'sgd'"),
        ({"model": {"kind": "mlp", "max_iter": 0}}, r"model\.max_iter = 0: Input should be greater than or equal to 1"),
        ({"model": {"kind": "sgd", "loss": "cubic"}}, r"model\.loss = 'cubic': Input should be 'log_loss', 'hinge'"),
        ({"model": {"kind": "linear", "alpha": True}}, r"model\.alpha = True: true/false is not a valid value here"),
        (
            {"model": {"kind": "linear"}, "data": {"task": "binary"}},
            r'model\.kind = "linear" learns regression labels, but data\.task = "binary"',
        ),
        (
            {"model": {"kind": "sgd", "balance": "smote"}, "data": {"task": "regression"}},
            r'model\.balance = "smote" balances classes, and a regression label has none',
        ),
        (
            {"model": {"kind": "xgboost"}, "federation": {"strategy": "fedavg"}},
            r'model\.kind = "xgboost" is aggregated by federation\.strategy = "fedxgb_bagging", not "fedavg"',
        ),
        (
            {"federation": {"strategy": "fedxgb_bagging"}},
            r'federation\.strategy = "fedxgb_bagging" aggregates boosted trees; model\.kind = "logistic" needs',
        ),
    ],
)
def test_model_kinds_and_their_keys_are_checked_in_one_line(changes, message):
    with pytest.raises(BadInput, match=message):
        _with(**changes)


def test_each_kind_takes_its_own_keys_and_they_travel_in_the_request(tmp_path):
    federation = _with(model={"kind": "mlp", "hidden_layer_sizes": [16, 8], "max_iter": 3})
    assert federation.model.arguments() == {
        "model": "mlp",
        "hidden-layer-sizes": "16,8",
        "activation": "relu",
        "alpha": 0.0001,
        "learning-rate-init": 0.001,
        "batch-size": 200,
        "max-iter": 3,
    }
    boosted = _with(model={"kind": "xgboost", "max_depth": 3})
    assert boosted.federation.strategy == "fedxgb_bagging"  # the kind's own aggregation, by default
    path = tmp_path / "federation.toml"
    path.write_text(boosted.to_toml())  # the resolved file loads back as the same federation
    assert config.parse(__import__("tomllib").loads(path.read_text())).model_dump() == boosted.model_dump()
    assert _with(model={"c": 0.5}).model.hyperparameters().inverse_regularization == 0.5


def test_a_schema_task_the_model_cannot_learn_is_bad_input():
    with pytest.raises(
        BadInput, match=r'model\.kind = "linear" learns regression labels, but the schema\'s task = "binary"'
    ):
        _with(model={"kind": "linear"}).check_task({"task": "binary"})
    with pytest.raises(BadInput, match=r'model\.balance = "class_weight" balances classes'):
        _with(model={"kind": "mlp", "balance": "class_weight"}).check_task({"task": "regression"})
    _with(model={"kind": "mlp"}).check_task({"task": "regression"})  # the default balance is not a choice
