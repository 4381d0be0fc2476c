"""[strategy] and [privacy]: the chosen aggregation strategy's parameters, and differential privacy.

`[federation] strategy` names the strategy; the `[strategy]` table holds its parameters, under
Flower's own keyword names (flwr.server.strategy, flwr 1.41), each with Flower's default unless
noted. A key the chosen strategy does not take is an error naming the keys it does take.

| strategy | parameters | source |
|---|---|---|
| fedavg | - | McMahan et al. 2017 |
| fedprox | proximal_mu (default 0.1) | Li et al. 2020 (the clients add the proximal term) |
| fedavgm | server_learning_rate, server_momentum | Hsu et al. 2019 |
| fedadam, fedyogi | eta, beta_1, beta_2, tau | Reddi et al. 2021 |
| fedadagrad | eta, tau | Reddi et al. 2021 |
| fedmedian | - | Yin et al. 2018 |
| fedtrimmedavg | beta (share trimmed at each end) | Yin et al. 2018 |
| krum | num_malicious_clients, num_clients_to_keep | Blanchard et al. 2017 (needs n >= 2f + 3) |
| bulyan | num_malicious_clients | El Mhamdi et al. 2018 (needs n >= 4f + 3) |
| fedxgb_bagging | - | Flower's FedXgbBagging (model kind xgboost only; its default) |

`[privacy]` turns on differential privacy at the client level: `mode = "central"` (the server clips
every update to `clipping_norm` and adds Gaussian noise to the average) or `"local"` (every client
clips its own update and adds the noise before it leaves the job); federation/privacy.py computes the
epsilon spent. Central DP runs with FedAvg or FedProx only (see `check`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from orchestrator.config.base import _Section

STRATEGIES = (
    "fedavg",
    "fedprox",
    "fedavgm",
    "fedadam",
    "fedyogi",
    "fedadagrad",
    "fedmedian",
    "fedtrimmedavg",
    "krum",
    "bulyan",
    "fedxgb_bagging",
)
# Strategies whose server keeps state built from the clients' averages (momentum, moment estimates):
# noise added to what they return does not reach that state (FINDINGS 1.5.4), so central DP refuses them.
STATEFUL = ("fedavgm", "fedadam", "fedyogi", "fedadagrad")
# Central DP's noise is calibrated to the sensitivity of an equal-weight mean (sigma = z C / m); a median or
# a Krum selection has another sensitivity, so central DP runs only with these two.
CENTRAL_DP_STRATEGIES = ("fedavg", "fedprox")

Rate = Annotated[float, Field(ge=0, lt=1, description="a number from 0 up to (not including) 1")]
Positive = Annotated[float, Field(gt=0, description="a positive number")]
Count = Annotated[int, Field(ge=0, description="a whole number, 0 or more")]


class NoParameters(_Section):
    """A strategy without parameters (fedavg, fedmedian)."""


class FedProxParameters(_Section):
    """fedprox: the weight mu of the proximal term mu/2 ||w - w_global||^2 in each client's local objective."""

    proximal_mu: Annotated[float, Field(ge=0, description="mu >= 0; 0 is FedAvg")] = 0.1


class FedAvgMParameters(_Section):
    """fedavgm: server-side SGD with momentum on the averaged update (Flower's defaults make it FedAvg)."""

    server_learning_rate: Positive = 1.0
    server_momentum: Rate = 0.0


class FedAdamParameters(_Section):
    """fedadam: Adam on the server over the averaged update."""

    eta: Positive = 0.1
    beta_1: Rate = 0.9
    beta_2: Rate = 0.99
    tau: Positive = 1e-9


class FedYogiParameters(FedAdamParameters):
    """fedyogi: Yogi on the server (Flower's defaults: eta 0.01, tau 0.001)."""

    eta: Positive = 0.01
    tau: Positive = 1e-3


class FedAdagradParameters(_Section):
    """fedadagrad: Adagrad on the server."""

    eta: Positive = 0.1
    tau: Positive = 1e-9


class FedTrimmedAvgParameters(_Section):
    """fedtrimmedavg: per coordinate, the unweighted mean after dropping int(beta * n) values at each end."""

    beta: Annotated[float, Field(ge=0, lt=0.5, description="a share from 0 up to (not including) 0.5")] = 0.2


class KrumParameters(_Section):
    """krum: f, the malicious clients tolerated; keep > 0 averages that many best-scored updates (Multi-Krum)."""

    num_malicious_clients: Count = 0
    num_clients_to_keep: Count = 0


class BulyanParameters(_Section):
    """bulyan: f, the malicious clients tolerated."""

    num_malicious_clients: Count = 0


PARAMETERS: dict[str, type[_Section]] = {
    "fedavg": NoParameters,
    "fedprox": FedProxParameters,
    "fedavgm": FedAvgMParameters,
    "fedadam": FedAdamParameters,
    "fedyogi": FedYogiParameters,
    "fedadagrad": FedAdagradParameters,
    "fedmedian": NoParameters,
    "fedtrimmedavg": FedTrimmedAvgParameters,
    "krum": KrumParameters,
    "bulyan": BulyanParameters,
    "fedxgb_bagging": NoParameters,
}


def strategy_parameters(name: str, values: dict[str, Any]) -> _Section:
    """The `[strategy]` table validated for strategy `name`; ValueError with one line per problem."""
    model = PARAMETERS[name]
    try:
        return model(**values)
    except ValidationError as error:
        keys = ", ".join(model.model_fields) or "none"
        problems = []
        for item in error.errors():
            key = ".".join(str(part) for part in item["loc"])
            if item["type"] == "extra_forbidden":
                problems.append(f"strategy.{key} is not a parameter of {name} (its parameters: {keys})")
            else:
                message = item["msg"].removeprefix("Value error, ")
                problems.append(f"strategy.{key} = {item.get('input')!r}: {message}")
        raise ValueError("; ".join(problems)) from None


def minimum_updates(name: str, parameters: _Section) -> int:
    """The fewest usable updates strategy `name` can aggregate soundly each round.

    Krum assumes n > 2f + 2 (Blanchard et al. 2017; Flower does not check it), Bulyan n >= 4f + 3
    (El Mhamdi et al. 2018; Flower raises ValueError below it); every other strategy needs one.
    """
    f = getattr(parameters, "num_malicious_clients", 0)
    return {"krum": 2 * f + 3, "bulyan": 4 * f + 3}.get(name, 1)


class PrivacySettings(_Section):
    """[privacy]: client-level differential privacy (off unless mode is set)."""

    mode: Annotated[
        Literal["none", "central", "local"],
        Field(
            description="none; central (the server clips each update and adds Gaussian noise to the average); "
            "local (each client clips its update and adds the noise itself)"
        ),
    ] = "none"
    clipping_norm: Annotated[
        float, Field(gt=0, description="C: the largest L2 norm an update (w_client - w_global) keeps, positive")
    ] = 1.0
    noise_multiplier: Annotated[
        float,
        Field(gt=0, description="z: the noise's standard deviation is z * C (per update or on the sum), positive"),
    ] = 1.0
    delta: Annotated[
        float, Field(gt=0, lt=1, description="the delta of (epsilon, delta), well below 1 / the number of clients")
    ] = 1e-5

    @property
    def enabled(self) -> bool:
        """True when differential privacy is on."""
        return self.mode != "none"


def check(strategy: str, parameters: _Section, privacy: PrivacySettings, clients: int, min_clients: int | None) -> None:
    """Raise ValueError (one line) when the strategy, its parameters, privacy and the federation do not fit together."""
    need = minimum_updates(strategy, parameters)
    if clients < need:
        f = getattr(parameters, "num_malicious_clients", 0)
        rule = "2f + 3" if strategy == "krum" else "4f + 3"
        raise ValueError(
            f"federation.strategy = {strategy!r} with num_malicious_clients = {f} needs at least {need} clients "
            f"({rule}); this federation has {clients}: lower strategy.num_malicious_clients or choose another strategy"
        )
    if privacy.mode != "central":
        return
    if strategy not in CENTRAL_DP_STRATEGIES:
        why = (
            "its server state would keep the un-noised averages"
            if strategy in STATEFUL
            else "the noise is calibrated to an average, not to its aggregate"
        )
        raise ValueError(
            f"privacy.mode = 'central' cannot run with federation.strategy = {strategy!r}: {why}; use fedavg or "
            "fedprox, or privacy.mode = 'local'"
        )
    if min_clients is not None and min_clients < clients:
        raise ValueError(
            "privacy.mode = 'central' needs every client's update in every round (its noise is calibrated to the "
            f"{clients} clients); remove federation.min_clients"
        )
