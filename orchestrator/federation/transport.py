"""Server side of the transport (ADR-1): the only module that talks to Flower's gRPC server.

It starts Flower's bidirectional gRPC service (the one `start_server` uses) with TLS, and wraps
its `Join` call so that:

* a connection must present one of this run's client tokens in its metadata, or it is refused
  with UNAUTHENTICATED before any message, the model included, is sent to it; every refusal is
  logged and reported (peer, the client name its token claims if any, reason);
* each admitted connection is registered under its client's name, so rounds, failures and
  metrics are reported per named client;
* a client name already connected cannot join twice.

A Deployment Engine transport would replace this module and client_code/transport.py only.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable

import grpc
from flwr.proto.transport_pb2_grpc import add_FlowerServiceServicer_to_server
from flwr.server.client_manager import ClientManager
from flwr.server.superlink.fleet.grpc_bidi.flower_service_servicer import FlowerServiceServicer
from flwr.server.superlink.fleet.grpc_bidi.grpc_bridge import GrpcBridgeClosed
from flwr.server.superlink.fleet.grpc_bidi.grpc_client_proxy import GrpcClientProxy
from flwr.supercore.grpc import generic_create_grpc_server

from client_code.transport import TOKEN_HEADER
from orchestrator.config import host_port
from orchestrator.errors import BadInput
from orchestrator.federation.tls import TlsMaterial

log = logging.getLogger(__name__)


class AdmittingServicer(FlowerServiceServicer):
    """Flower's FlowerService, admitting only connections that carry a known client token."""

    def __init__(
        self,
        client_manager: ClientManager,
        tokens: dict[str, str],
        on_refused: Callable[[str, str | None, str], None],
    ) -> None:
        super().__init__(client_manager)
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
        if name in self.client_manager.all():
            reason = f"client {name!r} is already connected"
            self._refuse(context, name, reason, reason)
        named = FlowerServiceServicer(
            self.client_manager,
            grpc_client_proxy_factory=lambda _cid, bridge: GrpcClientProxy(cid=name, bridge=bridge),
        )
        try:
            yield from named.Join(request_iterator, context)
        except GrpcBridgeClosed:  # the stream ended (the server stopped, or the client left): nothing to report
            log.debug("stream of client %r closed", name)


def start_grpc_server(
    bind_address: str,
    port: int,
    client_manager: ClientManager,
    tokens: dict[str, str],
    tls: TlsMaterial,
    on_refused: Callable[[str, str | None, str], None],
) -> tuple[grpc.Server, int]:
    """Start the TLS gRPC server on bind_address:port (0 = any free port); return it and its port.

    `on_refused(peer, claimed client name or None, reason)` is called for every refused connection.
    """
    servicer = AdmittingServicer(client_manager, tokens, on_refused)
    try:
        server = generic_create_grpc_server(
            servicer_and_add_fn=(servicer, add_FlowerServiceServicer_to_server),
            server_address=host_port(bind_address, port),
            certificates=tls.for_flower(),
        )
    except SystemExit:  # Flower exits when the port is taken
        raise BadInput(f"port {port} on {bind_address} is already in use; choose another [server] port") from None
    except RuntimeError as exc:
        raise BadInput(f"cannot listen on {bind_address}:{port} ({exc}); check [server] bind_address") from None
    server.start()
    bound = int(server.bound_address.rpartition(":")[2])
    if bound == 0:
        raise BadInput(f"cannot listen on {bind_address}:{port}; check [server] bind_address and port")
    return server, bound
