"""Ctrl-C and SIGTERM are never lost: an interrupt some library swallowed still stops the run (run/interrupts.py)."""

import contextlib
import json
import os
import signal
import sys
import time

import pytest

from orchestrator import api
from orchestrator.run import interrupts
from orchestrator.run.events import RoundFinished

ROUNDS = 30


def _sigint() -> None:
    """Send this process SIGINT; the handler raises in here."""
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)


def _swallowed_sigint() -> None:
    """Send this process SIGINT and swallow the KeyboardInterrupt, as a C extension's callback would."""
    with contextlib.suppress(KeyboardInterrupt):
        _sigint()


def test_check_raises_an_interrupt_that_was_swallowed_and_handled_clears_it():
    with interrupts.as_interrupts() as received:
        _swallowed_sigint()
        assert received.signals == [signal.SIGINT]
        with pytest.raises(interrupts.Interrupted) as raised:
            interrupts.check()
        assert interrupts.handled(raised.value) == "interrupted by the user (Ctrl-C)"
        interrupts.check()  # handled: nothing pending any more


def test_a_signal_during_an_import_is_raised_once_the_import_is_over(tmp_path, monkeypatch):
    """Review of issue 15: raised inside importlib, an Interrupted left the import lock held and the run hung.

    The module's body sends SIGTERM to this process and goes on; the import completes, and the
    interrupt comes at the first instant after it, counted once.
    """
    (tmp_path / "fedsage_slow_module.py").write_text(
        "import os, signal, time\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "time.sleep(0.3)  # the handler runs in here, inside the import\n"
        "finished = True\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with interrupts.as_interrupts() as received:
        with pytest.raises(interrupts.Interrupted) as raised:
            import fedsage_slow_module  # noqa: F401

            time.sleep(5)  # where it is raised: at once after the import
        assert sys.modules["fedsage_slow_module"].finished
        assert raised.value.signum == signal.SIGTERM and received.signals == [signal.SIGTERM]
        interrupts.handled(raised.value)
    sys.modules.pop("fedsage_slow_module")


def test_an_interrupt_swallowed_before_the_run_is_pending_inside_it():
    with interrupts.as_interrupts():
        _swallowed_sigint()  # e.g. while the CLI builds the config
        with interrupts.as_interrupts(), pytest.raises(interrupts.Interrupted):  # the run's own
            interrupts.check()
    with interrupts.as_interrupts():  # a later command starts clean
        interrupts.check()


def test_an_interrupt_a_library_wraps_in_its_own_error_ends_the_command_as_interrupted(monkeypatch, capsys, tmp_path):
    """As pydantic-core does when Ctrl-C lands while it builds a validator: SchemaError(... Interrupted ...)."""
    from orchestrator.cli import main

    def wrapping_library(**options):
        try:
            _sigint()
        except KeyboardInterrupt as exc:
            raise RuntimeError(f"Error building validator: {exc}") from None

    monkeypatch.setattr(api, "local", wrapping_library)
    with pytest.raises(SystemExit) as exited:
        main(["local", "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert exited.value.code == 130, err
    assert err.strip().splitlines() == ["interrupted: every job this run started was stopped"]
    with interrupts.as_interrupts():  # the next command starts clean
        interrupts.check()


def test_an_interrupt_python_could_only_ignore_prints_nothing_and_stays_pending(monkeypatch):
    """As in a weakref callback of importlib's module locks during the CLI's imports: no 'Exception ignored'."""
    reported = []  # what would be printed as "Exception ignored in: ..." with a traceback

    def report(unraisable):
        reported.append(unraisable.exc_type)

    monkeypatch.setattr(sys, "unraisablehook", report)

    class Collected:
        def __init__(self, action):
            self.action = action

        def __del__(self):
            self.action()  # Python can only report and ignore what this raises

    def broken():
        raise ValueError("a real bug")

    with interrupts.as_interrupts():
        Collected(_sigint)  # the handler raises inside __del__
        Collected(broken)
        with pytest.raises(interrupts.Interrupted) as raised:
            interrupts.check()
        interrupts.handled(raised.value)
    assert reported == [ValueError]  # other errors are still reported
    assert sys.unraisablehook is report  # and the hook is given back


def test_a_ctrl_c_swallowed_before_the_run_stops_it_before_any_job_or_folder(prepared_dir, tmp_path):
    out = tmp_path / "runs"
    with interrupts.as_interrupts(), pytest.raises(KeyboardInterrupt):  # the CLI's, as in `fedsage local`
        _swallowed_sigint()  # e.g. while the CLI imported the run's libraries
        api.local(data_dir=prepared_dir, out=out, observer=lambda event: pytest.fail(f"the run went on: {event}"))
    assert not out.exists() or not list(out.iterdir())


@pytest.mark.slow
def test_a_run_whose_ctrl_c_was_swallowed_still_stops_as_interrupted(prepared_dir, tmp_path):
    swallowed = []

    def observer(event):
        if isinstance(event, RoundFinished) and event.record.round == 1 and not swallowed:
            swallowed.append(1)
            _swallowed_sigint()

    out = tmp_path / "runs"
    with pytest.raises(KeyboardInterrupt):
        api.local(data_dir=prepared_dir, out=out, rounds=ROUNDS, observer=observer, join_timeout=60)
    (run_dir,) = out.iterdir()
    summary = json.loads((run_dir / "run.json").read_text())
    assert swallowed and summary["status"] == "interrupted"
    assert summary["reason"] == "interrupted by the user (Ctrl-C)" and summary["rounds_completed"] < ROUNDS
