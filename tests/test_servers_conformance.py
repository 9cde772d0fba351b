"""One suite, every server class: CommandServer, OneShotServer and AsyncioCommandServer
must behave the same for a single connection.

The AsyncioCommandServer runs against an event loop that is really running (on a
helper thread), and after each test its reader must hold exactly what ``received``
says the client sent, so the asyncio feeding is checked by every test here too.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from embeddedserver import (
    RECEIVE,
    Call,
    CommandServer,
    Connection,
    Drip,
    Expect,
    ExpectClose,
    Garbage,
    HalfClose,
    Hang,
    OneShotServer,
    ReadLine,
    ReadUntilClose,
    Receive,
    Reset,
    SendFrame,
)

CLIENT_TIMEOUT = 10.0
LONG = 600.0

MakeServer = Callable[..., CommandServer]


class _LoopThread:
    """An event loop running on its own thread, for servers created in sync code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-loop")
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(CLIENT_TIMEOUT)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(CLIENT_TIMEOUT)
        self.loop.close()


@pytest.fixture(params=["CommandServer", "OneShotServer", "AsyncioCommandServer"])
def make_server(request: pytest.FixtureRequest) -> Iterator[MakeServer]:
    servers: list[CommandServer] = []
    loop_thread = _LoopThread() if request.param == "AsyncioCommandServer" else None

    def make(commands: Any, **kwargs: Any) -> CommandServer:
        kwargs.setdefault("verbose", False)
        server: CommandServer
        if loop_thread is not None:
            from embeddedserver import AsyncioCommandServer

            server = AsyncioCommandServer(commands, loop=loop_thread.loop, **kwargs)
        elif request.param == "OneShotServer":
            server = OneShotServer(commands, **kwargs)
        else:
            server = CommandServer(commands, **kwargs)
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.stop()
        if loop_thread is not None:
            try:
                for server in servers:
                    if server.connections:
                        fed = loop_thread.run(server.reader.read())  # type: ignore[attr-defined]
                        assert fed == b"".join(server.received)
            finally:
                loop_thread.close()


def connect(server: CommandServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT)


def read_to_eof(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def read_or_reset(sock: socket.socket) -> bytes | str:
    try:
        return read_to_eof(sock)
    except ConnectionResetError:
        return "reset"


# ---------------------------------------------------------------------------
# the suite
# ---------------------------------------------------------------------------


def test_answers_a_line(make_server: MakeServer) -> None:
    srvr = make_server([ReadLine(), "pong\n"])
    with connect(srvr) as sock:
        sock.sendall(b"ping\n")
        assert read_to_eof(sock) == b"pong\n"
    srvr.wait_for_connections(1)
    srvr.check()
    assert srvr.received == [b"ping\n"]
    assert srvr.connections[0].ended == "server closed"


def test_a_lone_string_is_receive_then_send(make_server: MakeServer) -> None:
    srvr = make_server(b"hi there")
    with connect(srvr) as sock:
        sock.sendall(b"x")
        assert read_to_eof(sock) == b"hi there"
    srvr.wait_for_connections(1)
    srvr.check()


def test_sends_frames_garbage_and_drips(make_server: MakeServer) -> None:
    srvr = make_server([RECEIVE, SendFrame(b"f"), Garbage(10, seed=2), Drip(b"ab", interval=0)])
    with connect(srvr) as sock:
        sock.sendall(b"x")
        assert read_to_eof(sock) == struct.pack(">I", 1) + b"f" + Garbage(10, seed=2).data + b"ab"
    srvr.wait_for_connections(1)
    srvr.check()


def test_mismatch_fails_at_once_and_check_names_the_step(make_server: MakeServer) -> None:
    srvr = make_server([Expect(b"GOOD MORNING"), "x"], timeout=LONG)
    with connect(srvr) as sock:
        sock.sendall(b"GOOD N")
        assert read_or_reset(sock) in (b"", "reset")
    srvr.wait_for_connections(1)
    with pytest.raises(AssertionError) as info:
        srvr.check()
    text = str(info.value)
    assert f"{type(srvr).__name__} on 127.0.0.1:{srvr.port}: 1 failure" in text
    assert "step 0 of 2: Expect(b'GOOD MORNING'): wrong bytes at offset 5" in text
    srvr.errors.clear()


def test_reset_is_seen_by_the_client(make_server: MakeServer) -> None:
    srvr = make_server([RECEIVE, Reset()])
    with connect(srvr) as sock:
        sock.sendall(b"x")
        with pytest.raises(ConnectionResetError):
            read_to_eof(sock)
    srvr.wait_for_connections(1)
    srvr.check()
    assert srvr.connections[0].ended == "server reset"


def test_half_close_then_reads_on(make_server: MakeServer) -> None:
    srvr = make_server(["bye", HalfClose(), ReadUntilClose()])
    with connect(srvr) as sock:
        assert read_to_eof(sock) == b"bye"
        sock.sendall(b"after half-close")
        sock.shutdown(socket.SHUT_WR)
        srvr.wait_for_connections(1)
    srvr.check()
    assert srvr.received == [b"after half-close"]
    assert srvr.connections[0].ended == "client closed"


def test_replies_to_a_half_closed_client(make_server: MakeServer) -> None:
    srvr = make_server([ReadUntilClose(), "reply"])
    with connect(srvr) as sock:
        sock.sendall(b"request")
        sock.shutdown(socket.SHUT_WR)
        assert read_to_eof(sock) == b"reply"
    srvr.wait_for_connections(1)
    srvr.check()


def test_expect_close(make_server: MakeServer) -> None:
    srvr = make_server([ReadLine(), ExpectClose()])
    with connect(srvr) as sock:
        sock.sendall(b"last\n")
    srvr.wait_for_connections(1)
    srvr.check()
    assert srvr.connections[0].ended == "client closed"


def test_read_timeout_is_a_failure(make_server: MakeServer) -> None:
    srvr = make_server([Receive(timeout=0.2)], timeout=LONG)
    with connect(srvr) as sock:
        assert read_to_eof(sock) == b""
    srvr.wait_for_connections(1)
    assert srvr.errors[0].kind == "timeout"
    assert srvr.connections[0].ended == "timeout"
    srvr.errors.clear()


def test_call_step_and_its_exception(make_server: MakeServer) -> None:
    def shout(conn: Connection) -> None:
        conn.send(conn.recv_exactly(3).upper())
        raise RuntimeError("after shouting")

    srvr = make_server([Call(shout), "never"])
    with connect(srvr) as sock:
        sock.sendall(b"abc")
        assert read_to_eof(sock) == b"ABC"
    srvr.wait_for_connections(1)
    with pytest.raises(AssertionError, match="RuntimeError: after shouting"):
        srvr.check()
    srvr.errors.clear()


def test_bytes_a_call_step_reads_are_received_like_a_read_steps(
    make_server: MakeServer,
) -> None:
    def shout_then_read_to_eof(conn: Connection) -> None:
        conn.send(conn.recv_exactly(3).upper())
        while conn.recv():
            pass
        conn.send(".")

    srvr = make_server([Call(shout_then_read_to_eof)])
    with connect(srvr) as sock:
        sock.sendall(b"abc")
        assert sock.recv(3, socket.MSG_WAITALL) == b"ABC"
        sock.sendall(b"rest")
        sock.shutdown(socket.SHUT_WR)
        assert read_to_eof(sock) == b"."
    srvr.wait_for_connections(1)
    srvr.check()
    assert srvr.received[0] == b"abc"
    assert b"".join(srvr.received) == b"abcrest" == srvr.connections[0].received


def test_stop_with_an_idle_client_is_prompt(make_server: MakeServer) -> None:
    srvr = make_server([RECEIVE], timeout=LONG)
    with connect(srvr) as sock:
        srvr.wait_for_connections(1, finished=False)
        srvr.stop()
        assert read_to_eof(sock) == b""
    assert not srvr._thread.is_alive()
    srvr.assert_failed("unfinished", step=0, timeout=0.1)  # the client never sent a byte
    srvr.check()
    assert srvr.connections[0].ended == "stopped"


def test_stop_inside_hang_is_prompt(make_server: MakeServer) -> None:
    reached = threading.Event()
    srvr = make_server([Call(lambda conn: reached.set()), Hang()], timeout=LONG)
    with connect(srvr):
        assert reached.wait(CLIENT_TIMEOUT)
        srvr.stop()
    assert not srvr._thread.is_alive()
    srvr.check()


def test_stop_from_a_call_step(make_server: MakeServer) -> None:
    holder: list[CommandServer] = []
    srvr = make_server([Call(lambda conn: holder[0].stop()), RECEIVE], timeout=LONG)
    holder.append(srvr)
    with connect(srvr) as sock:
        assert read_to_eof(sock) == b""
    srvr._thread.join(CLIENT_TIMEOUT)
    assert srvr.STOPPED and srvr._waker.closed
    srvr.check()


def test_context_manager_raises_what_check_finds(make_server: MakeServer) -> None:
    srvr = make_server([Expect(b"A")], timeout=LONG)
    with pytest.raises(AssertionError, match="wrong bytes at offset 0"):
        with srvr:
            with connect(srvr) as sock:
                sock.sendall(b"B")
                read_or_reset(sock)
            srvr.wait_for_connections(1)
    assert srvr.STOPPED


def test_transcript_names_the_peer(make_server: MakeServer) -> None:
    srvr = make_server([ReadLine(), "ok"])
    with connect(srvr) as sock:
        sock.sendall(b"hello\n")
        port = sock.getsockname()[1]
        read_to_eof(sock)
    srvr.wait_for_connections(1)
    text = srvr.transcript()
    assert text.startswith(f"connection #1 from 127.0.0.1:{port} [server closed]")
    assert "<- client 6 bytes  b'hello\\n'" in text


def test_quiet_means_quiet(make_server: MakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    srvr = make_server([ReadLine(), "ok"])
    with connect(srvr) as sock:
        sock.sendall(b"hello\n")
        read_to_eof(sock)
    srvr.wait_for_connections(1)
    assert capsys.readouterr() == ("", "")


def test_stopped_flag_and_repr(make_server: MakeServer) -> None:
    srvr = make_server("x")
    assert srvr.STOPPED is False
    assert repr(srvr) == f"<{type(srvr).__name__} 127.0.0.1:{srvr.port} serving>"
    srvr.stop()
    assert srvr.STOPPED is True
    assert repr(srvr).endswith("stopped>")
