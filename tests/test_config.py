"""federation.toml validation: every error names the key, the value and the fix."""

import pytest

from orchestrator import config
from orchestrator.errors import BadInput

BASE = {"server": {"test_data": "test.csv"}, "clients": [{"name": "a", "train_uri": "file:///data/a/"}]}


def _with(**changes):
    data = {**BASE, **changes}
    return config.parse(data)


def test_defaults_work_and_min_clients_means_all():
    federation = _with()
    assert federation.federation.rounds == 5 and federation.model.penalty == "l2"
    assert federation.min_clients() == 1
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
            {"clients": [{"name": "a", "train_uri": "s3://x/"}, {"name": "a", "train_uri": "s3://y/"}]},
            "client name 'a' is used twice",
        ),
        ({"federation": {"min_clients": 2}}, "min_clients = 2 is more than the 1 clients configured"),
        ({"server": {}}, r"server\.test_data is required"),
    ],
)
def test_errors_name_key_value_and_fix(changes, message):
    with pytest.raises(BadInput, match=message):
        _with(**changes)


def test_load_resolves_paths_relative_to_the_file_and_round_trips(tmp_path):
    path = tmp_path / "federation.toml"
    path.write_text('[server]\ntest_data = "data/test.csv"\n\n[[clients]]\nname = "a"\ntrain_uri = "s3://b/a/"\n')
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
