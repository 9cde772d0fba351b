"""Varint length prefixes (protobuf's unsigned LEB128) beside the struct ones: the codec
against known encodings, the frame steps without a socket, a hand-written gRPC-style
client of length-delimited messages against a real server, malformed varints failing in
words that name them (each wrong client with its correct twin, in a loop), the CLI form.
"""

from __future__ import annotations

import doctest
import re
import socket

import pytest
from _twins import wrong_then_right

import embeddedserver._prefix
from embeddedserver import (
    CommandServer,
    ExpectFrame,
    ReadFrame,
    Rule,
    Rules,
    SendFrame,
)
from embeddedserver._match import Inbox, Mismatch
from embeddedserver._prefix import BadPrefix, length_prefix
from embeddedserver.cli import parse_step

ROUNDS = 10
CLIENT_TIMEOUT = 10.0

# Known encodings, from the protobuf encoding guide and the LEB128 definition.
KNOWN = [
    (0, b"\x00"),
    (1, b"\x01"),
    (127, b"\x7f"),
    (128, b"\x80\x01"),
    (150, b"\x96\x01"),
    (300, b"\xac\x02"),
    (16384, b"\x80\x80\x01"),
    (2**32 - 1, b"\xff\xff\xff\xff\x0f"),
    (2**64 - 1, b"\xff" * 9 + b"\x01"),
]


# ---------------------------------------------------------------------------
# a protobuf-style client: length-delimited messages, as writeDelimitedTo writes them
# ---------------------------------------------------------------------------


def varint(n: int) -> bytes:
    """The client's own encoder, written from the spec (not the library's)."""
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def delimited(message: bytes) -> bytes:
    return varint(len(message)) + message


class DelimitedClient:
    """Sends and reads varint-delimited messages on one connection."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=CLIENT_TIMEOUT)
        self.file = self.sock.makefile("rb")

    def send(self, message: bytes) -> None:
        self.sock.sendall(delimited(message))

    def receive(self) -> bytes | None:
        length = shift = 0
        while True:
            byte = self.file.read(1)
            if not byte:
                return None
            length |= (byte[0] & 0x7F) << shift
            shift += 7
            if not byte[0] & 0x80:
                break
        return self.file.read(length)

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> DelimitedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------
# the codec
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("length", "encoded"), KNOWN)
def test_varint_encodes_and_decodes_the_known_values(length: int, encoded: bytes) -> None:
    prefix = length_prefix("varint")
    assert prefix.encode(length) == encoded == varint(length)
    assert prefix.decode(encoded + b"payload", eof=False) == (len(encoded), length)
    assert prefix.decode(encoded[:-1], eof=False) is None  # not there yet


def test_varint_accepts_a_padded_but_valid_encoding() -> None:
    # protobuf readers accept redundant continuation bytes up to 10 bytes in all
    assert length_prefix("varint").decode(b"\x85\x80\x00", eof=False) == (3, 5)


def test_a_varint_past_ten_bytes_or_64_bits_can_never_be_a_length() -> None:
    prefix = length_prefix("varint")
    with pytest.raises(BadPrefix, match="runs past 10 bytes"):
        prefix.decode(b"\xff" * 10, eof=False)
    with pytest.raises(BadPrefix, match="larger than 64 bits"):
        prefix.decode(b"\xff" * 9 + b"\x02", eof=False)
    with pytest.raises(ValueError, match="does not fit a 64-bit varint"):
        prefix.encode(2**64)


def test_struct_prefixes_still_work_through_the_same_codec() -> None:
    prefix = length_prefix(">H")
    assert prefix.encode(258) == b"\x01\x02"
    assert prefix.decode(b"\x01\x02xx", eof=False) == (2, 258)
    with pytest.raises(ValueError, match="does not fit a '>H' length prefix"):
        prefix.encode(70000)


@pytest.mark.parametrize("bad", ["varint32", "VARINT", ">i", "leb"])
def test_a_bad_prefix_is_refused_where_it_is_given_naming_what_is_accepted(bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(bad))) as info:
        ReadFrame(bad)
    assert "varint" in str(info.value)
    with pytest.raises(TypeError, match="'varint'"):
        SendFrame(b"x", 4)  # type: ignore[arg-type]


def test_the_module_doctests_pass() -> None:
    assert doctest.testmod(embeddedserver._prefix).failed == 0


# ---------------------------------------------------------------------------
# the frame steps, without a socket
# ---------------------------------------------------------------------------


def poll_pieces(step: ReadFrame | ExpectFrame, *pieces: bytes) -> list[bytes | None]:
    inbox = Inbox()
    inbox.begin(step)
    results = []
    for piece in pieces:
        inbox.feed(piece)
        results.append(inbox.poll())
    return results


def test_read_frame_with_a_varint_prefix_takes_prefix_and_payload_byte_by_byte() -> None:
    frame = delimited(b"m" * 300)
    results = poll_pieces(ReadFrame("varint"), *(frame[i:i + 1] for i in range(len(frame))))
    assert results[:-1] == [None] * (len(frame) - 1)
    assert results[-1] == frame


def test_send_frame_writes_the_varint_then_the_payload() -> None:
    assert SendFrame(b"hello", "varint").data == b"\x05hello"
    assert SendFrame(b"x" * 200, "varint").data == b"\xc8\x01" + b"x" * 200
    assert repr(SendFrame(b"hi", "varint")) == "SendFrame(b'hi', 'varint')"


def test_expect_frame_with_a_varint_prefix_checks_the_payload() -> None:
    step = ExpectFrame(b"ping", "varint")
    assert poll_pieces(step, b"\x04pi", b"ng") == [None, b"\x04ping"]
    inbox = Inbox()
    inbox.begin(step)
    inbox.feed(b"\x04pong")
    with pytest.raises(Mismatch, match="wrong bytes at offset 1") as info:
        inbox.poll()
    assert info.value.offset == 1
    inbox = Inbox()
    inbox.begin(step)
    inbox.feed(b"\x05")
    with pytest.raises(Mismatch, match="frame length prefix says 5 bytes, expected 4"):
        inbox.poll()


def test_a_varint_cut_short_by_the_close_fails_as_a_close_inside_the_prefix() -> None:
    inbox = Inbox()
    inbox.begin(ReadFrame("varint"))
    inbox.feed(b"\x80\x80")
    assert inbox.poll() is None
    inbox.feed(b"")
    with pytest.raises(Mismatch) as info:
        inbox.poll()
    assert "inside the varint length prefix, after 2 bytes" in info.value.reason
    assert info.value.offset == len(info.value.received) == 2


# ---------------------------------------------------------------------------
# real sockets: a gRPC-style client of length-delimited messages
# ---------------------------------------------------------------------------


def test_a_delimited_message_client_talks_to_varint_framed_steps() -> None:
    big = bytes(range(256)) * 4  # 1024 bytes: a two-byte varint
    script = [ExpectFrame(b"\x0a\x05hello", "varint"), SendFrame(big, "varint"),
              ReadFrame("varint"), SendFrame(b"", "varint")]
    for _ in range(ROUNDS):
        with CommandServer(script, verbose=False) as server:
            with DelimitedClient(server.address) as client:
                client.send(b"\x0a\x05hello")  # a protobuf message: field 1, "hello"
                assert client.receive() == big
                client.send(b"x" * 20000)  # a three-byte varint
                assert client.receive() == b""
                assert client.receive() is None  # the server closed
            server.wait_for_connections(1)
        assert server.received == [delimited(b"\x0a\x05hello"), varint(20000) + b"x" * 20000]


def test_rules_frame_varint_requests() -> None:
    rules = Rules(ReadFrame("varint"),
                  Rule(delimited(b"ping"), SendFrame(b"pong", "varint")),
                  Rule(delimited(b"time"), SendFrame(b"noon", "varint")))
    for _ in range(ROUNDS):
        with CommandServer([rules], verbose=False) as server:
            with DelimitedClient(server.address) as client:
                for ask, answer in [(b"time", b"noon"), (b"ping", b"pong"), (b"ping", b"pong")]:
                    client.send(ask)
                    assert client.receive() == answer
            server.wait_for_connections(1)


WRONG_VARINTS = {
    # what the wrong client sends, what its correct twin sends, the failure's words
    "eleven bytes": (b"\xff" * 11, delimited(b"ok"),
                     "the varint length prefix runs past 10 bytes"),
    "over 64 bits": (b"\xff" * 9 + b"\x7f", delimited(b"ok"), "is larger than 64 bits"),
    "truncated": (b"\x96", delimited(b"\x01" * 150),
                  "the client closed the connection inside the varint length prefix, "
                  "after 1 byte of it (b'\\x96')"),
    "a fixed prefix instead": (b"\x00\x00\x00\x02ok", delimited(b"ok"),
                               "frame length prefix says 0 bytes, expected 2"),
}


@pytest.mark.parametrize("case", sorted(WRONG_VARINTS))
def test_a_malformed_varint_fails_the_step_and_its_twin_passes(case: str) -> None:
    wrong_bytes, right_bytes, words = WRONG_VARINTS[case]
    payload = b"ok" if case != "truncated" else b"\x01" * 150
    step = ExpectFrame(payload, "varint") if case == "a fixed prefix instead" else (
        ReadFrame("varint"))
    wrong_then_right(step, b"done", wrong_bytes, right_bytes, words, ROUNDS)


def test_a_truncated_varint_is_a_close_and_its_report_says_where_it_stopped() -> None:
    with CommandServer([ReadFrame("varint")], verbose=False) as server:
        with socket.create_connection(server.address, timeout=CLIENT_TIMEOUT) as client:
            client.sendall(b"\xac")
            client.shutdown(socket.SHUT_WR)
            assert client.recv(10) == b""
        failure = server.assert_failed("closed", step=0)
    assert "ReadFrame('varint')" in failure.message()
    assert "a frame with a varint length prefix" in failure.message()


# ---------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------


def test_the_cli_takes_prefix_varint_on_every_frame_step() -> None:
    assert repr(parse_step("frame,prefix=varint")) == repr(ReadFrame("varint"))
    assert repr(parse_step("expectframe,prefix=varint:hi")) == repr(ExpectFrame(b"hi", "varint"))
    assert parse_step("sendframe,prefix=varint:hi").data == b"\x02hi"  # type: ignore[attr-defined]
