"""The docker commands refuse what cannot work: one line, exit 2, nothing written (no daemon needed)."""

from cli_runner import assert_bad_input


def test_local_with_the_docker_backend_and_no_daemon_is_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    assert_bad_input(
        capsys,
        "local",
        "--backend",
        "docker",
        "--out",
        str(tmp_path / "runs"),
        message="no Docker daemon answers",
        folder=tmp_path,
    )


def test_status_and_stop_of_containers_without_a_daemon_are_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    assert_bad_input(capsys, "status", "--backend", "docker", message="no Docker daemon answers")
    assert_bad_input(capsys, "stop", "--backend", "docker", "--run-id", "x", message="no Docker daemon answers")


def test_an_image_for_a_framework_without_a_recipe_is_refused(capsys):
    assert_bad_input(capsys, "image", "build", "--framework-version", "1.4-2", message="fedsage builds 1.4-2-py312")


def test_a_sagemaker_status_still_needs_a_config(capsys):
    assert_bad_input(capsys, "status", message="Missing option '--config'")
