"""The Ray node of a simulation run: started quietly for Flower's Simulation Engine, stopped fast and whole.

What Ray (2.55, ray/_private) does that a run must not inherit, and what this module does instead:

* `ray.init()` starts gcs_server, raylet, the log monitor, ... as children of this process with
  PR_SET_PDEATHSIG (services.py `start_ray_process`, fate sharing), which Linux ties to the
  *thread* that started them: when that thread ends they are SIGKILLed, and the raylet's own
  children (the workers, e.g. ray::ClientAppActor, and its agents, ray::DashboardAgent and
  ray::RuntimeEnvAgent) are orphaned and linger 30-60 s until they notice. So the node is started
  and stopped by one thread of its own, which lives as long as the node, and stopping kills the
  whole process tree.
* `ray.shutdown()` disconnects the driver (~0.3 s), then stops each process gracefully, giving
  the raylet a second (node.py `kill_all_processes`); after the raylet is killed, disconnecting
  the driver takes ~5 s. So the node disconnects the driver first and then SIGKILLs the tree at
  once (nothing of the node is kept: the run folder has everything), waiting until every process
  is gone; the run saves its model meanwhile.
* The driver's core worker installs absl's failure signal handler, which catches SIGTERM, prints a
  C++ stack and aborts (exit 134): RAY_DISABLE_FAILURE_SIGNAL_HANDLER turns it off (ray_constants.py),
  so SIGTERM reaches the run (run/interrupts.py).
* `ray.init` on the main thread replaces the process's SIGTERM handler with `sys.exit`; elsewhere
  it logs a warning. The node is started in the run's server thread, and Ray's log records (that
  warning too) go to server.log (run/logs.py), not the console: see `init_arguments`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

# before Ray is imported: its driver must not catch SIGTERM (see the module docstring)
os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
# Ray starts its workers at niceness 15 (worker_niceness): on a busy machine the virtual clients
# would then get a fraction of the CPU a process-backend client gets
os.environ.setdefault("RAY_worker_niceness", "0")
# no warning about accelerator variables, which a CPU-only run does not use
os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")

import psutil  # noqa: E402 - in the simulation extra
import ray  # noqa: E402 - after the environment above

from orchestrator.run import logs  # noqa: E402
from orchestrator.threads import Worker  # noqa: E402

OBJECT_STORE_BYTES = 256 * 2**20  # Ray's shared-memory store; parameters are small (Ray's default: 30% of RAM)
KILL_WAIT = 10.0  # seconds to wait for SIGKILLed processes to be gone (the kernel's part)


def init_arguments(cpus: int) -> dict[str, Any]:
    """`ray.init` keyword arguments of a run's node: `cpus` CPUs, no dashboard, Ray's logs kept off the console."""
    return {
        "num_cpus": cpus,
        "include_dashboard": False,
        "ignore_reinit_error": True,  # start_simulation calls ray.init again on the running node
        "log_to_driver": False,  # the virtual clients' logs stay in Ray's session folder
        # Ray's records go to server.log (run/logs.py): Ray would clear the "ray" logger's handlers
        # (the run's file handler too) with configure_logging=False; with True it only sets their format
        "configure_logging": True,
        "logging_format": logs.FORMAT,
        "logging_level": logging.INFO,
        "object_store_memory": OBJECT_STORE_BYTES,
    }


_previous: RayNode | None = None  # the last node started in this process (one at a time: Ray's driver is global)


class RayNode:
    """A local Ray node owned by one run, in a thread of its own (see the module docstring).

    `start()` starts it and returns once it runs (after the previous node of this process is
    gone); `stop()` asks for its end without waiting: the run writes its folder meanwhile, and
    the thread is not a daemon, so the interpreter waits for it before exiting. `wait()` waits
    for it: the driver disconnected and every process of the node gone. `kill()` SIGKILLs the
    node's processes from any thread, for a run whose server does not come back.
    """

    def __init__(self, cpus: int) -> None:
        """`cpus`: CPUs the node offers its actors."""
        self.cpus = cpus
        self._roots: list[psutil.Process] = []  # the processes ray.init started (children of this process)
        self._lock = threading.Lock()
        self._started = threading.Event()
        self._stopping = threading.Event()
        self._error: BaseException | None = None
        self._thread = Worker(self._run, "ray-node", daemon=False)  # waited on by its `ended` (threads.py)

    def start(self) -> None:
        """Start the node (ray.init, in the node's thread) and return once it runs; raise what ray.init raised."""
        global _previous
        if _previous is not None and not _previous.wait(KILL_WAIT * 3):
            _previous.kill()
        _previous = self
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """Ask the node to stop (idempotent); `wait` waits for it."""
        self._stopping.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to `timeout` seconds for the node to be stopped; True once it is (or never started)."""
        return self._thread.ident is None or self._thread.wait(timeout)

    @contextmanager
    def running(self) -> Iterator[None]:
        """The node started for the block, and asked to stop however it ends."""
        self.start()
        try:
            yield
        finally:
            self.stop()

    def _run(self) -> None:
        """The node's thread: ray.init, wait for `stop`, then stop the node whole (the same thread: PDEATHSIG)."""
        before = {p.pid for p in psutil.Process().children()}
        try:
            ray.init(**init_arguments(self.cpus))
        except BaseException as exc:  # noqa: BLE001 - raised by start() in the caller's thread
            self._error = exc
        self._found(before)
        self._started.set()
        try:
            if self._error is None:
                self._stopping.wait()
        finally:
            self._found(before)  # also when ray.init failed half-way
            self._stop()

    def _found(self, before: set[int]) -> None:
        """Add the children of this process that were not there `before` to the node's: what ray.init started."""
        with self._lock:
            known = {p.pid for p in self._roots}
            self._roots += [p for p in psutil.Process().children() if p.pid not in before | known]

    def _stop(self) -> None:
        """Disconnect the driver, then kill the node's process tree (instead of Ray's second-by-second shutdown)."""
        started = time.monotonic()
        tree = self._tree()
        node = getattr(getattr(ray, "_private", None), "worker", None)
        node = getattr(node, "_global_node", None)
        if node is not None:  # ray.shutdown calls it once the driver is disconnected
            node.kill_all_processes = lambda *args, **kwargs: self.kill(tree)
        try:
            ray.shutdown()
        finally:
            self.kill(tree)
        log.info("Ray node stopped in %.2f s (%d processes)", time.monotonic() - started, len(tree))

    def _tree(self) -> list[psutil.Process]:
        """The node's processes now: what ray.init started and all their descendants."""
        with self._lock:
            roots = list(self._roots)
        tree = []
        for root in roots:
            try:
                tree += [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
        return tree

    def kill(self, tree: list[psutil.Process] | None = None) -> None:
        """SIGKILL the node's processes (`tree`, or all of them now) and wait until they are gone; the node stops."""
        self._stopping.set()  # the node's thread (which the interpreter waits for) goes on to its end
        tree = self._tree() if tree is None else tree
        for process in tree:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                continue
        _, alive = psutil.wait_procs(tree, timeout=KILL_WAIT)
        if alive:
            log.warning("Ray processes still running after SIGKILL: %s", ", ".join(str(p.pid) for p in alive))
