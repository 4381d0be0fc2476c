"""What a client may send back, checked before anything it sent reaches the aggregate or the run's record.

Every check answers with a short reason (never the offending value: a 1 MB string stays out of
logs, run.json and the report) or None. The strategy (strategy.py) leaves a failing update out and
names its client.

* `metrics_problem`: Flower metrics are numbers (bool, int, float; finite), at most MAX_METRICS of
  them, names at most MAX_NAME characters; the only strings allowed are the few fedsage defines
  (STRING_METRICS, each with its own length limit).
* `update_problem`: the parameters (`arrays_problem`: count, shapes, floating dtype and finite
  values; the xgboost family checks its booster instead, federation/xgboost.py); a positive
  example count no larger than the training rows the client declared in the statistics phase
  (its trained counts after balancing), so one client cannot dominate an example-weighted average
  by claiming 10**12 rows; the fingerprint of the feature columns; the metrics.
* `norm_outliers`: the relative norm bound. d_k = ||w_k - w_global||_2 over all arrays; with at
  least 3 updates, an update is rejected when d_k > factor * median{d_j : j != k}; with fewer, the
  previous round's median of accepted distances is the reference (none in round 1). Honest
  clients' distances are of one order of magnitude (same model, same global start), so the default
  factor of 10 (defaults.UPDATE_NORM_FACTOR) only catches updates scaled by an order of magnitude
  or more (parameters x -20, + 1e300); a bound relative to the others needs no scale known in
  advance. Sign flips of similar size pass it: robust strategies (FedMedian, Krum, ...) are the
  answer to a member the federation does not trust.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
from flwr.common import FitRes, NDArrays, parameters_to_ndarrays

MAX_METRICS = 64
MAX_NAME = 64
# fedsage's own string metrics: the feature fingerprint (fit) and the scored split (evaluate)
STRING_METRICS = {"features": 128, "split": 32}


def _name(key: object) -> str:
    """A metric's name for a message: itself when short and printable, else its length."""
    text = str(key)
    return repr(text) if len(text) <= MAX_NAME and text.isprintable() else f"a name of {len(text):,} characters"


def metrics_problem(metrics: Mapping[str, object]) -> str | None:
    """Why a client's metrics are unusable (see the module docstring), or None."""
    if len(metrics) > MAX_METRICS:
        return f"sent {len(metrics):,} metrics, at most {MAX_METRICS} are accepted"
    for key, value in metrics.items():
        if not isinstance(key, str) or len(key) > MAX_NAME or not key.isprintable():
            return f"metric {_name(key)} has a name longer than {MAX_NAME} characters or unprintable"
        if isinstance(value, str):
            limit = STRING_METRICS.get(key)
            if limit is None:
                return f"metric {key!r} is text; only {', '.join(STRING_METRICS)} may be"
            if len(value) > limit:
                return f"metric {key!r} is {len(value):,} characters long, at most {limit} are accepted"
        elif isinstance(value, bool | int | float):
            if not math.isfinite(float(value)):
                return f"metric {key!r} is not a finite number"
        else:
            return f"metric {key!r} is a {type(value).__name__}, not a number"
    return None


ArraysCheck = Callable[[NDArrays], "str | None"]


def update_problem(
    res: FitRes, check_arrays: ArraysCheck, fingerprint: str, declared: int | None
) -> tuple[str | None, NDArrays]:
    """Why an update cannot be aggregated (or None), and its decoded parameters (empty when unusable).

    `check_arrays`: the family's check of the decoded arrays (`arrays_problem` with its shapes, or
    the xgboost booster check); `declared`: the client's training rows from the statistics phase
    (None: no bound known).
    """
    if not isinstance(res.num_examples, int) or isinstance(res.num_examples, bool) or res.num_examples <= 0:
        return "its example count is not a positive integer", []
    if declared is not None and res.num_examples > declared:
        return (
            f"claimed {res.num_examples:,} training examples, more than the {declared:,} it declared before round 1"
        ), []
    problem = metrics_problem(res.metrics)
    if problem:
        return problem, []
    if res.metrics.get("features") != fingerprint:
        return "trained on different feature columns than the server's schema", []
    try:
        arrays = parameters_to_ndarrays(res.parameters)
    except Exception as exc:  # noqa: BLE001 - any decoding problem means an unusable update
        return f"parameters could not be decoded ({type(exc).__name__})", []
    problem = check_arrays(arrays)
    return (problem, []) if problem else (None, arrays)


def arrays_problem(arrays: NDArrays, shapes: list[tuple[int, ...]]) -> str | None:
    """Why decoded weight arrays are unusable: their count, shapes, a non-floating dtype, NaN or inf; or None."""
    if len(arrays) != len(shapes):
        return f"sent {len(arrays)} parameter arrays, expected {len(shapes)}"
    for index, (array, shape) in enumerate(zip(arrays, shapes, strict=True)):
        if array.shape != shape:
            return f"parameter {index} has shape {array.shape}, expected {shape}"
        if not np.issubdtype(array.dtype, np.floating):
            return f"parameter {index} has dtype {array.dtype}, expected floating point"
        if not np.all(np.isfinite(array)):
            return f"parameter {index} has NaN or infinite values"
    return None


def update_norm(arrays: NDArrays, reference: NDArrays) -> float:
    """||w - w_global||_2 over all arrays flattened together (inf when it overflows float64)."""
    with np.errstate(over="ignore"):
        pairs = zip(arrays, reference, strict=True)
        return math.sqrt(sum(float(np.sum(np.square(np.subtract(a, r, dtype=np.float64)))) for a, r in pairs))


def norm_outliers(norms: Mapping[str, float], previous: float | None, factor: float) -> dict[str, str]:
    """The updates the relative norm bound rejects, by client name, with the reason (see the module docstring).

    `norms`: each update's distance from the global model; `previous`: the last round's median of
    accepted distances, the reference when fewer than 3 updates arrived (None: no reference yet);
    `factor` 0 turns the bound off.
    """
    if not factor:
        return {}
    rejected = {}
    for name, norm in norms.items():
        others = [n for other, n in norms.items() if other != name]
        reference = float(np.median(others)) if len(norms) >= 3 else previous
        if reference and norm > factor * reference:
            rejected[name] = (
                f"its update's norm {norm:.3g} is more than {factor:g} times the others' median ({reference:.3g})"
            )
    return rejected
