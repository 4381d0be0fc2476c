"""Checks of the paths a command is given to write, before anything is built or written.

Each raises BadInput with one line naming the option, the path and the fix, so a folder where a
file is expected (or a file where a folder is) never surfaces as an OSError halfway through.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.errors import BadInput


def _under_a_file(path: Path, option: str) -> None:
    """BadInput if a parent of `path` exists as a file: nothing can be created under it."""
    blocker = next((parent for parent in path.parents if parent.exists() and not parent.is_dir()), None)
    if blocker is not None:
        raise BadInput(f"{option} {path}: {blocker} is a file, not a folder; choose another {option}")


def output_file(path: Path, option: str, example: str) -> Path:
    """`path` as a file the command writes (missing parent folders are made): BadInput if it is a folder.

    `example` is a file name to suggest inside that folder ("source.tar.gz"). Returns the path.
    """
    path = Path(path)
    if path.is_dir():
        raise BadInput(f"{option} {path} is a folder; give a file name, e.g. {option} {path / example}")
    _under_a_file(path, option)
    return path


def output_folder(path: Path, option: str) -> Path:
    """`path` as a folder the command creates or fills: BadInput if it is a file or lies under one."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BadInput(f"{option} {path} is a file; choose a new folder")
    _under_a_file(path, option)
    return path
