"""The framework image's Python against the wheels' Python: refused, with one line, before anything runs."""

import pytest

from orchestrator.config import ContainerSettings
from orchestrator.errors import BadInput
from orchestrator.images import FRAMEWORKS, check_python


def test_the_default_framework_image_runs_the_default_wheels_python():
    assert check_python(ContainerSettings()) == "3.12" == FRAMEWORKS[ContainerSettings().framework_version].python


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"framework_version": "1.4-2", "python_version": "3.12"}, "runs Python 3.10; the client needs 3.11"),
        ({"framework_version": "1.4-2-py312", "python_version": "3.11"}, "set python_version = '3.12'"),
        ({"framework_version": "1.9-0"}, "set image_uri and python_version"),
        (
            {"image_uri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mine:1", "python_version": "3.19"},
            "no dependency lock",
        ),
    ],
)
def test_a_mismatch_is_refused_with_one_line_naming_the_fix(settings, said):
    with pytest.raises(BadInput) as refused:
        check_python(ContainerSettings(**settings))
    assert said in str(refused.value) and "\n" not in str(refused.value)


def test_an_explicit_image_is_trusted_to_run_the_python_it_declares():
    assert check_python(ContainerSettings(image_uri="registry/mine:1", python_version="3.13")) == "3.13"
