"""Checkpoints: everything round k+1 depends on, written after every round; and resuming a run from one.

Layout: `checkpoints/round-NNN.npz` in the run folder (numpy's .npz, loadable with
`allow_pickle=False`), written whole or not at all (folder.write_atomic) right after the global
model of round NNN is evaluated. Round 0 is the initial model. Keys:

* `<name>`: the global parameters, one array per name of the family's `parameter_names`
  (coef, intercept, ...), in that order - what earlier versions wrote;
* `fedsage.round`: the round (a 0-d int64);
* `fedsage.rng`: the server's random state (Python's `random`, which Flower's client sampling
  uses, and numpy's global generator) as the uint8 bytes of a JSON document (DP noise draws
  from the operating system instead, client_code/privacy.py: it is never repeated);
* `fedsage.strategy.<key>`: the strategy's own state, see below.

The strategy-state contract (a hook any strategy may implement; FedAvg has no state):

* `strategy.checkpoint_state() -> dict[str, np.ndarray | int | float]`: named arrays or scalars
  holding everything the strategy carries from one round to the next (FedAvgM's momentum vector,
  FedOpt's m_t and v_t, a privacy accountant's spent budget); called after round k is evaluated;
* `strategy.restore_state(state)`: the same dict (scalars as 0-d arrays) back, before round k+1.

A strategy without `checkpoint_state` is stateless: nothing is stored. A checkpoint holding
strategy state for a strategy without `restore_state` cannot be resumed (BadInput).

Resuming (federation/resumed.py `Resumed`): Flower's round loop always counts from 1, so the resumed run wraps the
strategy: Flower's initial parameters are the checkpoint's, and Flower's round r is the run's
round k + r (its "round 0" evaluation re-scores the checkpoint, recorded as round k). The random
state is the one after round k's server-side evaluation; in an uninterrupted run, round k's
federated evaluation samples clients once more before round k+1. Every strategy today samples
all connected clients (fraction 1.0), so the clients of a round do not depend on it; a strategy
that samples a fraction would see a different (equally seeded) draw after a resume.
"""

from __future__ import annotations

import io
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from orchestrator.errors import BadInput
from orchestrator.run.folder import write_atomic

if TYPE_CHECKING:
    from flwr.common import NDArrays

ROUND = "fedsage.round"
RNG = "fedsage.rng"
STATE = "fedsage.strategy."
FOLDER = "checkpoints"
_NAME = re.compile(r"^round-(\d{3,})\.npz$")


@dataclass
class Checkpoint:
    """One round's checkpoint: round, named global parameters, server random state, strategy state."""

    round: int
    parameters: dict[str, np.ndarray]
    rng: dict[str, Any] | None = None
    strategy_state: dict[str, np.ndarray] = field(default_factory=dict)

    def arrays(self) -> NDArrays:
        """The global parameters in the family's order (as the strategy and the clients hold them)."""
        return list(self.parameters.values())


def path(run_dir: Path, round_number: int) -> Path:
    """checkpoints/round-NNN.npz of a run folder."""
    return Path(run_dir) / FOLDER / f"round-{round_number:03d}.npz"


def rng_state() -> dict[str, Any]:
    """The server's random state: Python's `random` and numpy's global generator, JSON-ready."""
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(position), int(has_gauss), float(cached)],
    }


def restore_rng(state: dict[str, Any] | None) -> None:
    """Put back a state rng_state() returned (None: leave the generators as they are)."""
    if not state:
        return
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))


def strategy_state(strategy: Any) -> dict[str, np.ndarray]:
    """The strategy's `checkpoint_state()` as named arrays (scalars as 0-d arrays); {} for a stateless one."""
    hook = getattr(strategy, "checkpoint_state", None)
    return {key: np.asarray(value) for key, value in (hook() if callable(hook) else {}).items()}


def write(run_dir: Path, round_number: int, parameters: dict[str, np.ndarray], strategy: Any = None) -> Path:
    """Write round `round_number`'s checkpoint (see the module docstring) atomically; OSError naming it if it fails.

    `parameters`: the global parameters by the family's names, in order; `strategy`: the running
    strategy (its `checkpoint_state` is stored), or None.
    """
    arrays: dict[str, np.ndarray] = dict(parameters)
    arrays[ROUND] = np.asarray(round_number, dtype=np.int64)
    arrays[RNG] = np.frombuffer(json.dumps(rng_state()).encode(), dtype=np.uint8)
    arrays.update({STATE + key: value for key, value in strategy_state(strategy).items()})
    target = path(run_dir, round_number)
    target.parent.mkdir(exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_atomic(target, buffer.getvalue())
    return target


def read(file: Path) -> Checkpoint:
    """Read a checkpoint written by `write` (or by an earlier version: parameters only, the round from its name).

    Raises BadInput naming the file when it is not a readable checkpoint.
    """
    file = Path(file)
    try:
        with np.load(file, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as exc:
        raise BadInput(f"checkpoint {file} cannot be read ({exc}); resume from an intact run folder") from None
    match = _NAME.match(file.name)
    round_number = int(arrays.pop(ROUND)) if ROUND in arrays else int(match.group(1)) if match else 0
    rng = arrays.pop(RNG, None)
    state = {key.removeprefix(STATE): arrays.pop(key) for key in [k for k in arrays if k.startswith(STATE)]}
    return Checkpoint(round_number, arrays, json.loads(rng.tobytes()) if rng is not None else None, state)


def latest(run_dir: Path) -> Path | None:
    """The checkpoint of the highest round in a run folder, or None when it has none."""
    found = [(int(m.group(1)), p) for p in (Path(run_dir) / FOLDER).glob("round-*.npz") if (m := _NAME.match(p.name))]
    return max(found)[1] if found else None
