"""Tests for testingsocket: TestingSocket records, counts and breaks (capture_sockets, which
patches socket.socket, is tested in test_capture).

Real sockets only: socketpairs, and loopback listeners opened and closed by the tests. The
feature tests run through three drivers (plain blocking calls, a select loop on a non-blocking
socket, an asyncio transport), since each drives the socket's methods differently. Nothing
sleeps for synchronisation: peers block on reads with a generous timeout, a peer thread is
joined.
"""

from __future__ import annotations

import asyncio
import contextlib
import doctest
import errno
import os
import re
import select
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _readme import python_blocks, section

import testingsocket
import testingsocket.recording
from testingsocket import Cue, TestingSocket

TIMEOUT = 10.0  # for anything that waits on a peer; only reached if a test is broken
_DOC_PAGE = "docs/reference/testingsocket.md"


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def pair() -> Iterator[tuple[TestingSocket, socket.socket]]:
    sock, peer = TestingSocket.pair()
    with sock, peer:
        sock.settimeout(TIMEOUT)
        peer.settimeout(TIMEOUT)
        yield sock, peer


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"EOF after {data!r}, expected {size} bytes"
        data += chunk
    return data


def read_to_eof(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------------------------------------
# Three ways a client drives a socket
# ---------------------------------------------------------------------------------------------


class Driver:
    """Sends chunks through / reads a socket to EOF in one style; may close the socket."""

    name = "base"

    def send_each(self, sock: TestingSocket, chunks: list[bytes]) -> None:
        raise NotImplementedError

    def receive_all(self, sock: TestingSocket) -> bytes:
        raise NotImplementedError


class BlockingDriver(Driver):
    name = "blocking"

    def send_each(self, sock: TestingSocket, chunks: list[bytes]) -> None:
        for chunk in chunks:
            sock.sendall(chunk)

    def receive_all(self, sock: TestingSocket) -> bytes:
        return read_to_eof(sock)


class SelectDriver(Driver):
    name = "select"

    def send_each(self, sock: TestingSocket, chunks: list[bytes]) -> None:
        sock.setblocking(False)
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                _, writable, _ = select.select([], [sock], [], TIMEOUT)
                assert writable, "socket never became writable"
                view = view[sock.send(view) :]

    def receive_all(self, sock: TestingSocket) -> bytes:
        sock.setblocking(False)
        data = b""
        while True:
            readable, _, _ = select.select([sock], [], [], TIMEOUT)
            assert readable, f"no EOF after {data!r}"
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk


class AsyncioDriver(Driver):
    """Through asyncio streams; the transport owns (and closes) the socket."""

    name = "asyncio"

    def send_each(self, sock: TestingSocket, chunks: list[bytes]) -> None:
        asyncio.run(asyncio.wait_for(self._send_each(sock, chunks), TIMEOUT))

    def receive_all(self, sock: TestingSocket) -> bytes:
        return asyncio.run(asyncio.wait_for(self._receive_all(sock), TIMEOUT))

    @staticmethod
    async def _send_each(sock: TestingSocket, chunks: list[bytes]) -> None:
        reader, writer = await asyncio.open_connection(sock=sock)
        try:
            for chunk in chunks:
                writer.write(chunk)
                await writer.drain()
            writer.close()
            await writer.wait_closed()  # flushes what short writes left in the buffer
        except Exception as lost:
            # A transport reports a failed send through its protocol: drain() only says
            # "Connection lost"; the exception itself went to the reader.
            raise (reader.exception() or lost) from None
        finally:
            writer.close()

    @staticmethod
    async def _receive_all(sock: TestingSocket) -> bytes:
        reader, writer = await asyncio.open_connection(sock=sock)
        try:
            return await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


DRIVERS = [BlockingDriver(), SelectDriver(), AsyncioDriver()]


@pytest.fixture(params=DRIVERS, ids=[d.name for d in DRIVERS])
def driver(request: pytest.FixtureRequest) -> Driver:
    return request.param  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------
# The reference page shows runnable examples (tests/test_docs.py runs them), and the
# docstring examples run
# ---------------------------------------------------------------------------------------------


def test_reference_page_has_runnable_examples() -> None:
    text = section(_DOC_PAGE, "#")
    assert text.startswith("# TestingSocket\n")
    code = "\n".join(block.code for block in python_blocks(text, _DOC_PAGE))
    assert len(python_blocks(text, _DOC_PAGE)) >= 4
    for name in ["TestingSocket.pair()", "break_on(", "breakOn(", "break_on_receive(",
                 "eof_after(", "max_send", "capture_sockets(", "asyncio.open_connection"]:
        assert name in code, f"{_DOC_PAGE} has no example using {name}"


def test_docstring_examples_pass() -> None:
    result = doctest.testmod(testingsocket.recording, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 20
    assert result.failed == 0


# ---------------------------------------------------------------------------------------------
# The seed API, exactly as users wrote it
# ---------------------------------------------------------------------------------------------


def test_seed_api_records_data_out_and_counts_send_and_sendall(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    some_connected_socket, peer = socket.socketpair()
    with some_connected_socket, peer:
        sock = TestingSocket(sock=some_connected_socket)
        with sock:
            sock.sendall(b"GET / HTTP/1.1\r\n")
            sock.send(b"\r\n")
            assert b"GET" in sock._data["data_out"], "ok"
            assert sock._data["send_calls"] < 3, "too many calls"
            assert sock._data["sendall_calls"] < 3, "too many calls"
            assert (sock._data["send_calls"], sock._data["sendall_calls"]) == (1, 1)
            assert read_exactly(peer, 18) == b"GET / HTTP/1.1\r\n\r\n"


def test_seed_break_on_raises_the_given_oserror_and_sends_nothing(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    sock, peer = pair
    gotcha = OSError(errno.EPIPE, "gotcha")
    sock.breakOn("byte-me", gotcha)
    assert (sock._data["cue"], sock._data["throw"]) == (b"byte-me", gotcha)
    with pytest.raises(OSError) as caught:
        sock.sendall(b"please byte-me")
    assert caught.value is gotcha
    assert caught.value.errno == errno.EPIPE
    sock.close()
    assert read_to_eof(peer) == b""
    assert sock._data["data_out"] == b""
    assert sock._data["sendall_calls"] == 1


# ---------------------------------------------------------------------------------------------
# Construction
# ---------------------------------------------------------------------------------------------


def test_sock_argument_takes_over_descriptor_and_timeout_and_detaches_the_old_socket() -> None:
    old, peer = socket.socketpair()
    with old, peer:
        old.settimeout(7.5)
        fd = old.fileno()
        with TestingSocket(sock=old) as sock:
            assert isinstance(sock, socket.socket)
            assert sock.fileno() == fd
            assert old.fileno() == -1
            assert sock.gettimeout() == 7.5
            assert (sock.family, sock.type) == (socket.AF_UNIX, socket.SOCK_STREAM)


def test_sock_argument_keeps_a_non_blocking_socket_non_blocking() -> None:
    old, peer = socket.socketpair()
    with old, peer:
        old.setblocking(False)
        with TestingSocket(sock=old) as sock, pytest.raises(BlockingIOError):
            sock.recv(1)


def test_fileno_argument_reads_family_and_type_from_the_descriptor() -> None:
    left, right = socket.socketpair()
    with right, TestingSocket(fileno=left.detach()) as sock:
        assert (sock.family, sock.type) == (socket.AF_UNIX, socket.SOCK_STREAM)
        sock.sendall(b"hi")
        assert read_exactly(right, 2) == b"hi"


def test_host_and_port_connect_to_a_loopback_listener() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        host, port = listener.getsockname()
        with TestingSocket(host=host, port=port) as sock:
            sock.settimeout(TIMEOUT)
            conn, _ = listener.accept()
            with conn:
                assert sock.getpeername() == (host, port)
                sock.sendall(b"ping")
                assert read_exactly(conn, 4) == b"ping"


def test_failed_connect_raises_and_leaves_no_descriptor_open() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        TestingSocket(host="127.0.0.1", port=port)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"host": "127.0.0.1"}, "needs both host and port"),
        ({"port": 80}, "needs both host and port"),
        ({"sock": "not a socket"}, "takes a plain socket.socket, not 'not a socket'"),
    ],
)
def test_bad_constructor_arguments_raise_type_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=re.escape(message)):
        TestingSocket(**kwargs)


def test_sock_and_fileno_together_raise_type_error(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    _, peer = pair
    with pytest.raises(TypeError, match="sock= or fileno=, not both"):
        TestingSocket(sock=peer, fileno=peer.fileno())
    assert peer.fileno() != -1


def test_pair_gives_a_connected_testing_socket_and_plain_peer(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    sock, peer = pair
    assert type(peer) is socket.socket
    peer.sendall(b"hello")
    assert read_exactly(sock, 5) == b"hello"
    sock.sendall(b"world")
    assert read_exactly(peer, 5) == b"world"


def test_dup_gives_a_fresh_testing_socket_on_the_same_connection(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    sock, peer = pair
    sock.sendall(b"a")
    with sock.dup() as copy:
        assert isinstance(copy, TestingSocket)
        copy.sendall(b"b")
        assert copy.data_out == b"b"
    assert read_exactly(peer, 2) == b"ab"
    assert sock.data_out == b"a"


def test_records_stay_readable_after_close(pair: tuple[TestingSocket, socket.socket]) -> None:
    sock, _ = pair
    sock.sendall(b"bye")
    sock.close()
    assert (sock.data_out, sock.sendall_calls) == (b"bye", 1)


# ---------------------------------------------------------------------------------------------
# Every feature through every driver
# ---------------------------------------------------------------------------------------------


def test_sends_are_recorded_in_order_and_each_call_counted(
    driver: Driver, pair: tuple[TestingSocket, socket.socket]
) -> None:
    sock, peer = pair
    chunks = [b"GET / HTTP/1.1\r\n", b"Host: example\r\n\r\n"]
    driver.send_each(sock, chunks)
    assert sock.data_out == b"".join(chunks)
    assert sock.send_calls + sock.sendall_calls == 2
    sock.close()
    assert read_to_eof(peer) == b"".join(chunks)


def test_break_on_cue_straddling_two_sends_raises_and_sends_nothing_of_that_call(
    driver: Driver, pair: tuple[TestingSocket, socket.socket]
) -> None:
    sock, peer = pair
    abort = ConnectionAbortedError(errno.ECONNABORTED, "cue hit")
    sock.break_on("byte-me", abort)
    with pytest.raises(ConnectionAbortedError) as caught:
        driver.send_each(sock, [b"xx byte", b"-me yy", b"never"])
    assert caught.value is abort
    assert sock.data_out == b"xx byte"
    sock.close()
    assert read_to_eof(peer) == b"xx byte"


def test_receives_are_recorded_and_counted_up_to_eof(
    driver: Driver, pair: tuple[TestingSocket, socket.socket]
) -> None:
    sock, peer = pair
    peer.sendall(b"+OK hello\r\n")
    peer.shutdown(socket.SHUT_WR)
    assert driver.receive_all(sock) == b"+OK hello\r\n"
    assert sock.data_in == b"+OK hello\r\n"
    assert sock._data["data_in"] == b"+OK hello\r\n"
    assert sock.recv_calls >= 2  # the data, then EOF


def test_break_on_receive_raises_when_the_cue_arrives(
    driver: Driver, pair: tuple[TestingSocket, socket.socket]
) -> None:
    sock, peer = pair
    reset = ConnectionResetError(errno.ECONNRESET, "reset on cue")
    cue = sock.break_on_receive(b"-ERR", reset)
    peer.sendall(b"+OK\r\n-ERR boom\r\n")
    peer.shutdown(socket.SHUT_WR)
    with pytest.raises(ConnectionResetError) as caught:
        driver.receive_all(sock)
    assert caught.value is reset
    assert cue.fired == 1
    assert b"-ERR" in sock.data_in


def test_eof_after_cuts_the_stream_short(
    driver: Driver, pair: tuple[TestingSocket, socket.socket]
) -> None:
    sock, peer = pair
    sock.eof_after(4)
    peer.sendall(b"abcdefgh")  # and no EOF from the peer
    assert driver.receive_all(sock) == b"abcd"
    assert sock.data_in == b"abcd"


def test_break_receive_after_raises_once_the_limit_is_read(
    driver: Driver, pair: tuple[TestingSocket, socket.socket]
) -> None:
    sock, peer = pair
    reset = ConnectionResetError(errno.ECONNRESET, "limit")
    sock.break_receive_after(4, reset)
    peer.sendall(b"abcdefgh")
    with pytest.raises(ConnectionResetError) as caught:
        driver.receive_all(sock)
    assert caught.value is reset
    assert sock.data_in == b"abcd"


def test_max_send_gives_short_writes_and_the_data_still_arrives_whole(
    driver: Driver, pair: tuple[TestingSocket, socket.socket]
) -> None:
    sock, peer = pair
    sock.max_send = 3
    payload = b"0123456789"
    driver.send_each(sock, [payload])
    assert sock.data_out == payload
    sock.close()
    assert read_to_eof(peer) == payload
    if isinstance(driver, BlockingDriver):
        assert sock.sendall_calls == 1  # sendall hides the short writes from the client
    else:
        assert sock.send_calls >= 4  # the client had to come back for the rest


# ---------------------------------------------------------------------------------------------
# Cues in detail
# ---------------------------------------------------------------------------------------------


def test_cue_fires_every_time_by_default_so_a_retry_fails_again(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    sock, _ = pair
    cue = sock.break_on(b"QUIT", BrokenPipeError)
    for _ in range(2):
        with pytest.raises(BrokenPipeError):
            sock.sendall(b"QUIT\r\n")
    assert (cue.fired, sock.data_out, sock.cues) == (2, b"", (cue,))


def test_once_cue_fires_once_then_the_retry_goes_through(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    sock, peer = pair
    cue = sock.break_on(b"QUIT", BrokenPipeError, once=True)
    with pytest.raises(BrokenPipeError):
        sock.sendall(b"QUIT\r\n")
    sock.sendall(b"QUIT\r\n")
    assert (cue.fired, sock.cues, sock._data["cue"]) == (1, (), None)
    assert read_exactly(peer, 6) == b"QUIT\r\n"


def test_exception_class_is_raised_as_a_new_instance(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    sock, _ = pair
    sock.break_on(b"x", ConnectionResetError)
    with pytest.raises(ConnectionResetError) as first:
        sock.send(b"x")
    with pytest.raises(ConnectionResetError) as second:
        sock.send(b"x")
    assert first.value is not second.value


# Each way of arming a fault, as a function that arms it on a socket and makes it fire.
def _fire_send_cue(sock: TestingSocket, peer: socket.socket, exc: Any) -> None:
    sock.break_on(b"QUIT", exc)
    sock.sendall(b"QUIT\r\n")


def _fire_seed_cue(sock: TestingSocket, peer: socket.socket, exc: Any) -> None:
    sock.breakOn(b"QUIT", exc)
    sock.sendall(b"QUIT\r\n")


def _fire_receive_cue(sock: TestingSocket, peer: socket.socket, exc: Any) -> None:
    sock.break_on_receive(b"-ERR", exc)
    peer.sendall(b"-ERR\r\n")
    read_exactly(sock, 6)


def _fire_receive_limit(sock: TestingSocket, peer: socket.socket, exc: Any) -> None:
    sock.break_receive_after(0, exc)
    sock.recv(100)


FIRE = [_fire_send_cue, _fire_seed_cue, _fire_receive_cue, _fire_receive_limit]
KERNEL_ERRNO = [
    (ConnectionResetError, errno.ECONNRESET),
    (BrokenPipeError, errno.EPIPE),
    (ConnectionAbortedError, errno.ECONNABORTED),
    (ConnectionRefusedError, errno.ECONNREFUSED),
    (BlockingIOError, errno.EAGAIN),
    (InterruptedError, errno.EINTR),
    (OSError, errno.EIO),
]


@pytest.mark.parametrize("fire", FIRE, ids=lambda f: f.__name__[6:])
@pytest.mark.parametrize(("cls", "code"), KERNEL_ERRNO, ids=[c.__name__ for c, _ in KERNEL_ERRNO])
def test_oserror_class_is_raised_with_the_errno_and_message_a_kernel_gives(
    pair: tuple[TestingSocket, socket.socket],
    fire: Callable[..., None],
    cls: type[OSError],
    code: int,
) -> None:
    sock, peer = pair
    with pytest.raises(OSError) as caught:
        fire(sock, peer, cls)
    raised = caught.value
    assert type(raised) is cls
    assert type(OSError(code, os.strerror(code))) is cls  # what the C socket code raises
    assert (raised.errno, raised.strerror) == (code, os.strerror(code))
    assert raised.args == (code, os.strerror(code))
    assert str(raised) == f"[Errno {code}] {os.strerror(code)}"


@pytest.mark.parametrize("fire", FIRE, ids=lambda f: f.__name__[6:])
@pytest.mark.parametrize("cls", [TimeoutError, socket.timeout], ids=["TimeoutError", "timeout"])
def test_timeout_class_is_raised_as_a_socket_timeout_is(
    pair: tuple[TestingSocket, socket.socket],
    fire: Callable[..., None],
    cls: type[OSError],
) -> None:
    sock, peer = pair
    left, right = socket.socketpair()
    with left, right:
        left.settimeout(0.001)
        with pytest.raises(TimeoutError) as real:
            left.recv(1)
    with pytest.raises(TimeoutError) as caught:
        fire(sock, peer, cls)
    raised = caught.value
    assert type(raised) is type(real.value)
    assert (raised.args, raised.errno, str(raised)) == (
        real.value.args, real.value.errno, str(real.value))


def test_a_client_that_reads_the_errno_from_args_sees_a_reset(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    def send_command(sock: socket.socket, command: bytes) -> str:
        # What redis-py and other clients do: the errno is args[0], the message args[1].
        try:
            sock.sendall(command)
        except OSError as e:
            code = e.args[0]
            return f"Error {errno.errorcode[code]} while writing to socket. {e.args[1]}."
        return "sent"

    sock, _ = pair
    sock.break_on(b"QUIT", ConnectionResetError, once=True)
    assert send_command(sock, b"QUIT\r\n") == (
        "Error ECONNRESET while writing to socket. Connection reset by peer."
    )
    assert send_command(sock, b"QUIT\r\n") == "sent"


@pytest.mark.parametrize("fire", FIRE, ids=lambda f: f.__name__[6:])
def test_exception_instance_is_raised_unchanged(
    pair: tuple[TestingSocket, socket.socket], fire: Callable[..., None]
) -> None:
    sock, peer = pair
    reset = ConnectionResetError("no errno on purpose")
    with pytest.raises(ConnectionResetError) as caught:
        fire(sock, peer, reset)
    assert caught.value is reset
    assert (reset.args, reset.errno) == (("no errno on purpose",), None)


@pytest.mark.parametrize("fire", FIRE, ids=lambda f: f.__name__[6:])
@pytest.mark.parametrize("cls", [ValueError, ssl.SSLEOFError, socket.gaierror],
                         ids=lambda c: c.__name__)
def test_other_exception_classes_are_raised_without_arguments(
    pair: tuple[TestingSocket, socket.socket],
    fire: Callable[..., None],
    cls: type[Exception],
) -> None:
    sock, peer = pair
    with pytest.raises(cls) as caught:
        fire(sock, peer, cls)
    assert type(caught.value) is cls and caught.value.args == ()


def test_repeated_firing_of_one_instance_does_not_grow_its_traceback(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    sock, _ = pair
    failure = BrokenPipeError("again")
    sock.break_on(b"x", failure)
    depths = []
    for _ in range(3):
        with pytest.raises(BrokenPipeError):
            sock.send(b"x")
        depths.append(len(list(iter_traceback(failure.__traceback__))))
    assert depths[0] == depths[1] == depths[2]


def iter_traceback(tb: Any) -> Iterator[Any]:
    while tb is not None:
        yield tb
        tb = tb.tb_next


def test_of_several_cues_the_one_ending_first_in_the_stream_fires(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    sock, _ = pair
    late = sock.break_on(b"BBBB", ConnectionResetError)
    early = sock.break_on(b"AA", BrokenPipeError)
    with pytest.raises(BrokenPipeError):
        sock.sendall(b"AABBBB")
    assert (early.fired, late.fired) == (1, 0)
    assert sock._data["cue"] == b"AA"  # the latest armed, as the seed kept it


def test_each_of_several_cues_fires_on_its_own_data(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    sock, _ = pair
    sock.break_on(b"RCPT", ConnectionResetError, once=True)
    sock.break_on(b"DATA", BrokenPipeError, once=True)
    sock.sendall(b"MAIL FROM:<a@b>\r\n")
    with pytest.raises(ConnectionResetError):
        sock.sendall(b"RCPT TO:<c@d>\r\n")
    with pytest.raises(BrokenPipeError):
        sock.sendall(b"DATA\r\n")
    sock.sendall(b"DATA\r\n")
    assert sock.data_out == b"MAIL FROM:<a@b>\r\nDATA\r\n"
    assert sock.sendall_calls == 4


def test_a_cue_already_sent_before_it_was_armed_does_not_fire(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    sock, _ = pair
    sock.sendall(b"HELO there\r\n")
    sock.break_on(b"HELO", BrokenPipeError)
    sock.sendall(b"NOOP\r\n")
    with pytest.raises(BrokenPipeError):
        sock.sendall(b"HELO again\r\n")


def test_str_cue_is_utf8_encoded_and_may_split_inside_a_character(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    sock, _ = pair
    sock.break_on("café", ConnectionResetError)
    encoded = "café".encode()
    sock.send(encoded[:-1])  # ends inside the two bytes of "é"
    with pytest.raises(ConnectionResetError):
        sock.send(encoded[-1:])


def test_clear_breaks_disarms_send_and_receive_cues_and_the_receive_limit(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    sock, peer = pair
    sock.break_on(b"x", BrokenPipeError)
    sock.break_on_receive(b"y", ConnectionResetError)
    sock.eof_after(0)
    sock.clear_breaks()
    assert (sock.cues, sock._data["cue"], sock._data["throw"]) == ((), None, None)
    sock.sendall(b"x")
    peer.sendall(b"y")
    assert read_exactly(sock, 1) == b"y"


def test_break_on_receive_in_recv_into_raises_after_filling_the_buffer(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    sock, peer = pair
    sock.break_on_receive("BYE", ConnectionResetError, once=True)
    peer.sendall(b"BY")
    buffer = bytearray(10)
    assert sock.recv_into(buffer) == 2
    peer.sendall(b"E")
    with pytest.raises(ConnectionResetError):
        sock.recv_into(buffer)
    assert buffer[:1] == b"E"
    assert sock.data_in == b"BYE"


CUE_TYPE_ERRORS = [123, None, ["GET"], 4.5]
EXC_TYPE_ERRORS = ["gotcha", 42, int, None, errno.EPIPE]


@pytest.mark.parametrize("method", ["breakOn", "break_on", "break_on_receive"])
@pytest.mark.parametrize("bad", CUE_TYPE_ERRORS, ids=repr)
def test_cue_that_is_neither_str_nor_bytes_raises_type_error_naming_it(
    pair: tuple[TestingSocket, socket.socket], method: str, bad: object
) -> None:
    sock, _ = pair
    with pytest.raises(TypeError) as caught:
        getattr(sock, method)(bad, OSError())
    message = str(caught.value)
    assert repr(bad) in message
    assert "str" in message and "bytes" in message
    assert sock.cues == ()


@pytest.mark.parametrize("method", ["breakOn", "break_on", "break_on_receive"])
@pytest.mark.parametrize("bad", EXC_TYPE_ERRORS, ids=repr)
def test_exc_that_is_not_an_exception_raises_type_error_naming_it(
    pair: tuple[TestingSocket, socket.socket], method: str, bad: object
) -> None:
    sock, _ = pair
    with pytest.raises(TypeError) as caught:
        getattr(sock, method)(b"cue", bad)
    assert repr(bad) in str(caught.value)
    assert "exception instance or class" in str(caught.value)
    assert sock.cues == ()


def test_receive_limit_with_a_bad_exception_raises_type_error(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    sock, _ = pair
    with pytest.raises(TypeError, match="'reset'"):
        sock.break_receive_after(3, "reset")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("apply", "error", "message"),
    [
        (lambda s: s.break_on(b"", OSError()), ValueError, "must not be empty"),
        (lambda s: s.break_on_receive("", OSError()), ValueError, "must not be empty"),
        (lambda s: s.eof_after(-1), ValueError, "-1"),
        (lambda s: s.eof_after("3"), TypeError, "'3'"),
        (lambda s: setattr(s, "max_send", 0), ValueError, "max_send must be >= 1, not 0"),
        (lambda s: setattr(s, "max_send", 2.5), TypeError, "max_send must be an int, not 2.5"),
        (lambda s: setattr(s, "send_delay", -1), ValueError, "send_delay must be >= 0"),
        (lambda s: setattr(s, "recv_delay", "1s"), TypeError, "recv_delay must be a number"),
    ],
)
def test_bad_fault_settings_raise_with_the_bad_value(
    pair: tuple[TestingSocket, socket.socket],
    apply: Callable[[TestingSocket], object],
    error: type[Exception],
    message: str,
) -> None:
    sock, _ = pair
    with pytest.raises(error, match=re.escape(message)):
        apply(sock)


def test_cue_dataclass_reports_direction_and_once(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    sock, _ = pair
    cue = sock.break_on_receive("x", OSError, once=True)
    assert (cue.pattern, cue.direction, cue.once, cue.fired) == (b"x", "receive", True, 0)
    assert isinstance(cue, Cue)


# ---------------------------------------------------------------------------------------------
# Every send and receive method
# ---------------------------------------------------------------------------------------------


def test_every_receive_method_is_counted_and_recorded(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    sock, peer = pair
    peer.sendall(b"abcdefghij")
    buffer = bytearray(2)
    got = [sock.recv(2)]
    assert sock.recv_into(buffer) == 2
    got.append(bytes(buffer))
    got.append(sock.recvfrom(2)[0])
    assert sock.recvfrom_into(buffer)[0] == 2
    got.append(bytes(buffer))
    got.append(sock.recvmsg(1)[0])
    assert sock.recvmsg_into([bytearray(1)])[0] == 1
    assert b"".join(got) == b"abcdefghi"
    assert (sock.data_in, sock.recv_calls) == (b"abcdefghij", 6)


def test_msg_peek_is_counted_but_not_recorded(pair: tuple[TestingSocket, socket.socket]) -> None:
    sock, peer = pair
    peer.sendall(b"hi")
    assert sock.recv(2, socket.MSG_PEEK) == b"hi"
    assert read_exactly(sock, 2) == b"hi"
    assert sock.data_in == b"hi"
    assert sock.recv_calls >= 2


def test_every_receive_method_returns_eof_past_eof_after(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    sock, peer = pair
    sock.eof_after(0)
    peer.sendall(b"never read")
    buffer = bytearray(4)
    assert sock.recv(4) == b""
    assert sock.recv_into(buffer) == 0
    assert sock.recvfrom(4) == (b"", None)
    assert sock.recvfrom_into(buffer) == (0, None)
    assert sock.recvmsg(4) == (b"", [], 0, None)
    assert sock.recvmsg_into([buffer]) == (0, [], 0, None)
    assert (sock.data_in, sock.recv_calls) == (b"", 6)


def test_recvmsg_into_is_limited_across_its_buffers(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    sock, peer = pair
    sock.eof_after(3)
    peer.sendall(b"abcdef")
    first, second = bytearray(2), bytearray(2)
    assert sock.recvmsg_into([first, second])[0] == 3
    assert (bytes(first), bytes(second[:1]), sock.data_in) == (b"ab", b"c", b"abc")


def test_sendmsg_is_counted_with_send_recorded_and_shortened(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    sock, peer = pair
    assert sock.sendmsg([b"ab", b"cd"]) == 4
    sock.max_send = 3
    assert sock.sendmsg([b"ef", b"gh"]) == 3
    assert (sock.data_out, sock.send_calls) == (b"abcdefg", 2)
    assert read_exactly(peer, 7) == b"abcdefg"


def test_sendmsg_breaks_on_a_cue_spanning_its_buffers(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    sock, _ = pair
    sock.break_on(b"bc", BrokenPipeError)
    with pytest.raises(BrokenPipeError):
        sock.sendmsg([b"ab", b"cd"])
    assert (sock.data_out, sock.send_calls) == (b"", 1)


def test_sendto_on_a_datagram_socket_is_counted_and_never_shortened() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(TIMEOUT)
        with TestingSocket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.max_send = 2
            assert sock.sendto(b"datagram", receiver.getsockname()) == 8
            assert sock.sendto(b"!", 0, receiver.getsockname()) == 1
            assert receiver.recv(100) == b"datagram"
            assert (sock.data_out, sock.send_calls) == (b"datagram!", 2)


def test_sendfile_goes_through_send_and_is_recorded(
    pair: tuple[TestingSocket, socket.socket], tmp_path: Path
) -> None:
    sock, peer = pair
    path = tmp_path / "body.txt"
    path.write_bytes(b"file body")
    with path.open("rb") as file:
        assert sock.sendfile(file) == 9
    assert sock.data_out == b"file body"
    assert sock.send_calls >= 1
    assert read_exactly(peer, 9) == b"file body"


def test_blocking_send_with_max_send_returns_a_short_count(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    sock, peer = pair
    sock.max_send = 4
    assert sock.send(b"0123456789") == 4
    sock.max_send = None
    assert sock.send(b"456789") == 6
    assert read_exactly(peer, 10) == b"0123456789"


def test_delays_sleep_before_each_send_and_receive(
    pair: tuple[TestingSocket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, peer = pair
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    sock.send_delay = 0.25
    sock.sendall(b"ab")
    sock.send(b"c")
    sock.recv_delay = 0.5
    peer.sendall(b"x")
    assert sock.recv(1) == b"x"
    assert slept == [0.25, 0.25, 0.5]


def test_a_small_real_send_delay_still_delivers_the_data(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    sock, peer = pair
    sock.send_delay = 0.01
    sock.sendall(b"slow")
    assert read_exactly(peer, 4) == b"slow"


# ---------------------------------------------------------------------------------------------
# select, selectors, makefile, asyncio, ssl
# ---------------------------------------------------------------------------------------------


def test_select_sees_the_testing_socket_readable_and_writable(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    sock, peer = pair
    _, writable, _ = select.select([], [sock], [], TIMEOUT)
    assert writable == [sock]
    peer.sendall(b"x")
    readable, _, _ = select.select([sock], [], [], TIMEOUT)
    assert readable == [sock]


def test_selectors_register_the_testing_socket(pair: tuple[TestingSocket, socket.socket]) -> None:
    sock, peer = pair
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ, data="mine")
        peer.sendall(b"x")
        [(key, events)] = selector.select(TIMEOUT)
        assert (key.fileobj, key.data, events) == (sock, "mine", selectors.EVENT_READ)


def test_makefile_reads_and_writes_are_recorded(pair: tuple[TestingSocket, socket.socket]) -> None:
    sock, peer = pair
    with sock.makefile("rwb") as stream:
        stream.write(b"PING\r\n")
        stream.flush()
        assert read_exactly(peer, 6) == b"PING\r\n"
        peer.sendall(b"PONG\r\n")
        assert stream.readline() == b"PONG\r\n"
    assert (sock.data_out, sock.data_in) == (b"PING\r\n", b"PONG\r\n")
    assert sock.send_calls >= 1 and sock.recv_calls >= 1


@pytest.mark.asyncio
async def test_loop_sock_methods_are_recorded_and_break_on_cue() -> None:
    loop = asyncio.get_running_loop()
    sock, peer = TestingSocket.pair()
    with sock, peer:
        sock.setblocking(False)
        peer.setblocking(False)
        sock.break_on(b"STOP", ConnectionAbortedError, once=True)
        await loop.sock_sendall(sock, b"GO ")
        with pytest.raises(ConnectionAbortedError):
            await loop.sock_sendall(sock, b"STOP")
        assert await asyncio.wait_for(loop.sock_recv(peer, 10), TIMEOUT) == b"GO "
        await loop.sock_sendall(peer, b"reply")
        assert await asyncio.wait_for(loop.sock_recv(sock, 10), TIMEOUT) == b"reply"
        assert (sock.data_out, sock.data_in) == (b"GO ", b"reply")
        assert sock.send_calls == 2 and sock.recv_calls >= 1


def test_ssl_wrapping_moves_the_descriptor_and_keeps_the_records_made_before(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    sock, peer = pair
    sock.sendall(b"STARTTLS\r\n")
    fd = sock.fileno()
    context = ssl.create_default_context()
    with context.wrap_socket(sock, server_hostname="localhost", do_handshake_on_connect=False) as s:
        assert isinstance(s, ssl.SSLSocket)
        assert s.fileno() == fd
        assert sock.fileno() == -1
    assert (sock.data_out, sock.sendall_calls) == (b"STARTTLS\r\n", 1)
    assert read_exactly(peer, 10) == b"STARTTLS\r\n"


def test_tls_handshake_and_round_trip_over_a_wrapped_testing_socket(
    pair: tuple[TestingSocket, socket.socket],
) -> None:
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    sock, peer = pair
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server_context.wrap_socket(peer, server_side=True) as tls:
                tls.sendall(tls.recv(100).upper())
        except BaseException as exc:
            errors.append(exc)

    server = threading.Thread(target=serve, name="tls-peer")
    server.start()
    try:
        with client_context.wrap_socket(sock, server_hostname="localhost") as tls:
            tls.sendall(b"hello")
            assert tls.recv(100) == b"HELLO"
    finally:
        server.join(TIMEOUT)
    assert not errors
    assert (sock.data_out, sock.send_calls, sock.sendall_calls) == (b"", 0, 0)
