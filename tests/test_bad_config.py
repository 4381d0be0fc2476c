"""Configs and options that must be refused in one line (exit 2, nothing written) - issue 10, items 6, 12, 18-20.

Each case starts from the annotated example (examples/federation.toml, ready for launch) and
breaks one thing, then runs `fedsage launch --dry-run` as a user would.
"""

import tomllib
from pathlib import Path

import pytest
import tomli_w
from cli_runner import assert_bad_input

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "federation.toml"


def _config(tmp_path: Path, change=None, text: bytes | None = None) -> Path:
    data = tomllib.loads(EXAMPLE.read_text())
    if change is not None:
        change(data)
    path = tmp_path / "federation.toml"
    path.write_bytes(text if text is not None else tomli_w.dumps(data).encode())
    return path


def _refused(capsys, tmp_path, path, message):
    return assert_bad_input(capsys, "launch", "-c", str(path), "--dry-run", message=message, folder=tmp_path)


def _set(section, **values):
    return lambda data: data[section].update(values)


def _client(index, **values):
    return lambda data: data["clients"][index].update(values)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # item 6: numbers that are not numbers
        (
            _set("federation", join_timeout=float("inf")),
            "federation.join_timeout = inf: Input should be a finite number",
        ),
        (_set("federation", round_timeout=float("nan")), "federation.round_timeout = nan: Input should be a finite"),
        # item 12
        (_set("federation", rounds=True), "federation.rounds = True: true/false is not a valid value here"),
        (_set("model", c=float("inf")), "model.c = inf: Input should be a finite number"),
        (_set("federation", seed=-1), "federation.seed = -1: Input should be greater than or equal to 0"),
        (
            _client(
                1,
                account_id="222222222222",
                kickoff_role_arn="arn:aws:iam::222222222222:role/k",
                execution_role_arn="arn:aws:iam::222222222222:role/e",
            ),
            "clients 'hospital-a' and 'hospital-b' are in the same account; each client is one data owner's account",
        ),
        (
            _set("server", account_id="333333333333"),
            "server.account_id 333333333333 is also the account of client 'hospital-b'; the server runs in its own",
        ),
        (_client(1, name="Hospital-A"), "clients 'hospital-a' and 'Hospital-A' differ only in case"),
        (
            _set("server", advertised_address="not an address!"),
            "server.advertised_address = 'not an address!': is neither an IP address nor a DNS host name",
        ),
        (_set("server", advertised_address="10.10.1.10:8080"), "is neither an IP address nor a DNS host name"),
        # item 18: a server only this machine can reach, advertised to other accounts
        (
            _set("server", bind_address="127.0.0.1"),
            "bind_address 127.0.0.1 accepts connections from this machine only, but the clients dial "
            'advertised_address 10.10.1.10; set bind_address = "0.0.0.0"',
        ),
        (_set("server", bind_address="localhost", advertised_address="fl.example.org"), "this machine only"),
        # item 19: SageMaker's tag alphabet (API_Tag: letters, numbers, spaces and _.:/=+-@)
        (_client(0, tags={"a,b": "x"}), "tag key 'a,b' is not a SageMaker tag: 1 to 128 letters, digits, spaces"),
        (_client(0, tags={"team": "fraud;drop"}), "value of tag 'team' 'fraud;drop' is not a SageMaker tag"),
        (_client(0, tags={"k" * 129: "x"}), "is not a SageMaker tag: 1 to 128"),
        # item 20
        (
            _client(0, spot=True, checkpoint_uri="s3://fedsage-222222222222-eu-west-1/checkpoints/"),
            "clients[0]: spot = true is not supported yet: a spot interruption restarts the job, and a restarted "
            "client cannot rejoin a running federation (no resume design yet); remove spot",
        ),
    ],
)
def test_a_config_that_cannot_work_is_refused_in_one_line(capsys, tmp_path, change, message):
    _refused(capsys, tmp_path, _config(tmp_path, change), message)


def test_tags_in_any_script_sagemaker_accepts_pass(tmp_path):
    from orchestrator import config

    federation = config.load(_config(tmp_path, _client(0, tags={"équipe": "fraude 2026", "a.b/c=d+e-f@g:h_i": ""})))
    assert federation.clients[0].tags["équipe"] == "fraude 2026"


def test_a_loopback_server_for_loopback_clients_is_fine(tmp_path):
    from orchestrator import config

    federation = config.load(_config(tmp_path, _set("server", bind_address="127.0.0.1", advertised_address="::1")))
    assert federation.server.dial_host() == "::1"


def test_a_config_file_with_a_byte_that_is_not_utf8(capsys, tmp_path):
    text = EXAMPLE.read_bytes().replace(b'name = "fraud"', b'name = "fr\xe4ud"')
    _refused(capsys, tmp_path, _config(tmp_path, text=text), "is not UTF-8 text (byte 0xe4 on line 10); save it")


def test_a_config_path_that_is_a_folder(capsys, tmp_path):
    (tmp_path / "conf").mkdir()
    _refused(capsys, tmp_path, tmp_path / "conf", "is a folder; pass the federation.toml file inside it with -c")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        # each names the option as typed, not the config key it sets
        (("--join-timeout", "inf"), "fedsage local: --join-timeout inf: Input should be a finite number"),
        (("--round-timeout", "nan"), "--round-timeout nan: Input should be a finite number"),
        (("--seed", "-1"), "fedsage local: --seed -1: Input should be greater than or equal to 0"),
        (("--model", "forest"), "fedsage local: --model forest is not a model kind; choose one of 'logistic', 'sgd'"),
        (("--smote-ratio", "3"), "fedsage local: --smote-ratio 3.0: Input should be less than or equal to 1"),
    ],
)
def test_local_options_that_cannot_work(capsys, tmp_path, option, message):
    out = tmp_path / "runs"
    assert_bad_input(capsys, "local", "--out", str(out), *option, message=message, folder=tmp_path)
