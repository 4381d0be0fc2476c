"""The Flower server of one run: transport, roster, statistics phase, strategy and Flower's round loop, composed.

`FederationServer.start()` serves Flower's service, admitting only this run's tokens, on the run's
listener (federation/listener.py: it listens since before the jobs' launch); `run()` blocks while it waits for the
clients to join, runs the statistics phase (federation/statistics.py: the schema, each client's
counts), hands its result to `on_phase` (which returns the server's data encoded with the schema),
then runs every round (with `resume`, those after the checkpoint's); `abort()` ends it from another
thread: waits raise, the gRPC server stops, and the connected clients' streams close.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from flwr.common import NDArrays
from flwr.server import Server, ServerConfig
from flwr.server.server import run_fl
from flwr.server.strategy import Strategy

from client_code.tabular import feature_fingerprint
from orchestrator.config import Federation
from orchestrator.federation import strategies
from orchestrator.federation.evaluation import TestSetEvaluator
from orchestrator.federation.history import RoundRecord
from orchestrator.federation.listener import Listener
from orchestrator.federation.resumed import Resumed
from orchestrator.federation.roster import Roster
from orchestrator.federation.statistics import PhaseResult, run_phase
from orchestrator.federation.strategy import ValidatingStrategy
from orchestrator.federation.transport import serve
from orchestrator.run.checkpoint import Checkpoint
from orchestrator.run.events import ClientRefused, FederationEvent
from orchestrator.run.inputs import ServerData
from orchestrator.text import shown_uri

log = logging.getLogger(__name__)


class FederationServer:
    """One run's Flower server."""

    virtual = False  # True when its clients are virtual (federation/simulation.py): nothing listens

    def __init__(
        self,
        federation: Federation,
        data: ServerData,
        tokens: dict[str, str],
        listener: Listener | None,
        emit: Callable[[FederationEvent], None],
        on_round: Callable[[RoundRecord, NDArrays], None],
        on_phase: Callable[[PhaseResult], ServerData],
    ) -> None:
        self.federation = federation
        self.data = data
        self.tokens = tokens
        self.listener = listener  # None for virtual clients (federation/simulation.py): nothing listens
        self.emit = emit
        self.on_round = on_round
        self.on_phase = on_phase
        run = federation.federation
        self.roster = Roster([c.name for c in federation.clients], run.join_timeout, emit)
        self.evaluator: TestSetEvaluator | None = None
        self.strategy: ValidatingStrategy | None = None
        self.resume: Checkpoint | None = None  # continue after this checkpoint's round (run/checkpoint.py)
        self.compromised = False  # a client's token was presented twice: no round's model can be trusted

    def start(self) -> None:
        """Serve the clients on the listener (TLS, token admission); connections waiting for it proceed."""
        assert self.listener is not None
        serve(self.listener, self.roster, self.tokens, on_refused=self._refused)
        log.info("Flower server listening on %s:%d (TLS)", self.listener.bind_address, self.listener.port)

    def _refused(self, peer: str, claimed: str | None, reason: str) -> None:
        """Report a refused connection; one that presented a valid token again stops the run (a possible impostor).

        Without a valid token nothing was disclosed and the run goes on; a valid token presented
        twice means it was stolen (or its client was refused because an impostor came first):
        the run fails with `reason`, whatever min_clients would allow, and `compromised` is set:
        any round may hold the impostor's update, so no partial model is kept (run/saving.py).
        """
        self.emit(ClientRefused(peer, reason, claimed))
        if claimed is not None:  # a second of grace: the refusal reaches the impostor before the streams close
            self.compromised = True
            self.abort(reason, grace=1.0)

    def run(self) -> None:
        """Wait for the clients, run every round, then tell the clients the federation is over."""
        run = self.federation.federation
        flower = Server(client_manager=self.roster, strategy=self.prepare_rounds())
        run_fl(flower, ServerConfig(num_rounds=self.rounds_to_run(), round_timeout=run.round_timeout))

    def prepare_rounds(self) -> Strategy:
        """Wait for the clients, run the statistics phase, and build the strategy of the rounds.

        The ValidatingStrategy is kept as `strategy`; with `resume` the one returned wraps it to
        continue after the checkpoint (federation/resumed.py).

        The simulation backend (federation/simulation.py) calls it from inside Flower's Simulation
        Engine, which owns the round loop there.
        """
        run = self.federation.federation
        self.roster.wait_for_all(self.federation.min_clients())
        proxies = dict(self.roster.all())
        channels = {c.name: {ch: shown_uri(uri) for ch, uri in c.channels.items()} for c in self.federation.clients}
        test_counts = self.data.label_counts(self.federation)
        phase = run_phase(proxies, self.data.schema, self.federation.data, run.round_timeout, test_counts, channels)
        self.roster.check_aborted()
        self.data = data = self.on_phase(phase)
        assert data.test is not None and data.schema is not None
        model = self.federation.model
        family, hp, seed = model.family, model.hyperparameters(), run.seed
        self.federation.check_task(data.schema)  # BadInput: a schema (file or phase) the model cannot learn
        prior = (phase.raw_counts, phase.trained_counts) if phase.trained_counts else None
        self.evaluator = TestSetEvaluator(data.test, data.schema, family, hp, prior, seed)
        self.strategy = strategies.build(
            self.federation,
            shapes=family.parameter_shapes(hp, data.schema),
            initial=family.initial_parameters(hp, data.schema, seed),
            feature_fingerprint=feature_fingerprint(data.test.feature_names),
            evaluator=self.evaluator,
            round_config={"prior": json.dumps(phase.prior())},
            roster=self.roster,
            on_round=self.on_round,
            emit=self.emit,
            declared_examples=phase.declared_examples(),
        )
        return Resumed(self.strategy, self.resume) if self.resume else self.strategy

    def rounds_to_run(self) -> int:
        """How many rounds Flower's loop runs: all of them, or with `resume` those after the checkpoint's."""
        return self.federation.federation.rounds - (self.resume.round if self.resume else 0)

    def final_parameters(self) -> NDArrays:
        """The global parameters after the last round."""
        if self.strategy is None or self.strategy.latest is None:
            raise RuntimeError("no round has been evaluated")
        return self.strategy.latest

    def abort(self, reason: str, grace: float | None = None) -> None:
        """End the run from another thread: waits raise, streams close (after `grace` seconds, if given)."""
        self.roster.abort(reason)
        self.stop(grace)

    def stop(self, grace: float | None = None) -> None:
        """Stop listening and close every client stream, at once or after `grace` seconds (idempotent)."""
        if self.listener is not None:
            self.listener.stop(grace)
