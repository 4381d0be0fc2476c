"""The SageMaker scikit-learn framework image a client job runs in, for the client's region.

Resolved with sagemaker-core's image URI lookup, which reads the image registry configuration
shipped with the package (no AWS call). An explicit `[container] image_uri` wins.
"""

from __future__ import annotations

from functools import cache

from orchestrator.config import ContainerSettings
from orchestrator.errors import BadInput


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
