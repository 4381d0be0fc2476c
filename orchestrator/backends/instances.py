"""The CPUs and memory of SageMaker training instance types, for the docker backend's container limits.

Sizes and per-family memory follow the EC2 instance types the `ml.*` types run on (AWS, "Amazon
EC2 instance types": general purpose m5/m6i/m7i 4 GiB per vCPU, compute optimised c5/c6i/c7i
2 GiB, memory optimised r5/r6i/r7i 8 GiB; t3 4 GiB, t3.medium 2 vCPUs and 4 GiB).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

VCPUS = {
    "medium": 2,
    "large": 2,
    "xlarge": 4,
    "2xlarge": 8,
    "4xlarge": 16,
    "8xlarge": 32,
    "9xlarge": 36,
    "12xlarge": 48,
    "16xlarge": 64,
    "18xlarge": 72,
    "24xlarge": 96,
}
GIB_PER_VCPU = {"m": 4, "c": 2, "r": 8, "t": 4}
GIB = 1024**3


@dataclass(frozen=True)
class Limits:
    """A container's CPU quota (cores, may be fractional) and memory limit (bytes); None is no limit."""

    cpus: float | None = None
    memory: int | None = None


def instance_limits(instance_type: str) -> Limits:
    """The vCPUs and memory of an `ml.<family>.<size>` type; no limits for a type not covered here."""
    match = re.fullmatch(r"ml\.([mcrt])(\d+)[a-z]*\.(\w+)", instance_type)
    if not match or match[3] not in VCPUS:
        return Limits()
    family, size = match[1], match[3]
    vcpus = VCPUS[size]
    memory_gib = 4 if (family, size) == ("t", "medium") else vcpus * GIB_PER_VCPU[family]
    return Limits(float(vcpus), memory_gib * GIB)


def parse_memory(text: str) -> int:
    """'512m', '8g', '1024' (MiB) -> bytes; ValueError for anything else."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([mMgG]?)[iI]?[bB]?", text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a memory size like 512m or 8g")
    value = float(match[1])
    return int(value * (GIB if match[2].lower() == "g" else 1024**2))
