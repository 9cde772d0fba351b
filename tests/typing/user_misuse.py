"""A user's test module, as a type checker sees it: correct uses, and misuses it must report.

``tests/test_typing.py`` copies this file into an empty directory and runs ``mypy --strict``
on it against the installed packages. Every line that ends in ``# expect-error`` must get an
error, and no other line may. The file is never run: pytest does not collect it (it is not
named ``test_*.py``, and ``tests/conftest.py`` lists ``typing`` in ``collect_ignore``).
"""

from __future__ import annotations

import asyncio
import errno
import re
import socket
import unittest

from embeddedserver import (
    RECEIVE,
    AsyncioCommandServer,
    Call,
    Close,
    Command,
    CommandServer,
    CommandServerFactory,
    Connection,
    ConnectionRecord,
    Event,
    Expect,
    ExpectRegex,
    OneShotServer,
    PerConnection,
    ReadFrame,
    ReadLine,
    Reset,
    Script,
    Send,
    Step,
    TcpServer,
    compile_script,
    http_response,
    server_for_test,
)
from testingsocket import Cue, SocketCapture, TestingSocket, capture_sockets


def greet(conn: Connection) -> None:
    conn.send(b"220 ready\r\n")


def show(record: ConnectionRecord, event: Event) -> None:
    print(record.number, event.kind, event.data)


PING: Script = [Expect(b"PING\r\n"), "PONG\r\n"]
COMMANDS: list[Command] = [RECEIVE, 20, b"ok", bytearray(b"!"), memoryview(b"?"), greet]
STEPS: list[Step] = [ReadLine(), Send(b"bye\r\n"), Close()]


# -- correct uses: mypy --strict must accept every line -------------------------------------


def test_script_servers() -> None:
    with CommandServer(PING, verbose=False, on_event=show) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
            client.sendall(b"PING\r\n")
        server.wait_for_connections(1)
        chunks: list[bytes] = server.received
        url: str = server.url
        where: tuple[str, int] | str = server.address
        if isinstance(where, tuple):
            host, port = where
            assert url == f"http://{host}:{port}"
        assert chunks == [b"PING\r\n"]
    CommandServer(COMMANDS, "localhost", 0, verbose=False, timeout=2, concurrent=True).stop()
    CommandServer(STEPS, verbose=False, max_connections=3, backlog=8).stop()
    CommandServer(http_response("hello", status=201), verbose=False).stop()
    with CommandServer([ReadLine(), "ok\n"], path="/tmp/ping.sock", verbose=False) as unix:
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(unix.address)
    once: OneShotServer = OneShotServer(Reset(), verbose=False, max_connections=1)
    once.stop()
    plan = PerConnection([Reset()], [RECEIVE, "ok"], then="bye")
    OneShotServer(plan, verbose=False).stop()
    replayed: OneShotServer = OneShotServer.from_file("ping.script", exact=True, verbose=False)
    replayed.stop()
    assert compile_script("hi") == compile_script([RECEIVE, "hi"])


def test_steps() -> None:
    steps: list[Step] = [
        Expect(re.compile(rb"GET /\S+")),
        Expect(lambda chunk: chunk.startswith(b"G"), within=ReadLine(), timeout=1.5),
        ExpectRegex("HELO [a-z]+\r\n"),
        ReadFrame(">H"),
        Call(greet),
        Call(lambda conn: conn.send(conn.recv_exactly(4))),
    ]
    CommandServer(steps, verbose=False).stop()


async def test_asyncio_server() -> None:
    with AsyncioCommandServer([RECEIVE, "pong"], verbose=False, port=0) as server:
        reader: asyncio.StreamReader = server.reader
        assert await reader.read() == b""
    loop = asyncio.get_running_loop()
    from_file = AsyncioCommandServer.from_file("ping.script", loop=loop, verbose=False)
    from_file.stop()


def test_fixture(command_server: CommandServerFactory) -> None:
    server: CommandServer = command_server([RECEIVE, b"ok"])
    once: OneShotServer = command_server([ReadLine(), "PONG\r\n"], OneShotServer, timeout=2)
    assert server.port != once.port


class PingTest(unittest.TestCase):
    def setUp(self) -> None:
        self.server = server_for_test(self, PING, verbose=False)
        self.once: OneShotServer = server_for_test(self, "x", OneShotServer, verbose=False)

    def test_ping(self) -> None:
        self.server.wait_for_connections(1)


def test_tcpserver() -> None:
    with TcpServer(timeout=1, name="db") as tcp:
        tcp.expect_connect()
        tcp.expect_bytes(b"ping", timeout=0.5)
        tcp.send_bytes(b"pong")
        tcp.expect_disconnect()


def test_testingsocket() -> None:
    sock, peer = TestingSocket.pair()
    cue: Cue = sock.break_on("QUIT", ConnectionResetError, once=True)
    sock.breakOn(b"RSET", OSError(errno.EPIPE, "gotcha"))
    sock.max_send = 2
    sock.send_delay = 0.01
    sent: int = sock._data["send_calls"]
    assert cue.fired == sent == 0
    sock.close()
    peer.close()
    with capture_sockets(setup=lambda s: s.eof_after(3)) as captured:
        pass
    sockets: SocketCapture = captured
    assert [s.data_out for s in sockets] == []


# -- misuses: each must be reported ---------------------------------------------------------


def test_misuses(tcpserver: TcpServer, server: CommandServer, sock: TestingSocket) -> None:
    OneShotServer("x", verbose="yes")  # expect-error
    OneShotServer("x", bogus=1)  # expect-error
    OneShotServer("x", max_connections=2)  # expect-error
    OneShotServer.from_file("x.script", loop=asyncio.new_event_loop())  # expect-error
    CommandServer([RECEIVE, 1.5])  # expect-error
    CommandServer([RECEIVE, Reset])  # expect-error
    CommandServer("x", port="80")  # expect-error
    CommandServer("x", on_event=lambda record: None)  # expect-error
    CommandServer.from_file("x.script", exact="yes")  # expect-error
    AsyncioCommandServer("x", None, None, "127.0.0.1")  # expect-error
    PerConnection(1.5)  # expect-error
    compile_script(42)  # expect-error
    Expect(42)  # expect-error
    Expect(re.compile(rb"x"), within=ReadLine)  # expect-error
    ReadFrame(prefix=4)  # expect-error
    Call(lambda: None)  # expect-error
    TcpServer(timeout="1")  # expect-error
    tcpserver.expect_bytes("text")  # expect-error
    server.received.append(3)  # expect-error
    server.url = "http://127.0.0.1:80"  # expect-error
    print(server.port + server.address[1])  # expect-error
    sock.breakOn(5, OSError)  # expect-error
    sock.break_on(b"QUIT", "boom")  # expect-error
    sock.max_send = "10"  # expect-error
    capture_sockets(setup=1)  # expect-error


def test_misused_fixture(command_server: CommandServerFactory) -> None:
    command_server("x", timeout="2")  # expect-error
    command_server("x", int)  # expect-error
    command_server("x", loop=asyncio.new_event_loop())  # expect-error


class MisusedTest(unittest.TestCase):
    def setUp(self) -> None:
        server_for_test(self, "x", verbose=1)  # expect-error
        server_for_test(object(), "x")  # expect-error
