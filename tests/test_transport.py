"""Only the clients a run launched are admitted: the token check happens before any message."""

import contextlib
import logging
import re
import threading

import numpy as np
import pytest
from conftest import free_port
from flwr.client import NumPyClient

from client_code import transport
from orchestrator.errors import BadInput
from orchestrator.federation import tls
from orchestrator.federation.listener import Listener
from orchestrator.federation.roster import Roster
from orchestrator.federation.transport import AdmittingServicer, _LiveCall, serve
from orchestrator.run.events import ClientJoined, ClientRefused


class _Recorder(NumPyClient):
    def __init__(self):
        self.calls = 0

    def get_parameters(self, config):
        self.calls += 1
        return [np.zeros(1)]


@pytest.fixture
def listening():
    """A run's listener on a free port, no service attached yet: (roster, events, material, listener, port)."""
    events = []
    roster = Roster(["hospital-a"], wait_timeout=10, emit=events.append)
    material = tls.generate(["127.0.0.1"])
    listener = Listener("127.0.0.1", 0, material)
    port = listener.start()
    yield roster, events, material, listener, port
    listener.stop(None)


def _serve(roster, events, listener):
    on_refused = lambda peer, claimed, reason: events.append(ClientRefused(peer, reason, claimed))  # noqa: E731
    serve(listener, roster, {"hospital-a": "right-token"}, on_refused=on_refused)


@pytest.fixture
def server(listening):
    roster, events, material, listener, port = listening
    _serve(roster, events, listener)
    return roster, events, material, port


def _connect(port, material, token, client):
    transport.run_client(
        client,
        f"127.0.0.1:{port}",
        token,
        material.ca_certificate,
        connect_timeout=5,
        has_joined=lambda: client.calls > 0,
    )


def test_a_client_with_a_wrong_token_is_refused_before_it_receives_anything(server):
    roster, events, material, port = server
    client = _Recorder()
    with pytest.raises(transport.ServerRefused, match="unknown client token for this run"):
        _connect(port, material, "wrong-token", client)
    assert client.calls == 0
    assert roster.num_available() == 0
    assert [type(e) for e in events] == [ClientRefused]


def test_a_client_with_its_token_is_registered_under_its_name(server):
    roster, events, material, port = server
    outcome = []

    def connect():  # the server goes away when the test ends; the client then gives up
        try:
            _connect(port, material, "right-token", _Recorder())
        except transport.ServerUnreachable as exc:
            outcome.append(exc)

    threading.Thread(target=connect, daemon=True).start()
    assert roster.wait_for(1, timeout=10)
    assert list(roster.all()) == ["hospital-a"]
    assert ClientJoined("hospital-a", 1, 1) in events


def test_a_client_that_does_not_trust_the_server_certificate_cannot_connect(server):
    _, _, _, port = server
    other_ca = tls.generate(["127.0.0.1"]).ca_certificate
    with pytest.raises(transport.ServerUnreachable):
        transport.run_client(
            _Recorder(), f"127.0.0.1:{port}", "right-token", other_ca, connect_timeout=1, has_joined=lambda: False
        )


def test_an_unreachable_server_is_retried_until_the_connect_timeout(caplog):
    caplog.set_level(logging.INFO, logger=transport.__name__)
    port = free_port()
    with pytest.raises(transport.ServerUnreachable, match=r"within 2 s after [2-9] attempts"):
        transport.run_client(
            _Recorder(),
            f"127.0.0.1:{port}",
            "t",
            tls.generate(["127.0.0.1"]).ca_certificate,
            connect_timeout=2,
            has_joined=lambda: False,
        )
    # exponential backoff: 0.5 s doubling to 10 s (how many waits fit in 2 s depends on the machine);
    # only this thread's: an earlier test's client may still be retrying in the background
    mine = "\n".join(r.getMessage() for r in caplog.records if r.thread == threading.get_ident())
    waits = [float(wait) for wait in re.findall(r"retrying in ([\d.]+) s", mine)]
    assert waits and waits == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0][: len(waits)]


def test_every_refused_connection_is_logged_with_time_claimed_name_and_reason(server, caplog):
    """Issue 10, item 13: the name a connection's token claims, the time and the reason, in the log and the event."""
    import datetime as dt

    caplog.set_level(logging.WARNING, logger="orchestrator.federation.transport")
    roster, events, material, port = server

    def connect():
        with contextlib.suppress(transport.ServerUnreachable):  # the server goes away when the test ends
            _connect(port, material, "right-token", _Recorder())

    threading.Thread(target=connect, daemon=True).start()
    assert roster.wait_for(1, timeout=10)
    with pytest.raises(transport.ServerRefused, match="client 'hospital-a' was already admitted in this run"):
        _connect(port, material, "right-token", _Recorder())
    with pytest.raises(transport.ServerRefused, match="unknown client token"):
        _connect(port, material, "stolen?", _Recorder())
    refused = [e for e in events if isinstance(e, ClientRefused)]
    assert [(e.claimed_name, e.reason) for e in refused] == [
        ("hospital-a", "client 'hospital-a' presented its token twice: possible impostor; the run stops"),
        (None, "no valid client token"),
    ]
    assert all(dt.datetime.fromisoformat(e.time).tzinfo == dt.UTC and "127.0.0.1" in e.peer for e in refused)
    logged = [r.getMessage() for r in caplog.records if r.name == "orchestrator.federation.transport"]
    assert re.search(
        r"refused a connection from ipv4:127\.0\.0\.1:\d+ \(claimed client: hospital-a\): client 'hospital-a' "
        r"presented its token twice",
        logged[0],
    )
    assert re.search(r"\(claimed client: none\): no valid client token", logged[1])


def test_a_name_that_left_is_never_admitted_again(server):
    """Issue 10, item 2: a token is admitted once per run; after its client left, it is an impostor's."""
    roster, events, material, port = server
    assert roster.claim("hospital-a")  # as if hospital-a had joined and left (its job died)
    client = _Recorder()
    with pytest.raises(transport.ServerRefused, match="already admitted in this run"):
        _connect(port, material, "right-token", client)
    assert client.calls == 0 and roster.num_available() == 0
    (refused,) = events
    assert refused.claimed_name == "hospital-a" and "possible impostor" in refused.reason


def _client_until_stopped(material, port) -> threading.Thread:
    """hospital-a's client in a thread; once its stream ends (the test stops the listener) it gives up, no retry."""

    def connect():
        with contextlib.suppress(transport.ServerUnreachable):
            transport.run_client(
                _Recorder(), f"127.0.0.1:{port}", "right-token", material.ca_certificate, 5, has_joined=lambda: True
            )

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    return thread


def test_a_client_that_connects_before_the_service_is_attached_waits_and_then_joins(listening):
    """Issue 15: a run listens, launches its jobs, then imports Flower; an early client is not turned away."""
    roster, events, material, listener, port = listening
    thread = _client_until_stopped(material, port)
    assert not roster.wait_for(1, timeout=1.0)  # connected or connecting, but nothing answers it yet
    _serve(roster, events, listener)
    assert roster.wait_for(1, timeout=10)
    assert list(roster.all()) == ["hospital-a"] and ClientJoined("hospital-a", 1, 1) in events
    listener.stop(None)
    thread.join(timeout=15)
    assert not thread.is_alive()  # no client of this test is left to dial a later test's port


def test_a_client_whose_connection_dropped_at_the_listener_is_admitted_on_its_reconnect(listening):
    """A job killed, or a connection dropped, while its call waited at the listener (reviews of issue 15).

    The ended call is served nothing and left off the roster (Flower registers a call that has
    ended all the same, and a round would wait on it forever), and claims no token: the client's
    new connection, waiting beside it, is admitted, not refused as an impostor. It used to be
    refused in 5 of 8 tries, because the calls waited in gRPC's polling thread, where gRPC could
    not see the first one end.
    """
    import queue

    import grpc
    from flwr.proto.transport_pb2_grpc import FlowerServiceStub

    roster, events, material, listener, port = listening
    channel = grpc.secure_channel(f"127.0.0.1:{port}", grpc.ssl_channel_credentials(material.ca_certificate))
    requests = queue.Queue()
    token = ((transport.TOKEN_HEADER, "right-token"),)
    call = FlowerServiceStub(channel).Join(iter(requests.get, None), metadata=token)
    threading.Event().wait(1.0)  # its call reaches the listener and waits there
    call.cancel()  # ... and its client goes away
    channel.close()
    thread = _client_until_stopped(material, port)  # the client's reconnect
    threading.Event().wait(1.0)  # waits at the listener too
    _serve(roster, events, listener)
    assert roster.wait_for(1, timeout=10)
    threading.Event().wait(1.0)  # had the ended call been admitted, it would be refused or registered by now
    assert list(roster.all()) == ["hospital-a"] and roster.num_available() == 1
    assert [type(event).__name__ for event in events] == ["ClientJoined"]  # no refusal, no second join
    listener.stop(None)
    thread.join(timeout=15)
    assert not thread.is_alive()  # no client of this test is left to dial a later test's port


def test_a_call_that_ends_before_it_was_sent_anything_gives_its_claim_back_and_one_instructed_keeps_it():
    """transport._LiveCall: whichever comes first, the call's end or Flower's registration, the other undoes it."""
    from flwr.server.superlink.fleet.grpc_bidi.grpc_bridge import GrpcBridge
    from flwr.server.superlink.fleet.grpc_bidi.grpc_client_proxy import GrpcClientProxy

    events = []
    roster = Roster(["hospital-a"], wait_timeout=10, emit=events.append)
    ended_first = _LiveCall(roster, "hospital-a")
    assert ended_first.claim()
    ended_first.ended()  # gRPC saw the end before Flower registered the call
    assert not ended_first.register(GrpcClientProxy(cid="hospital-a", bridge=GrpcBridge()))
    assert roster.num_available() == 0 and roster.claim("hospital-a")  # never admitted: its claim was given back
    roster.release("hospital-a")

    waiting = _LiveCall(roster, "hospital-a")  # joined, waiting for the others: its connection drops
    assert waiting.claim() and waiting.register(GrpcClientProxy(cid="hospital-a", bridge=GrpcBridge()))
    waiting.ended()
    assert roster.num_available() == 0 and roster.claim("hospital-a")  # never sent anything: it may come back
    roster.release("hospital-a")

    instructed = _LiveCall(roster, "hospital-a")
    assert instructed.claim() and instructed.register(GrpcClientProxy(cid="hospital-a", bridge=GrpcBridge()))
    instructed.instructed()  # in the federation now: a lost connection is final
    instructed.ended()
    assert roster.num_available() == 0 and not roster.claim("hospital-a")
    assert [type(e).__name__ for e in events] == ["ClientJoined", "ClientLeft"] * 2


def test_a_client_whose_job_ended_is_never_admitted_again():
    """A stolen token cannot take the place of a client whose job died before it was sent anything."""
    roster = Roster(["hospital-a"], wait_timeout=10, emit=lambda event: None)
    roster.mark_gone("hospital-a")
    assert not roster.claim("hospital-a")


def test_a_client_whose_connection_drops_while_it_waits_for_the_others_is_admitted_again(server):
    """Review of issue 15: joined, not yet sent anything (the others were still starting), its connection dropped.

    Its client retries, as it has not joined in its own eyes; the retry was refused as an impostor's
    and the run stopped. The join phase lasts minutes on SageMaker.
    """
    import queue

    import grpc
    from flwr.proto.transport_pb2_grpc import FlowerServiceStub

    roster, events, material, port = server
    channel = grpc.secure_channel(f"127.0.0.1:{port}", grpc.ssl_channel_credentials(material.ca_certificate))
    requests = queue.Queue()
    call = FlowerServiceStub(channel).Join(
        iter(requests.get, None), metadata=((transport.TOKEN_HEADER, "right-token"),)
    )
    assert roster.wait_for(1, timeout=10)  # joined; waiting for the others
    call.cancel()  # the connection drops
    channel.close()
    for _ in range(200):
        if roster.num_available() == 0:
            break
        threading.Event().wait(0.05)
    thread = _client_until_stopped(material, port)  # its client connects again
    assert roster.wait_for(1, timeout=10)
    assert [type(event).__name__ for event in events] == ["ClientJoined", "ClientLeft", "ClientJoined"]
    roster.abort("the test is over")
    for proxy in list(roster.all().values()):
        proxy.bridge.close()
    thread.join(timeout=15)
    assert not thread.is_alive()


class _HandedOver:
    """The grpc.ServicerContext of a call handed over by the listener: `add_callback` runs `meanwhile` first.

    `ended`: the call ended while it waited (gRPC then refuses callbacks). `meanwhile` stands for the
    client's new connection, served in another thread at that instant.
    """

    def __init__(self, token, ended, meanwhile):
        self.token, self.is_ended, self.meanwhile = token, ended, meanwhile

    def invocation_metadata(self):
        return ((transport.TOKEN_HEADER, self.token),)

    def peer(self):
        return "ipv4:127.0.0.1:50000"

    def add_callback(self, callback):
        self.meanwhile()
        return not self.is_ended

    def abort(self, code, details):
        raise RuntimeError(details)


def test_a_call_gone_at_the_listener_claims_nothing_so_its_clients_new_connection_beside_it_is_admitted():
    """Review of issue 15: a connection dropped while it waited, and the client's reconnect, handed over together.

    The dropped call used to claim the token before learning it had ended; the reconnect,
    claiming in that instant, was refused as an impostor and the run stopped (5 of 8 tries).
    """
    roster = Roster(["hospital-a"], wait_timeout=10, emit=lambda event: None)
    refused = []
    servicer = AdmittingServicer(roster, {"hospital-a": "right-token"}, lambda *r: refused.append(r))
    reconnect = []
    dead = _HandedOver("right-token", ended=True, meanwhile=lambda: reconnect.append(roster.claim("hospital-a")))
    assert list(servicer.Join(iter(()), dead)) == []  # served nothing, refused nothing
    assert reconnect == [True] and refused == []  # the reconnect claimed the token while the dead call was served
    assert not roster.claim("hospital-a")  # and keeps it: the dead call gave back nothing of it


def test_a_call_that_ends_between_its_callback_and_its_claim_claims_nothing():
    roster = Roster(["hospital-a"], wait_timeout=10, emit=lambda event: None)
    call = _LiveCall(roster, "hospital-a")
    call.ended()
    assert call.claim() is None and roster.claim("hospital-a")


def test_a_listener_stopped_before_its_service_refuses_the_waiting_client_and_does_not_hang(listening):
    _, _, material, listener, port = listening
    failures = []

    def connect():
        try:
            _connect(port, material, "right-token", _Recorder())
        except Exception as exc:  # noqa: BLE001 - any end: refused, unreachable, or gRPC's own error
            failures.append(exc)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    threading.Event().wait(0.5)  # let it connect and wait
    listener.stop(None)
    thread.join(timeout=15)
    assert not thread.is_alive() and failures  # it ended, refused, instead of waiting for ATTACH_TIMEOUT


def test_a_port_in_use_is_one_line_of_bad_input_naming_the_setting():
    material = tls.generate(["127.0.0.1"])
    first = Listener("127.0.0.1", 0, material)
    port = first.start()
    try:
        with pytest.raises(BadInput) as refused:
            Listener("127.0.0.1", port, material).start()
        message = str(refused.value)
        assert message == (
            f"cannot listen on 127.0.0.1:{port} (Address already in use); "
            "choose another [server] port, or stop what uses it"
        )
    finally:
        first.stop(None)


@pytest.mark.parametrize("port", [0, 47998])
def test_an_address_of_no_interface_here_is_bad_input_naming_bind_address(port):
    """The fix follows the error (EADDRNOTAVAIL: the address), not whether a port was given (review of issue 15)."""
    with pytest.raises(BadInput) as refused:
        Listener("192.0.2.1", port, tls.generate(["127.0.0.1"])).start()
    where = f"192.0.2.1:{port}" if port else "192.0.2.1 (any free port)"
    assert str(refused.value) == (
        f"cannot listen on {where} (Cannot assign requested address); "
        "check [server] bind_address (--bind-address of fedsage local)"
    )


class _ScriptedService:
    """A FlowerService whose Join sends `instructions` one by one, records each reply and the token, then ends.

    Ending the stream without a Reconnect is what a server that goes away mid-federation looks like.
    """

    def __init__(self, instructions):
        self.instructions = instructions
        self.replies, self.tokens = [], []

    def Join(self, request_iterator, context):  # noqa: N802 - gRPC method name
        self.tokens.append(dict(context.invocation_metadata()).get(transport.TOKEN_HEADER))
        for instruction in self.instructions:
            yield instruction
            self.replies.append(next(request_iterator))


@pytest.fixture
def scripted():
    """Start a TLS server running a _ScriptedService; yield (start(instructions) -> (service, port), CA)."""
    from flwr.proto.transport_pb2_grpc import add_FlowerServiceServicer_to_server
    from flwr.supercore.grpc import generic_create_grpc_server

    material = tls.generate(["127.0.0.1"])
    servers = []

    def start(instructions):
        service = _ScriptedService(instructions)
        port = free_port()
        server = generic_create_grpc_server(
            servicer_and_add_fn=(service, add_FlowerServiceServicer_to_server),
            server_address=f"127.0.0.1:{port}",
            certificates=material.for_flower(),
        )
        server.start()
        servers.append(server)
        return service, port

    yield start, material.ca_certificate
    for server in servers:
        server.stop(None)


def test_the_servers_reconnect_ends_the_federation_cleanly_with_a_disconnect_reply(scripted, monkeypatch):
    """Flower's message handling: each instruction answered in order; Reconnect -> DisconnectRes, run_client returns.

    The DisconnectRes is checked where the client hands it to gRPC, not where the server reads it:
    the client closes its channel once gRPC has sent it (as Flower's own grpc_connection does), and
    a server that had not yet asked for it then loses it to the cancellation (a flaky assertion
    under load before). Flower's server ignores a reconnect's failure (flwr.server.server
    `disconnect_all_clients`); the replies before it are read by the server before it sends on.
    """
    from flwr.proto.transport_pb2 import Parameters, Reason, ServerMessage

    handed = []  # every ClientMessage the client gave gRPC's sending thread, in order
    stub = transport.FlowerServiceStub

    class Recording:
        def __init__(self, channel):
            self._stub = stub(channel)

        def Join(self, requests, metadata):  # noqa: N802 - gRPC method name
            return self._stub.Join((handed.append(message) or message for message in requests), metadata=metadata)

    monkeypatch.setattr(transport, "FlowerServiceStub", Recording)
    start, ca = scripted
    service, port = start(
        [
            ServerMessage(get_parameters_ins=ServerMessage.GetParametersIns()),
            ServerMessage(fit_ins=ServerMessage.FitIns(parameters=Parameters(tensor_type="numpy.ndarray"))),
            ServerMessage(reconnect_ins=ServerMessage.ReconnectIns(seconds=0)),
        ]
    )
    client = _Recorder()
    transport.run_client(client, f"127.0.0.1:{port}", "the-token", ca, connect_timeout=5, has_joined=lambda: True)
    assert [message.WhichOneof("msg") for message in handed] == ["get_parameters_res", "fit_res", "disconnect_res"]
    assert handed[2].disconnect_res.reason == Reason.RECONNECT
    assert service.tokens == ["the-token"]
    assert [reply.WhichOneof("msg") for reply in service.replies[:2]] == ["get_parameters_res", "fit_res"]
    assert client.calls == 1  # get_parameters answered by the client; fit not implemented -> Flower's status reply
    assert service.replies[1].fit_res.status.code != 0


def test_a_stream_the_server_closes_without_reconnect_is_a_lost_connection(scripted):
    from flwr.proto.transport_pb2 import ServerMessage

    start, ca = scripted
    _, port = start([ServerMessage(get_parameters_ins=ServerMessage.GetParametersIns())])
    client = _Recorder()
    with pytest.raises(transport.ServerUnreachable, match=r"closed the connection before ending the federation$"):
        transport.run_client(
            client, f"127.0.0.1:{port}", "t", ca, connect_timeout=5, has_joined=lambda: client.calls > 0
        )
    assert client.calls == 1


def test_importing_the_client_loads_no_sql_web_or_cli_stack_of_flower():
    """Issue 15: the job imports only what a gRPC client needs (not start_client's sqlalchemy/fastapi/alembic)."""
    import subprocess
    import sys

    heavy = ("sqlalchemy", "fastapi", "alembic", "flwr.compat.client.app", "flwr.supercore.object_store")
    probe = f"import sys, client_code.train, client_code.transport; print([m for m in {heavy!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
