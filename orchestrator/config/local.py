"""[local]: how `fedsage local` runs the client jobs on this machine (the cloud ignores this table)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from orchestrator import defaults
from orchestrator.config.base import _Section


class LocalSettings(_Section):
    """[local]: the backend of `fedsage local` and, for the docker backend, its image and container limits."""

    backend: Annotated[
        Literal["process", "docker", "simulation"],
        Field(
            description="process (one process per client), docker (one container per client, real toolkit) or "
            "simulation (virtual clients in Flower's Simulation Engine; needs fedsage[simulation])"
        ),
    ] = defaults.BACKEND
    image: Annotated[
        str | None,
        Field(min_length=1, description="docker: the training image; default fedsage-sklearn:<framework_version>"),
    ] = None
    cpus: Annotated[
        float | None, Field(gt=0, description="docker: CPUs per container; default the instance type's vCPUs")
    ] = None
    memory: Annotated[
        str | None,
        Field(
            pattern=r"^\d+(\.\d+)?\s*[mMgG]?$",
            description="docker: memory per container, e.g. 4g; default the instance type's",
        ),
    ] = None
    dependency_cache: Annotated[
        bool,
        Field(description="docker: reuse the dependencies an earlier job installed from the same wheels and image"),
    ] = True
    network: Annotated[
        str,
        Field(min_length=1, description="docker: the containers' network: host (default), none, or a network's name"),
    ] = "host"
    bind_address: Annotated[
        str | None,
        Field(min_length=1, description="the address the local server listens on and the clients dial; 127.0.0.1"),
    ] = None

    def server_address(self) -> dict[str, str]:
        """[server] bind_address for a local run, if one is set here."""
        return {"bind_address": self.bind_address} if self.bind_address else {}
