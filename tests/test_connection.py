"""The I/O shell on loopback with long chunks: each read step that receives into a sink
records exactly the bytes a client sent, as ``bytes``, across many reads and sends; a
mismatch deep inside a long ``Expect`` names its exact offset; a step that times out or
sees EOF inside a sink reports what had arrived.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Sequence

import pytest

from embeddedserver import (
    Call,
    CommandServer,
    Connection,
    Expect,
    ExpectFrame,
    Mismatch,
    ReadFrame,
    ReadLine,
    ReadUntil,
    ReadUntilClose,
    Receive,
)
from embeddedserver.steps import Step

CLIENT_TIMEOUT = 10.0
BIG = 3 * 1024 * 1024 + 17  # past SINK_MIN, and not a multiple of any read size
PAYLOAD = os.urandom(BIG).replace(b"\n", b" ")


def upload(script: Sequence[Step | bytes], data: bytes, *, pieces: int = 1,
           shut: bool = False) -> CommandServer:
    """Serve *script* to one client that sends *data* in *pieces* sends and reads b"k"."""
    with CommandServer(list(script), verbose=False) as server:
        with socket.create_connection(("127.0.0.1", server.port), CLIENT_TIMEOUT) as sock:
            step = -(-len(data) // pieces)
            for at in range(0, len(data), step):
                sock.sendall(data[at : at + step])
            if shut:
                sock.shutdown(socket.SHUT_WR)
            assert sock.recv(1) == b"k"
        server.wait_for_connections(1, CLIENT_TIMEOUT)
    return server


FRAME = struct.pack(">I", BIG) + PAYLOAD
CASES = [
    ([BIG, b"k"], PAYLOAD, [PAYLOAD]),
    ([Receive(BIG), b"k"], PAYLOAD, [PAYLOAD]),
    ([ReadFrame(), b"k"], FRAME, [FRAME]),
    ([ExpectFrame(PAYLOAD), b"k"], FRAME, [FRAME]),
    ([Expect(PAYLOAD), b"k"], PAYLOAD, [PAYLOAD]),
    ([ReadUntil(b"\r\n\r\n"), b"k"], PAYLOAD + b"\r\n\r\n", [PAYLOAD + b"\r\n\r\n"]),
    ([ReadLine(), ReadLine(), b"k"], PAYLOAD + b"\nab\n", [PAYLOAD + b"\n", b"ab\n"]),
]


@pytest.mark.parametrize("pieces", [1, 7])
@pytest.mark.parametrize(("script", "data", "chunks"), CASES,
                         ids=["int", "Receive", "ReadFrame", "ExpectFrame", "Expect",
                              "ReadUntil", "ReadLine"])
def test_a_long_read_step_records_exactly_what_was_sent_as_bytes(
    script: list[Step | bytes], data: bytes, chunks: list[bytes], pieces: int
) -> None:
    server = upload(script, data, pieces=pieces)
    assert server.received == chunks
    assert all(type(chunk) is bytes for chunk in server.received)
    assert server.connections[0].received == data
    assert not server.errors


@pytest.mark.parametrize("pieces", [1, 7])
def test_read_until_close_records_a_long_upload_whole(pieces: int) -> None:
    server = upload([ReadUntilClose(), b"k"], PAYLOAD, pieces=pieces, shut=True)
    assert server.received == [PAYLOAD] and type(server.received[0]) is bytes
    assert not server.errors


def test_the_bytes_after_a_long_frame_are_the_next_steps() -> None:
    server = upload([ReadFrame(), Expect(b"tail"), b"k"], FRAME + b"tail")
    assert server.received == [FRAME, b"tail"]
    assert not server.errors


def test_a_wrong_byte_deep_in_a_long_expect_names_its_offset() -> None:
    wrong = BIG - 1000
    data = bytearray(PAYLOAD)
    data[wrong] ^= 0xFF
    with CommandServer([Expect(PAYLOAD), b"k"], verbose=False) as server:
        with socket.create_connection(("127.0.0.1", server.port), CLIENT_TIMEOUT) as sock:
            sock.sendall(data)
            assert sock.recv(1) == b""  # the server closed on the mismatch
        server.wait_for_connections(1, CLIENT_TIMEOUT)
        [failure] = server.errors
        server.errors.clear()
    assert failure.kind == "mismatch" and failure.offset == wrong
    assert f"wrong bytes at offset {wrong}" in failure.summary
    assert failure.received is not None and failure.received[wrong] == data[wrong]


def test_eof_inside_a_long_receive_reports_what_arrived() -> None:
    with CommandServer([Receive(BIG), b"k"], verbose=False) as server:
        with socket.create_connection(("127.0.0.1", server.port), CLIENT_TIMEOUT) as sock:
            sock.sendall(PAYLOAD[:-5])
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(1) == b""
        server.wait_for_connections(1, CLIENT_TIMEOUT)
        [failure] = server.errors
        server.errors.clear()
    assert failure.kind == "closed"
    assert failure.received == PAYLOAD[:-5] and failure.offset == BIG - 5
    assert server.connections[0].received == PAYLOAD[:-5]


# ---------------------------------------------------------------------------
# peek: a custom step looks at bytes the next step still reads
# ---------------------------------------------------------------------------


def test_peek_leaves_the_bytes_for_the_next_step_whether_on_the_socket_or_buffered() -> None:
    seen: list[bytes] = []

    def look(conn: Connection) -> None:
        seen.append(conn.peek(6))

    # the first peek finds the socket empty (the bytes stay in the kernel); the second
    # follows a read that buffered more than it took
    script = [Call(look), ReadUntil(b" "), Call(look), ReadLine(), b"k"]
    for pieces in (1, 11):
        seen.clear()
        server = upload(script, b"hello world\n", pieces=pieces)
        assert seen == [b"hello ", b"world\n"]
        assert server.received == [b"hello ", b"world\n"]


def test_peek_returns_fewer_bytes_when_the_client_closes_first() -> None:
    seen: list[bytes] = []

    def look(conn: Connection) -> None:
        seen.append(conn.peek(100))

    with CommandServer([Call(look), ReadUntilClose(), b"k"], verbose=False) as server:
        with socket.create_connection(server.address, CLIENT_TIMEOUT) as sock:
            sock.sendall(b"short")
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(1) == b"k"
        server.wait_for_connections(1, CLIENT_TIMEOUT)
    assert seen == [b"short"] and server.received == [b"short"]


def test_a_mismatch_raised_by_a_custom_step_fails_it_as_a_mismatch() -> None:
    def judge(conn: Connection) -> None:
        raise Mismatch("the client said nothing useful", "something useful", b"", None)

    with CommandServer([Call(judge)], verbose=False) as server:
        with socket.create_connection(server.address, CLIENT_TIMEOUT) as sock:
            assert sock.recv(1) == b""
        failure = server.assert_failed("mismatch", step=0)
    assert failure.summary == "the client said nothing useful" and not failure.traceback
    assert "expected: something useful" in failure.message()
