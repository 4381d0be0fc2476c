"""The `fedsage` console script: Ctrl-C and SIGTERM are one line from the first instant, imports included.

The console script imports this module, which imports nothing but `sys` and `signal` (about a
millisecond), so the `except` below already holds while the command line's own imports run
(Typer, Rich, click and every command module: ~0.3 s before `orchestrator.cli.main` installs its
handlers, run/interrupts.py). SIGTERM, whose default action ends the process without a word, is
turned into an exception for that window too (exit 143, as the CLI's handler exits). Python's
own start-up (its site module) and the import of this module run before any code of fedsage
holds: a signal within those first hundredths of a second ends the interpreter with Python's
message (Ctrl-C) or none (SIGTERM), not fedsage's.
"""

import signal
import sys

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C (the CLI's exit code for it too)
EXIT_TERMINATED = 143  # 128 + SIGTERM (the CLI's exit code for it too)


class _Terminated(KeyboardInterrupt):
    """SIGTERM before the CLI's own handler holds (or after it is removed)."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


def main() -> None:
    """Run `fedsage` (orchestrator.cli.main); a Ctrl-C that reaches here prints "interrupted" and exits 130.

    Only an interrupt outside the command's own handling gets here: during the imports, or between
    its handlers being removed and the process exiting. A SIGTERM there prints "terminated" and
    exits 143; a SIGTERM the process was started with ignored (`nohup`) stays ignored. It never
    raises; it exits via SystemExit.
    """
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        from orchestrator.cli import main as run

        run()
    except _Terminated:
        sys.stderr.write("terminated (SIGTERM)\n")
        sys.exit(EXIT_TERMINATED)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
