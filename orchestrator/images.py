"""The SageMaker scikit-learn framework images: their Python, and the image a client job runs in.

A job's dependencies are wheels built for one CPython (`fedsage package --python-version`, the
config's `[container] python_version`); pip refuses every one of them in an image whose Python
differs, and the job fails at start with an empty InstallRequirementsError. So the Python of
each framework image is written down here and a mismatch is refused before any job starts
(dry run, launch, doctor, and the docker backend, which reads its image's label instead).

Sources: the base Dockerfiles of aws/sagemaker-scikit-learn-container (`docker/<version>/base/
Dockerfile.cpu`, ARG PYTHON_VERSION) and the image's requirements.txt for the toolkit and
scikit-learn versions. Image URIs come from sagemaker-core's image URI lookup, which reads the
registry configuration shipped with the package (no AWS call). An explicit `[container]
image_uri` wins, and its Python is what `python_version` says.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from orchestrator.config import ContainerSettings
from orchestrator.errors import BadInput


@dataclass(frozen=True)
class Framework:
    """What a SageMaker scikit-learn training image holds that a job depends on."""

    python: str  # CPython minor, "3.12"
    scikit_learn: str


# sagemaker-core also lists 0.20.0 and 1.9-0; their Python is not recorded here, so they are refused.
FRAMEWORKS: dict[str, Framework] = {
    "0.23-1": Framework("3.7", "0.23.2"),
    "1.0-1": Framework("3.7", "1.0.2"),
    "1.2-1": Framework("3.9", "1.2.1"),
    "1.4-2": Framework("3.10", "1.4.2"),
    "1.4-2-py312": Framework("3.12", "1.4.2"),
}
# The oldest Python the client runs on (flwr 1.41 and the committed locks, client_code/requirements-py3*.lock).
MIN_PYTHON = (3, 11)

# What the framework images set for the training toolkit (docker/<version>/final/Dockerfile.cpu):
# the local image sets the same, and the process backend's emulation of the container starts from it.
# SAGEMAKER_TRAINING_MODULE (sagemaker_sklearn_container.training:main there) is left unset: that
# module only hands the program to the toolkit's entry_point.run, which the toolkit then does itself
# (the program sees the same arguments and variables, except an empty SM_FRAMEWORK_MODULE).
IMAGE_ENV = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "PYTHONIOENCODING": "UTF-8",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PIP_ROOT_USER_ACTION": "ignore",
    "SM_INPUT": "/opt/ml/input",
    "SM_INPUT_TRAINING_CONFIG_FILE": "/opt/ml/input/config/hyperparameters.json",
    "SM_INPUT_DATA_CONFIG_FILE": "/opt/ml/input/config/inputdataconfig.json",
    "SM_CHECKPOINT_CONFIG_FILE": "/opt/ml/input/config/checkpointconfig.json",
    "SM_MODEL_DIR": "/opt/ml/model",
}


def _version(python: str) -> tuple[int, ...]:
    return tuple(int(part) for part in python.split("."))


def framework(version: str) -> Framework | None:
    """The framework image `version` ("1.4-2-py312"), or None when fedsage does not know it."""
    return FRAMEWORKS.get(version)


def check_python(container: ContainerSettings) -> str:
    """The Python the client jobs run on; BadInput when the image and the wheels cannot agree.

    Refused, each with one line naming the fix: a framework image whose Python differs from
    `python_version` (the Python the code archive's wheels are built for), a framework image
    older than the client supports, a framework fedsage does not know (without `image_uri`),
    and a `python_version` without a committed dependency lock.
    """
    from orchestrator.package import require_lock

    python = container.python_version
    if container.image_uri is None:
        known = framework(container.framework_version)
        if known is None:
            raise BadInput(
                f"[container] framework_version {container.framework_version!r} is not one fedsage knows the "
                f"Python of ({', '.join(FRAMEWORKS)}); use one of them, or set image_uri and python_version "
                "to the image's Python"
            )
        if _version(known.python) < MIN_PYTHON:
            supported = [v for v, f in FRAMEWORKS.items() if _version(f.python) >= MIN_PYTHON]
            raise BadInput(
                f"[container] framework_version {container.framework_version!r} runs Python {known.python}; the "
                f"client needs {'.'.join(map(str, MIN_PYTHON))} or newer: use {' or '.join(supported)}"
            )
        if known.python != python:
            raise BadInput(
                f"[container] framework_version {container.framework_version!r} runs Python {known.python} but "
                f"python_version = {python!r} (the Python the archive's wheels are built for): set python_version "
                f"= {known.python!r} and rebuild the archive with `fedsage package`"
            )
    require_lock(python)
    return python


@cache
def _lookup(framework_version: str, region: str) -> str:
    from sagemaker.core import image_uris  # slow to import; only launch and doctor need it

    return image_uris.retrieve(
        "sklearn", region=region, version=framework_version, py_version="py3", image_scope="training"
    )


def training_image(container: ContainerSettings, region: str) -> str:
    """The training image URI for `region`, or BadInput saying why there is none."""
    if container.image_uri:
        return container.image_uri
    try:
        return _lookup(container.framework_version, region)
    except ValueError as exc:
        sentences = [part.strip(" .") for part in str(exc).split(". ")]
        reason = "; ".join(part for part in sentences if part.startswith(("Unsupported", "Supported")))
        raise BadInput(
            f"no SageMaker scikit-learn image {container.framework_version!r} in region {region} ({reason}); "
            "set [container] framework_version to one available there, or image_uri"
        ) from None
