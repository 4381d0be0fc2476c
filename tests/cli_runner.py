"""Run the `fedsage` command line in-process, as a user would, and check how it refuses bad input."""

from pathlib import Path

import pytest

from orchestrator.cli import main


def run_cli(capsys, *args):
    """Exit code, stdout and stripped stderr of `fedsage ARGS`."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err.strip()


def _tree(folder: Path | None) -> set[str]:
    if folder is None or not folder.exists():
        return set()
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


def assert_bad_input(capsys, *args, message: str, folder: Path | None = None) -> str:
    """`fedsage ARGS` is refused as bad input: exit 2, one line on stderr holding `message`, nothing written.

    `folder` (typically the test's tmp_path) must hold the same files afterwards as before.
    Returns the error line.
    """
    before = _tree(folder)
    code, _, err = run_cli(capsys, *args)
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert message in err, err
    assert _tree(folder) == before, f"bad input wrote {sorted(_tree(folder) - before)}"
    return err
