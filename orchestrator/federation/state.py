"""What an aggregation strategy carries from one round to the next, as named arrays for a checkpoint.

run/checkpoint.py stores `checkpoint_state()` after every round and hands it back to
`restore_state()` on resume. ValidatingStrategy (strategy.py) gives its own state (the privacy
rounds spent, the previous round's median update norm) and its inner strategy's:

* a strategy with its own hooks (the xgboost family's bagging: its booster) under `inner.<key>`;
* Flower's server-side optimisers, read from the attributes their `aggregate_fit` keeps
  (flwr/server/strategy/fedavgm.py, fedopt.py and its FedAdam, FedYogi, FedAdagrad):
  FedAvgM's `momentum_vector` and, with server optimisation on, the current weights it keeps as
  `initial_parameters`; FedOpt's `m_t`, `v_t` and `current_weights`. A list of arrays is stored as
  `<attribute>.<index>`.

Every other Flower strategy (FedAvg, FedProx, FedMedian, FedTrimmedAvg, Krum, Bulyan) keeps
nothing between rounds: the global model alone (the checkpoint's parameters) determines the next round.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.strategy import FedAvgM, Strategy

INNER = "inner."
OPTIMISER_STATE = ("momentum_vector", "m_t", "v_t", "current_weights")  # FedAvgM's and FedOpt's, by attribute
FEDAVGM_WEIGHTS = "fedavgm_weights"  # FedAvgM's current weights (its initial_parameters, moved every round)


def capture(inner: Strategy) -> dict[str, np.ndarray]:
    """The state of a Flower strategy `inner` as named arrays (see the module docstring); {} when it has none."""
    hook = getattr(inner, "checkpoint_state", None)
    state = {INNER + key: np.asarray(value) for key, value in (hook() if callable(hook) else {}).items()}
    for attribute in OPTIMISER_STATE:
        state |= _listed(attribute, getattr(inner, attribute, None))
    if isinstance(inner, FedAvgM) and inner.server_opt and inner.initial_parameters is not None:
        state |= _listed(FEDAVGM_WEIGHTS, parameters_to_ndarrays(inner.initial_parameters))
    return state


def restore(inner: Strategy, state: dict[str, Any]) -> None:
    """Put the state `capture` gave back into a freshly built `inner` (the same kind and settings).

    Raises ValueError naming the keys `inner` cannot take (a checkpoint of another strategy).
    """
    own = {key.removeprefix(INNER): value for key, value in state.items() if key.startswith(INNER)}
    hook = getattr(inner, "restore_state", None)
    if own and not callable(hook):
        raise ValueError(f"{type(inner).__name__} cannot restore {', '.join(sorted(own))}")
    if own:
        hook(own)
    left = {key for key in state if not key.startswith(INNER)}
    for attribute in OPTIMISER_STATE:
        arrays = _unlisted(attribute, state)
        if arrays is not None:
            if not hasattr(inner, attribute):
                raise ValueError(f"{type(inner).__name__} has no {attribute} to restore")
            setattr(inner, attribute, arrays)
            left -= {key for key in state if key.startswith(attribute + ".")}
    weights = _unlisted(FEDAVGM_WEIGHTS, state)
    if weights is not None:
        if not isinstance(inner, FedAvgM):
            raise ValueError(f"{type(inner).__name__} is not FedAvgM: it cannot take FedAvgM's current weights")
        inner.initial_parameters = ndarrays_to_parameters(weights)
        left -= {key for key in state if key.startswith(FEDAVGM_WEIGHTS + ".")}
    if left:
        raise ValueError(f"{type(inner).__name__} cannot restore {', '.join(sorted(left))}")


def _listed(name: str, arrays: list[np.ndarray] | None) -> dict[str, np.ndarray]:
    return {f"{name}.{i}": np.asarray(a) for i, a in enumerate(arrays)} if arrays is not None else {}


def _unlisted(name: str, state: dict[str, Any]) -> list[np.ndarray] | None:
    found = sorted((int(key.rpartition(".")[2]), value) for key, value in state.items() if key.startswith(name + "."))
    return [np.asarray(value) for _, value in found] if found else None
