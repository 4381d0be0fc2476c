"""The runs under a runs folder (`--out`, default `runs/`): list them and read one back.

Everything here reads run folders (run/folder.py), never a live run: run.json (the typed
RunSummary) and metrics.json (the per-round RunHistory). Run folders of older fedsage versions
still list: what their run.json lacks (rounds completed, final metrics, start time) is taken from
metrics.json and the run id. A folder without run.json is a run still going on, or one killed
before it could write it (`kill -9`, a power cut): it lists as "unfinished", with the rounds its
checkpoints show.
"""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator import defaults
from orchestrator.config import name_order
from orchestrator.errors import BadInput
from orchestrator.federation.history import RunHistory
from orchestrator.run.folder import RunFolder, RunSummary

UNFINISHED = "unfinished"  # no run.json: still running, or killed before it could write one
UNREADABLE = "unreadable"  # a run.json that is not a run summary


@dataclass(frozen=True)
class RunInfo:
    """One run as `fedsage runs` lists it.

    `started_at`: when it started (timezone-aware; from the run id, in local time, for run folders
    older than run.json's `started_at`); `rounds_completed` of `rounds` asked for; `final_metrics`:
    the server's test-set metrics after the last completed round; `seconds`: the run's wall time
    (None while unfinished); `partial`: its model.joblib is the last good model of a run that
    stopped after round `rounds_completed`; `resumed_from`: {run_id, round} of the run it continued.
    """

    run_id: str
    folder: Path
    started_at: dt.datetime | None
    backend: str
    clients: list[str]
    rounds_completed: int
    rounds: int | None
    status: str
    reason: str
    final_metrics: dict[str, float | None]
    seconds: float | None
    partial: bool = False
    resumed_from: dict[str, Any] = field(default_factory=dict)

    def status_text(self) -> str:
        """The status with what the run left: "interrupted, partial model (round 3)"."""
        return self.status + (f", partial model (round {self.rounds_completed})" if self.partial else "")


@dataclass(frozen=True)
class RunDetails:
    """One run in full: its listing, its run.json (None while unfinished or unreadable) and its rounds."""

    info: RunInfo
    summary: RunSummary | None
    history: RunHistory


def _started(run_id: str, summary: RunSummary | None) -> dt.datetime | None:
    """When the run started: run.json's started_at, else the local time its id begins with (20261121-101500-...)."""
    if summary is not None and summary.started_at:
        return dt.datetime.fromisoformat(summary.started_at)
    try:
        return dt.datetime.strptime(run_id[:15], "%Y%m%d-%H%M%S").astimezone()
    except ValueError:
        return None


def _history(folder: Path) -> RunHistory:
    """The rounds metrics.json records; none when it is missing or unreadable."""
    try:
        return RunHistory.from_dict(json.loads((folder / "metrics.json").read_text()))
    except (OSError, ValueError, TypeError):
        return RunHistory()


def _config(folder: Path) -> dict[str, Any]:
    """The run's federation.toml as a plain mapping (paths unresolved); empty when missing or unreadable."""
    try:
        return tomllib.loads((folder / "federation.toml").read_text())
    except (OSError, ValueError):
        return {}


def _is_run_folder(folder: Path) -> bool:
    """Whether a folder is a run folder: it holds run.json, or the files a run writes before it (server.log, ...)."""
    return folder.is_dir() and any((folder / name).exists() for name in ("run.json", "federation.toml", "server.log"))


def _details(folder: Path) -> RunDetails:
    """A run folder read back (see the module docstring for older and unfinished runs)."""
    history = _history(folder)
    summary, status, reason = None, UNFINISHED, "no run.json yet: the run is going on, or was killed before writing it"
    if (folder / "run.json").exists():
        try:
            summary = RunSummary.load(folder / "run.json")
            status, reason = summary.status, summary.reason
        except BadInput as exc:
            status, reason = UNREADABLE, str(exc)
    config = _config(folder)
    if summary is not None:
        clients = list(summary.clients)
        rounds: int | None = summary.rounds
        done = summary.rounds_completed
        final = summary.final_metrics or (history.final().server if history.rounds else {})
    else:
        clients = [c.get("name", "") for c in config.get("clients", [])]
        rounds = config.get("federation", {}).get("rounds", defaults.ROUNDS) if config else None
        done, final = None, history.final().server if history.rounds else {}
    if done is None:  # older run.json, or none: the rounds metrics.json or the checkpoints show
        checkpoints = len(list((folder / "checkpoints").glob("round-*.npz")))
        done = history.final().round if history.rounds else max(0, checkpoints - 1)
    info = RunInfo(
        run_id=folder.name,
        folder=folder,
        started_at=_started(folder.name, summary),
        backend=summary.backend if summary is not None else "",
        clients=clients,
        rounds_completed=done,
        rounds=rounds,
        status=status,
        reason=reason,
        final_metrics=final,
        seconds=summary.seconds if summary is not None else None,
        partial=summary.partial if summary is not None else False,
        resumed_from=summary.resumed_from if summary is not None else {},
    )
    return RunDetails(info, summary, history)


def list_runs(out: Path = Path(defaults.RUNS)) -> list[RunInfo]:
    """Every run folder under `out`, oldest first (run ids sort by start time).

    A missing `out` holds no runs ([]); `out` being a file is BadInput. Folders that are not run
    folders (no run.json, federation.toml or server.log) are left out.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out} is a file, not a folder of runs; pass the folder runs were written to")
    if not out.is_dir():
        return []
    return [_details(folder).info for folder in sorted(out.iterdir()) if _is_run_folder(folder)]


def run_folder(out: Path, run_id: str) -> RunFolder:
    """The folder of run `run_id` under `out`; BadInput naming the folder searched when there is no such run."""
    out = Path(out)
    folder = RunFolder(out / run_id)
    if "/" in run_id or run_id in ("", ".", "..") or not _is_run_folder(folder.root):
        known = [info.run_id for info in list_runs(out)] if out.is_dir() else []
        hint = f"; the latest there is {known[-1]}" if known else ""
        raise BadInput(
            f"no run {run_id!r} in {out}{hint}; list the runs with `fedsage runs --out {out}` "
            "(or pass the --out the run was written to)"
        )
    return folder


def show_run(run_id: str, out: Path = Path(defaults.RUNS)) -> RunDetails:
    """One run's listing, run.json and rounds (BadInput naming the folder searched when there is no such run)."""
    return _details(run_folder(out, run_id).root)


def clients_of(folder: Path) -> list[str]:
    """The clients of a run, in name order: those its run.json or federation.toml names, and its requests/ ones."""
    names = {*_details(folder).info.clients, *(path.stem for path in (folder / "requests").glob("*.json"))}
    return sorted(names - {""}, key=name_order)
