"""How numbers and counts read for people: the one formatting of the console, the report and the logs."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import unquote, urlparse


def fmt(value: Any) -> str:
    """A metric for people: 4 decimals, "n/a" for a missing or undefined (NaN) value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def shown_uri(uri: str) -> str:
    """A data URI as a user finds it: the local path of a file:// URI, any other URI as it is."""
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


def plural(count: int, noun: str) -> str:
    """A count with its noun, in the plural unless the count is one: "1 round", "3 rounds"."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def indefinite(noun: str) -> str:
    """The noun with its indefinite article, as it is read aloud: "a logistic", "an mlp", "an sgd", "an xgboost".

    A name with no vowel in its first three letters, or starting with x, is read letter by letter
    (sgd: "ess-gee-dee", xgboost: "ex-gee-boost"), so its first letter's name decides; otherwise a
    leading a, e, i or o ("an estimator"; u is left to "a": "a uniform").
    """
    word = noun.lower()
    spelled = word.startswith("x") or not any(ch in "aeiouy" for ch in word[:3])
    return ("an " if word[:1] and word[0] in ("aefhilmnorsx" if spelled else "aeio") else "a ") + noun


def privacy(budget: dict[str, Any]) -> str:
    """The privacy a run spent, in one line: "central DP: epsilon 3.21 at delta 1e-05 after 5 rounds (C 1, z 1)".

    `budget`: federation/privacy.py PrivacyBudget.to_dict() (as run.json's `privacy` holds it).
    """
    return (
        f"{budget['mode']} DP: epsilon {budget['epsilon']:.3g} at delta {budget['delta']:g} after "
        f"{plural(int(budget['rounds']), 'round')} (clipping norm {budget['clipping_norm']:g}, noise multiplier "
        f"{budget['noise_multiplier']:g})"
    )
