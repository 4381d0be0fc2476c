"""Real federations on loopback with some (or all) clients as threads of the test process.

`InProcessClients` wraps a run's backend: the clients it is given run as threads here instead of
processes - a real FederationClient (or a subclass: an attacker) over the real transport (TLS, the
job's token from its request's Environment) on 127.0.0.1 - so a test can change what a client
sends, and a federation of many strategies stays quick. The other clients run as the backend runs
them. `run_with(run, ...)` re-validates the run's config with changed sections (strategy, privacy)
and returns a new FederationRun on the same folder.
"""

from __future__ import annotations

import base64
import threading

import psutil

from client_code import models, transport
from client_code.client import Channel, FederationClient
from client_code.tabular import read_channel
from orchestrator.backends import COMPLETED, FAILED, IN_PROGRESS, STOPPED, JobStatus
from orchestrator.backends.container import file_path
from orchestrator.backends.toolkit import decode_hyperparameters
from orchestrator.config import Federation
from orchestrator.plan import client_of
from orchestrator.run.lifecycle import FederationRun


def client_for(request, cls: type[FederationClient] = FederationClient) -> FederationClient:
    """The client a job request describes, built in this process: its channels, model and balancing."""
    hp = decode_hyperparameters(request["HyperParameters"])
    channels = {}
    for channel in request["InputDataConfig"]:
        folder = file_path(channel["DataSource"]["S3DataSource"]["S3Uri"])
        frame, info = read_channel(folder)
        channels[channel["ChannelName"]] = Channel(channel["ChannelName"], frame, info)

    kind = hp.get("model", models.DEFAULT)
    fields = models.get(kind).hyperparameters.model_fields
    own = {k: str(v) for k, v in hp.items() if k.replace("-", "_") in fields}
    family_hp = models.get(kind).hyperparameters.from_arguments(own)
    return cls(
        channels["train"], channels.get("validation"), kind, family_hp, hp["balance"], hp["smote-ratio"], hp["seed"]
    )


def join(client: FederationClient, request, token: str | None = None, connect_timeout: float = 30) -> None:
    """Take part in the federation of `request` as `client` (with the request's token unless another is given)."""
    hp = decode_hyperparameters(request["HyperParameters"])
    transport.run_client(
        client,
        hp["server-address"],
        token or request["Environment"]["FEDSAGE_CLIENT_TOKEN"],
        base64.b64decode(hp["root-certificate"]),
        connect_timeout=connect_timeout,
        has_joined=lambda: client.instructions_received > 0,
    )


class InProcessClients:
    """A backend whose listed clients run as threads of this process (see the module docstring).

    `clients` maps a client name to the FederationClient class it runs (an attacker subclasses
    it); `None` runs every client in-process as a plain FederationClient.
    """

    def __init__(self, backend, clients: dict[str, type[FederationClient]] | None = None) -> None:
        self.backend = backend
        self.clients = clients
        self.requests: dict[str, dict] = {}  # every request launched, by client name (tokens included)
        self._threads: dict[str, threading.Thread] = {}
        self._errors: dict[str, BaseException] = {}
        self._stopped: set[str] = set()

    def __getattr__(self, name):  # name, timings, placement, check_inputs, processes: the wrapped backend's
        return getattr(self.backend, name)

    def _in_process(self, client: str) -> bool:
        return self.clients is None or client in self.clients

    def launch(self, request) -> None:
        client = client_of(request)
        self.requests[client] = request
        if not self._in_process(client):
            self.backend.launch(request)
            return
        cls = (self.clients or {}).get(client, FederationClient)

        def run() -> None:
            try:
                join(client_for(request, cls), request)
            except BaseException as exc:  # noqa: BLE001 - reported by poll
                self._errors[client] = exc

        thread = threading.Thread(target=run, name=f"client-{client}", daemon=True)
        self._threads[request["TrainingJobName"]] = thread
        thread.start()

    def poll(self, name):
        thread = self._threads.get(name)
        if thread is None:
            return self.backend.poll(name)
        client = next(c for c, r in self.requests.items() if r["TrainingJobName"] == name)
        if thread.is_alive():
            return JobStatus(name, IN_PROGRESS, "Training")
        if name in self._stopped:
            return JobStatus(name, STOPPED, "Stopped")
        error = self._errors.get(client)
        return (
            JobStatus(name, FAILED, "Failed", f"{type(error).__name__}: {error}")
            if error
            else JobStatus(name, COMPLETED, "Completed")
        )

    def stop(self, name):
        if name not in self._threads:
            return self.backend.stop(name)
        self._stopped.add(name)  # the thread ends with its stream, when the server stops
        return self._threads[name].is_alive()

    def logs(self, name, lines=20):
        return [] if name in self._threads else self.backend.logs(name, lines)

    def join_threads(self, timeout: float = 30) -> None:
        """Wait for every in-process client to finish."""
        for thread in self._threads.values():
            thread.join(timeout)


def run_with(run: FederationRun, backend=None, observer=None, **sections) -> FederationRun:
    """The same run with some config sections replaced (e.g. federation={...}, strategy={...}, privacy={...}).

    A section given as a dict updates the run's section of that name; the whole config is validated again.
    """
    data = run.federation.model_dump()
    for name, values in sections.items():
        data[name] = {**(data.get(name) or {}), **values} if isinstance(values, dict) else values
    federation = Federation.model_validate(data)
    return FederationRun(federation, run.inputs, backend or run.backend, run.folder, observer or run.observer)


def ctrl_c_after(round_number: int):
    """A run observer raising KeyboardInterrupt once round `round_number` is recorded (once, as a user presses it)."""
    from orchestrator.run.events import RoundFinished

    pressed = []

    def observer(event):
        if isinstance(event, RoundFinished) and event.record.round >= round_number and not pressed:
            pressed.append(event.record.round)
            raise KeyboardInterrupt

    return observer


def job_processes(pid: int) -> list[psutil.Process]:
    """The training-job processes below the `fedsage` process `pid` (not its figure plotter, run/plotter.py)."""
    jobs = []
    for process in psutil.Process(pid).children(recursive=True):
        try:
            if "orchestrator.run.plotter" not in process.cmdline():
                jobs.append(process)
        except psutil.Error:  # ended meanwhile
            pass
    return jobs
