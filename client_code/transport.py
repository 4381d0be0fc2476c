"""Client side of the transport (ADR-1): the only module that talks to Flower's networking.

fedsage uses Flower's gRPC bidirectional transport (`start_client`). This module adds what a
batch job needs on top of it:

* TLS with the run's root certificate;
* the run's client token, sent as gRPC metadata so the server can refuse unknown clients before
  they receive anything;
* retries with exponential backoff until the connect timeout, because a training job may start
  before the server listens (the compat transport does not retry by itself); tenacity runs them.

A Deployment Engine transport would replace this module and its server-side twin only.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable

import grpc
from flwr.client import NumPyClient
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_before_delay,
    wait_exponential,
)

log = logging.getLogger(__name__)

TOKEN_HEADER = "x-fedsage-client-token"
_RETRYABLE = (grpc.StatusCode.UNAVAILABLE,)
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 10.0  # seconds: the first wait between connection attempts, then doubling to this


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


class _CallDetails(
    collections.namedtuple(
        "_CallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,
):
    """Call details with the token added to the metadata."""


class _TokenInterceptor(grpc.StreamStreamClientInterceptor):
    """Attach the client token to the Join stream the Flower client opens."""

    def __init__(self, token: str) -> None:
        self._token = token

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        """Add the token header, then continue the call unchanged."""
        metadata = [*(client_call_details.metadata or ()), (TOKEN_HEADER, self._token)]
        details = _CallDetails(
            client_call_details.method,
            client_call_details.timeout,
            metadata,
            client_call_details.credentials,
            client_call_details.wait_for_ready,
            client_call_details.compression,
        )
        return continuation(details, request_iterator)


_state = threading.local()


def _install_token_hook() -> None:
    """Make Flower's compat gRPC connection open its channel with the token interceptor.

    Flower's compat `grpc_connection` builds its channel through `create_channel`, which accepts
    interceptors but is not given any. The hook wraps that call once per process and adds the
    token of the calling thread's `run_client`, if any. The flwr version range in
    requirements.txt and pyproject.toml pins the module layout it relies on.
    """
    from flwr.compat.client.grpc_client import connection

    if getattr(connection.create_channel, "fedsage_token_hook", False):
        return
    original = connection.create_channel

    def create_channel(**kwargs):
        token = getattr(_state, "token", None)
        if token is not None:
            kwargs["interceptors"] = [*(kwargs.get("interceptors") or ()), _TokenInterceptor(token)]
        return original(**kwargs)

    create_channel.fedsage_token_hook = True
    connection.create_channel = create_channel


def run_client(
    client: NumPyClient,
    server_address: str,
    token: str,
    root_certificate: bytes,
    connect_timeout: float,
    has_joined: Callable[[], bool],
) -> None:
    """Take part in the federation until the server ends it.

    Connection attempts that fail with UNAVAILABLE are retried by tenacity with exponential
    backoff (0.5 s doubling to 10 s) as long as the next attempt would start within
    `connect_timeout` seconds and `has_joined()` says the server has not sent any instruction
    yet. Once the client has joined, a lost connection is final: Flower's gRPC transport cannot
    resume a round. Raises ServerRefused (UNAUTHENTICATED: unknown or reused token) or
    ServerUnreachable (timeout, another status, or the connection lost after joining).
    """
    from flwr.client import start_client

    _install_token_hook()

    def attempt() -> None:
        _state.token = token
        try:
            start_client(server_address=server_address, client=client.to_client(), root_certificates=root_certificate)
        except grpc.RpcError as error:
            code, details = error.code(), error.details()
            if code == grpc.StatusCode.UNAUTHENTICATED:
                raise ServerRefused(f"server at {server_address} refused this client: {details}") from None
            if has_joined():
                raise ServerUnreachable(
                    f"lost the connection to the server at {server_address} ({code.name}: {details})"
                ) from None
            raise _NotJoined(code, details) from None
        finally:
            _state.token = None

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
