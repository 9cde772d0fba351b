"""Server lifecycle, addresses and constructor input, with real loopback sockets.

``stop()`` must be prompt (a wake-up, not a timeout) in every state, idempotent, and
leave no thread or descriptor behind. Promptness is checked without timing anything:
every script uses a read timeout far longer than the test, so a stop that waited for
it would leave the thread alive past ``JOIN_TIMEOUT`` and record a "did not stop"
failure, which the tests assert is absent.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import unittest
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from embeddedserver import (
    RECEIVE,
    Call,
    CommandServer,
    Connection,
    Delay,
    Drip,
    Expect,
    Hang,
    OneShotServer,
    PerConnection,
    ReadLine,
    server_for_test,
)

CLIENT_TIMEOUT = 10.0
LONG = 600.0  # a read timeout no test waits for


@contextmanager
def client(port: int, host: str = "127.0.0.1") -> Iterator[socket.socket]:
    with socket.create_connection((host, port), timeout=CLIENT_TIMEOUT) as sock:
        yield sock


def read_to_eof(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def assert_fully_stopped(server: CommandServer) -> None:
    assert server.STOPPED
    assert not server._thread.is_alive()
    assert not [w for w in server._workers if w.is_alive()]
    assert server._waker.closed
    assert all(s.fileno() == -1 for s in server._listeners)
    stuck = [f for f in server.errors if "did not stop" in f.summary]
    assert not stuck, stuck[0].message()


def started_step() -> tuple[threading.Event, Call]:
    """A Call step that reports the script got this far (instead of a sleep)."""
    reached = threading.Event()
    return reached, Call(lambda conn: reached.set())


# ---------------------------------------------------------------------------
# stop() in every state
# ---------------------------------------------------------------------------


def test_stop_before_any_connection() -> None:
    srvr = CommandServer([RECEIVE, "x"], verbose=False, expect_connections=0)
    srvr.stop()
    assert_fully_stopped(srvr)
    srvr.check()


@pytest.mark.parametrize("concurrent", [False, True])
def test_stop_with_an_idle_client_connected(concurrent: bool) -> None:
    srvr = CommandServer([RECEIVE, "x"], verbose=False, timeout=LONG, concurrent=concurrent)
    with client(srvr.port) as sock:
        srvr.wait_for_connections(1, finished=False)
        srvr.stop()
        assert_fully_stopped(srvr)
        assert read_to_eof(sock) == b""
    # The client never sent its request: the script it left waiting is reported.
    srvr.assert_failed("unfinished", step=0, match=r"stop\(\) came while it waited for any "
                                                    r"bytes", timeout=0.1)
    srvr.check()
    assert srvr.connections[0].ended == "stopped"


def test_stop_while_blocked_sending_to_a_client_that_never_reads() -> None:
    reached, step = started_step()
    srvr = CommandServer([step, b"x" * (64 << 20)], verbose=False, timeout=LONG)
    with client(srvr.port):
        assert reached.wait(CLIENT_TIMEOUT)
        srvr.stop()
        assert_fully_stopped(srvr)
    # The client never read the reply: the send it left waiting is reported.
    srvr.assert_failed("unfinished", step=1, match=r"for the client to read", timeout=0.1)
    srvr.check()
    assert srvr.connections[0].ended == "stopped"


@pytest.mark.parametrize(
    "step", [Delay(LONG), Hang(), Hang(LONG), Drip(b"abc", interval=LONG)], ids=repr
)
def test_stop_inside_a_waiting_step(step: Any) -> None:
    reached, mark = started_step()
    srvr = CommandServer([mark, step, "never"], verbose=False, timeout=LONG)
    with client(srvr.port):
        assert reached.wait(CLIENT_TIMEOUT)
        srvr.stop()
        assert_fully_stopped(srvr)
    srvr.check()
    assert srvr.connections[0].ended == "stopped"


def test_stop_twice_and_check_after_stop() -> None:
    srvr = CommandServer("x", verbose=False, expect_connections=0)
    srvr.stop()
    srvr.stop()
    srvr.check()
    assert_fully_stopped(srvr)


def test_stopped_server_refuses_connections() -> None:
    srvr = CommandServer("x", verbose=False)
    port = srvr.port
    srvr.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT).close()


@pytest.mark.parametrize("concurrent", [False, True])
def test_stop_from_inside_a_call_step(concurrent: bool) -> None:
    srvr: CommandServer

    def stop_myself(conn: Connection) -> None:
        srvr.stop()
        assert srvr.STOPPED
        assert conn.stopping

    srvr = CommandServer(
        [Call(stop_myself), RECEIVE, "never"], verbose=False, timeout=LONG,
        concurrent=concurrent,
    )
    with client(srvr.port) as sock:
        assert read_to_eof(sock) == b""
        srvr._thread.join(CLIENT_TIMEOUT)
    # Nobody called stop() from outside: the server still closed everything itself.
    assert_fully_stopped(srvr)
    srvr.check()
    assert srvr.connections[0].ended == "stopped"
    srvr.stop()


def test_a_call_step_can_watch_for_stop() -> None:
    reached = threading.Event()

    def wait_politely(conn: Connection) -> None:
        reached.set()
        while not conn.stopping:
            conn.pause(LONG)

    srvr = CommandServer([Call(wait_politely)], verbose=False)
    with client(srvr.port):
        assert reached.wait(CLIENT_TIMEOUT)
        srvr.stop()
        assert_fully_stopped(srvr)
    srvr.check()


def test_two_servers_at_once_do_not_see_each_other() -> None:
    with CommandServer("one", verbose=False) as a, CommandServer("two", verbose=False) as b:
        assert a.port != b.port
        with client(a.port) as sa, client(b.port) as sb:
            sa.sendall(b"to a")
            sb.sendall(b"to b")
            assert read_to_eof(sa) == b"one"
            assert read_to_eof(sb) == b"two"
        a.wait_for_connections(1)
        b.wait_for_connections(1)
        a.stop()
        assert a.STOPPED and not b.STOPPED
        assert a.received == [b"to a"] and b.received == [b"to b"]
        with client(b.port) as sb:
            sb.sendall(b"again")
            assert read_to_eof(sb) == b"two"


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_200_servers_leave_no_thread_or_descriptor_behind() -> None:
    threads_before = threading.active_count()
    fds_before = _fd_count()
    for n in range(200):
        host = "localhost" if n % 2 else "127.0.0.1"
        served = n % 10 == 0
        with CommandServer([ReadLine(), "ok"], host=host, verbose=False,
                           expect_connections=int(served)) as srvr:
            if served:
                with client(srvr.port) as sock:
                    sock.sendall(b"hi\n")
                    assert read_to_eof(sock) == b"ok"
                srvr.wait_for_connections(1)
        assert_fully_stopped(srvr)
    assert threading.active_count() == threads_before
    assert _fd_count() == fds_before


# ---------------------------------------------------------------------------
# context manager and unittest helper
# ---------------------------------------------------------------------------


def test_context_manager_stops_and_checks() -> None:
    with pytest.raises(AssertionError, match="wrong bytes at offset 0"):
        with CommandServer([Expect(b"A")], verbose=False, timeout=LONG) as srvr:
            with client(srvr.port) as sock:
                sock.sendall(b"B")
                read_to_eof(sock)
            srvr.wait_for_connections(1)
    assert_fully_stopped(srvr)


def test_context_manager_does_not_hide_the_error_of_the_block() -> None:
    with pytest.raises(KeyError) as info:
        with CommandServer([Expect(b"A")], verbose=False, timeout=LONG) as srvr:
            with client(srvr.port) as sock:
                sock.sendall(b"B")
                read_to_eof(sock)
            srvr.wait_for_connections(1)
            raise KeyError("the test's own error")
    assert_fully_stopped(srvr)
    assert len(srvr.errors) == 1
    if sys.version_info >= (3, 11):  # the server's failures ride along as a note
        assert "wrong bytes at offset 0" in "\n".join(info.value.__notes__)


def _run_testcase(case: type[unittest.TestCase]) -> unittest.TestResult:
    result = unittest.TestResult()
    unittest.defaultTestLoader.loadTestsFromTestCase(case).run(result)
    return result


def test_server_for_test_passes_a_good_client() -> None:
    servers: list[CommandServer] = []

    class GoodClient(unittest.TestCase):
        def setUp(self) -> None:
            self.server = server_for_test(self, [Expect(b"PING\r\n"), "PONG"], verbose=False)
            servers.append(self.server)

        def test_ping(self) -> None:
            with client(self.server.port) as sock:
                sock.sendall(b"PING\r\n")
                self.assertEqual(read_to_eof(sock), b"PONG")
            self.server.wait_for_connections(1)

    result = _run_testcase(GoodClient)
    assert result.testsRun == 1
    assert result.wasSuccessful(), result.failures + result.errors
    assert_fully_stopped(servers[0])


def test_server_for_test_fails_the_testcase_of_a_bad_client() -> None:
    servers: list[CommandServer] = []

    class BadClient(unittest.TestCase):
        def setUp(self) -> None:
            self.server = server_for_test(
                self, [Expect(b"PING\r\n"), "PONG"], verbose=False, timeout=LONG
            )
            servers.append(self.server)

        def test_ping(self) -> None:
            with client(self.server.port) as sock:
                sock.sendall(b"PONG\r\n")  # the client under test is wrong
                read_to_eof(sock)
            self.server.wait_for_connections(1)

    result = _run_testcase(BadClient)
    assert result.testsRun == 1
    assert not result.errors
    assert len(result.failures) == 1
    report = result.failures[0][1]
    assert "AssertionError" in report
    assert "step 0 of 2: Expect(b'PING\\r\\n'): wrong bytes at offset 1" in report
    assert_fully_stopped(servers[0])


def test_server_for_test_with_another_class_and_bad_testcase() -> None:
    class Case(unittest.TestCase):
        def test_it(self) -> None:
            server = server_for_test(self, "x", OneShotServer, verbose=False,
                                     expect_connections=0)
            self.assertIsInstance(server, OneShotServer)

    assert _run_testcase(Case).wasSuccessful()
    with pytest.raises(TypeError, match=r"unittest\.TestCase"):
        server_for_test(object(), "x")


# ---------------------------------------------------------------------------
# OneShotServer, max_connections, waiting helpers
# ---------------------------------------------------------------------------


def test_one_shot_server_refuses_a_second_connect() -> None:
    with OneShotServer([RECEIVE, "only once"], verbose=False) as srvr:
        with client(srvr.port) as sock:
            sock.sendall(b"hi")
            srvr.wait_for_connections(1, finished=False)
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", srvr.port), timeout=CLIENT_TIMEOUT)
            assert read_to_eof(sock) == b"only once"
        srvr.wait_for_connections(1)
        assert srvr.STOPPED
    assert len(srvr.connections) == 1


def test_max_connections_serves_that_many_then_refuses() -> None:
    with CommandServer("ok", verbose=False, max_connections=2) as srvr:
        for _ in range(2):
            with client(srvr.port) as sock:
                sock.sendall(b"x")
                assert read_to_eof(sock) == b"ok"
        srvr.wait_for_connections(2)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", srvr.port), timeout=CLIENT_TIMEOUT)


def test_per_connection_plan_without_fallback_fails_an_extra_connection() -> None:
    plan = PerConnection([RECEIVE, "first"])
    with CommandServer(plan, verbose=False) as srvr:
        with client(srvr.port) as sock:
            sock.sendall(b"x")
            assert read_to_eof(sock) == b"first"
        with client(srvr.port) as sock:
            assert read_to_eof(sock) == b""  # closed at once: no script for it
        srvr.wait_for_connections(2)
        with pytest.raises(AssertionError, match="connection #2 was not expected"):
            srvr.check()
        srvr.errors.clear()


def test_wait_for_connections_times_out_saying_how_many() -> None:
    with CommandServer("x", verbose=False, expect_connections=0) as srvr:
        with pytest.raises(TimeoutError, match=r"0 of 1 connections finished within 0\.1 s"):
            srvr.wait_for_connections(1, timeout=0.1)
        with pytest.raises(TimeoutError, match="0 of 2 connections accepted"):
            srvr.wait_for_connections(2, timeout=0.1, finished=False)


def test_wait_idle_waits_for_the_connection_in_progress() -> None:
    with CommandServer([ReadLine(), "done"], verbose=False, timeout=LONG) as srvr:
        srvr.wait_idle()  # nothing accepted yet: idle at once
        with client(srvr.port) as sock:
            srvr.wait_for_connections(1, finished=False)
            with pytest.raises(TimeoutError, match="still serving"):
                srvr.wait_idle(timeout=0.1)
            sock.sendall(b"go\n")
            srvr.wait_idle()
            assert read_to_eof(sock) == b"done"


# ---------------------------------------------------------------------------
# addresses
# ---------------------------------------------------------------------------


def test_default_address_is_loopback_with_an_ephemeral_port() -> None:
    with CommandServer("x", verbose=False, expect_connections=0) as srvr:
        assert srvr.host == "127.0.0.1"
        assert srvr.port > 0
        assert srvr.addresses == [("127.0.0.1", srvr.port)]


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_localhost_listens_on_ipv4_and_ipv6_on_the_same_port() -> None:
    with CommandServer([ReadLine(), "ok"], host="localhost", verbose=False) as srvr:
        assert sorted(srvr.addresses) == [("127.0.0.1", srvr.port), ("::1", srvr.port)]
        peers = []
        for address in ("127.0.0.1", "::1", "localhost"):
            with client(srvr.port, address) as sock:
                sock.sendall(b"hi\n")
                assert read_to_eof(sock) == b"ok"
                peers.append(sock.getsockname()[0])
        srvr.wait_for_connections(3)
    assert peers[:2] == ["127.0.0.1", "::1"]


@pytest.mark.skipif(sys.platform != "linux", reason="127.0.0.2 is routed on Linux only")
def test_explicit_host_is_honoured() -> None:
    with CommandServer("ok", host="127.0.0.2", verbose=False) as srvr:
        assert srvr.addresses == [("127.0.0.2", srvr.port)]
        with client(srvr.port, "127.0.0.2") as sock:
            sock.sendall(b"x")
            assert read_to_eof(sock) == b"ok"
        srvr.wait_for_connections(1)
        assert srvr.connections[0].peer[0].startswith("127.")


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_explicit_ipv6_host_listens_on_ipv6_only() -> None:
    with CommandServer("ok", host="::1", verbose=False) as srvr:
        assert [a[0] for a in srvr.addresses] == ["::1"]
        with client(srvr.port, "::1") as sock:
            sock.sendall(b"x")
            assert read_to_eof(sock) == b"ok"
        srvr.wait_for_connections(1)


def test_an_explicit_port_is_used() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with CommandServer("ok", port=port, verbose=False, expect_connections=0) as srvr:
        assert srvr.port == port


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_busy_port_is_an_os_error_naming_the_port(host: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError) as info:
            CommandServer("x", host=host, port=port, verbose=False)
    text = str(info.value)
    assert str(port) in text
    assert repr(host) in text
    assert "port=0" in text


def test_an_unresolvable_host_is_an_os_error_naming_it() -> None:
    with pytest.raises(OSError, match=r"no-such-host\.invalid"):
        CommandServer("x", host="no-such-host.invalid", verbose=False)


# ---------------------------------------------------------------------------
# bad input for each parameter
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"commands": [RECEIVE, 1.5]}, TypeError, ["command 1", "1.5"]),
        ({"commands": [RECEIVE, -3]}, ValueError, ["command 1", "-3"]),
        ({"commands": 42}, TypeError, ["42", "list of steps"]),
        ({"host": ""}, TypeError, ["host", "''"]),
        ({"host": None}, TypeError, ["host", "None"]),
        ({"host": 127}, TypeError, ["host", "127"]),
        ({"port": -1}, ValueError, ["port", "-1", "65535"]),
        ({"port": 65536}, ValueError, ["port", "65536"]),
        ({"port": "80"}, TypeError, ["port", "'80'"]),
        ({"port": True}, TypeError, ["port", "True"]),
        ({"verbose": "yes"}, TypeError, ["verbose", "'yes'"]),
        ({"verbose": 1}, TypeError, ["verbose", "1"]),
        ({"timeout": 0}, ValueError, ["timeout", "0"]),
        ({"timeout": -1}, ValueError, ["timeout", "-1"]),
        ({"timeout": "5"}, TypeError, ["timeout", "'5'"]),
        ({"timeout": None}, TypeError, ["timeout", "None"]),
        ({"concurrent": "yes"}, TypeError, ["concurrent", "'yes'"]),
        ({"concurrent": None}, TypeError, ["concurrent", "None"]),
        ({"max_connections": 0}, ValueError, ["max_connections", "0"]),
        ({"max_connections": True}, TypeError, ["max_connections", "True"]),
        ({"max_connections": 1.5}, TypeError, ["max_connections", "1.5"]),
        ({"ssl_context": "tls"}, TypeError, ["ssl_context", "'tls'"]),
        ({"backlog": 0}, ValueError, ["backlog", "0"]),
        ({"backlog": "8"}, TypeError, ["backlog", "'8'"]),
    ],
)
def test_bad_constructor_argument_names_it_and_its_value(
    kwargs: dict[str, Any], error: type[Exception], words: list[str]
) -> None:
    kwargs = {"commands": "x", "verbose": False, **kwargs}
    with pytest.raises(error) as info:
        CommandServer(**kwargs)
    for word in words:
        assert word in str(info.value), f"{word!r} not in {str(info.value)!r}"


def test_unknown_keyword_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="verbos"):
        CommandServer("x", verbos=False)  # type: ignore[call-arg]


def test_one_shot_server_rejects_other_connection_counts() -> None:
    with pytest.raises(ValueError, match="max_connections=2"):
        OneShotServer("x", verbose=False, max_connections=2)
