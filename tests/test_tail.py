"""The tail of a run: a client ends at once after its model is saved; the run wakes on each job's exit."""

import subprocess
import sys
import textwrap

from orchestrator.backends.exits import ExitSignal


def test_exit_signal_wakes_on_a_process_exit_not_the_timeout():
    signal = ExitSignal()
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    signal.watch("job", process.wait)
    assert signal.wait(timeout=120) is True  # woken by the exit: the timeout would return False
    assert process.returncode == 0
    assert signal.wait(timeout=0) is False  # the flag was cleared: nothing ended since


def test_exit_signal_is_set_when_waiting_fails():
    signal = ExitSignal()

    def broken():
        raise ConnectionError("the daemon went away")

    signal.watch("job", broken)
    assert signal.wait(timeout=120) is True


def test_client_exits_at_once_with_its_code_and_flushed_log():
    program = textwrap.dedent(
        """
        import logging, sys, threading, time
        from client_code.train import exit_now
        logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
        threading.Thread(target=time.sleep, args=(600,)).start()  # a non-daemon thread (like gRPC's) is not waited for
        logging.getLogger("fedsage.client").info("model saved")
        sys.stdout.write("unflushed tail")
        exit_now(3)
        """
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3
    assert done.stdout.splitlines() == ["model saved", "unflushed tail"]


def _run(program: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(program)], capture_output=True, text=True, timeout=120)


def test_the_cli_exits_at_once_after_what_interpreter_exit_would_do():
    done = _run(
        """
        import atexit, sys, threading, time
        from orchestrator.cli import exit_at_once
        atexit.register(lambda: print("atexit ran"))
        worker = threading.Thread(target=lambda: (time.sleep(0.2), print("worker done")))  # non-daemon: joined
        worker.start()
        sys.stdout.write("unflushed summary\\n")
        exit_at_once(3)
        """
    )
    assert done.returncode == 3
    assert done.stdout.splitlines() == ["unflushed summary", "worker done", "atexit ran"]


def test_the_cli_exit_maps_systemexit_codes():
    for code, status, stderr in (("None", 0, ""), ("2", 2, ""), ("'error: bad'", 1, "error: bad")):
        done = _run(f"from orchestrator.cli import exit_at_once; exit_at_once({code})")
        assert (done.returncode, done.stderr.strip()) == (status, stderr)


def test_the_console_script_ends_without_finalisation_but_main_with_argv_raises():
    done = _run(
        """
        import atexit, sys
        sys.argv = ["fedsage", "--version"]
        from orchestrator.cli import main
        try:
            main(["--version"])
        except SystemExit as exc:
            print("raised", exc.code)
        main()  # the console script: ends the process here
        print("not reached")
        """
    )
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[1] == "raised 0" and lines[-1] != "not reached" and len(lines) == 3
