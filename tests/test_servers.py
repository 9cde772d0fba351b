"""CommandServer against a plain socket client on loopback: the issue's API examples,
every step, the failure message of every failing step (what ``check()`` raises),
recording and transcripts, custom steps, output and logging.

Lifecycle, addresses and bad input: ``test_servers_lifecycle.py``; real
standard-library clients and concurrency: ``test_servers_clients.py``; asyncio:
``test_servers_asyncio.py``; the suite every server class must pass:
``test_servers_conformance.py``.
"""

from __future__ import annotations

import logging
import re
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

import embeddedserver._connection
from embeddedserver import (
    RECEIVE,
    AcceptAndClose,
    Call,
    Close,
    CommandServer,
    Connection,
    Delay,
    Drip,
    Expect,
    ExpectClose,
    ExpectFrame,
    ExpectRegex,
    Garbage,
    HalfClose,
    Hang,
    ReadFrame,
    ReadLine,
    ReadUntil,
    ReadUntilClose,
    Receive,
    Reset,
    SendFrame,
    http_response,
)
from embeddedserver._runner import ScriptRunner
from embeddedserver.record import ConnectionRecord, Event

#: Generous: how long a client waits for anything (never reached when all is well).
CLIENT_TIMEOUT = 10.0
#: Longer than any test may take: a server that waited for its read timeout instead
#: of failing at once would make the client time out first, failing the test.
LONG = 60.0


@contextmanager
def serving(commands: Any, **kwargs: Any) -> Iterator[CommandServer]:
    """A quiet server that is always stopped; failures are left for the test to read."""
    kwargs.setdefault("verbose", False)
    server = CommandServer(commands, **kwargs)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def client(server: CommandServer, host: str = "127.0.0.1") -> Iterator[socket.socket]:
    with socket.create_connection((host, server.port), timeout=CLIENT_TIMEOUT) as sock:
        yield sock


def read_to_eof(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"EOF after {len(data)} of {n} bytes"
        data += chunk
    return data


def end_of_stream(sock: socket.socket) -> str:
    """'eof' or 'reset': how the server's side of the connection ended."""
    try:
        rest = read_to_eof(sock)
    except ConnectionResetError:
        return "reset"
    assert rest == b"", rest
    return "eof"


def failure_text(server: CommandServer) -> str:
    server.wait_for_connections(1)
    with pytest.raises(AssertionError) as info:
        server.check()
    return str(info.value)


# ---------------------------------------------------------------------------
# the issue's API, exactly
# ---------------------------------------------------------------------------


def test_issue_example_receive_then_answer_with_requests() -> None:
    srvr = CommandServer([RECEIVE, http_response("hello world")], verbose=False)
    url = "http://localhost:%s/hello" % srvr.port  # noqa: UP031 (the issue's example)
    r = requests.get(url, timeout=CLIENT_TIMEOUT)
    assert "hello world" in r.text
    srvr.stop()
    srvr.check()
    assert srvr.STOPPED


def test_issue_example_int_reads_at_least_that_many_bytes() -> None:
    srvr = CommandServer([20, http_response("hello world")], verbose=False)
    try:
        url = "http://localhost:%s/hello" % srvr.port  # noqa: UP031 (the issue's example)
        r = requests.get(url, timeout=CLIENT_TIMEOUT)
        assert r.text == "hello world"
        srvr.wait_for_connections(1)
        allReceived = b"".join(srvr.received)
        assert b"GET" in allReceived
        assert len(srvr.received) == 1 and len(srvr.received[0]) >= 20
    finally:
        srvr.stop()
    srvr.check()


def test_a_bare_text_answer_is_not_http_for_requests() -> None:
    """The old examples answered a bare 'hello world'; Python 3's HTTP clients reject
    such an HTTP/0.9-style reply, hence http_response()."""
    with serving([RECEIVE, "hello world"]) as srvr:
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://localhost:{srvr.port}/hello", timeout=CLIENT_TIMEOUT)


def test_a_lone_string_is_receive_then_send() -> None:
    with serving("pong") as srvr, client(srvr) as sock:
        sock.sendall(b"ping")
        assert read_to_eof(sock) == b"pong"
    srvr.check()
    assert srvr.received == [b"ping"]


def test_received_collects_chunks_across_connections_in_order() -> None:
    with serving([ReadLine(), "ok"]) as srvr:
        for n in range(3):
            with client(srvr) as sock:
                sock.sendall(b"line %d\n" % n)
                assert read_to_eof(sock) == b"ok"
        srvr.wait_for_connections(3)
        assert srvr.received == [b"line 0\n", b"line 1\n", b"line 2\n"]
    srvr.check()


def test_stopped_is_per_instance() -> None:
    with serving("a") as one, serving("b") as two:
        assert one.STOPPED is False and two.STOPPED is False
        one.stop()
        assert one.STOPPED is True and two.STOPPED is False
    assert two.STOPPED is True
    assert not hasattr(CommandServer, "STOPPED")


# ---------------------------------------------------------------------------
# read steps against a plain socket
# ---------------------------------------------------------------------------


def test_read_until_delimiter_then_the_rest() -> None:
    with serving([ReadUntil(b"\r\n\r\n"), "ok", ReadUntilClose()]) as srvr, client(srvr) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody")
        assert read_exactly(sock, 2) == b"ok"
        sock.shutdown(socket.SHUT_WR)
        assert read_to_eof(sock) == b""
    srvr.wait_idle()
    srvr.check()
    assert srvr.received == [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"body"]


def test_read_line_line_by_line() -> None:
    script = [ReadLine(), "1", ReadLine(), "2"]
    with serving(script) as srvr, client(srvr) as sock:
        sock.sendall(b"first\r\n")
        assert read_exactly(sock, 1) == b"1"
        sock.sendall(b"second\n")
        assert read_to_eof(sock) == b"2"
    srvr.check()
    assert srvr.received == [b"first\r\n", b"second\n"]


def test_read_frame_with_default_and_other_prefixes() -> None:
    with serving([ReadFrame(), ReadFrame("<H"), "ok"]) as srvr, client(srvr) as sock:
        sock.sendall(struct.pack(">I", 3) + b"abc" + struct.pack("<H", 2) + b"xy")
        assert read_to_eof(sock) == b"ok"
    srvr.check()
    assert srvr.received == [b"\x00\x00\x00\x03abc", b"\x02\x00xy"]


def test_read_until_close_and_then_answer_a_half_closed_client() -> None:
    with serving([ReadUntilClose(), "reply"]) as srvr, client(srvr) as sock:
        sock.sendall(b"request")
        sock.shutdown(socket.SHUT_WR)
        assert read_to_eof(sock) == b"reply"
    srvr.wait_idle()
    srvr.check()
    assert srvr.received == [b"request"]
    assert srvr.connections[0].ended == "client closed"


def test_expect_exact_regex_predicate_and_frame_pass() -> None:
    script = [
        Expect(b"HELLO\r\n"),
        ExpectRegex(rb"id=\d+\r\n", within=ReadLine()),
        Expect(lambda chunk: chunk.startswith(b"P"), within=ReadLine()),
        ExpectFrame(b"frame"),
        "done",
        ExpectClose(),
    ]
    with serving(script) as srvr:
        with client(srvr) as sock:
            sock.sendall(b"HELLO\r\nid=42\r\nPAYLOAD\n" + struct.pack(">I", 5) + b"frame")
            assert read_exactly(sock, 4) == b"done"
        srvr.wait_for_connections(1)
    srvr.check()
    assert srvr.received == [
        b"HELLO\r\n", b"id=42\r\n", b"PAYLOAD\n", b"\x00\x00\x00\x05frame", b"",
    ]
    assert srvr.connections[0].ended == "client closed"


# ---------------------------------------------------------------------------
# send and action steps against a plain socket
# ---------------------------------------------------------------------------


def test_sends_of_every_kind_arrive_in_order() -> None:
    script = ["text é", b"bytes", bytearray(b"ba"), memoryview(b"mv"), SendFrame(b"fr", ">H")]
    with serving([RECEIVE, *script]) as srvr, client(srvr) as sock:
        sock.sendall(b"go")
        assert read_to_eof(sock) == "text é".encode() + b"bytesbamv\x00\x02fr"
    srvr.check()


def test_garbage_is_reproducible_from_its_seed() -> None:
    with serving([RECEIVE, Garbage(4096, seed=9)]) as srvr, client(srvr) as sock:
        sock.sendall(b"go")
        assert read_to_eof(sock) == Garbage(4096, seed=9).data
    srvr.check()


def test_drip_sends_in_small_chunks() -> None:
    with serving([RECEIVE, Drip(b"abcdefg", chunk=3, interval=0.01)]) as srvr:
        with client(srvr) as sock:
            sock.sendall(b"go")
            assert read_to_eof(sock) == b"abcdefg"
        srvr.wait_idle()
    srvr.check()
    sends = [e.data for e in srvr.connections[0].events if e.kind == "send"]
    assert sends == [b"abc", b"def", b"g"]


def test_delay_pauses_then_the_script_goes_on() -> None:
    with serving([RECEIVE, Delay(0.05), "late"]) as srvr, client(srvr) as sock:
        sock.sendall(b"go")
        assert read_to_eof(sock) == b"late"
    srvr.check()


def test_close_gives_the_client_eof() -> None:
    with serving([RECEIVE, "bye", Close()]) as srvr, client(srvr) as sock:
        sock.sendall(b"hi")
        assert read_to_eof(sock) == b"bye"
    srvr.wait_idle()
    srvr.check()
    assert srvr.connections[0].ended == "server closed"


def test_accept_and_close_gives_the_client_eof_at_once() -> None:
    with serving([AcceptAndClose()]) as srvr, client(srvr) as sock:
        assert read_to_eof(sock) == b""
    srvr.check()


def test_reset_gives_the_client_connection_reset() -> None:
    with serving([RECEIVE, "partial", Reset()]) as srvr, client(srvr) as sock:
        sock.sendall(b"hi")
        with pytest.raises(ConnectionResetError):
            read_to_eof(sock)  # what was sent before the reset may or may not arrive
    srvr.wait_idle()
    srvr.check()
    assert srvr.connections[0].ended == "server reset"


def test_half_close_gives_eof_and_keeps_reading() -> None:
    with serving(["bye", HalfClose(), ReadLine(), ReadLine()]) as srvr, client(srvr) as sock:
        assert read_to_eof(sock) == b"bye"
        sock.sendall(b"still\nhere\n")
        sock.shutdown(socket.SHUT_WR)
        srvr.wait_idle()
    srvr.check()
    assert srvr.received == [b"still\n", b"here\n"]
    notes = [e.text for e in srvr.connections[0].events if e.kind == "note"]
    assert "server shut its write side (half-close)" in notes


def test_hang_is_silent_until_the_client_gives_up_and_records_what_arrives() -> None:
    with serving([RECEIVE, Hang()], timeout=LONG) as srvr:
        with client(srvr) as sock:
            sock.sendall(b"hello?")
            sock.settimeout(0.2)  # the client giving up is the behaviour under test
            with pytest.raises(TimeoutError):
                sock.recv(10)
            sock.sendall(b"anyone?")
        srvr.wait_idle()
    srvr.check()
    record = srvr.connections[0]
    assert record.ended == "client closed"
    assert record.received == b"hello?anyone?"
    assert record.sent == b""


def test_hang_with_a_time_limit_then_goes_on() -> None:
    with serving([RECEIVE, Hang(0.05), "after"]) as srvr, client(srvr) as sock:
        sock.sendall(b"go")
        assert read_to_eof(sock) == b"after"
    srvr.check()


# ---------------------------------------------------------------------------
# failing steps: what check() raises
# ---------------------------------------------------------------------------


def test_exact_mismatch_fails_at_the_first_wrong_byte_without_waiting() -> None:
    with serving([Expect(b"HELLO WORLD"), "never"], timeout=LONG) as srvr, client(srvr) as sock:
        sock.sendall(b"HX")  # 9 bytes short, but the second one is already wrong
        assert end_of_stream(sock) in ("eof", "reset")  # the server did not wait
        text = failure_text(srvr)
    assert re.match(rf"CommandServer on 127\.0\.0\.1:{srvr.port}: 1 failure\n\n1\) ", text)
    assert re.search(r"connection #1 from 127\.0\.0\.1:\d+, step 0 of 2: "
                     r"Expect\(b'HELLO WORLD'\): wrong bytes at offset 1", text)
    assert "  expected: b'HELLO WORLD'" in text
    assert "  received: b'HX'" in text
    assert "first difference at byte offset 1: expected b'E' (0x45), got b'X' (0x58)" in text
    assert "transcript (last events):" in text
    assert srvr.connections[0].ended == "failed"
    assert srvr.errors[0].kind == "mismatch"


def test_mismatch_shows_all_that_arrived_not_just_the_expected_length() -> None:
    with serving([Expect(b"PING\r\n")], timeout=LONG) as srvr, client(srvr) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n")
        end_of_stream(sock)
        text = failure_text(srvr)
    assert "received: b'GET / HTTP/1.1\\r\\n'" in text
    assert "expected b'P' (0x50), got b'G' (0x47)" in text


def test_binary_mismatch_is_shown_in_hex() -> None:
    with serving([ExpectFrame(b"\x01\x02\x03")], timeout=LONG) as srvr, client(srvr) as sock:
        sock.sendall(struct.pack(">I", 3) + b"\x01\xff\x03")
        end_of_stream(sock)
        text = failure_text(srvr)
    assert "step 0 of 1: ExpectFrame(b'\\x01\\x02\\x03')" in text
    assert "offset 1: expected b'\\x02' (0x02), got b'\\xff' (0xff)" in text
    assert "received (hex): 01 ff" in text


def test_frame_with_the_wrong_length_fails_before_its_payload() -> None:
    with serving([ExpectFrame(b"ping")], timeout=LONG) as srvr, client(srvr) as sock:
        sock.sendall(struct.pack(">I", 1000))
        end_of_stream(sock)
        text = failure_text(srvr)
    assert "frame length prefix says 1000 bytes, expected 4" in text


def test_regex_that_never_matches_fails_when_the_client_closes() -> None:
    with serving([ExpectRegex(rb"HELO \w+")], timeout=LONG) as srvr, client(srvr) as sock:
        sock.sendall(b"EHLO x")
        sock.shutdown(socket.SHUT_WR)
        end_of_stream(sock)
        text = failure_text(srvr)
    assert "step 0 of 1: Expect(re.compile(b'HELO \\\\w+'))" in text
    assert "the client closed the connection before the step completed" in text
    assert "expected: data matching re.compile(b'HELO \\\\w+')" in text
    assert "received: b'EHLO x'" in text
    assert "first difference at byte offset 6: the data ended there" in text
    assert srvr.errors[0].kind == "closed"
    assert srvr.connections[0].ended == "client closed"


def test_regex_within_a_line_fails_on_the_first_wrong_line() -> None:
    step = ExpectRegex(rb"MAIL FROM:<\S+>\r\n", within=ReadLine())
    with serving([step], timeout=LONG) as srvr, client(srvr) as sock:
        sock.sendall(b"RCPT TO:<x@y>\r\n")
        end_of_stream(sock)
        text = failure_text(srvr)
    assert "the data did not match" in text
    assert "received: b'RCPT TO:<x@y>\\r\\n'" in text


def test_predicate_that_says_no_fails_the_step() -> None:
    def is_json(chunk: bytes) -> bool:
        return chunk.startswith(b"{")

    with serving([Expect(is_json, within=ReadLine())], timeout=LONG) as srvr, client(srvr) as sock:
        sock.sendall(b"not json\n")
        end_of_stream(sock)
        text = failure_text(srvr)
    assert "Expect(test_predicate_that_says_no_fails_the_step.<locals>.is_json" in text
    assert "accepted by" in text
    assert "received: b'not json\\n'" in text


def test_expect_close_fails_when_data_arrives_instead() -> None:
    with serving([RECEIVE, "ok", ExpectClose()], timeout=LONG) as srvr, client(srvr) as sock:
        sock.sendall(b"one")
        assert read_exactly(sock, 2) == b"ok"
        sock.sendall(b"two")
        end_of_stream(sock)
        text = failure_text(srvr)
    assert "step 2 of 3: ExpectClose(): unexpected data while waiting for the client" in text
    assert "expected: the client to close the connection" in text
    assert "received: b'two'" in text


def test_eof_mid_step_fails_naming_what_arrived() -> None:
    with serving([Expect(b"PING\r\n")], timeout=LONG) as srvr, client(srvr) as sock:
        sock.sendall(b"PIN")
        sock.shutdown(socket.SHUT_WR)
        end_of_stream(sock)
        text = failure_text(srvr)
    assert "the client closed the connection before the step completed" in text
    assert "received: b'PIN'" in text
    assert "first difference at byte offset 3: the data ended there" in text


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (Receive(10), "at least 10 bytes"),
        (ReadUntil(b"\r\n\r\n"), "bytes up to b'\\r\\n\\r\\n'"),
        (ReadLine(), "a line ending in b'\\n'"),
        (ReadFrame(), "a frame with a '>I' length prefix"),
        (ExpectFrame(b"abcdef"), "frame with payload b'abcdef'"),
        (ExpectRegex(rb"\d+;"), "data matching re.compile(b'\\\\d+;')"),
        (Expect(len, within=ReadLine()), "a line ending in b'\\n' accepted by len"),
    ],
    ids=repr,
)
def test_every_read_step_fails_on_eof_mid_step(step: Any, expected: str) -> None:
    partial = struct.pack(">I", 6) + b"abc"
    with serving([step], timeout=LONG) as srvr, client(srvr) as sock:
        sock.sendall(partial)
        sock.shutdown(socket.SHUT_WR)
        assert end_of_stream(sock) == "eof"
        text = failure_text(srvr)
    assert f"step 0 of 1: {step!r}: the client closed the connection before the step" in text
    assert f"  expected: {expected}\n" in text
    assert "  received: " in text
    assert "received (hex): 00 00 00 06" in text
    assert srvr.errors[0].kind == "closed"


def test_sending_to_a_client_that_reset_fails_the_send_step() -> None:
    gone = threading.Event()
    script = [ReadLine(), Call(lambda conn: gone.wait(CLIENT_TIMEOUT)), "x" * 100_000]
    with serving(script, timeout=LONG) as srvr:
        with client(srvr) as sock:
            sock.sendall(b"hi\n")
            srvr.wait_for_connections(1, finished=False)
            abort(sock)
        gone.set()
        text = failure_text(srvr)
    assert "step 2 of 3: Send(b'xxxx" in text
    assert srvr.errors[0].kind in ("reset", "closed")
    assert re.search(r"the client (reset the connection|had closed the connection)", text)


def test_silent_client_fails_the_step_at_its_timeout() -> None:
    with serving([ReadLine(timeout=0.3)], timeout=LONG) as srvr, client(srvr) as sock:
        sock.sendall(b"no newline")
        assert end_of_stream(sock) == "eof"
        text = failure_text(srvr)
    assert "step 0 of 1: ReadLine(timeout=0.3): timed out after 0.3 s waiting for a line" in text
    assert "(10 bytes arrived)" in text
    assert "received: b'no newline'" in text
    assert srvr.errors[0].kind == "timeout"
    assert srvr.connections[0].ended == "timeout"


def test_the_server_timeout_applies_to_every_read_step() -> None:
    with serving([RECEIVE], timeout=0.3) as srvr, client(srvr):
        text = failure_text(srvr)
    assert "timed out after 0.3 s waiting for any bytes (the client sent nothing)" in text


def test_client_that_never_reads_fails_a_big_send_at_the_timeout() -> None:
    big = b"x" * (64 << 20)
    with serving([RECEIVE, big], timeout=0.5) as srvr, client(srvr) as sock:
        sock.sendall(b"go")
        text = failure_text(srvr)
    assert "step 1 of 2: Send(" in text
    assert "the client read nothing for 0.5 s" in text
    record = srvr.connections[0]
    assert record.ended == "timeout"
    assert 0 < len(record.sent) < len(big)  # the part that did go out is recorded


def abort(sock: socket.socket) -> None:
    """Make the coming close() a reset (RST) rather than a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_client_reset_during_a_read_step_is_a_failure() -> None:
    with serving([ReadLine(), ReadLine()], timeout=LONG) as srvr:
        with client(srvr) as sock:
            sock.sendall(b"one\n")
            srvr.wait_for_connections(1, finished=False)
            abort(sock)
        text = failure_text(srvr)
    assert "step 1 of 2: ReadLine(): the client reset the connection (ECONNRESET)" in text
    assert srvr.connections[0].ended == "client reset"
    assert srvr.errors[0].kind == "reset"


def test_client_reset_during_hang_is_a_client_giving_up_not_a_failure() -> None:
    with serving([ReadLine(), Hang()], timeout=LONG) as srvr:
        with client(srvr) as sock:
            sock.sendall(b"hello?\n")
            srvr.wait_for_connections(1, finished=False)
            abort(sock)
        srvr.wait_for_connections(1)
    srvr.check()
    assert srvr.connections[0].ended == "client reset"


@pytest.mark.parametrize(
    ("script", "data", "client_closes", "ended"),
    [
        ([Expect(b"right")], b"wrong", False, "failed"),
        ([Expect(b"right")], b"ri", True, "client closed"),
        ([ReadLine(timeout=0.2)], b"no newline", False, "timeout"),
        ([RECEIVE, Call(lambda conn: 1 / 0)], b"x", False, "error"),
    ],
)
def test_a_failure_report_transcript_says_how_the_connection_ended(
    script: list[Any], data: bytes, client_closes: bool, ended: str
) -> None:
    with serving(script, timeout=LONG) as srvr, client(srvr) as sock:
        sock.sendall(data)
        if client_closes:
            sock.shutdown(socket.SHUT_WR)
        port = sock.getsockname()[1]
        text = failure_text(srvr)
    assert f"  transcript (last events):\n  connection #1 from 127.0.0.1:{port} [{ended}]\n" in text
    assert "[open]" not in text
    assert srvr.connections[0].ended == ended


def test_every_failure_is_listed_and_numbered() -> None:
    with serving([Expect(b"A")], timeout=LONG) as srvr:
        for data in (b"B", b"C"):
            with client(srvr) as sock:
                sock.sendall(data)
                end_of_stream(sock)
        srvr.wait_for_connections(2)
        text = failure_text(srvr)
    assert text.startswith(f"CommandServer on 127.0.0.1:{srvr.port}: 2 failures")
    assert "\n\n1) connection #1" in text and "\n\n2) connection #2" in text
    assert len(srvr.errors) == 2


def test_check_passes_and_stop_stays_silent_when_all_went_well() -> None:
    with serving([RECEIVE, "ok"]) as srvr, client(srvr) as sock:
        sock.sendall(b"x")
        read_to_eof(sock)
    srvr.stop()
    srvr.check()
    assert srvr.errors == []


def test_stop_stays_silent_even_with_failures() -> None:
    with serving([Expect(b"A")], timeout=LONG) as srvr, client(srvr) as sock:
        sock.sendall(b"B")
        end_of_stream(sock)
        srvr.wait_idle()
    srvr.stop()  # no exception: compatibility
    assert len(srvr.errors) == 1


# ---------------------------------------------------------------------------
# custom steps
# ---------------------------------------------------------------------------


def test_call_step_gets_a_connection_handle() -> None:
    seen: dict[str, Any] = {}

    def custom(conn: Connection) -> None:
        seen["handle"] = conn
        line = conn.recv_exactly(5)
        conn.send(line.upper())
        conn.send("!")

    with serving([Call(custom), ReadLine(), "end"]) as srvr, client(srvr) as sock:
        sock.sendall(b"hello")
        assert read_exactly(sock, 6) == b"HELLO!"
        sock.sendall(b"next\n")
        assert read_to_eof(sock) == b"end"
    srvr.check()
    assert isinstance(seen["handle"], Connection)
    assert seen["handle"].record is srvr.connections[0]
    assert srvr.connections[0].received == b"hellonext\n"
    assert srvr.connections[0].sent == b"HELLO!end"


def test_call_step_gets_a_non_blocking_socket() -> None:
    # The engine reads with MSG_DONTWAIT on a blocking socket where it can; a Call step
    # that uses conn.sock directly must still find it non-blocking, as documented.
    seen: dict[str, Any] = {}

    def custom(conn: Connection) -> None:
        seen["blocking"] = conn.sock.getblocking()
        try:
            conn.sock.recv(1)
        except BlockingIOError:
            seen["recv"] = "would block"
        conn.send(b"done")

    with serving([Expect(b"hi"), Call(custom)]) as srvr, client(srvr) as sock:
        sock.sendall(b"hi")
        assert read_to_eof(sock) == b"done"
    srvr.check()
    assert seen == {"blocking": False, "recv": "would block"}


def test_a_plain_callable_is_a_call_step_and_can_close() -> None:
    with serving([RECEIVE, lambda conn: conn.close(), "skipped"]) as srvr, client(srvr) as sock:
        sock.sendall(b"x")
        assert read_to_eof(sock) == b""
    srvr.check()


def test_call_step_that_raises_is_captured_and_surfaced_by_check() -> None:
    def broken(conn: Connection) -> None:
        raise ValueError("the custom step broke")

    with serving([RECEIVE, Call(broken), "never"]) as srvr, client(srvr) as sock:
        sock.sendall(b"x")
        assert end_of_stream(sock) == "eof"
        text = failure_text(srvr)
    assert "step 1 of 3: Call(test_call_step_that_raises_is_captured_and_surfaced_by_check" in text
    assert "ValueError: the custom step broke" in text
    assert "server-side traceback:" in text
    assert 'raise ValueError("the custom step broke")' in text
    assert srvr.errors[0].kind == "error"
    assert srvr.connections[0].ended == "error"


# ---------------------------------------------------------------------------
# recording and transcripts
# ---------------------------------------------------------------------------


def test_record_has_peer_timestamped_chunks_and_ending() -> None:
    with serving([ReadLine(), "pong\n", ExpectClose()]) as srvr:
        with client(srvr) as sock:
            sock.sendall(b"ping\n")
            assert read_exactly(sock, 5) == b"pong\n"
            peer = sock.getsockname()
        srvr.wait_for_connections(1)
    (record,) = srvr.connections
    assert record.number == 1
    assert record.peer[:2] == peer
    assert [(e.kind, e.data) for e in record.events if e.kind != "note"] == [
        ("recv", b"ping\n"), ("send", b"pong\n"), ("recv", b""),
    ]
    times = [e.at for e in record.events]
    assert times == sorted(times) and times[0] >= 0
    assert record.ended == "client closed"
    text = srvr.transcript()
    assert text.splitlines()[0] == f"connection #1 from 127.0.0.1:{peer[1]} [client closed]"
    assert "<- client 5 bytes  b'ping\\n'" in text
    assert "-> server 5 bytes  b'pong\\n'" in text


@pytest.mark.parametrize(
    ("script", "ended"),
    [
        ([ReadLine(), "x"], "server closed"),
        ([ReadLine(), Reset()], "server reset"),
        ([ReadLine(), ExpectClose()], "client closed"),
        ([ReadLine(), Receive(timeout=0.2)], "timeout"),
        ([ReadLine(), Expect(b"nope")], "failed"),
        ([ReadLine(), Call(lambda conn: 1 / 0)], "error"),
    ],
)
def test_transcript_says_how_each_connection_ended(script: list[Any], ended: str) -> None:
    with serving(script, timeout=LONG) as srvr, client(srvr) as sock:
        sock.sendall(b"hi\n")
        if ended in ("client closed", "failed"):
            sock.sendall(b"" if ended == "client closed" else b"X")
            sock.shutdown(socket.SHUT_WR)
        srvr.wait_for_connections(1)
    assert srvr.connections[0].ended == ended
    assert f"[{ended}]" in srvr.transcript().splitlines()[0]


@pytest.fixture(params=["MSG_DONTWAIT", "setblocking(False)"])
def read_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways the engine keeps a socket from blocking: MSG_DONTWAIT on a blocking
    socket (Linux, macOS), and a non-blocking socket (Windows has no MSG_DONTWAIT)."""
    if request.param == "setblocking(False)":
        monkeypatch.setattr(embeddedserver._connection, "_DONTWAIT", 0)
    return str(request.param)


def test_bytes_that_arrive_after_the_last_step_are_recorded_at_close(read_path: str) -> None:
    # The last step has run; what the client sent since is read (without waiting) when
    # the connection closes, and recorded as arriving after the script. The event hook
    # runs on the server thread: it holds the server after its last send until then.
    sent_extra = threading.Event()

    def hold_after_send(record: ConnectionRecord, event: Event) -> None:
        if event.kind == "send":
            assert sent_extra.wait(LONG)

    with serving([Expect(b"hello"), b"world"], on_event=hold_after_send,
                 allow_extra_bytes=True) as srvr:
        with client(srvr) as sock:
            sock.sendall(b"hello")
            assert read_exactly(sock, 5) == b"world"
            sock.sendall(b"EXTRA")  # on loopback: queued at the server once this returns
            sent_extra.set()
            assert read_to_eof(sock) == b""
        srvr.wait_for_connections(1, LONG)
    srvr.check()
    events = [(e.kind, e.data, e.text) for e in srvr.connections[0].events if e.kind == "recv"]
    assert events == [("recv", b"hello", ""), ("recv", b"EXTRA", "(after the script)")]
    assert srvr.received == [b"hello"]


def test_a_process_wide_default_socket_timeout_does_not_change_the_server() -> None:
    # socket.setdefaulttimeout() gives accepted sockets a timeout: the engine then makes
    # them non-blocking instead of reading with MSG_DONTWAIT, and behaves the same.
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30.0)
    try:
        with serving([Expect(b"hello"), b"world", ExpectClose()]) as srvr:
            with client(srvr) as sock:
                sock.sendall(b"hello")
                assert read_exactly(sock, 5) == b"world"
            srvr.wait_for_connections(1, LONG)
    finally:
        socket.setdefaulttimeout(before)
    srvr.check()
    assert srvr.connections[0].ended == "client closed"


def test_a_socket_with_a_timeout_is_made_non_blocking() -> None:
    # Such a socket would wait inside recv() for its timeout: a read at the close, which
    # must not wait, would hang the server thread that long.
    waker = embeddedserver._connection.Waker()
    a, b = socket.socketpair()
    try:
        b.settimeout(30.0)
        runner = ScriptRunner((), ConnectionRecord(1, None), 5.0)
        conn = Connection(b, None, runner, waker)
        assert b.gettimeout() == 0.0
        conn.close()
        assert conn.record.ended == "server closed"
    finally:
        a.close()
        b.close()
        waker.close()


def test_transcript_before_any_connection() -> None:
    with serving("x") as srvr:
        assert srvr.transcript() == "(no connections)"


def test_transcript_of_stopped_connection_says_stopped() -> None:
    hanging = threading.Event()
    script = [RECEIVE, Call(lambda conn: hanging.set()), Hang()]
    with serving(script, timeout=LONG) as srvr, client(srvr) as sock:
        sock.sendall(b"x")
        assert hanging.wait(CLIENT_TIMEOUT)  # stopped in the Hang, not before the read
        srvr.stop()
        assert "[stopped]" in srvr.transcript()
    srvr.check()


# ---------------------------------------------------------------------------
# output and logging
# ---------------------------------------------------------------------------


def test_verbose_prints_what_the_server_does(capsys: pytest.CaptureFixture[str]) -> None:
    with CommandServer([RECEIVE, "pong"]) as srvr, client(srvr) as sock:  # verbose by default
        sock.sendall(b"ping")
        read_to_eof(sock)
        srvr.wait_idle()
    out = capsys.readouterr().out
    prefix = f"[embeddedserver :{srvr.port}] #1 "
    assert prefix + "connected" in out
    assert prefix + "read 4 bytes: b'ping'" in out
    assert prefix + "sent 4 bytes: b'pong'" in out
    assert prefix + "server closed" in out


def test_verbose_prints_failures(capsys: pytest.CaptureFixture[str]) -> None:
    srvr = CommandServer([Expect(b"A")], timeout=LONG)
    try:
        with client(srvr) as sock:
            sock.sendall(b"B")
            end_of_stream(sock)
        srvr.wait_idle()
    finally:
        srvr.stop()
    assert "FAILED connection #1" in capsys.readouterr().out


def test_quiet_server_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with serving([Expect(b"A")], timeout=LONG) as srvr, client(srvr) as sock:
        sock.sendall(b"B")
        end_of_stream(sock)
        srvr.wait_idle()
    assert capsys.readouterr() == ("", "")


def test_events_go_to_the_embeddedserver_logger(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="embeddedserver")
    with serving([RECEIVE, "pong", Expect(b"A")], timeout=LONG) as srvr, client(srvr) as sock:
        sock.sendall(b"ping")
        assert read_exactly(sock, 4) == b"pong"
        sock.sendall(b"B")
        end_of_stream(sock)
        srvr.wait_idle()
    ours = [r for r in caplog.records if r.name == "embeddedserver.servers"]
    messages = [r.getMessage() for r in ours]
    assert f"[:{srvr.port}] #1 connected" in messages
    assert f"[:{srvr.port}] #1 read 4 bytes: b'ping'" in messages
    assert f"[:{srvr.port}] #1 sent 4 bytes: b'pong'" in messages
    warnings = [r for r in ours if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "wrong bytes at offset 0" in warnings[0].getMessage()


def test_call_step_runs_on_a_server_thread() -> None:
    names: list[str] = []
    with serving([Call(lambda conn: names.append(threading.current_thread().name))]) as srvr:
        with client(srvr) as sock:
            read_to_eof(sock)
        srvr.wait_idle()
    assert len(names) == 1
    assert names[0].startswith("embeddedserver:") and str(srvr.port) in names[0]
