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
