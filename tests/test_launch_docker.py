"""`fedsage launch` against moto, with every training job run as a container through the real toolkit.

moto runs as a server on 127.0.0.1 (this process and the containers share its state); each
client account holds source.tar.gz (built by `fedsage package` for the image's Python) and its
data in its own bucket. tests/fake_sagemaker.py's docker mode plays SageMaker: the channels are
copied from the account's S3 into the job's /opt/ml tree, the toolkit in the container downloads
and installs the archive itself, and model.tar.gz goes back to the account's bucket.
"""

import io
import json
import tarfile

import joblib
import numpy as np
import pytest
from conftest import SERVER_ACCOUNT, MotoAccounts, free_port
from docker_support import docker_client, moto_server, run_containers, training_image  # noqa: F401 - fixtures
from fake_sagemaker import (
    CLIENTS,
    DockerMode,
    FakeSageMaker,
    SageMakerExecutor,
    bucket,
    cloud_federation,
    put_client_objects,
)

from orchestrator import launch
from orchestrator.backends import COMPLETED
from orchestrator.backends.docker_cache import code_archive

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_launch_runs_every_job_in_a_container_and_each_account_gets_the_global_model(
    moto_server, docker_client, training_image, prepared, tmp_path, monkeypatch
):
    aws = MotoAccounts()
    put_client_objects(aws, prepared, code_archive(training_image.python))
    federation = cloud_federation(
        prepared,
        free_port(),
        federation={"name": "fraud", "rounds": 2, "join_timeout": 300, "round_timeout": 120},
        container={"framework_version": training_image.framework, "python_version": training_image.python},
    )
    sagemaker = FakeSageMaker(monkeypatch)
    mode = DockerMode(training_image, moto_server)
    with SageMakerExecutor(sagemaker, aws, tuple(CLIENTS.values()), tmp_path / "sagemaker", docker=mode) as executor:
        run = launch.build_launch(federation, aws.server, tmp_path / "runs")
        run.backend.poll_interval, run.backend.completion_timeout = 0.5, 300.0
        outcome = run.execute()
    assert executor.errors == []
    assert {job.status for job in outcome.jobs.values()} == {COMPLETED}
    assert sagemaker.jobs(SERVER_ACCOUNT) == {}

    server_model = joblib.load(outcome.model_path)[-1]  # the Pipeline's estimator
    for name, account in CLIENTS.items():
        (job,) = sagemaker.jobs(account).values()
        assert job.environment["PIP_TARGET"] == "/opt/fedsage/deps"  # the request's Environment reached the job
        log = (tmp_path / "sagemaker" / account / name / "client.log").read_text()
        assert "Installing dependencies from requirements.txt" in log  # the toolkit installed the archive
        key = f"artifacts/{job.training_job_name}/output/model.tar.gz"
        body = aws.admin(account).client("s3").get_object(Bucket=bucket(account), Key=key)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(body)) as tar:
            model = joblib.load(io.BytesIO(tar.extractfile("model.joblib").read()))[-1]
        np.testing.assert_allclose(model.coef_, server_model.coef_, rtol=0, atol=1e-12)
        np.testing.assert_allclose(model.intercept_, server_model.intercept_, rtol=0, atol=1e-12)
        assert outcome.jobs[name].model_artifact == f"s3://{bucket(account)}/{key}"
    for backend in executor.backends.values():
        assert backend.containers() == []
    assert run_containers(docker_client, run.run_id) == []
    assert json.loads((run.run_dir / "run.json").read_text())["status"] == "completed"
