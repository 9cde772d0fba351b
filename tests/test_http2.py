"""HTTP/2 at the frame level: the encoders against RFC 9113's layouts, the preface and
frame steps without a socket, hand-written h2c clients (prior knowledge, plain TCP) that
get the preface wrong in each way beside their correct twins, in a loop, and the ``h2``
package (pytest.importorskip) as a real client: over TLS with ALPN h2, a whole request
answered by a Rules table of frames, and a GOAWAY it must see.
"""

from __future__ import annotations

import doctest
import re
import socket
import ssl
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from _twins import wrong_then_right

import embeddedserver.http2
from embeddedserver import CommandServer, Rule, Rules
from embeddedserver import http2 as h2kit
from embeddedserver._match import Inbox, Mismatch
from embeddedserver.alpn import ExpectALPN, alpn_context
from embeddedserver.http2 import (
    ACK,
    END_HEADERS,
    END_STREAM,
    PREFACE,
    ErrorCode,
    ExpectH2Frame,
    ExpectH2Preface,
    Frame,
    FrameType,
    ReadH2Frame,
    Setting,
    parse_frame,
    parse_settings,
)
from embeddedserver.tls import LocalTLS

CLIENT_TIMEOUT = 10.0
ROUNDS = 6


def hand_frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    """A frame laid out by hand from RFC 9113 section 4.1 (not by the library)."""
    return struct.pack("!I", len(payload))[1:] + struct.pack("!BBI", kind, flags, stream) + payload


def hand_settings(*pairs: tuple[int, int]) -> bytes:
    return hand_frame(0x4, 0, 0, b"".join(struct.pack("!HI", i, v) for i, v in pairs))


GOOD_PREFACE = PREFACE + hand_settings((0x2, 0), (0x4, 65535))

# ---------------------------------------------------------------------------
# the encoders and parsers
# ---------------------------------------------------------------------------


def test_the_magic_is_rfc_9113s() -> None:
    assert PREFACE == bytes.fromhex("505249202a20485454502f322e300d0a0d0a534d0d0a0d0a")


@pytest.mark.parametrize(("encoded", "expected"), [
    (h2kit.settings(), hand_frame(0x4, 0, 0, b"")),
    (h2kit.settings({Setting.ENABLE_PUSH: 0, Setting.INITIAL_WINDOW_SIZE: 65535}),
     hand_settings((0x2, 0), (0x4, 65535))),
    (h2kit.settings_ack(), hand_frame(0x4, 0x1, 0, b"")),
    (h2kit.goaway(7, ErrorCode.ENHANCE_YOUR_CALM, b"slow down"),
     hand_frame(0x7, 0, 0, struct.pack("!II", 7, 0xB) + b"slow down")),
    (h2kit.ping(b"12345678"), hand_frame(0x6, 0, 0, b"12345678")),
    (h2kit.ping(b"12345678", ack=True), hand_frame(0x6, 0x1, 0, b"12345678")),
    (h2kit.window_update(1000, 3), hand_frame(0x8, 0, 3, struct.pack("!I", 1000))),
    (h2kit.rst_stream(5, ErrorCode.REFUSED_STREAM), hand_frame(0x3, 0, 5, struct.pack("!I", 7))),
    (h2kit.headers(1, b"\x88", end_stream=True), hand_frame(0x1, 0x5, 1, b"\x88")),
    (h2kit.data(1, b"hi"), hand_frame(0x0, 0, 1, b"hi")),
    (h2kit.frame(0xFA, b"x", flags=0x80, stream_id=2**31 - 1),
     hand_frame(0xFA, 0x80, 2**31 - 1, b"x")),
])
def test_each_encoder_lays_the_frame_out_as_the_rfc_does(encoded: bytes, expected: bytes) -> None:
    assert encoded == expected


def test_parse_frame_and_parse_settings_read_frames_back() -> None:
    got = parse_frame(hand_settings((0x2, 0), (0x99, 5)))
    assert got == Frame(FrameType.SETTINGS, 0, 0, got.payload)
    assert parse_settings(got.payload) == {Setting.ENABLE_PUSH: 0, 0x99: 5}
    assert parse_frame(h2kit.headers(3, b"\x88")).describe() == (
        "HEADERS (0x1) with END_HEADERS on stream 3, 1 bytes")
    with pytest.raises(ValueError, match="not one whole HTTP/2 frame"):
        parse_frame(h2kit.data(1, b"abc")[:-1])
    with pytest.raises(ValueError, match="a multiple of 6 bytes, not 5"):
        parse_settings(b"12345")


@pytest.mark.parametrize(("call", "words"), [
    (lambda: h2kit.frame(256), "the frame type must be an int from 0 to 255, not 256"),
    (lambda: h2kit.frame(0, stream_id=2**31), "the stream id must be an int"),
    (lambda: h2kit.ping(b"short"), "exactly 8 bytes, not 5"),
    (lambda: h2kit.window_update(0), "at least 1"),
    (lambda: h2kit.settings({Setting.MAX_FRAME_SIZE: -1}), "the value of MAX_FRAME_SIZE"),
    (lambda: ExpectH2Preface(settings=[1, 2]), "settings must be a dict"),  # type: ignore[arg-type]
    (lambda: ExpectH2Frame(FrameType.DATA, payload="x"), "payload must be bytes or None"),  # type: ignore[arg-type]
])
def test_bad_arguments_are_refused_where_given(call: Any, words: str) -> None:
    with pytest.raises((TypeError, ValueError), match=re.escape(words)):
        call()


def test_the_module_doctests_pass() -> None:
    assert doctest.testmod(embeddedserver.http2).failed == 0


# ---------------------------------------------------------------------------
# the steps, without a socket
# ---------------------------------------------------------------------------


def poll(step: ExpectH2Preface | ReadH2Frame, data: bytes, eof: bool = False) -> bytes | None:
    inbox = Inbox()
    inbox.begin(step)
    inbox.feed(data)
    if eof:
        inbox.feed(b"")
    return inbox.poll()


def test_the_preface_is_taken_byte_by_byte_and_leaves_what_follows() -> None:
    inbox = Inbox()
    inbox.begin(ExpectH2Preface(settings={Setting.ENABLE_PUSH: 0}))
    data = GOOD_PREFACE + h2kit.settings_ack()
    results = []
    for i in range(len(GOOD_PREFACE)):
        inbox.feed(data[i:i + 1])
        results.append(inbox.poll())
    assert results[:-1] == [None] * (len(GOOD_PREFACE) - 1) and results[-1] == GOOD_PREFACE
    inbox.feed(data[len(GOOD_PREFACE):])
    inbox.begin(ExpectH2Frame(FrameType.SETTINGS, flags=ACK))
    assert inbox.poll() == h2kit.settings_ack()


def test_an_http1_request_fails_at_its_first_byte_with_a_hint() -> None:
    with pytest.raises(Mismatch) as info:
        poll(ExpectH2Preface(), b"G")  # one byte is enough to know
    assert info.value.reason == ("not the HTTP/2 client preface: wrong byte at offset 0 (it "
                                 "looks like HTTP/1.x, not HTTP/2: did ALPN negotiate 'h2'?)")
    assert info.value.offset == 0


def test_a_frame_read_cut_short_by_the_close_says_where() -> None:
    with pytest.raises(Mismatch, match=re.escape(
            "the client closed the connection inside a frame (DATA (0x0)'s payload), after "
            "12 bytes")):
        poll(ReadH2Frame(), h2kit.data(1, b"hello")[:12], eof=True)


# ---------------------------------------------------------------------------
# hand-written h2c clients (prior knowledge: the preface on plain TCP)
# ---------------------------------------------------------------------------

WRONG_PREFACES = {
    # the step, what the wrong client sends, what its twin sends, the failure's words
    "an HTTP/1.1 request": (
        ExpectH2Preface(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", GOOD_PREFACE,
        "not the HTTP/2 client preface: wrong byte at offset 0 (it looks like HTTP/1.x"),
    "a typo in the magic": (
        ExpectH2Preface(), PREFACE.replace(b"2.0", b"2.1") + hand_settings(), GOOD_PREFACE,
        "not the HTTP/2 client preface: wrong byte at offset 13"),
    "HEADERS before SETTINGS": (
        ExpectH2Preface(), PREFACE + hand_frame(0x1, 0x5, 1, b"\x82\x84"), GOOD_PREFACE,
        "the preface's first frame is HEADERS (0x1), expected SETTINGS (0x4)"),
    "a SETTINGS ACK for its first frame": (
        ExpectH2Preface(), PREFACE + hand_frame(0x4, 0x1, 0, b""), GOOD_PREFACE,
        "the preface's SETTINGS frame has the ACK flag"),
    "SETTINGS on a stream": (
        ExpectH2Preface(), PREFACE + hand_frame(0x4, 0, 1, b""), GOOD_PREFACE,
        "the preface's SETTINGS frame is on stream 1, not 0"),
    "a settings payload of 5 bytes": (
        ExpectH2Preface(), PREFACE + hand_frame(0x4, 0, 0, b"12345"), GOOD_PREFACE,
        "the preface's SETTINGS frame is 5 bytes, not a multiple of 6"),
    "push left on": (
        ExpectH2Preface(settings={Setting.ENABLE_PUSH: 0}), PREFACE + hand_settings((0x2, 1)),
        GOOD_PREFACE, "the preface's SETTINGS has ENABLE_PUSH = 1, expected 0"),
    "a setting missing": (
        ExpectH2Preface(settings={Setting.MAX_HEADER_LIST_SIZE: 8192}), GOOD_PREFACE,
        PREFACE + hand_settings((0x6, 8192)),
        "the preface's SETTINGS has no MAX_HEADER_LIST_SIZE (it has: ENABLE_PUSH=0, "
        "INITIAL_WINDOW_SIZE=65535), expected 8192"),
    "a frame over the maximum size": (
        ExpectH2Preface(), PREFACE + hand_frame(0x4, 0, 0, bytes(6 * 3000)), GOOD_PREFACE,
        "the preface's frame is SETTINGS (0x4) of 18000 bytes is over the maximum frame "
        "size 16384"),
}


@pytest.mark.parametrize("case", sorted(WRONG_PREFACES))
def test_a_wrong_preface_fails_in_http2_terms_and_its_twin_passes(case: str) -> None:
    step, wrong_bytes, right_bytes, words = WRONG_PREFACES[case]
    wrong_then_right(step, h2kit.settings_ack(), wrong_bytes, right_bytes, words, ROUNDS)


def test_expect_frame_and_a_rules_table_of_frames_name_the_frame() -> None:
    table = Rules(ReadH2Frame(),
                  Rule(h2kit.matches(FrameType.PING), h2kit.ping(b"pongpong", ack=True)),
                  Rule(h2kit.matches(FrameType.SETTINGS, flags=ACK), ()),
                  unmatched=h2kit.goaway(0, ErrorCode.PROTOCOL_ERROR))
    script = [ExpectH2Preface(), h2kit.settings(), ExpectH2Frame(FrameType.SETTINGS, flags=ACK),
              table]
    with CommandServer(script, verbose=False) as server:
        with socket.create_connection(server.address, timeout=CLIENT_TIMEOUT) as client, \
                client.makefile("rb") as reader:
            client.sendall(GOOD_PREFACE)
            assert reader.read(9) == h2kit.settings()
            client.sendall(hand_frame(0x4, 0x1, 0, b"") + hand_frame(0x6, 0, 0, b"pingping"))
            assert reader.read(17) == h2kit.ping(b"pongpong", ack=True)
            client.sendall(hand_frame(0x8, 0, 0, struct.pack("!I", 10)))
            assert parse_frame(reader.read(17)).type == FrameType.GOAWAY
        failure = server.assert_failed("unmatched")
    assert ("rule 0 Rule(matches(FrameType.PING), ...): expected a PING (0x6) frame, got "
            "WINDOW_UPDATE (0x8) on stream 0, 4 bytes") in re.sub(
                r"Rule\(matches\(FrameType.PING\), b'[^']*'\)",
                "Rule(matches(FrameType.PING), ...)", failure.message())
    with CommandServer([ExpectH2Frame(FrameType.HEADERS, stream_id=1)], verbose=False) as srv:
        with socket.create_connection(srv.address, timeout=CLIENT_TIMEOUT) as client:
            client.sendall(hand_frame(0x0, END_STREAM, 1, b"body"))
            client.shutdown(socket.SHUT_WR)
            client.makefile("rb").read()
        srv.assert_failed("mismatch", match=re.escape(
            "expected a HEADERS (0x1) frame on stream 1, got DATA (0x0) with END_STREAM on "
            "stream 1, 4 bytes"))


# ---------------------------------------------------------------------------
# the h2 package as the client
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls() -> Iterator[LocalTLS]:
    pytest.importorskip("trustme")
    with LocalTLS() as certificates:
        yield certificates


class H2Client:
    """The h2 package's client state machine on a socket (TLS with ALPN, or h2c)."""

    def __init__(self, address: Any, tls: LocalTLS | None = None) -> None:
        connection = pytest.importorskip("h2.connection")
        config = pytest.importorskip("h2.config")
        self.conn = connection.H2Connection(config.H2Configuration(client_side=True))
        raw = socket.create_connection(address, timeout=CLIENT_TIMEOUT)
        try:
            if tls is not None:
                context = ssl.create_default_context(cafile=tls.ca_file)
                context.set_alpn_protocols(["h2", "http/1.1"])
                self.sock: socket.socket = context.wrap_socket(raw, server_hostname="localhost")
            else:
                self.sock = raw
            self.conn.initiate_connection()
            self.flush()
        except BaseException:
            raw.close()
            raise

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def events_until(self, kind: type, limit: int = 50) -> list[Any]:
        events: list[Any] = []
        for _ in range(limit):
            data = self.sock.recv(65536)
            if not data:
                return events
            events.extend(self.conn.receive_data(data))
            self.flush()
            if any(isinstance(e, kind) for e in events):
                return events
        return events

    def close(self) -> None:
        self.conn.close_connection()
        self.flush()
        self.sock.close()


def fake_h2_server(body: bytes) -> list[Any]:
    return [
        ExpectH2Preface(),
        h2kit.settings({Setting.MAX_CONCURRENT_STREAMS: 10}) + h2kit.settings_ack(),
        Rules(ReadH2Frame(),
              Rule(h2kit.matches(FrameType.SETTINGS, flags=ACK), ()),
              Rule(h2kit.matches(FrameType.WINDOW_UPDATE), ()),
              Rule(h2kit.matches(FrameType.HEADERS, stream_id=1, flags=END_HEADERS),
                   h2kit.headers(1, b"\x88") + h2kit.data(1, body, end_stream=True)),
              Rule(h2kit.matches(FrameType.GOAWAY), ())),
    ]


def test_the_h2_client_gets_a_response_over_tls_with_alpn_h2(tls: LocalTLS) -> None:
    events = pytest.importorskip("h2.events")
    context = alpn_context(tls, ["h2", "http/1.1"])
    for _ in range(3):
        with CommandServer([ExpectALPN("h2"), *fake_h2_server(b"hello h2")],
                           ssl_context=context, verbose=False) as server:
            client = H2Client(server.address, tls)
            try:
                assert client.sock.selected_alpn_protocol() == "h2"  # type: ignore[attr-defined]
                client.conn.send_headers(1, [(":method", "GET"), (":path", "/"),
                                             (":scheme", "https"), (":authority", "localhost")],
                                         end_stream=True)
                client.flush()
                got = client.events_until(events.StreamEnded)
            finally:
                client.close()
            server.wait_for_connections(1)
        response = next(e for e in got if isinstance(e, events.ResponseReceived))
        assert response.headers == [(b":status", b"200")]
        assert b"".join(e.data for e in got if isinstance(e, events.DataReceived)) == b"hello h2"
        assert any(isinstance(e, events.RemoteSettingsChanged) for e in got)
        assert parse_frame(server.received[1]).type == FrameType.HEADERS  # after the preface


def test_the_h2_client_sees_the_servers_goaway_h2c(tls: LocalTLS) -> None:
    events = pytest.importorskip("h2.events")
    script = [ExpectH2Preface(),
              h2kit.settings() + h2kit.goaway(0, ErrorCode.ENHANCE_YOUR_CALM, b"slow down")]
    for _ in range(3):
        with CommandServer(script, verbose=False) as server:
            client = H2Client(server.address)
            try:
                got = client.events_until(events.ConnectionTerminated)
            finally:
                client.sock.close()
            server.wait_for_connections(1)
        ended = next(e for e in got if isinstance(e, events.ConnectionTerminated))
        assert (ended.error_code, ended.last_stream_id, ended.additional_data) == (
            ErrorCode.ENHANCE_YOUR_CALM, 0, b"slow down")


def test_the_h2_clients_own_preface_passes_a_strict_expectation() -> None:
    pytest.importorskip("h2")
    step = ExpectH2Preface(settings={Setting.ENABLE_PUSH: 1, Setting.HEADER_TABLE_SIZE: 4096})
    with CommandServer([step, h2kit.settings()], verbose=False) as server:
        client = H2Client(server.address)
        client.sock.close()
        server.wait_for_connections(1)
    values = parse_settings(parse_frame(server.received[0][len(PREFACE):]).payload)
    assert values[Setting.ENABLE_PUSH] == 1  # h2's defaults, as it sent them
