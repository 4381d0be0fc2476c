"""The run's gRPC server socket, listening (TLS) before Flower's service is ready to answer on it.

A run's client jobs need the server's port to start, and the port exists once something listens.
Flower's service (federation/transport.py) needs `flwr` imported, about half a CPU-second, and the
rest of the server (its strategy, the test set's encoding) about a second more; a local client
job needs seconds to import its own libraries. So the run listens first, with `grpc` alone,
launches its jobs, and only then imports and attaches Flower's service (issue 15: the client
jobs start ~1 s earlier on a 2-core machine, while the server imports). A call that arrives
before `attach` is accepted at once and waits for the service in a handler thread of its own
(`_Deferred`), passing its messages on as bytes; once attached, the service's handler for the
method takes the call over, or the call is refused (UNIMPLEMENTED) if the listener stops
first. It does not wait in `GenericRpcHandler.service`, which gRPC calls in its polling thread:
there every call would wait together and gRPC would handle no other event meanwhile, so a call
whose client died or dropped the connection while it waited would look alive when it is
served (the review of issue 15 saw a client's reconnect refused as an impostor's that way).

The server is built as Flower's `flwr.supercore.grpc.generic_create_grpc_server` (flwr 1.41)
builds it: the same thread pool, stream and message limits and keepalive options, and TLS from
`grpc.ssl_server_credentials` without client certificates; and, as Flower does (`is_port_in_use`),
a test bind first, so a port another process holds is one line of bad input (gRPC itself would
log its own error lines); `grpc.so_reuseport` is off, so the port is never shared either.
"""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc

from client_code.constants import MAX_MESSAGE_LENGTH
from orchestrator.config import host_port
from orchestrator.errors import BadInput
from orchestrator.federation.tls import TlsMaterial

# Flower's defaults (flwr.supercore.grpc.generic_create_grpc_server; the message limit both sides share)
MAX_CONCURRENT_WORKERS = 1000
KEEPALIVE_TIME_MS = 210_000  # 3.5 min: under the idle-connection limits of cloud load balancers (Flower's note)
ATTACH_TIMEOUT = 600.0  # seconds a call waits for the service before it is refused (the run ends long before)

AddServicer = Callable[[object, object], None]  # a generated add_*Servicer_to_server(servicer, server)


# the fix a bind error asks for: the port is taken (EADDRINUSE), or the address is not this machine's
_FIX = {
    True: "choose another [server] port, or stop what uses it",
    False: "check [server] bind_address (--bind-address of fedsage local)",
}


def _where(address: str, port: int) -> str:
    """address:port as a message names it; port 0 is "any free port", not a port."""
    return host_port(address, port) if port else f"{address} (any free port)"


def _bind_problem(address: str, port: int) -> OSError | None:
    """Why a TCP socket cannot bind address:port (EADDRINUSE, EADDRNOTAVAIL, a name that does not resolve), or None."""
    try:
        family = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds: TIME_WAIT is no obstacle
            probe.bind((address, port))
    except OSError as exc:
        return exc
    return None


class _Deferred(grpc.GenericRpcHandler):
    """A generic handler serving the handlers attached later; a call that comes first waits for them.

    Only streaming-request, streaming-response methods (FlowerService.Join) can be waited for: a
    call's method is known before the service, its message types are not, so a waiting call
    passes bytes and the attached handler's (de)serializers are applied once it is known.
    """

    def __init__(self) -> None:
        self._handlers: list[grpc.GenericRpcHandler] = []
        self._settled = threading.Event()  # set by `attach` or `close`

    def add_generic_rpc_handlers(self, handlers: tuple[grpc.GenericRpcHandler, ...]) -> None:
        """What a generated add_*Servicer_to_server calls on its server: keep the service's handlers."""
        self._handlers.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        """The same service, registered by method name: served through the generic handlers above."""

    def attach(self, servicer: object, add: AddServicer) -> None:
        """Install `servicer` (through its generated `add` function) and release the waiting calls."""
        add(servicer, self)
        self._settled.set()

    def close(self) -> None:
        """Release the waiting calls without a service: they are refused."""
        self._settled.set()

    def _attached(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        for handler in self._handlers:
            found = handler.service(details)
            if found is not None:
                return found
        return None

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        """The method's handler once attached (None: UNIMPLEMENTED); before that, one that waits for it."""
        if self._settled.is_set():
            return self._attached(handler_call_details)

        def waiting(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
            self._settled.wait(ATTACH_TIMEOUT)
            handler = self._attached(handler_call_details)
            if handler is None or handler.stream_stream is None:
                context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{handler_call_details.method} is not served here")
            decode, encode = handler.request_deserializer or _same, handler.response_serializer or _same
            for response in handler.stream_stream((decode(request) for request in requests), context):
                yield encode(response)

        return grpc.stream_stream_rpc_method_handler(waiting)


def _same(message: bytes) -> bytes:
    return message


class Listener:
    """One run's gRPC server: `start` listens, `attach` installs the service, `stop` ends both."""

    def __init__(self, bind_address: str, port: int, tls: TlsMaterial) -> None:
        """`port` 0: any free port. Nothing listens until `start`."""
        self.bind_address = bind_address
        self.requested_port = port
        self.tls = tls
        self.port: int | None = None
        self._handler = _Deferred()
        self._server: grpc.Server | None = None

    def start(self) -> int:
        """Listen with TLS on bind_address:port; return the bound port.

        Raises BadInput when the port is taken or the address cannot be bound (nothing is left listening).
        """
        server = grpc.server(
            ThreadPoolExecutor(max_workers=MAX_CONCURRENT_WORKERS),
            handlers=(self._handler,),
            maximum_concurrent_rpcs=MAX_CONCURRENT_WORKERS,
            options=[
                ("grpc.max_concurrent_streams", MAX_CONCURRENT_WORKERS),
                ("grpc.max_send_message_length", MAX_MESSAGE_LENGTH),
                ("grpc.max_receive_message_length", MAX_MESSAGE_LENGTH),
                ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
                ("grpc.http2.max_pings_without_data", 0),
                ("grpc.keepalive_permit_without_calls", 0),
                ("grpc.so_reuseport", 0),
            ],
        )
        credentials = grpc.ssl_server_credentials(
            ((self.tls.server_key, self.tls.server_certificate),),
            root_certificates=self.tls.ca_certificate,
            require_client_auth=False,
        )
        address, port = self.bind_address, self.requested_port
        problem = _bind_problem(address, port)
        if problem:
            server.stop(None)
            fix = _FIX[problem.errno == errno.EADDRINUSE]
            raise BadInput(f"cannot listen on {_where(address, port)} ({problem.strerror or problem}); {fix}")
        try:
            bound = server.add_secure_port(host_port(address, port), credentials)
        except RuntimeError:
            bound = 0
        if bound == 0:  # taken between the test bind and this one
            server.stop(None)
            raise BadInput(f"cannot listen on {_where(address, port)}; {_FIX[bool(port)]}")
        server.start()
        self._server, self.port = server, bound
        return bound

    def attach(self, servicer: object, add: AddServicer) -> None:
        """Serve `servicer` (registered by its generated `add_*Servicer_to_server`); waiting calls proceed."""
        self._handler.attach(servicer, add)

    def stop(self, grace: float | None = None) -> None:
        """Refuse calls still waiting for a service, stop listening and close every stream (idempotent)."""
        self._handler.close()
        if self._server is not None:
            self._server.stop(grace=grace)
