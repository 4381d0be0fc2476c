"""`fedsage image build`: the local training image of `fedsage local --backend docker`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.common import config_option, console

image_app = typer.Typer(help="Local training images for `fedsage local --backend docker`.", no_args_is_help=True)

BUILD_EPILOG = (
    "Examples:\n\n"
    "  fedsage image build                                  # on python:3.12-slim (pulled if missing)\n\n"
    "  fedsage image build --base-image fedsage-base:noble  # offline base from .ci/provision-docker\n\n"
    "  fedsage image build -c federation.toml               # the config's [container] framework_version\n\n"
    "On the real SageMaker image (log in to its registry first; the account is per region):\n\n"
    "  aws ecr get-login-password --region eu-west-1 | docker login --username AWS --password-stdin "
    "141502667606.dkr.ecr.eu-west-1.amazonaws.com\n\n"
    "  fedsage image build --base-image "
    "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-py312-cpu-py3"
)


@image_app.command("build", epilog=BUILD_EPILOG)
def build_command(
    config: Annotated[Path | None, config_option("whose [container] framework_version to build")] = None,
    framework_version: Annotated[
        str | None,
        typer.Option(help="SageMaker scikit-learn image to emulate (default: the config's, else 1.4-2-py312)."),
    ] = None,
    base_image: Annotated[
        str | None,
        typer.Option(help="Any image with the framework's Python (default python:<minor>-slim)."),
    ] = None,
) -> None:
    """Build a local image that behaves like a SageMaker scikit-learn training image.

    Same Python minor and scikit-learn as the framework image, the real sagemaker-training
    toolkit as `train`, built with no network from hash-checked wheels. The tag names the
    framework and a digest of the inputs; an image with the same inputs is not built again.
    """
    from orchestrator import config as config_module
    from orchestrator.imagebuild.build import build

    container = config_module.load(config).container if config else config_module.ContainerSettings()
    framework = framework_version or container.framework_version
    with console.status(f"building the training image of scikit-learn {framework}") as status:
        built = build(framework, base_image, report=lambda line: status.update(line))
    state = "already built" if built.cached else f"built in {built.seconds:.0f} s"
    console.print(
        f"[green]✓[/] {built.image.tag} ({state}; Python {built.image.python}); "
        f"`{built.alias}` points at it, and `fedsage local --backend docker` uses it"
    )
