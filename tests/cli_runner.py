"""Run the `fedsage` command line in-process, as a user would."""

import pytest

from orchestrator.cli import main


def run_cli(capsys, *args):
    """Exit code, stdout and stripped stderr of `fedsage ARGS`."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err.strip()
