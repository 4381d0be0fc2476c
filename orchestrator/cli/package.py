"""`fedsage package`: build (and optionally upload) the client code archive, source.tar.gz."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click
import typer

from orchestrator.cli.common import config_option, console

PACKAGE_EPILOG = (
    "Examples:\n\n"
    "  fedsage package                                   # dist/source.tar.gz with vendored wheels\n\n"
    "  fedsage package --upload -c federation.toml --client hospital-a\n\n"
    "  fedsage package --relock --python-version 3.12    # refresh the dependency lock"
)


def package(
    out: Annotated[Path, typer.Option(help="Where to write the archive.")] = Path("dist/source.tar.gz"),
    python_version: Annotated[
        str | None,
        typer.Option(
            help="The container's Python, one with a committed lock in client_code/ "
            "(default: the config's \\[container] python_version)."
        ),
    ] = None,
    wheels: Annotated[
        bool, typer.Option("--wheels/--no-wheels", help="Vendor every dependency (for jobs without PyPI access).")
    ] = True,
    relock: Annotated[
        bool, typer.Option(help="Re-resolve requirements.txt into the hash-pinned lock first (uv pip compile).")
    ] = False,
    upload: Annotated[bool, typer.Option(help="Put the archive at each client's code_uri (needs -c).")] = False,
    config: Annotated[Path | None, config_option("with the clients' code_uri and [container] python_version")] = None,
    client: Annotated[str | None, typer.Option(help="With --upload: only this client (default: all).")] = None,
) -> None:
    """Build source.tar.gz: the client code with its dependencies as wheels, reproducibly.

    The wheels come from the hash-pinned lock for the container's Python
    (client_code/requirements-py3XX.lock, written by `uv pip compile --generate-hashes`). The
    same commit always gives the same bytes, so a data owner can rebuild the archive and compare
    the printed sha256 before trusting it. --upload uses the caller's credentials (the client's
    `profile` if the config sets one).
    """
    from orchestrator import config as config_module
    from orchestrator import package as packaging

    if upload and config is None:
        raise click.UsageError("--upload needs --config/-c to know the clients' code_uri")
    federation = config_module.load(config) if config is not None else None
    container = federation.container if federation else config_module.ContainerSettings()
    python_version = python_version or container.python_version
    targets = [c for c in federation.clients if client in (None, c.name)] if upload and federation else []
    if upload:  # every check before anything is built or written
        if not targets:
            raise click.BadParameter(f"no client named {client!r} in {config}", param_hint="--client")
        for target in targets:
            if not target.code_uri:
                raise click.BadParameter(f"client {target.name!r} has no code_uri in {config}", param_hint="--config")
    if relock:
        with console.status(f"locking requirements.txt for Python {python_version} with uv"):
            lock = packaging.relock(python_version)
        console.print(f"[green]✓[/] wrote {lock}")
    with console.status("downloading wheels and building the archive" if wheels else "building the archive"):
        built = packaging.build(out, python_version, vendor_wheels=wheels)
    console.print(
        f"[green]✓[/] {built.path}: {built.files} files ({built.wheels} wheels for Python {python_version}), "
        f"{built.size / 1e6:.1f} MB"
    )
    console.print(f"  sha256          {built.sha256}")
    console.print(f"  content sha256  {built.content_sha256}  (of the uncompressed tar; independent of gzip)")
    if targets:
        from orchestrator.aws import sessions
        from orchestrator.aws.s3 import upload_file

        for target in targets:
            upload_file(sessions.data_owner_session(target), built.path, target.code_uri)
            console.print(f"  uploaded to {target.code_uri} ({target.name})")
