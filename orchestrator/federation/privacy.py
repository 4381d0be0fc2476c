"""Client-level differential privacy: central clipping and noise on the server, and the privacy budget spent.

The guarantee is about one client's whole contribution in a round (its update), with "zero-out"
neighbouring runs: one client's update replaced by no change (Kairouz et al. 2021, "Practical and
private (deep) learning without sampling or shuffling", sec. 2). Every client takes part in every
round (sampling rate q = 1), so each round is one Gaussian mechanism of L2 sensitivity C (the
clipping norm) and noise standard deviation z * C on the sum of the clipped updates.

* Central (`[privacy] mode = "central"`): the server clips every validated update to L2 norm C,
  w_k <- w_global + (w_k - w_global) * min(1, C / ||w_k - w_global||) ("flat clipping", McMahan
  et al. 2018, "Learning differentially private recurrent language models"; client_code/privacy.py
  `clip`, the formula of Flower's `compute_clip_model_update`), averages them with EQUAL weights,
  and adds N(0, (z C / m)^2) to every coordinate of the average of m updates (Flower's
  `compute_stdv`: z C on the sum). Equal weights, because with example weights a client of n_k
  rows moves the average by up to (n_k / sum n) C > C / m, more than the noise is calibrated for.
  Every client's update must be usable in every round, since the noise is calibrated to m = the
  federation's clients (config refuses min_clients below that). The server sees every raw
  update: central DP protects the released models (every member receives the global model each
  round; the saved model) from the members and the model's users, not the clients from the server.
* Local (`[privacy] mode = "local"`): each client clips its own update the same way and adds
  N(0, (z C)^2) to every coordinate before it leaves the job (client_code/privacy.py); the server
  only tells it C and z with every fit instruction. Each client's released updates then carry the
  guarantee on their own, whatever the server does with them.

Accounting (`epsilon`): T rounds of the Gaussian mechanism with noise multiplier z compose to
exactly one Gaussian mechanism with multiplier z / sqrt(T) (Dong, Roth & Su 2022, "Gaussian
differential privacy", Cor. 3.3), whose epsilon at delta dp-accounting computes exactly
(`get_epsilon_gaussian`, the analytic Gaussian mechanism of Balle & Wang 2018). With q = 1 this
is tighter than RDP (e.g. z = 1, T = 10, delta = 1e-5: 17.86 against RDP's 19.05) and equals the
PLD accountant.

Not covered by the guarantee: the metrics a client reports (losses, accuracies, example counts),
its statistics-phase answers (aggregate statistics and class counts), and which updates the
server rejected (run.json). Flower's server-side DP wrappers are not used: they divide by the
update's norm (an unchanged model raises ZeroDivisionError), leave the weights to the inner
strategy (FedAvg weighs by example counts), and drop a whole round when any client failed; its
adaptive clipping moves the clipping norm the wrong way (docs/security.md lists what was checked).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flwr.common import NDArrays

from client_code.privacy import CLIPPING_NORM, NOISE_MULTIPLIER, add_noise, clip
from orchestrator.config.strategy import PrivacySettings

ADJACENCY = "client level, zero-out (one client's update replaced by no change), every client in every round"
ACCOUNTANT = "dp-accounting: exact Gaussian mechanism, z / sqrt(rounds) (Dong, Roth & Su 2022; Balle & Wang 2018)"


def epsilon(noise_multiplier: float, rounds: int, delta: float) -> float:
    """The epsilon spent after `rounds` rounds of the Gaussian mechanism with multiplier z, at `delta`.

    Exact for sampling rate 1 (see the module docstring); 0 before any round.
    """
    if rounds <= 0:
        return 0.0
    import dp_accounting  # here, not at import: with its scipy it would delay every run's start by ~0.3 s

    return float(dp_accounting.get_epsilon_gaussian(noise_multiplier / math.sqrt(rounds), delta))


@dataclass
class PrivacyBudget:
    """The privacy spent so far by a run: settings, rounds released, and the epsilon at delta."""

    settings: PrivacySettings
    rounds: int = 0

    @property
    def epsilon(self) -> float:
        """Epsilon at the settings' delta after the rounds released so far."""
        return epsilon(self.settings.noise_multiplier, self.rounds, self.settings.delta)

    def spend_round(self) -> float:
        """Count one more round released; return the epsilon spent now."""
        self.rounds += 1
        return self.epsilon

    def client_config(self) -> dict[str, float]:
        """What every fit instruction carries for local DP (empty for central DP)."""
        if self.settings.mode != "local":
            return {}
        return {
            CLIPPING_NORM: self.settings.clipping_norm,
            NOISE_MULTIPLIER: self.settings.noise_multiplier,
        }

    def central(self, arrays: NDArrays, reference: NDArrays) -> NDArrays:
        """Central DP's clipping of one update (identity under local DP: the client clipped it)."""
        return clip(arrays, reference, self.settings.clipping_norm)[0] if self.settings.mode == "central" else arrays

    def noise_average(self, arrays: NDArrays, updates: int) -> NDArrays:
        """Central DP's noise on the equal-weight average of `updates` clipped updates: std z C / m."""
        if self.settings.mode != "central":
            return arrays
        s = self.settings
        return add_noise(arrays, s.noise_multiplier * s.clipping_norm / updates)

    def to_dict(self) -> dict[str, object]:
        """run.json's, the report's and the model provenance's record of the privacy spent."""
        s = self.settings
        return {
            "mode": s.mode,
            "epsilon": self.epsilon,
            "delta": s.delta,
            "rounds": self.rounds,
            "clipping_norm": s.clipping_norm,
            "noise_multiplier": s.noise_multiplier,
            "adjacency": ADJACENCY,
            "accountant": ACCOUNTANT,
        }
