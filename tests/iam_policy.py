"""A small IAM identity-policy evaluator for tests, for what moto's enforcement cannot judge.

moto enforces identity policies only by action and (for S3) resource, and treats any condition it
cannot verify as a Deny; the IAM libraries installed (parliament, policyuniverse, cloudsplaining)
lint and expand policies but do not decide a request. This evaluator decides one request
against identity policies the way IAM does, for the elements fedsage's templates use:

- Effect Allow/Deny: an explicit Deny wins, then any Allow, else an implicit deny;
- Action / NotAction with * and ? wildcards (case-insensitive), Resource / NotResource (case-sensitive);
- Condition operators StringEquals, StringNotEquals, StringLike, StringNotLike, ArnEquals, ArnLike,
  Bool, Null, NumericLessThan, with the ForAllValues: and ForAnyValue: set qualifiers. Keys in one
  block are ANDed, values of one key ORed; a missing key fails a positive operator, and
  ForAllValues passes on a missing key (which is why the templates pair it with Null).

Not covered: resource-based policies, permission boundaries, SCPs, session policies, policy
variables, IfExists suffixes, IP and date operators. Every request here is given its full
request context explicitly.
"""

from __future__ import annotations

import re
from typing import Any

ALLOW, IMPLICIT_DENY, EXPLICIT_DENY = "Allow", "ImplicitDeny", "ExplicitDeny"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _wildcard(pattern: str, text: str, case_sensitive: bool = True) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, 0 if case_sensitive else re.IGNORECASE) is not None


def _matches(statement: dict[str, Any], key: str, value: str, case_sensitive: bool) -> bool:
    if key in statement:
        return any(_wildcard(p, value, case_sensitive) for p in _as_list(statement[key]))
    negated = "Not" + key
    if negated in statement:
        return not any(_wildcard(p, value, case_sensitive) for p in _as_list(statement[negated]))
    return False


def _compare(operator: str, expected: str, actual: str) -> bool:
    if operator in ("StringEquals", "ArnEquals"):
        return actual == expected
    if operator in ("StringLike", "ArnLike"):
        return _wildcard(expected, actual)
    if operator == "Bool":
        return str(actual).lower() == str(expected).lower()
    if operator == "NumericLessThan":
        return float(actual) < float(expected)
    raise ValueError(f"condition operator {operator} is not supported by this evaluator")


NEGATED = {"StringNotEquals": "StringEquals", "StringNotLike": "StringLike"}


def _condition_holds(operator: str, key: str, expected: Any, context: dict[str, Any]) -> bool:
    expected_values = [str(v) for v in _as_list(expected)]
    if operator == "Null":
        return (key not in context) == (expected_values[0].lower() == "true")
    qualifier, _, base = operator.rpartition(":")
    negated = base in NEGATED
    base = NEGATED.get(base, base)
    if key not in context:
        return qualifier == "ForAllValues" or negated
    actual_values = [str(v) for v in _as_list(context[key])]

    def one(actual: str) -> bool:
        return any(_compare(base, e, actual) for e in expected_values)

    # ForAllValues: every value must match; ForAnyValue or a single-valued key: one is enough
    combine = all if qualifier == "ForAllValues" else any
    result = combine(one(a) for a in actual_values)
    return not result if negated else result


def _conditions_hold(statement: dict[str, Any], context: dict[str, Any]) -> bool:
    return all(
        _condition_holds(operator, key, expected, context)
        for operator, block in statement.get("Condition", {}).items()
        for key, expected in block.items()
    )


def evaluate(documents: list[dict[str, Any]], action: str, resource: str, context: dict[str, Any] | None = None) -> str:
    """Decide one request (action on resource, with its request context) against identity policies."""
    context = context or {}
    allowed = False
    for document in documents:
        for statement in _as_list(document["Statement"]):
            if not (_matches(statement, "Action", action, False) and _matches(statement, "Resource", resource, True)):
                continue
            if not _conditions_hold(statement, context):
                continue
            if statement["Effect"] == "Deny":
                return EXPLICIT_DENY
            allowed = True
    return ALLOW if allowed else IMPLICIT_DENY
