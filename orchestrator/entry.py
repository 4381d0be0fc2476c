"""The `fedsage` console script: Ctrl-C is one line and exit 130 from the first instant, imports included.

The console script imports this module, which imports nothing but `sys`, so the `except` below
already holds while the command line's own imports run (Typer, Rich, click and every command
module: ~0.3 s before `orchestrator.cli.main` installs its handlers, run/interrupts.py). Python's
own start-up (its site module) and the import of this module run before any code of fedsage
holds: a Ctrl-C within those first hundredths of a second ends the interpreter with Python's
message, not fedsage's.
"""

import sys

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C (the CLI's exit code for it too)


def main() -> None:
    """Run `fedsage` (orchestrator.cli.main); a Ctrl-C that reaches here prints "interrupted" and exits 130.

    Only an interrupt outside the command's own handling gets here: during the imports, or between
    its handlers being removed and the process exiting. It never raises; it exits via SystemExit.
    """
    try:
        from orchestrator.cli import main as run

        run()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
