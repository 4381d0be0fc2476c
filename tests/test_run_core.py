"""The run's building blocks: the run folder, atomic writes, TLS brought by the operator, shared planning."""

import errno
import json
import math
import os
from pathlib import Path

import pytest
from cryptography import x509

from orchestrator import config, launch
from orchestrator.backends.process import ProcessBackend
from orchestrator.errors import BadInput
from orchestrator.federation import tls
from orchestrator.run.folder import RunFolder, RunSummary, file_error, write_json
from orchestrator.run.inputs import server_schema


def test_a_run_folder_is_created_exclusively(tmp_path):
    first = RunFolder.new(tmp_path / "runs", "20261130-120000-abcd")
    first.create()
    again = RunFolder.new(tmp_path / "runs", "20261130-120000-abcd")
    with pytest.raises(BadInput, match="already exists; choose another --out"):
        again.create()
    assert not again.created


def test_an_out_folder_inside_a_file_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "a-file").write_text("x")
    folder = RunFolder.new(tmp_path / "a-file" / "runs", "run")
    with pytest.raises(BadInput, match="is inside a file"):
        folder.check_writable()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_json_is_written_atomically_with_nan_as_null(tmp_path):
    path = tmp_path / "metrics.json"
    write_json(path, {"roc_auc": math.nan, "loss": [0.5, math.inf]})
    assert json.loads(path.read_text()) == {"roc_auc": None, "loss": [0.5, None]}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary file left


def test_run_summary_round_trips_through_run_json(tmp_path):
    summary = RunSummary("r", "completed", "", "process", 5, 1.5, 200.0, {"flwr": "1.41.0"})
    write_json(tmp_path / "run.json", summary.to_dict())
    assert RunSummary.load(tmp_path / "run.json") == summary


# ------------------------------------------------------------------ a full disk, injected at the write layer
# (issue 10, item 4; tests/test_run_faults.py fills a real tmpfs where it can mount one)


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "run.json"
    write_json(path, {"status": "running"})
    monkeypatch.setattr(os, "fsync", _enospc)
    with pytest.raises(OSError) as failure:
        write_json(path, {"status": "completed"})
    assert (failure.value.errno, failure.value.filename) == (errno.ENOSPC, str(path))
    assert json.loads(path.read_text()) == {"status": "running"}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]
    assert str(file_error(failure.value)) == (
        f"could not write {path}: No space left on device; free space on that disk (or choose another --out) "
        "and run again - the files already in the run folder are complete"
    )


def test_a_model_is_published_whole_with_its_checksum_or_not_at_all(tmp_path, monkeypatch):
    from client_code.models.logistic import make_model, set_initial_params

    folder = RunFolder.new(tmp_path, "run")
    folder.create()
    model = set_initial_params(make_model(), 3, [0, 1])
    replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: _enospc() if Path(b) == folder.model else replace(a, b))
    with pytest.raises(OSError, match="No space left on device"):
        folder.save_model(model, {"run_id": "run"})
    left = sorted(p.name for p in folder.root.iterdir())
    assert left == ["model.joblib.sha256", "model.skops.sha256"]  # no model file without its checksum
    monkeypatch.setattr(os, "replace", replace)
    folder.save_model(model, {"run_id": "run"})
    assert sorted(p.name for p in folder.root.iterdir()) == [
        "model.joblib",
        "model.joblib.sha256",
        "model.skops",
        "model.skops.sha256",
    ]


def test_server_log_stops_quietly_when_it_cannot_be_written_and_says_why(tmp_path, capsys):
    import logging

    from orchestrator.run.logs import ServerLog

    server_log = ServerLog(tmp_path / "server.log")
    try:
        logging.getLogger("orchestrator.test").warning("written")
        server_log.handler.stream.write = _enospc  # the disk fills up
        for _ in range(100):
            logging.getLogger("orchestrator.test").warning("lost")
    finally:
        server_log.release()
    assert server_log.error.errno == errno.ENOSPC and server_log.error.filename == str(tmp_path / "server.log")
    assert capsys.readouterr().err == ""  # not a traceback per record
    assert (tmp_path / "server.log").read_text().count("\n") == 1


def test_server_log_keeps_a_still_running_server_threads_records_until_it_ends(tmp_path, capfd):
    """A run stopped mid-round: the server thread's last records go to server.log, never to the console."""
    import logging
    import threading

    import flwr.common.logger  # Flower's console handler, on the "flwr" logger

    from orchestrator.run.logs import ServerLog

    server_log = ServerLog(tmp_path / "server.log")
    released, ended = threading.Event(), threading.Event()

    def server_thread():
        released.wait()  # the run's end has released server.log; this thread still finishes its round
        logging.getLogger("flwr").info("[ROUND 2]")
        logging.getLogger("orchestrator.federation.strategy").warning("round 1: evaluation left out")
        ended.set()

    thread = threading.Thread(target=server_thread, daemon=True)
    thread.start()
    server_log.release(ended)
    released.set()
    thread.join(30)
    for _ in range(300):  # the release happens in a daemon thread once `ended` is set
        if not any(h is server_log.handler for h in logging.getLogger("flwr").handlers):
            break
        threading.Event().wait(0.01)
    assert capfd.readouterr().err == ""
    text = (tmp_path / "server.log").read_text()
    assert "[ROUND 2]" in text and "evaluation left out" in text
    assert flwr.common.logger.console_handler in logging.getLogger("flwr").handlers  # given back, once it ended


# ------------------------------------------------------------------ [server.tls]


def _write(folder, material, host="127.0.0.1"):
    folder.mkdir(exist_ok=True)
    (folder / "ca.pem").write_bytes(material.ca_certificate)
    (folder / "server.pem").write_bytes(material.server_certificate)
    (folder / "server.key").write_bytes(material.server_key)
    return config.TlsSettings(
        ca_certificate=folder / "ca.pem", certificate=folder / "server.pem", private_key=folder / "server.key"
    )


def test_the_operators_own_ca_is_used_as_given(tmp_path):
    material = tls.generate(["127.0.0.1"])
    loaded = tls.load(_write(tmp_path, material), "127.0.0.1")
    assert loaded == material


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("other-ca", "is not signed by ca_certificate"),
        ("other-key", "does not belong to"),
        ("wrong-host", "is for 10.0.0.5, not '127.0.0.1'"),
        ("not-pem", "must be PEM X.509 certificates"),
        ("missing", "cannot read the private key"),
    ],
)
def test_unusable_tls_files_are_refused_in_one_line(tmp_path, breakage, message):
    material = tls.generate(["10.0.0.5" if breakage == "wrong-host" else "127.0.0.1"])
    settings = _write(tmp_path, material)
    other = tls.generate(["127.0.0.1"])
    if breakage == "other-ca":
        settings.ca_certificate.write_bytes(other.ca_certificate)
    elif breakage == "other-key":
        settings.private_key.write_bytes(other.server_key)
    elif breakage == "not-pem":
        settings.certificate.write_text("hello")
    elif breakage == "missing":
        settings.private_key.unlink()
    with pytest.raises(BadInput, match=message) as refused:
        tls.load(settings, "127.0.0.1")
    assert "\n" not in str(refused.value)


def test_a_dns_name_in_the_certificate_matches(tmp_path):
    material = tls.generate(["fl.example.internal"])
    loaded = tls.load(_write(tmp_path, material), "fl.example.internal")
    cert = x509.load_pem_x509_certificate(loaded.server_certificate)
    assert cert.subject.rfc4514_string() == "CN=fl.example.internal"


# ------------------------------------------------------------------ planning shared by dry run and run


def _cloud_config(prepared, host):
    return config.parse(
        {
            "server": {
                "region": "eu-west-1",
                "bind_address": "::" if ":" in host else "0.0.0.0",
                "advertised_address": host,
                "port": 8443,
                "test_data": str(prepared.test),
                "schema": str(prepared.root / "schema.json"),
            },
            "clients": [
                {
                    "name": "hospital-a",
                    "account_id": "222222222222",
                    "region": "eu-west-1",
                    "kickoff_role_arn": "arn:aws:iam::222222222222:role/FL-kickoff-client-job",
                    "external_id": "ext-a",
                    "execution_role_arn": "arn:aws:iam::222222222222:role/FL-sagemaker-execution",
                    "code_uri": "s3://bucket-a/code/source.tar.gz",
                    "train_uri": "s3://bucket-a/data/train/",
                    "output_uri": "s3://bucket-a/artifacts/",
                    "subnets": ["subnet-0a01"],
                    "security_groups": ["sg-0a01"],
                },
                {
                    "name": "hospital-b",
                    "account_id": "333333333333",
                    "region": "eu-west-1",
                    "kickoff_role_arn": "arn:aws:iam::333333333333:role/FL-kickoff-client-job",
                    "external_id": "ext-b",
                    "execution_role_arn": "arn:aws:iam::333333333333:role/FL-sagemaker-execution",
                    "code_uri": "s3://bucket-b/code/source.tar.gz",
                    "train_uri": "s3://bucket-b/data/train/",
                    "output_uri": "s3://bucket-b/artifacts/",
                    "subnets": ["subnet-0b01"],
                    "security_groups": ["sg-0b01"],
                },
            ],
        }
    )


@pytest.mark.parametrize(("host", "address"), [("10.10.1.5", "10.10.1.5:8443"), ("fd00::5", "[fd00::5]:8443")])
def test_the_dry_run_formats_the_server_address_as_the_run_does(prepared, host, address):
    request, _ = launch.dry_run(_cloud_config(prepared, host))
    assert json.loads(request["CreateTrainingJob"]["HyperParameters"]["server-address"]) == address


def test_the_process_backend_refuses_s3_channels_before_anything_starts(prepared, tmp_path):
    federation = _cloud_config(prepared, "127.0.0.1")
    backend = ProcessBackend(tmp_path / "clients")
    with pytest.raises(BadInput, match="train_uri s3://bucket-a/data/train/ is not a local folder"):
        backend.check_inputs(federation, server_schema(federation))
    assert not (tmp_path / "clients").exists()
