"""Local differential privacy: the client clips its own update and adds Gaussian noise before it leaves the job.

When the server's fit instruction carries `local_dp_clipping_norm` (C) and
`local_dp_noise_multiplier` (z) (`[privacy] mode = "local"`), the parameters this client sends are

    w_global + (w - w_global) * min(1, C / ||w - w_global||_2) + N(0, (z C)^2 I)

the Gaussian mechanism (Dwork & Roth 2014, "The algorithmic foundations of differential privacy",
App. A) on the update clipped to L2 norm C over all arrays together ("flat clipping", McMahan et al.
2018), the same formula as Flower's `fixedclipping_mod` followed by its noise. Its sensitivity is C
when one client's update is replaced by no change, so each round is a Gaussian mechanism of
multiplier z for this client's data; the server's accountant (orchestrator/federation/privacy.py)
turns the rounds into (epsilon, delta).

The noise comes from numpy's PCG64 generator seeded from the operating system, not a
cryptographic generator, and float64 noise does not defend against floating-point attacks on the
Gaussian mechanism (Mironov 2012); docs/security.md states these limits. Without those keys the
parameters pass unchanged.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import numpy as np

log = logging.getLogger(__name__)

CLIPPING_NORM = "local_dp_clipping_norm"
NOISE_MULTIPLIER = "local_dp_noise_multiplier"


def clip(parameters: list[np.ndarray], reference: list[np.ndarray], clipping_norm: float) -> tuple[list, float]:
    """w_ref + (w - w_ref) * min(1, C / ||w - w_ref||_2) (flat clipping: one norm over all arrays), and that norm.

    An update of norm 0 stays as it is. The server's central DP clips with this too.
    """
    update = [np.subtract(p, r, dtype=np.float64) for p, r in zip(parameters, reference, strict=True)]
    norm = math.sqrt(sum(float(np.sum(np.square(u))) for u in update))
    scale = min(1.0, clipping_norm / norm) if norm > 0 else 1.0
    return [r + u * scale for r, u in zip(reference, update, strict=True)], norm


def add_noise(arrays: list[np.ndarray], std: float) -> list[np.ndarray]:
    """`arrays` plus independent N(0, std^2) noise on every coordinate (numpy's PCG64 seeded from the OS)."""
    rng = np.random.default_rng()
    return [a + rng.normal(0.0, std, np.shape(a)) for a in arrays]


def privatize(parameters: list[np.ndarray], global_parameters: list[np.ndarray] | None, config: Mapping) -> list:
    """The parameters to send: clipped and noised under local DP (see the module docstring), else unchanged.

    `parameters`: this round's locally trained arrays; `global_parameters`: the global model this
    round started from (same shapes); `config`: the fit instruction's config. Raises ValueError
    for a clipping norm or noise multiplier that is not a positive number.
    """
    if CLIPPING_NORM not in config:
        return parameters
    clipping_norm, multiplier = float(config[CLIPPING_NORM]), float(config.get(NOISE_MULTIPLIER, 0.0))
    if not (math.isfinite(clipping_norm) and clipping_norm > 0 and math.isfinite(multiplier) and multiplier > 0):
        raise ValueError(
            f"local DP needs a positive clipping norm and noise multiplier, got {clipping_norm}, {multiplier}"
        )
    if global_parameters is None:
        raise ValueError("local DP needs the global model the round started from")
    clipped, norm = clip(parameters, global_parameters, clipping_norm)
    std = multiplier * clipping_norm
    log.info(
        "local differential privacy: update of norm %.4g clipped to %g, Gaussian noise of sd %g added",
        norm,
        clipping_norm,
        std,
    )
    return add_noise(clipped, std)
