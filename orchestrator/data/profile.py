"""Profiles: the statistics phase done by hand, for owners who exchange files instead of joining a run.

1. Each data owner runs `fedsage data profile` on its own file: the same aggregate statistics a
   client sends in the statistics phase (client_code/statistics.py), keyed hashes under a salt
   the owners agreed on, plus the names of the levels this owner itself holds at least k times
   (a level that common at one owner is not rare).
2. The server runs `fedsage data merge` on the profiles: the same merge as the statistics phase.
   A kept level (k times over the federation) that no owner could name alone is asked for in a
   reveal request, naming the owners who must answer it with `fedsage data profile --reveal`;
   `data merge --names` then completes the schema.

Every file is JSON; the salt never leaves the owners' side in a profile (only its hashes do).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from client_code.statistics import compute_statistics, merge_statistics, name_levels, reveal_levels, reveal_requests
from client_code.tabular import DataError
from orchestrator.errors import BadInput

PROFILE_KIND = "fedsage-profile"
REQUEST_KIND = "fedsage-reveal-request"
NAMES_KIND = "fedsage-level-names"


def make_profile(
    frame: pd.DataFrame,
    owner: str,
    label: str,
    salt: str,
    min_level_count: int,
    categorical: tuple[str, ...] = (),
    drop: tuple[str, ...] = (),
    max_levels: int = 50,
) -> dict[str, Any]:
    """One owner's profile: its statistics and the names of the levels it holds at least k times."""
    try:
        statistics = compute_statistics(frame, label, salt, categorical, drop, max_levels, "input")
    except DataError as exc:
        raise BadInput(str(exc)) from None
    common = {
        column: [digest for digest, n in entry.get("levels", {}).items() if n >= min_level_count]
        for column, entry in statistics["columns"].items()
    }
    names = reveal_levels(frame, salt, {c: h for c, h in common.items() if h})
    return {"kind": PROFILE_KIND, "owner": owner, "label": label, "statistics": statistics, "names": names}


def answer_reveal(frame: pd.DataFrame, owner: str, salt: str, request: dict[str, Any]) -> dict[str, Any]:
    """An owner's answer to a reveal request: the names of the hashes asked of it (and only those)."""
    if request.get("kind") != REQUEST_KIND:
        raise BadInput("the --reveal file is not a reveal request written by `fedsage data merge`")
    asked = request["owners"].get(owner)
    if asked is None:
        raise BadInput(f"the reveal request asks nothing of owner {owner!r} (it asks {', '.join(request['owners'])})")
    return {"kind": NAMES_KIND, "owner": owner, "names": reveal_levels(frame, salt, asked)}


def read_document(path: Path, kind: str) -> dict[str, Any]:
    """A JSON document of `kind` (PROFILE_KIND, REQUEST_KIND or NAMES_KIND) from `path`.

    BadInput in one line naming the path: missing, a folder, not JSON, or another kind of document.
    """
    if not Path(path).is_file():
        what = "is a folder" if Path(path).is_dir() else "does not exist"
        raise BadInput(f"{path} {what}; give the path of a {kind} file (JSON)")
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInput(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("kind") != kind:
        raise BadInput(f"{path} is not a {kind} file")
    return document


def merge_profiles(
    profiles: list[Path],
    names: list[Path],
    min_level_count: int,
    max_levels: int,
    categorical: tuple[str, ...] = (),
    positive_class: str | None = None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, list[str]]:
    """Merge profiles (and answered reveal requests) into (schema, None, inferred) or (None, request, inferred).

    The request, when some kept levels are still unnamed, maps each owner to the hashes it must
    name. Raises BadInput for unreadable files, duplicate owners, profiles of different labels, or
    what the merge refuses (see client_code.statistics.merge_statistics).
    """
    documents = [read_document(path, PROFILE_KIND) for path in profiles]
    owners = [d["owner"] for d in documents]
    if len(set(owners)) != len(owners):
        raise BadInput(f"two profiles come from the same owner ({sorted(o for o in owners if owners.count(o) > 1)[0]})")
    labels = {d["label"] for d in documents}
    if len(labels) != 1:
        raise BadInput(f"the profiles name different labels ({', '.join(sorted(labels))}); profile the same column")
    try:
        merged = merge_statistics(
            {d["owner"]: d["statistics"] for d in documents},
            labels.pop(),
            min_level_count=min_level_count,
            max_levels=max_levels,
            categorical=categorical,
            positive_class=positive_class,
        )
    except DataError as exc:
        raise BadInput(str(exc)) from None
    known: dict[str, dict[str, str]] = {}
    for document in [*documents, *(read_document(path, NAMES_KIND) for path in names)]:
        for column, found in document["names"].items():
            known.setdefault(column, {}).update(found)
    missing: dict[str, dict[str, list[str]]] = {}
    for owner, columns in reveal_requests(merged).items():
        for column, hashes in columns.items():
            unnamed = [h for h in hashes if h not in known.get(column, {})]
            if unnamed:
                missing.setdefault(owner, {})[column] = unnamed
    if missing:
        return None, {"kind": REQUEST_KIND, "owners": missing}, merged["inferred"]
    try:
        return name_levels(merged, known), None, merged["inferred"]
    except DataError as exc:
        raise BadInput(str(exc)) from None
