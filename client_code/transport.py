"""Client side of the transport (ADR-1): the only module that talks to Flower's networking.

fedsage uses Flower's gRPC bidirectional transport (the compat `FlowerService.Join` stream that
`flwr.server.start_server` serves). This module drives that stream itself, as
`flwr.compat.client.app.start_client` + `flwr.compat.client.grpc_client.connection.grpc_connection`
do in flwr 1.41, without their import chain (which loads Flower's SQL, FastAPI and CLI modules,
0.5-1 s per client process, issue 15):

* one `Join` stream per connection: each `ServerMessage` is decoded with `flwr.common.serde`,
  answered through `flwr.compat.client.client.maybe_call_*` (the calls Flower's legacy message
  handler makes), and the `ClientMessage` reply is queued on the request stream; a `ReconnectIns`
  is answered with `DisconnectRes` and ends the federation for this client (flwr's
  `handle_control_message`: reason RECONNECT; fedsage's server never asks a client back);
* TLS with the run's root certificate, messages up to 512 MB (start_client's default);
* the run's client token, sent as gRPC call metadata so the server can refuse unknown clients
  before they receive anything;
* retries with exponential backoff until the connect timeout, because a training job may start
  before the server listens (the compat transport does not retry by itself); tenacity runs them.

It relies on flwr's compat proto path (`flwr.proto.transport_pb2[_grpc]`, `flwr.common.serde`,
`flwr.compat.client.client`), which the pin `flwr>=1.41,<1.42` (pyproject.toml) holds in place;
tests/test_transport.py and the federation tests exercise it against Flower's own server.
A Deployment Engine transport would replace this module and its server-side twin only.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import grpc
from flwr.common import serde
from flwr.compat.client.client import (
    maybe_call_evaluate,
    maybe_call_fit,
    maybe_call_get_parameters,
    maybe_call_get_properties,
)
from flwr.proto.transport_pb2 import ClientMessage, Reason, ServerMessage
from flwr.proto.transport_pb2_grpc import FlowerServiceStub
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_before_delay,
    wait_exponential,
)

from .constants import MAX_MESSAGE_LENGTH  # start_client's grpc_max_message_length

if TYPE_CHECKING:
    from flwr.client import Client, NumPyClient

log = logging.getLogger(__name__)

TOKEN_HEADER = "x-fedsage-client-token"
_RETRYABLE = (grpc.StatusCode.UNAVAILABLE,)
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 10.0  # seconds: the first wait between connection attempts, then doubling to this
_FLUSH_TIMEOUT = 5.0  # seconds at most to wait for the Reconnect's reply to leave before the channel closes

# ServerMessage field -> (proto -> *Ins, the Client call, *Res -> proto, ClientMessage field), as in
# flwr.compat.client.grpc_client.connection.receive/send and message_handler.handle_legacy_message_from_msgtype
_INSTRUCTIONS = {
    "get_properties_ins": (
        serde.get_properties_ins_from_proto,
        maybe_call_get_properties,
        serde.get_properties_res_to_proto,
        "get_properties_res",
    ),
    "get_parameters_ins": (
        serde.get_parameters_ins_from_proto,
        maybe_call_get_parameters,
        serde.get_parameters_res_to_proto,
        "get_parameters_res",
    ),
    "fit_ins": (serde.fit_ins_from_proto, maybe_call_fit, serde.fit_res_to_proto, "fit_res"),
    "evaluate_ins": (serde.evaluate_ins_from_proto, maybe_call_evaluate, serde.evaluate_res_to_proto, "evaluate_res"),
}


class ServerRefused(RuntimeError):
    """The server rejected this client (unknown or reused token)."""


class ServerUnreachable(RuntimeError):
    """No connection to the server before the connect timeout, or the connection was lost."""


class _NotJoined(Exception):
    """A connection attempt that failed before the server sent anything: retried while UNAVAILABLE."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code


def _not_retryable(retry_state: RetryCallState) -> bool:
    """Tenacity stop condition: the last attempt failed with a status that waiting will not fix."""
    error = retry_state.outcome.exception() if retry_state.outcome else None
    return not (isinstance(error, _NotJoined) and error.code in _RETRYABLE)


def _reply(client: Client, message: ServerMessage) -> ClientMessage:
    """The client's answer to one instruction (get_properties, get_parameters, fit or evaluate).

    Raises ValueError for an instruction Flower's compat client does not know either; whatever
    the client raises propagates (Flower's grpc-bidi client crashes the process the same way).
    """
    field = message.WhichOneof("msg")
    if field not in _INSTRUCTIONS:
        raise ValueError(f"unsupported instruction {field!r} in the server's message")
    from_proto, call, to_proto, reply_field = _INSTRUCTIONS[field]
    result = call(client, from_proto(getattr(message, field)))
    return ClientMessage(**{reply_field: to_proto(result)})


def _session(client: Client, server_address: str, token: str, root_certificate: bytes) -> bool:
    """One connection: answer the server's instructions on a Join stream until it says Reconnect.

    Returns True after the Reconnect was acknowledged, False if the server closed the stream
    without one. Raises grpc.RpcError for a refused or failed stream.
    """
    channel = grpc.secure_channel(
        server_address,
        grpc.ssl_channel_credentials(root_certificate),
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_LENGTH),
            ("grpc.max_receive_message_length", MAX_MESSAGE_LENGTH),
        ],
    )
    outbox: queue.Queue[ClientMessage | None] = queue.Queue(maxsize=1)  # one reply in flight, as in grpc_connection
    # gRPC asked for the request after the last one (every reply has been sent), or the call is over
    sent = threading.Event()

    def requests() -> Iterator[ClientMessage]:
        yield from iter(outbox.get, None)
        sent.set()

    try:
        stream = FlowerServiceStub(channel).Join(requests(), metadata=((TOKEN_HEADER, token),))
        stream.add_done_callback(lambda _: sent.set())  # a server that ends the call asks for nothing more
        for message in stream:
            if message.WhichOneof("msg") == "reconnect_ins":
                outbox.put(ClientMessage(disconnect_res=ClientMessage.DisconnectRes(reason=Reason.RECONNECT)))
                outbox.put(None)  # half-close the stream after the reply
                sent.wait(_FLUSH_TIMEOUT)  # closing the channel earlier could cancel the reply in flight
                return True
            outbox.put(_reply(client, message))
        return False
    finally:
        with contextlib.suppress(queue.Full):  # end the request stream, so gRPC's sending thread returns
            outbox.put_nowait(None)
        channel.close()


def run_client(
    client: NumPyClient,
    server_address: str,
    token: str,
    root_certificate: bytes,
    connect_timeout: float,
    has_joined: Callable[[], bool],
) -> None:
    """Take part in the federation until the server ends it (its Reconnect instruction).

    `server_address` is HOST:PORT, `root_certificate` the PEM bytes of the run's CA. Connection
    attempts that fail with UNAVAILABLE are retried by tenacity with exponential backoff (0.5 s
    doubling to 10 s) as long as the next attempt would start within `connect_timeout` seconds and
    `has_joined()` says the server has not sent any instruction yet. Once the client has joined, a
    lost connection is final: Flower's gRPC transport cannot resume a round. Raises ServerRefused
    (UNAUTHENTICATED: unknown or reused token) or ServerUnreachable (timeout, another status, the
    connection lost after joining, or the stream closed without the server ending the federation).
    """
    flower_client = client.to_client()

    def attempt() -> None:
        try:
            ended = _session(flower_client, server_address, token, root_certificate)
        except grpc.RpcError as error:
            code, details = error.code(), error.details()
            if code == grpc.StatusCode.UNAUTHENTICATED:
                raise ServerRefused(f"server at {server_address} refused this client: {details}") from None
            if has_joined():
                raise ServerUnreachable(
                    f"lost the connection to the server at {server_address} ({code.name}: {details})"
                ) from None
            raise _NotJoined(code, details) from None
        if not ended:
            raise ServerUnreachable(
                f"the server at {server_address} closed the connection before ending the federation"
            )
        log.info("the server at %s ended the federation", server_address)

    def log_wait(retry_state: RetryCallState) -> None:
        code = retry_state.outcome.exception().code.name
        log.info("server not reachable yet (%s); retrying in %.1f s", code, retry_state.upcoming_sleep)

    def give_up(retry_state: RetryCallState) -> None:
        raise ServerUnreachable(
            f"could not reach the server at {server_address} within {connect_timeout:g} s "
            f"after {retry_state.attempt_number} attempts ({retry_state.outcome.exception()})"
        )

    retrying = Retrying(
        retry=retry_if_exception_type(_NotJoined),
        wait=wait_exponential(multiplier=BACKOFF_FIRST, max=BACKOFF_MAX),
        stop=stop_before_delay(connect_timeout) | _not_retryable,
        before_sleep=log_wait,
        retry_error_callback=give_up,
    )
    retrying(attempt)
