"""The first line of `fedsage local`: what runs (clients x rounds of which model on which data), or which file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from orchestrator import defaults
from orchestrator.text import indefinite, plural


def local_banner(
    clients: int | None, rounds: int, model: str, data_dir: Path | None, dataset: str
) -> Callable[[], str]:
    """The banner of `fedsage local` from options, made when it is printed (the data folder is checked by then)."""

    def banner() -> str:
        from orchestrator.data.layout import client_folders

        count = clients or (len(client_folders(data_dir)) if data_dir else defaults.CLIENTS)
        source = f"data in {data_dir}" if data_dir else f"built-in data set '{dataset}'"
        who = f"{plural(count, 'client')} x {plural(rounds, 'round')}"
        return f"[bold]fedsage local[/]: {who} of {indefinite(model)} model on {source}"

    return banner


def _shown(value: object) -> str:
    """An option's value as typed: a dict (--strategy-param, --dp and its settings) as key=value pairs."""
    return ", ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else str(value)


def file_banner(config: Path | None, resume: str | None, given: dict[str, object]) -> str:
    """The banner of a run from a file: which file or stopped run, and which options override it."""
    from orchestrator.overrides import option_name

    what = f"run {resume} resumed from its last checkpoint" if resume else f"the federation of {config}"
    shown = {name: value for name, value in given.items() if name not in ("config", "resume", "out")}
    changed = [f"{option_name(name)} {_shown(value)}" for name, value in shown.items()]
    return f"[bold]fedsage local[/]: {what}" + (f" (overridden here: {', '.join(changed)})" if changed else "")
