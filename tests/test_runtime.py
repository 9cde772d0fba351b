"""One runtime, every server class: what ``_runtime.BaseServer`` owns must hold for each.

CommandServer, OneShotServer, AsyncioCommandServer, TcpServer and RecordingProxy all listen
before their constructor returns, on TCP loopback or a Unix socket, stop at once (a wake-up,
not a timeout) with a client connected and idle, refuse connections once stopped, and leave
no thread or descriptor behind (the suite's guard checks every test). The classes that
judge a client (all but the proxy) pass a correct one and fail a wrong one, every time, with
TLS too. Each class is driven through a small adapter that says how to give it the same
conversation: the client sends PING, the server answers PONG, the client closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import unittest
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from embeddedserver import (
    AsyncioCommandServer,
    Command,
    CommandServer,
    Expect,
    ExpectClose,
    OneShotServer,
    RecordingProxy,
    TcpServer,
    server_for_test,
)
from embeddedserver._runtime import BaseServer

CLIENT_TIMEOUT = 10.0
LONG = 600.0  # a step timeout no test waits for: only a wake-up can end such a wait
ROUNDS = 20


class Adapter:
    """Makes servers of one class serve the PING/PONG conversation, and gives the verdict."""

    judges = True  # the class judges what the client sent
    expect_step = 0  # the index of the step that expects b"PING"

    def __init__(self, server_class: type[BaseServer]) -> None:
        self.server_class = server_class
        self.loops: list[asyncio.AbstractEventLoop] = []
        self.servers: list[BaseServer] = []
        self.upstreams: list[BaseServer] = []

    def make(self, timeout: float = CLIENT_TIMEOUT, **where: Any) -> BaseServer:
        server = self._make(timeout, **where)
        self.servers.append(server)
        return server

    def _make(self, timeout: float, **where: Any) -> BaseServer:
        script: list[Command] = [Expect(b"PING"), b"PONG", ExpectClose()]
        if self.server_class is AsyncioCommandServer:
            self.loops.append(asyncio.new_event_loop())
            return AsyncioCommandServer(script, loop=self.loops[-1], verbose=False,
                                        timeout=timeout, **where)
        server_class: Any = self.server_class
        return server_class(script, verbose=False, timeout=timeout, **where)

    def verdict(self, server: BaseServer) -> None:
        """Stop *server* and raise AssertionError if the client was wrong."""
        server.verdict()

    def close(self) -> None:
        for server in [*self.servers, *self.upstreams]:
            server.stop()
        for loop in self.loops:
            loop.close()


class TcpServerAdapter(Adapter):
    expect_step = 1  # after expect_connect()
    def _make(self, timeout: float, **where: Any) -> BaseServer:
        server = TcpServer(timeout=timeout, **where)
        server.expect_connect()
        server.expect_bytes(b"PING")
        server.send_bytes(b"PONG")
        server.expect_disconnect()
        return server

    def verdict(self, server: BaseServer) -> None:
        assert isinstance(server, TcpServer)
        server.close(check=True)


class ProxyAdapter(Adapter):
    """A RecordingProxy in front of a CommandServer: the proxy judges nothing itself."""

    judges = False

    def _make(self, timeout: float, **where: Any) -> BaseServer:
        tls = where.pop("ssl_context", None)  # TLS passes through the proxy untouched
        upstream = CommandServer([Expect(b"PING"), b"PONG", ExpectClose()], verbose=False,
                                 timeout=timeout, ssl_context=tls)
        self.upstreams.append(upstream)
        return RecordingProxy(upstream.address, timeout=timeout, **where)

    def verdict(self, server: BaseServer) -> None:
        server.stop()
        for upstream in self.upstreams:
            upstream.verdict()


ADAPTERS = {
    "CommandServer": lambda: Adapter(CommandServer),
    "OneShotServer": lambda: Adapter(OneShotServer),
    "AsyncioCommandServer": lambda: Adapter(AsyncioCommandServer),
    "TcpServer": lambda: TcpServerAdapter(TcpServer),
    "RecordingProxy": lambda: ProxyAdapter(RecordingProxy),
}


@pytest.fixture(params=list(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> Iterator[Adapter]:
    made = ADAPTERS[request.param]()
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def unix_path(tmp_path: Path) -> str:
    return str(tmp_path / "s.sock")


def connect(server: BaseServer, tls: ssl.SSLContext | None = None) -> socket.socket:
    address = server.address
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CLIENT_TIMEOUT)
        sock.connect(address)
    else:
        sock = socket.create_connection(address, timeout=CLIENT_TIMEOUT)
    if tls is None:
        return sock
    return tls.wrap_socket(sock, server_hostname="localhost")


def converse(sock: socket.socket, request: bytes) -> bytes:
    """Send *request*, read until the server closes or resets; what came back."""
    got = b""
    with sock:
        sock.sendall(request)
        if request == b"PING":
            while len(got) < 4:
                chunk = sock.recv(4 - len(got))
                if not chunk:
                    break
                got += chunk
            return got
        with contextlib.suppress(OSError):  # a reset is how some servers answer
            while chunk := sock.recv(4096):
                got += chunk
    return got


# ---------------------------------------------------------------------------
# listening and stopping
# ---------------------------------------------------------------------------


def test_a_server_listens_before_its_constructor_returns(adapter: Adapter) -> None:
    server = adapter.make()
    with connect(server) as sock:  # no wait, no retry: the listener is there already
        assert sock.getpeername()[:2] == server.address[:2]
    assert server.port == server.address[1]
    assert server.address in server.addresses


def test_stop_is_a_wake_up_with_a_client_connected_and_silent(adapter: Adapter) -> None:
    server = adapter.make(timeout=LONG)
    with connect(server) as sock:
        server.wait_for_connections(1, CLIENT_TIMEOUT, finished=False)
        server.stop()  # the step waits LONG for the client: only the wake-up ends it
        assert server.STOPPED
        sock.settimeout(CLIENT_TIMEOUT)
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(1) == b""  # the server closed its side as it stopped


def test_stop_twice_is_harmless_and_a_stopped_server_refuses_clients(adapter: Adapter) -> None:
    server = adapter.make()
    address = server.address
    server.stop()
    server.stop()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(address, timeout=5):
        pass


def test_a_server_listens_on_a_unix_socket(adapter: Adapter, unix_path: str) -> None:
    server = adapter.make(path=unix_path)
    assert server.address == unix_path and server.path == unix_path
    with pytest.raises(AttributeError, match="Unix socket"):
        _ = server.port
    assert converse(connect(server), b"PING") == b"PONG"
    adapter.verdict(server)
    assert not Path(unix_path).exists()  # the listener removed its socket file


def test_the_repr_names_the_class_and_where_it_listens(adapter: Adapter) -> None:
    server = adapter.make()
    text = repr(server)
    assert type(server).__name__ in text and str(server.port) in text


# ---------------------------------------------------------------------------
# the verdict: a correct client passes, a wrong one fails, every time
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_a_correct_client_passes(adapter: Adapter, round_: int) -> None:
    server = adapter.make()
    assert converse(connect(server), b"PING") == b"PONG"
    server.wait_for_connections(1, CLIENT_TIMEOUT)  # the script ran to its end
    adapter.verdict(server)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_a_wrong_client_fails_at_the_first_wrong_byte(adapter: Adapter, round_: int) -> None:
    if not adapter.judges:
        pytest.skip("the proxy forwards what it gets: the server behind it judges")
    server = adapter.make()
    assert converse(connect(server), b"PONG") == b""  # the server hung up at the wrong byte
    with pytest.raises(AssertionError) as info:
        adapter.verdict(server)
    message = str(info.value)
    assert "offset 1" in message and "b'PONG'" in message


def test_tls_a_correct_client_passes_and_a_wrong_one_fails(adapter: Adapter) -> None:
    tls = pytest.importorskip("embeddedserver.tls")
    local = tls.LocalTLS()
    try:
        good = adapter.make(ssl_context=local.server_context)
        assert converse(connect(good, local.client_context), b"PING") == b"PONG"
        adapter.verdict(good)
        if adapter.judges:
            bad = adapter.make(ssl_context=local.server_context)
            assert converse(connect(bad, local.client_context), b"PONG") == b""
            with pytest.raises(AssertionError, match="offset 1"):
                adapter.verdict(bad)
    finally:
        local.close()


# ---------------------------------------------------------------------------
# asserting that the client made the server fail
# ---------------------------------------------------------------------------


def test_assert_failed_takes_the_failure_a_wrong_client_caused(adapter: Adapter) -> None:
    if not adapter.judges:
        pytest.skip("the proxy forwards what it gets: the server behind it judges")
    server = adapter.make()
    converse(connect(server), b"PONG")
    failure = server.assert_failed("mismatch", step=adapter.expect_step, match=r"offset 1")
    assert failure.kind == "mismatch" and failure.offset == 1
    adapter.verdict(server)  # taken out of errors: the verdict passes


def test_assert_failed_fails_when_the_client_was_right(adapter: Adapter) -> None:
    if not adapter.judges:
        pytest.skip("the proxy forwards what it gets: the server behind it judges")
    server = adapter.make()
    assert converse(connect(server), b"PING") == b"PONG"
    server.wait_for_connections(1, CLIENT_TIMEOUT)
    with pytest.raises(AssertionError, match=r"expected a failure \(kind 'mismatch'\) "
                                             r"within 0.1 s; the client made the server fail "
                                             r"in no way"):
        server.assert_failed("mismatch", timeout=0.1)
    adapter.verdict(server)


def test_assert_failed_names_the_failures_that_did_not_match(adapter: Adapter) -> None:
    if not adapter.judges:
        pytest.skip("the proxy forwards what it gets: the server behind it judges")
    server = adapter.make()
    converse(connect(server), b"PONG")
    server.wait_for_connections(1, CLIENT_TIMEOUT)
    with pytest.raises(AssertionError) as info:
        server.assert_failed("timeout", timeout=0.2)
    message = str(info.value)
    assert "expected a failure (kind 'timeout') within 0.2 s; 1 other failure recorded:" in message
    assert "b'PONG'" in message and "offset 1" in message  # the mismatch that was recorded
    with pytest.raises(AssertionError):  # still recorded: the verdict fails
        adapter.verdict(server)


def test_assert_failed_refuses_bad_arguments_where_they_are_given() -> None:
    with CommandServer("x", verbose=False, expect_connections=0) as server:
        with pytest.raises(TypeError, match=r"kind must be a failure kind"):
            server.assert_failed(3)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"match '\(' is not a valid regex"):
            server.assert_failed(match="(")
        with pytest.raises(ValueError, match=r"step must be an int >= 0, not -1"):
            server.assert_failed(step=-1)


def test_assert_failed_from_a_coroutine_through_a_thread() -> None:
    async def main() -> None:
        with CommandServer([Expect(b"PING")], verbose=False) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"PONG")
            await reader.read()  # the server hangs up at the wrong byte
            writer.close()
            await writer.wait_closed()
            failure = await asyncio.to_thread(server.assert_failed, "mismatch")
            assert failure.offset == 1

    asyncio.run(main())


@pytest.mark.parametrize("asserted", [True, False])
def test_assert_failed_in_a_unittest_case_decides_its_cleanup_check(asserted: bool) -> None:
    class Case(unittest.TestCase):
        def test_it(self) -> None:
            server = server_for_test(self, [Expect(b"PING")], verbose=False)
            converse(connect(server), b"PONG")
            server.wait_for_connections(1, CLIENT_TIMEOUT)
            if asserted:
                server.assert_failed("mismatch", step=0)

    result = unittest.TestResult()
    Case("test_it").run(result)
    if asserted:
        assert result.wasSuccessful(), result.errors + result.failures
    else:  # the cleanup's check() reports the wrong client
        assert not result.wasSuccessful()
        assert "offset 1" in str(result.errors + result.failures)
