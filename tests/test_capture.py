"""Tests for testingsocket.capture: capture_sockets patches socket.socket while a block runs,
collects a TestingSocket for every new socket and always restores the original; and it works
under the standard library's own clients (http.client, urllib, smtplib, asyncio).

Real sockets only: loopback servers started before the capture (so their sockets stay plain)
and joined by the tests. Nothing sleeps for synchronisation: servers are stopped through a
wake-up socketpair and joined, threads are waited for with ``wait_for`` and joins.
"""

from __future__ import annotations

import asyncio
import contextlib
import doctest
import errno
import http.client
import http.server
import logging
import selectors
import smtplib
import socket
import ssl
import threading
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import testingsocket
import testingsocket._real
import testingsocket.capture
from testingsocket import TestingSocket
from testingsocket.capture import SocketCapture, capture_sockets

TIMEOUT = 10.0  # for anything that waits on a peer; only reached if a test is broken


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


class LoopbackServer:
    """A listener on 127.0.0.1 whose thread hands each connection to ``handler``, in turn.

    Made before any capture block, so its sockets are plain. ``stop()`` wakes the thread
    through a socketpair, joins it and re-raises what a handler raised.
    """

    def __init__(self, handler: Callable[[socket.socket], None]) -> None:
        self.handler = handler
        self.errors: list[BaseException] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = self.listener.getsockname()[:2]
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="loopback-server")
        self._thread.start()

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r:
                        return
                    conn, _ = self.listener.accept()
                    with conn:
                        conn.settimeout(TIMEOUT)
                        try:
                            self.handler(conn)
                        except Exception as exc:
                            self.errors.append(exc)

    def stop(self) -> None:
        self._wake_w.send(b"x")
        self._thread.join(TIMEOUT)
        assert not self._thread.is_alive(), "loopback server thread did not stop"
        for sock in (self.listener, self._wake_r, self._wake_w):
            sock.close()
        if self.errors:
            raise self.errors[0]


@contextlib.contextmanager
def loopback_server(handler: Callable[[socket.socket], None]) -> Iterator[LoopbackServer]:
    server = LoopbackServer(handler)
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------
# capture_sockets: the patch itself
# ---------------------------------------------------------------------------------------------

REAL_SOCKET = socket.socket


def test_capture_turns_new_sockets_into_testing_sockets_and_restores_on_exit() -> None:
    with capture_sockets() as captured:
        assert socket.socket is not REAL_SOCKET
        with socket.socket() as made, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            assert isinstance(made, TestingSocket) and isinstance(udp, TestingSocket)
            assert udp.type == socket.SOCK_DGRAM
            assert list(captured) == [made, udp]
    assert socket.socket is REAL_SOCKET
    with socket.socket() as after:
        assert type(after) is REAL_SOCKET
    assert len(captured) == 2


def test_capture_restores_socket_socket_when_the_block_raises() -> None:
    with pytest.raises(KeyError), capture_sockets():
        raise KeyError("boom")
    assert socket.socket is REAL_SOCKET


def test_under_capture_isinstance_still_holds_for_every_real_socket() -> None:
    left, right = socket.socketpair()  # made before the capture
    with left, right, capture_sockets():
        assert isinstance(right, socket.socket)
        assert issubclass(ssl.SSLSocket, socket.socket)
        assert not isinstance(b"bytes", socket.socket)


def test_under_capture_sockets_from_existing_descriptors_stay_plain() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener, capture_sockets() as captured:
        left, right = socket.socketpair()
        client = socket.create_connection(listener.getsockname(), timeout=TIMEOUT)
        listener.settimeout(TIMEOUT)
        accepted, _ = listener.accept()
        with left, right, client, accepted:
            assert type(left) is REAL_SOCKET and type(right) is REAL_SOCKET
            assert type(accepted) is REAL_SOCKET
            assert list(captured) == [client]


def test_nested_captures_each_collect_and_the_patch_stays_until_the_last_exits() -> None:
    with capture_sockets() as outer:
        first = socket.socket()
        with capture_sockets() as inner:
            second = socket.socket()
        assert socket.socket is not REAL_SOCKET
        third = socket.socket()
    assert socket.socket is REAL_SOCKET
    for sock in (first, second, third):
        sock.close()
    assert list(outer) == [first, second, third]
    assert list(inner) == [second]


def test_captures_exited_out_of_order_still_restore_the_original() -> None:
    outer, inner = capture_sockets(), capture_sockets()
    outer.__enter__()
    inner.__enter__()
    outer.__exit__(None, None, None)
    with socket.socket() as made:
        assert list(inner) == [made] and list(outer) == []
    inner.__exit__(None, None, None)
    assert socket.socket is REAL_SOCKET


def test_exiting_twice_is_harmless_and_entering_twice_is_refused() -> None:
    capture = capture_sockets()
    with capture:
        pass
    capture.__exit__(None, None, None)
    assert socket.socket is REAL_SOCKET
    with pytest.raises(RuntimeError, match="entered once"):
        capture.__enter__()


def test_setup_runs_on_each_socket_before_it_is_handed_out() -> None:
    seen: list[TestingSocket] = []
    with capture_sockets(setup=seen.append) as captured, socket.socket() as made:
        assert seen == [made] == list(captured)


def test_setup_that_raises_closes_the_socket_and_propagates() -> None:
    def refuse(sock: TestingSocket) -> None:
        raise LookupError("no sockets today")

    with capture_sockets(setup=refuse) as captured, pytest.raises(LookupError):
        socket.socket()
    assert list(captured) == []
    assert socket.socket is REAL_SOCKET


def test_sockets_made_by_another_thread_are_captured_and_waited_for() -> None:
    made: list[socket.socket] = []
    with capture_sockets() as captured:
        worker = threading.Thread(target=lambda: made.append(socket.socket()), name="maker")
        worker.start()
        found = captured.wait_for(1, timeout=TIMEOUT)
        worker.join(TIMEOUT)
    made[0].close()
    assert found == made


def test_sockets_made_by_many_threads_at_once_are_each_captured_once() -> None:
    start = threading.Barrier(8, timeout=TIMEOUT)
    made: list[socket.socket] = []

    def make() -> None:
        start.wait()
        made.append(socket.socket())

    with capture_sockets() as captured:
        workers = [threading.Thread(target=make, name=f"maker-{n}") for n in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(TIMEOUT)
    for sock in made:
        sock.close()
    assert len(made) == 8
    assert sorted(map(id, captured)) == sorted(map(id, made))


def test_wait_for_times_out_naming_what_arrived() -> None:
    with capture_sockets() as captured, pytest.raises(TimeoutError, match=r"for 1 .* got 0"):
        captured.wait_for(1, timeout=0.01)


def test_capture_sequence_supports_len_index_slice_and_repr() -> None:
    with capture_sockets() as captured, socket.socket() as a, socket.socket() as b:
        assert isinstance(captured, SocketCapture)
        assert (len(captured), captured[0], captured[-1], captured[:1]) == (2, a, b, [a])
        assert "2 socket(s)" in repr(captured)


def test_someone_else_patching_during_a_capture_is_left_in_place(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Theirs(REAL_SOCKET):
        pass

    with capture_sockets(), caplog.at_level(logging.WARNING, logger="testingsocket"):
        monkeypatch.setattr(socket, "socket", Theirs)
    assert socket.socket is Theirs
    assert "replaced by" in caplog.text
    monkeypatch.undo()
    assert socket.socket is not REAL_SOCKET  # their undo put the stand-in back
    with socket.socket() as plain:  # and with no capture active it makes plain sockets
        assert not isinstance(plain, TestingSocket)
    with capture_sockets():  # the next capture cleans up after itself
        pass
    assert socket.socket is REAL_SOCKET


# ---------------------------------------------------------------------------------------------
# capture_sockets against standard-library clients
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def http_server() -> Iterator[tuple[LoopbackServer, list[str]]]:
    paths: list[str] = []

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            paths.append(self.path)
            body = b"hello"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            logging.getLogger(__name__).debug(format, *args)

    def handle(conn: socket.socket) -> None:
        Hello(conn, conn.getpeername(), None)  # type: ignore[arg-type]

    with loopback_server(handle) as server:
        yield server, paths


def test_http_client_get_is_one_sendall_and_its_response_is_recorded(
    http_server: tuple[LoopbackServer, list[str]],
) -> None:
    server, paths = http_server
    with capture_sockets() as captured:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=TIMEOUT)
        try:
            conn.request("GET", "/one", headers={"X-Test": "1"})
            assert conn.getresponse().read() == b"hello"
        finally:
            conn.close()
    [sock] = captured
    assert sock.sendall_calls == 1
    assert sock.data_out.startswith(b"GET /one HTTP/1.1\r\n")
    assert b"X-Test: 1\r\n" in sock.data_out
    assert sock.data_in.startswith(b"HTTP/1.0 200 OK\r\n")
    assert sock.data_in.endswith(b"\r\n\r\nhello")
    assert paths == ["/one"]


def test_http_client_break_on_header_raises_from_request_and_the_server_sees_nothing(
    http_server: tuple[LoopbackServer, list[str]],
) -> None:
    server, paths = http_server
    gotcha = OSError(errno.EPIPE, "gotcha")
    with capture_sockets(setup=lambda s: s.breakOn("X-Token: secret", gotcha)) as captured:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=TIMEOUT)
        try:
            with pytest.raises(BrokenPipeError) as caught:
                conn.request("GET", "/secret", headers={"X-Token": "secret"})
        finally:
            conn.close()
    assert caught.value is gotcha
    [sock] = captured
    assert (sock.sendall_calls, sock.data_out) == (1, b"")
    # The server handles connections in turn: once this answer is in, the broken one was seen.
    conn = http.client.HTTPConnection(server.host, server.port, timeout=TIMEOUT)
    try:
        conn.request("GET", "/after")
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    assert paths == ["/after"]


def test_urllib_request_through_capture_is_recorded(
    http_server: tuple[LoopbackServer, list[str]],
) -> None:
    server, _ = http_server
    with capture_sockets() as captured:
        url = f"http://{server.host}:{server.port}/via-urllib"
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            assert response.read() == b"hello"
    [sock] = captured
    assert sock.data_out.startswith(b"GET /via-urllib HTTP/1.1\r\n")


@pytest.fixture
def smtp_server() -> Iterator[tuple[LoopbackServer, list[bytes]]]:
    """A tiny SMTP responder: says yes to everything and keeps the commands and messages."""
    received: list[bytes] = []

    def respond(conn: socket.socket) -> None:
        with conn.makefile("rwb") as stream:

            def reply(line: bytes) -> None:
                stream.write(line + b"\r\n")
                stream.flush()

            reply(b"220 test.invalid ESMTP")
            while line := stream.readline():
                received.append(line)
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    reply(b"250 test.invalid")
                elif verb == b"DATA":
                    reply(b"354 end with .")
                    message = b"".join(iter(stream.readline, b".\r\n"))
                    received.append(message)
                    reply(b"250 queued")
                elif verb == b"QUIT":
                    reply(b"221 bye")
                    return
                else:
                    reply(b"250 ok")

    with loopback_server(respond) as server:
        yield server, received


def test_smtplib_sendmail_is_recorded_command_by_command(
    smtp_server: tuple[LoopbackServer, list[bytes]],
) -> None:
    server, received = smtp_server
    with capture_sockets() as captured:
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
            client.sendmail("a@example.com", ["b@example.com"], b"Subject: hi\r\n\r\nbody\r\n")
    [sock] = captured
    assert sock.data_out.lower() == (  # the case of the verbs varies with Python's version
        b"ehlo [127.0.0.1]\r\n"
        b"mail from:<a@example.com>\r\n"
        b"rcpt to:<b@example.com>\r\n"
        b"data\r\n"
        b"subject: hi\r\n\r\nbody\r\n.\r\n"
        b"quit\r\n"
    )
    assert sock.sendall_calls == 6  # one per command, one for the message
    assert sock.data_in.startswith(b"220 test.invalid ESMTP\r\n")
    assert sock.data_in.endswith(b"221 bye\r\n")
    assert received[-1] == b"QUIT\r\n"


def test_smtplib_break_on_rcpt_gives_server_disconnected(
    smtp_server: tuple[LoopbackServer, list[bytes]],
) -> None:
    server, received = smtp_server
    reset = ConnectionResetError(errno.ECONNRESET, "gotcha")
    with capture_sockets(setup=lambda s: s.break_on(b":<b@example.com>", reset)) as captured:
        client = smtplib.SMTP(server.host, server.port, timeout=TIMEOUT)
        try:
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client.sendmail("a@example.com", ["b@example.com"], b"body\r\n")
        finally:
            client.close()
    [sock] = captured
    assert sock.cues[0].fired == 1
    assert sock.data_out.lower().endswith(b"mail from:<a@example.com>\r\n")
    assert b"<b@example.com>" not in sock.data_out
    assert b"<b@example.com>" not in b"".join(received)
    assert sock.fileno() == -1  # smtplib closed it on the error


def test_capture_without_setup_lets_cues_be_armed_after_connect(
    smtp_server: tuple[LoopbackServer, list[bytes]],
) -> None:
    server, _ = smtp_server
    with capture_sockets() as captured:
        client = smtplib.SMTP(server.host, server.port, timeout=TIMEOUT)
    try:
        captured[0].break_on(b"noop", BrokenPipeError, once=True)
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    finally:
        client.close()


@pytest.mark.asyncio
async def test_asyncio_open_connection_through_capture_gives_a_testing_socket() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        host, port = listener.getsockname()
        with capture_sockets() as captured:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
        try:
            writer.write(b"hello")
            await writer.drain()
            [sock] = captured
            assert writer.get_extra_info("socket").fileno() == sock.fileno()
            assert sock.data_out == b"hello"
        finally:
            writer.close()
            await writer.wait_closed()
        listener.settimeout(TIMEOUT)
        conn, _ = listener.accept()
        conn.close()


# ---------------------------------------------------------------------------------------------
# The module
# ---------------------------------------------------------------------------------------------


def test_docstring_examples_pass() -> None:
    result = doctest.testmod(testingsocket.capture, optionflags=doctest.ELLIPSIS)
    assert result.attempted and not result.failed
