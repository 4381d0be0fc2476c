"""orchestrator/threads.py: a Worker's end is an Event, which a Ctrl-C in the waiting thread cannot fake."""

import os
import signal
import threading

import pytest

from orchestrator.run import interrupts
from orchestrator.threads import Worker


def test_a_ctrl_c_while_waiting_leaves_a_running_worker_running_and_its_end_is_seen():
    release = threading.Event()
    worker = Worker(release.wait, "busy", daemon=True)
    worker.start()
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
    with interrupts.as_interrupts(), pytest.raises(KeyboardInterrupt) as raised:
        worker.wait(30)  # the run's handler raises in here, as in the run's own waits
    interrupts.handled(raised.value)
    assert not worker.ended.is_set() and not worker.wait(0.05)
    release.set()
    assert worker.wait(30)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_worker_whose_target_raises_has_ended():
    def fail():
        raise RuntimeError("the target's to catch")

    worker = Worker(fail, "failing", daemon=True)
    worker.start()
    assert worker.wait(30) and worker.ended.is_set()
    worker.join(30)  # Python reports the exception after `ended` is set: within this test, not a later one
