"""A pass must be earned: the verdict judges what the client already sent, and what it left.

The end of a ``with`` block (``verdict()``: settle, stop, check) lets the server run its
script on every byte a client delivered before the block ended, so a wrong client fails
every time, however close to the end it sent; a script a client left waiting in a read step
fails after the settle period, naming the step; a correct client passes, every time. Each
wrong client has its twin, run in the same loop, that passes.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable

import pytest

from embeddedserver import (
    RECEIVE,
    CommandServer,
    Delay,
    Expect,
    ExpectClose,
    Hang,
    OneShotServer,
    ReadLine,
    at_least,
)

CLIENT_TIMEOUT = 10.0
ROUNDS = 200

MakeServer = Callable[..., CommandServer]
SERVER_CLASSES = {
    "CommandServer": CommandServer,
    "OneShotServer": OneShotServer,
    "concurrent": lambda *a, **k: CommandServer(*a, concurrent=True, **k),
}


@pytest.fixture(params=list(SERVER_CLASSES))
def make(request: pytest.FixtureRequest) -> MakeServer:
    server_class = SERVER_CLASSES[request.param]

    def make_server(script: object, **kwargs: object) -> CommandServer:
        kwargs.setdefault("verbose", False)
        kwargs.setdefault("timeout", 60)
        return server_class(script, **kwargs)  # type: ignore[no-any-return]

    return make_server


def send_and_close(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(data)


# ---------------------------------------------------------------------------
# bytes already delivered are judged before the verdict
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_wrong_bytes_sent_just_before_the_end_always_fail(make: MakeServer, round_: int) -> None:
    with pytest.raises(AssertionError, match=r"offset 3"):
        with make([Expect(b"HELLO")]) as srvr:
            send_and_close(srvr.port, b"HELXO")  # and the block ends at once


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_right_bytes_sent_just_before_the_end_always_pass(make: MakeServer, round_: int) -> None:
    with make([Expect(b"HELLO")]) as srvr:
        send_and_close(srvr.port, b"HELLO")
    assert srvr.errors == []


# ---------------------------------------------------------------------------
# a script left waiting is a failure, naming the step
# ---------------------------------------------------------------------------


def _ping_then(port: int, last: bytes | None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT)
    sock.sendall(b"PING\r\n")
    assert sock.recv(6, socket.MSG_WAITALL) == b"PONG\r\n"
    if last is not None:
        sock.sendall(last)
    return sock  # kept open, as a connection pool keeps it


SCRIPT = [Expect(b"PING\r\n"), b"PONG\r\n", Expect(b"QUIT\r\n")]


def test_a_client_that_never_sends_the_last_request_fails(make: MakeServer) -> None:
    with pytest.raises(AssertionError) as info:
        with make(SCRIPT, settle=0.2) as srvr:
            sock = _ping_then(srvr.port, None)
    sock.close()
    message = str(info.value)
    assert "connection #1 from 127.0.0.1:" in message
    assert "step 2 of 3: Expect(b'QUIT\\r\\n')" in message
    assert "the script was not finished: the client sent nothing more in 0.2 s" in message


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_a_client_that_sends_the_last_request_and_stays_connected_passes(
    make: MakeServer, round_: int
) -> None:
    with make(SCRIPT, settle=0.2) as srvr:
        sock = _ping_then(srvr.port, b"QUIT\r\n")
    sock.close()
    assert srvr.errors == []


def test_allow_unfinished_lets_a_client_leave_the_script_waiting(make: MakeServer) -> None:
    with make(SCRIPT, settle=0.2, allow_unfinished=True) as srvr:
        sock = _ping_then(srvr.port, None)
    sock.close()
    assert srvr.connections[0].ended == "stopped"


@pytest.mark.parametrize("waiting", [Hang(), Delay(600), Hang(600)], ids=repr)
def test_a_step_that_waits_for_the_client_to_give_up_is_no_failure(
    make: MakeServer, waiting: object
) -> None:
    with make([RECEIVE, waiting, b"never"], settle=30) as srvr:
        sock = socket.create_connection(("127.0.0.1", srvr.port), timeout=CLIENT_TIMEOUT)
        sock.sendall(b"hi")
        srvr.wait_for_connections(1, finished=False)
    sock.close()  # settle=30 was not waited: nothing to judge in a Hang or a Delay
    assert srvr.errors == []


def test_a_settled_correct_conversation_costs_no_settle_time(make: MakeServer) -> None:
    # settle=600: a correct client that finished its script is judged without waiting.
    with make([ReadLine(), b"ok\n", ExpectClose()], settle=600) as srvr:
        with socket.create_connection(("127.0.0.1", srvr.port), timeout=CLIENT_TIMEOUT) as s:
            s.sendall(b"hello\n")
            assert s.recv(3, socket.MSG_WAITALL) == b"ok\n"
    assert srvr.errors == []


def test_stop_alone_stays_silent_and_check_reports_what_it_cut_short() -> None:
    srvr = CommandServer(SCRIPT, verbose=False, timeout=60)
    sock = _ping_then(srvr.port, None)
    srvr.stop()  # instant, raises nothing
    sock.close()
    with pytest.raises(AssertionError, match=r"step 2 of 3: .*stop\(\) came while it waited"):
        srvr.check()


def test_settle_is_checked_where_it_is_given() -> None:
    with pytest.raises(ValueError, match=r"settle must be a number of seconds >= 0, not -1"):
        CommandServer("x", settle=-1, verbose=False)
    with pytest.raises(TypeError, match=r"allow_unfinished must be True or False, not 'yes'"):
        CommandServer("x", allow_unfinished="yes", verbose=False)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# connections are counted
# ---------------------------------------------------------------------------


def test_a_server_no_client_reached_fails(make: MakeServer) -> None:
    with pytest.raises(AssertionError, match=r"no client connected to the server, which "
                                             r"expected at least 1 \(expect_connections=0"):
        with make([RECEIVE, b"hi"]):
            pass


def test_a_server_a_client_reached_passes(make: MakeServer) -> None:
    with make([RECEIVE, b"hi"]) as srvr:
        send_and_close(srvr.port, b"x")


def test_expect_connections_zero_passes_with_none_and_fails_with_one() -> None:
    with CommandServer([RECEIVE], verbose=False, expect_connections=0):
        pass
    with pytest.raises(AssertionError, match=r"1 client connected to the server, which "
                                             r"expected exactly 0"):
        with CommandServer([RECEIVE], verbose=False, expect_connections=0) as srvr:
            send_and_close(srvr.port, b"x")


@pytest.mark.parametrize(("expected", "clients", "ok"), [
    (2, 2, True), (2, 1, False), (2, 3, False),
    (at_least(2), 3, True), (at_least(2), 1, False), (range(1, 3), 2, True),
    (None, 0, True), (None, 2, True),
])
def test_expect_connections_counts_exactly_at_least_or_any(
    expected: int | range | None, clients: int, ok: bool
) -> None:
    srvr = CommandServer([RECEIVE], verbose=False, concurrent=True,
                         expect_connections=expected)
    for _ in range(clients):
        send_and_close(srvr.port, b"x")
    srvr.wait_for_connections(clients, CLIENT_TIMEOUT)
    if ok:
        srvr.verdict()
    else:
        with pytest.raises(AssertionError, match=rf"{'no client' if not clients else clients}"
                                                 r".* connected to the server, which expected"):
            srvr.verdict()


@pytest.mark.parametrize(("value", "error", "words"), [
    (-1, ValueError, "expect_connections must be an int >= 0, not -1"),
    ("2", TypeError, "expect_connections must be an int >= 0, a range such as at_least(1), or "
                     "None, not '2'"),
    (range(3, 1), ValueError, "a non-empty range"),
])
def test_expect_connections_is_checked_where_it_is_given(
    value: object, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=re.escape(words)):
        CommandServer("x", verbose=False, expect_connections=value)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# bytes after the script
# ---------------------------------------------------------------------------

EXACT = [Expect(b"PING\r\n"), b"PONG\r\n"]


@pytest.mark.parametrize("round_", range(100))
def test_a_client_that_sends_its_command_twice_fails_a_script_of_expectations(
    make: MakeServer, round_: int
) -> None:
    with pytest.raises(AssertionError, match=r"the client sent 6 bytes no step reads, after "
                                             r"the last of the script's 2 steps(.|\n)*"
                                             r"received: b'PING\\r\\n'"):
        with make(EXACT) as srvr:
            with socket.create_connection(("127.0.0.1", srvr.port), timeout=10) as sock:
                sock.sendall(b"PING\r\nPING\r\n")  # in one write: it is there at the close
                assert sock.recv(6, socket.MSG_WAITALL) == b"PONG\r\n"


@pytest.mark.parametrize("round_", range(100))
def test_a_client_that_sends_its_command_once_passes(make: MakeServer, round_: int) -> None:
    with make(EXACT) as srvr:
        with socket.create_connection(("127.0.0.1", srvr.port), timeout=10) as sock:
            sock.sendall(b"PING\r\n")
            assert sock.recv(6, socket.MSG_WAITALL) == b"PONG\r\n"


def test_a_seed_style_script_lets_a_client_send_more_than_it_reads(make: MakeServer) -> None:
    # RECEIVE reads what one read returns: a client may split or pad its request.
    with make([RECEIVE, b"PONG\r\n"]) as srvr:
        with socket.create_connection(("127.0.0.1", srvr.port), timeout=10) as sock:
            sock.sendall(b"PING\r\nPING\r\n")
            assert sock.recv(6, socket.MSG_WAITALL) == b"PONG\r\n"


def test_allow_extra_bytes_lets_a_client_send_after_a_script_of_expectations() -> None:
    with CommandServer(EXACT, verbose=False, allow_extra_bytes=True) as srvr:
        with socket.create_connection(("127.0.0.1", srvr.port), timeout=10) as sock:
            sock.sendall(b"PING\r\nPING\r\n")
            assert sock.recv(6, socket.MSG_WAITALL) == b"PONG\r\n"


def test_failures_lists_what_check_raises_for_counts_included_once_stopped() -> None:
    from embeddedserver import Rule, Rules

    rules = Rules(ReadLine(), Rule(b"a\n", b"A\n"), Rule(b"b\n", b"B\n", times=1))
    server = CommandServer([rules], verbose=False)
    with socket.create_connection(server.address, timeout=CLIENT_TIMEOUT) as client:
        client.sendall(b"a\n")
        assert client.recv(2) == b"A\n"
    server.wait_for_connections(1, CLIENT_TIMEOUT)
    assert server.failures() == []  # running: the counts are not judged yet
    server.stop()
    failures = server.failures()
    assert [f.kind for f in failures] == ["rules"]
    assert "Rule(b'b\\n'" in failures[0].message()
    with pytest.raises(AssertionError) as info:
        server.check()
    assert str(info.value) == server.failure_report(failures)


def _kit_scripts() -> dict[str, tuple[list[object], bytes]]:
    """A script of one protocol kit's expectation, and the bytes a correct client sends."""
    from embeddedserver import http, resp
    from embeddedserver import proxyprotocol as pp

    request = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    return {
        "http.ExpectRequest": (
            [http.ExpectRequest("GET", "/a"), b"HTTP/1.1 204 No Content\r\n\r\n"], request),
        "resp.ExpectCommand": ([resp.ExpectCommand("PING"), resp.simple("PONG")],
                               resp.command("PING")),
        "ExpectProxyHeader": ([pp.ExpectProxyHeader(("10.0.0.1", 5555)), b"ok"],
                              pp.v1(("10.0.0.1", 5555), ("10.0.0.2", 80))),
    }


@pytest.mark.parametrize("kit", sorted(_kit_scripts()))
def test_a_kit_expectation_fails_bytes_past_the_script_and_its_twin_passes(kit: str) -> None:
    script, good = _kit_scripts()[kit]
    for _ in range(20):
        for extra in (b"", b"surplus"):
            server = CommandServer(script, verbose=False)
            with socket.create_connection(server.address, timeout=CLIENT_TIMEOUT) as client:
                client.sendall(good + extra)  # at once: all of it arrives before the reply
                client.shutdown(socket.SHUT_WR)
                while client.recv(4096):
                    pass
            if not extra:
                server.verdict()
                continue
            with pytest.raises(AssertionError, match="the client sent 7 bytes no step reads"):
                server.verdict()
