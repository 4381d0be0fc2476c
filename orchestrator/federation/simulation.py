"""The run's server when Flower's Simulation Engine runs the clients (the simulation backend).

Why an adapter: in Flower's Simulation Engine (`flwr.simulation.start_simulation`, flwr 1.41, Ray)
the engine owns the round loop. It starts Ray, registers one RayActorClientProxy per virtual
client with the client manager, then calls `run_fl(server, config)`; there is no listening port,
TLS or token. Everything else is the run's own server: this SimulatedServer is a FederationServer
whose `run` hands the engine a Flower Server that, when the engine starts it, runs the same
`prepare_rounds` (wait for the clients, statistics phase, validating strategy over the test-set
evaluation) and then Flower's own `fit`. The roster names each virtual client by its partition
(the engine's ids are random node ids), in the order the jobs were launched.

The virtual client is built as a training job builds its client: client_code.train parses the
job's hyperparameters (the request's, turned into arguments as the training toolkit does) and
loads its channels, and client_code.client's FederationClient answers. That client keeps state
between messages (the schema, the balanced training split, the local-only model), while the
engine calls `client_fn` for every message: each actor process keeps its virtual clients by
partition, and the engine gets ONE actor with every CPU, so all messages of a client reach the
process that holds its state (clients then take turns; each may use every core for its numeric
libraries).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flwr.server import History, Server, ServerConfig

from orchestrator.backends import COMPLETED
from orchestrator.backends.container import file_path
from orchestrator.backends.ray_node import RayNode, init_arguments
from orchestrator.backends.toolkit import decode_hyperparameters, split_hyperparameters, to_cmd_args
from orchestrator.federation.roster import Roster
from orchestrator.federation.server import FederationServer
from orchestrator.plan import TrainingJobRequest, client_of

if TYPE_CHECKING:
    from flwr.client import Client
    from flwr.common import Context

    from orchestrator.backends.simulation import SimulationBackend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VirtualJob:
    """What a virtual client needs of its training job request: program arguments, environment, channel folders."""

    arguments: list[str]
    train: str
    validation: str | None
    environment: dict[str, str]  # the request's Environment (the client token: client_code/train.py client_token)

    @classmethod
    def of(cls, request: TrainingJobRequest) -> VirtualJob:
        """The job's arguments as the training toolkit derives them (toolkit.py) and its file:// channels."""
        _, user = split_hyperparameters(decode_hyperparameters(request["HyperParameters"]))
        channels = {
            c["ChannelName"]: str(file_path(c["DataSource"]["S3DataSource"]["S3Uri"]))
            for c in request["InputDataConfig"]
        }
        environment = dict(request.get("Environment", {}))
        return cls(to_cmd_args(user), channels["train"], channels.get("validation"), environment)


_CLIENTS: dict[tuple[str, int], Any] = {}  # in an actor process: (run key, partition) -> its client


def virtual_client(run: str, jobs: list[VirtualJob], context: Context) -> Client:
    """The engine's client_fn: partition `context.node_config["partition-id"]`'s client, built once per process.

    Built as client_code.train builds a job's client (`parse_args`, `federation_client`).
    """
    from client_code import train as program

    partition = int(context.node_config["partition-id"])  # a str under start_simulation
    key = (run, partition)
    if key not in _CLIENTS:
        job = jobs[partition]
        os.environ.update(job.environment)  # as the job's own process gets it; parse_args takes the token out
        args = program.parse_args(job.arguments)
        validation = Path(job.validation) if job.validation else None
        _CLIENTS[key] = program.federation_client(args, Path(job.train), validation).to_client()
    return _CLIENTS[key]


class _VirtualRoster(Roster):
    """The roster, naming each RayActorClientProxy by its partition (the engine's cids are random node ids)."""

    def register(self, client) -> bool:  # noqa: D102 - Roster.register
        client.cid = self.expected[int(client.partition_id)]
        return super().register(client)

    def wait_launched(self) -> None:
        """Block until every job has been launched (`jobs_launched`); FederationAborted if the run is aborted."""
        with self._cv:
            while self.join_deadline() is None:
                self.check_aborted()
                self._cv.wait()


class _PhasedServer(Server):
    """A Flower Server that runs the run's statistics phase and builds its strategy when the engine starts it.

    An error of the rounds is kept in `error` (and the rounds end): start_simulation would log it
    with advice about out-of-memory actors and raise "Simulation crashed." instead.
    """

    def __init__(self, owner: SimulatedServer) -> None:
        super().__init__(client_manager=owner.roster, strategy=None)
        self.owner = owner
        self.error: Exception | None = None

    def fit(self, num_rounds: int, timeout: float | None):  # noqa: D102 - Server.fit
        try:
            self.strategy = self.owner.prepare_rounds()
            return super().fit(num_rounds, timeout)
        except Exception as exc:  # noqa: BLE001 - raised again by SimulatedServer.run
            self.error = exc
            return History(), 0.0


class SimulatedServer(FederationServer):
    """FederationServer whose clients are the Simulation Engine's virtual clients (see the module docstring)."""

    virtual = True

    def __init__(self, backend: SimulationBackend, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.backend = backend
        self.roster = _VirtualRoster(self.roster.expected, self.roster.wait_timeout, self.emit)
        self.node: RayNode | None = None  # while run() runs
        self._running = threading.Event()
        self._done = threading.Event()

    def start(self) -> None:
        """Nothing listens: virtual clients talk to the server in this process."""

    def run(self) -> None:
        """Run the federation in the Simulation Engine once every job is launched; Ray is stopped whole after.

        Ray's node (backends/ray_node.py) stops in its own thread while the run writes its
        folder; no process of it outlives the interpreter. The run's own
        errors (an abort, bad input found in the statistics phase) are raised as they are, not
        as Flower's "simulation crashed" and its advice.
        """
        from flwr.simulation import start_simulation

        self._running.set()
        try:
            self.roster.wait_launched()
            requests = list(self.backend.requests.values())
            self.roster.expected = [client_of(r) for r in requests]  # partition i is the i-th job launched
            jobs = [VirtualJob.of(r) for r in requests]
            run = self.federation.federation
            cpus = os.cpu_count() or 1
            flower = _PhasedServer(self)
            self.node = RayNode(cpus)
            with self.node.running():
                try:
                    start_simulation(
                        client_fn=functools.partial(virtual_client, uuid.uuid4().hex, jobs),
                        num_clients=len(jobs),
                        server=flower,
                        config=ServerConfig(num_rounds=self.rounds_to_run(), round_timeout=run.round_timeout),
                        client_resources={"num_cpus": cpus, "num_gpus": 0.0},  # one actor: see the module docstring
                        ray_init_args=init_arguments(cpus),  # the node is running: start_simulation keeps it
                        keep_initialised=True,
                    )
                finally:
                    _cancel_resource_check()
            if flower.error is not None:
                raise flower.error
        finally:
            self._done.set()
        self.backend.ended(COMPLETED)

    def stop(self, grace: float | None = None) -> None:
        """Wait until the federation has ended (waits raise once the run is aborted); Ray stops meanwhile.

        The round in progress ends first, so no record of Flower's reaches the console after the
        run's server.log is closed. A server that does not end within the backend's completion
        timeout has Ray's processes killed. The node's own thread finishes stopping Ray while
        the run writes its folder; the interpreter waits for it (backends/ray_node.py).
        """
        if not self._running.is_set():
            return
        if not self._done.wait(self.backend.completion_timeout) and self.node is not None:
            log.warning(
                "the Simulation Engine did not end in %g s: killing Ray's processes", self.backend.completion_timeout
            )
            self.node.kill()


def _cancel_resource_check() -> None:
    """Cancel start_simulation's pending resource check (a non-daemon 10 s Timer that Python would wait for)."""
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer) and getattr(thread.function, "__name__", "") == "update_resources":
            thread.cancel()
