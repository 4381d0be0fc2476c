"""Server side of the transport (ADR-1): the only module that talks to Flower's gRPC server.

It serves Flower's bidirectional gRPC service (the one `start_server` uses) on the run's TLS
listener (federation/listener.py, which listens before this module's `flwr` import), and wraps
its `Join` call so that:

* a connection must present one of this run's client tokens in its metadata, or it is refused
  with UNAUTHENTICATED before any message, the model included, is sent to it; every refusal is
  logged and reported (peer, the client name its token claims if any, reason);
* each admitted connection is registered under its client's name, so rounds, failures and
  metrics are reported per named client;
* a token is admitted once per run (Roster.claim): presented again - while its client is
  connected or after it left - it is refused and reported as a possible impostor (the server
  then stops the run: a stolen token, or a real client refused because an impostor got in first);
* a client that misses a round deadline has its stream ended by Flower (DEADLINE_EXCEEDED); the
  roster is told why before the stream closes, so the client is named as out of the run for that;
* a call that ended before it was served (its job killed, or its connection dropped, while the
  call waited at the listener for this service) is never left on the roster, and, if it ended
  before it was registered, gives its token's claim back, so the client's next connection is
  admitted (`_LiveCall`).

A Deployment Engine transport would replace this module and client_code/transport.py only.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable

import grpc
from flwr.proto.transport_pb2_grpc import add_FlowerServiceServicer_to_server
from flwr.server.superlink.fleet.grpc_bidi.flower_service_servicer import FlowerServiceServicer
from flwr.server.superlink.fleet.grpc_bidi.grpc_bridge import GrpcBridgeClosed
from flwr.server.superlink.fleet.grpc_bidi.grpc_client_proxy import GrpcClientProxy

from client_code.transport import TOKEN_HEADER
from orchestrator.federation.listener import Listener
from orchestrator.federation.roster import Roster

log = logging.getLogger(__name__)


DEADLINE_MISSED = "missed the round deadline (round_timeout); it is out of the run"


def impostor_reason(name: str) -> str:
    """The one line a reused token fails the run with."""
    return f"client {name!r} presented its token twice: possible impostor; the run stops"


class _LiveCall:
    """The roster as Flower's Join sees one call: a call that has ended never holds a place, nor a claim unless used.

    Flower registers a connection's proxy, then asks gRPC to unregister it when the call ends; for a
    call that has ended already gRPC says no (`add_callback` returns False), which Flower ignores
    (flwr 1.41 `register_client_proxy`), so the dead client would stay on the roster and a round
    would wait for it forever. A call that waited at the listener (federation/listener.py) while
    its client died or dropped the connection is such a call. `ended` is registered with gRPC
    before the call claims its client's token (`claim`) and before Flower's Join runs, so a call
    gRPC knows has ended claims nothing, and whichever comes later, the call's end or its claim
    or registration, undoes the other.

    A call that ends before the server sent it any instruction (`instructed`) gives its claim
    back, registered or not: its client has not joined in its own eyes either, and connects again
    (client_code/transport.py retries until it has received an instruction), and that connection
    is admitted. A connection dropped while its client waits for the others to join (up to the
    join timeout, minutes on SageMaker) is thus no impostor alarm. Once a call was sent an
    instruction its claim stands: another connection with its token is refused as a possible
    impostor and the run stops. A client whose job has ended is never admitted again
    (Roster.claim), so a stolen token cannot take a dead client's place.
    """

    def __init__(self, roster: Roster, name: str) -> None:
        self.roster, self.name = roster, name
        self._lock = threading.Lock()
        self._ended = self._claimed = self._instructed = False
        self._proxy: GrpcClientProxy | None = None

    def claim(self) -> bool | None:
        """Claim the client's token (Roster.claim): True, False if it was claimed before, None if the call ended."""
        with self._lock:
            if self._ended:
                return None
            self._claimed = self.roster.claim(self.name)
            return self._claimed

    def register(self, proxy: GrpcClientProxy) -> bool:
        """Flower's registration of the call's proxy: refused once the call has ended."""
        with self._lock:
            if self._ended:  # its claim is given back by `ended`
                return False
            if not self.roster.register(proxy):
                return False
            self._proxy = proxy
            return True

    def unregister(self, proxy: GrpcClientProxy) -> None:
        """Flower's unregistration when the call ends (its own callback)."""
        self.roster.unregister(proxy)

    def instructed(self) -> None:
        """The server is sending the call an instruction: from now on its claim stands."""
        with self._lock:
            self._instructed = True

    def ended(self) -> None:
        """The callback gRPC runs at the call's end: close and forget its proxy; if never instructed, its claim."""
        with self._lock:
            self._ended, proxy, claimed, instructed = True, self._proxy, self._claimed, self._instructed
        if proxy is not None:
            proxy.bridge.close()
            self.roster.unregister(proxy)  # before the release: the client's next connection takes its place
        if claimed and not instructed:  # the client has not joined: its next connection is not an impostor's
            self.roster.release(self.name)


class AdmittingServicer(FlowerServiceServicer):
    """Flower's FlowerService, admitting only connections that carry a known client token."""

    def __init__(
        self,
        client_manager: Roster,
        tokens: dict[str, str],
        on_refused: Callable[[str, str | None, str], None],
    ) -> None:
        super().__init__(client_manager)
        self.roster = client_manager
        self._tokens = tokens
        self._on_refused = on_refused

    def _client_name(self, context: grpc.ServicerContext) -> str | None:
        presented = dict(context.invocation_metadata() or ()).get(TOKEN_HEADER, "")
        for name, token in self._tokens.items():
            if presented and hmac.compare_digest(presented.encode(), token.encode()):
                return name
        return None

    def _refuse(self, context: grpc.ServicerContext, claimed: str | None, reason: str, details: str) -> None:
        """Log and report a refused connection, then end it with UNAUTHENTICATED (raises)."""
        log.warning("refused a connection from %s (claimed client: %s): %s", context.peer(), claimed or "none", reason)
        self._on_refused(context.peer(), claimed, reason)
        context.abort(grpc.StatusCode.UNAUTHENTICATED, details)

    def Join(self, request_iterator, context):  # noqa: N802 - gRPC method name
        """Check the client's token, then run Flower's Join under the client's name."""
        name = self._client_name(context)
        if name is None:
            self._refuse(context, None, "no valid client token", "unknown client token for this run")
        call = _LiveCall(self.roster, name)
        # a call that waited at the listener while its client went away ends here, claiming nothing
        claimed = call.claim() if context.add_callback(call.ended) else None
        if claimed is None:
            log.info("a connection of client %r ended before it was served", name)
            return
        if not claimed:
            reason = impostor_reason(name)
            self._refuse(context, name, reason, f"client {name!r} was already admitted in this run")
        named = FlowerServiceServicer(
            call,
            grpc_client_proxy_factory=lambda _cid, bridge: GrpcClientProxy(cid=name, bridge=bridge),
        )
        try:
            for instruction in named.Join(request_iterator, context):
                call.instructed()
                yield instruction
        except GrpcBridgeClosed:  # the stream ended (the server stopped, or the client left): nothing to report
            log.debug("stream of client %r closed", name)
        except Exception:  # Flower's context.abort: a client that did not answer within the round deadline
            if context.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                self.roster.note_departure(name, DEADLINE_MISSED)
            raise


def serve(
    listener: Listener,
    client_manager: Roster,
    tokens: dict[str, str],
    on_refused: Callable[[str, str | None, str], None],
) -> None:
    """Serve Flower's FlowerService on the run's `listener` (federation/listener.py), admitting only `tokens`.

    Calls that arrived while the listener waited for this service proceed now. `on_refused(peer,
    claimed client name or None, reason)` is called for every refused connection (with a claimed
    name, the token was presented a second time: the caller stops the run).
    """
    listener.attach(AdmittingServicer(client_manager, tokens, on_refused), add_FlowerServiceServicer_to_server)
