"""The WebSocket kit: the opening handshake checked and answered, server frames sent,
client frames read, unmasked and checked, in RFC 6455's terms.

Real clients on loopback: the ``websockets`` package (skipped if it is missing) and a
hand-written raw-socket client for what no library client sends. Each wrong client fails
with the WebSocket-terms message; its twin, a correct client, passes, in the same loop.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import struct
from collections.abc import Callable
from typing import Any

import pytest

from embeddedserver import CommandServer, Mismatch, ReadUntil
from embeddedserver import websocket as ws
from embeddedserver.httpmessage import Request

CLIENT_TIMEOUT = 10.0
ROUNDS = 4
#: How a websockets client ends a conversation: its close frame, answered with ours.
CLOSING = [ws.ExpectClientFrame("close", code=1000), ws.close_frame()]

# ---------------------------------------------------------------------------
# a raw client, written from RFC 6455 without the library's help
# ---------------------------------------------------------------------------


def client_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0,
                 masked: bool = True, long_form: bool = False) -> bytes:
    """A frame as a client sends it: masked with a random key unless told otherwise;
    *long_form* writes a short length in 2 extra bytes (not the shortest form)."""
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    bit = 0x80 if masked else 0
    n = len(payload)
    if n < 126 and not long_form:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class RawClient:
    """One WebSocket connection driven by hand."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT)
        self.buffer = b""
        self.key = base64.b64encode(os.urandom(16)).decode()

    def handshake_request(self, *, method: str = "GET", path: str = "/",
                          drop: str = "", **replace: str) -> bytes:
        headers = {"Host": "test", "Upgrade": "websocket", "Connection": "Upgrade",
                   "Sec-WebSocket-Key": self.key, "Sec-WebSocket-Version": "13"}
        headers.update({name.replace("_", "-"): value for name, value in replace.items()})
        headers.pop(drop, None)
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        return f"{method} {path} HTTP/1.1\r\n{lines}\r\n".encode()

    def open(self, request: bytes | None = None) -> bytes:
        """Send the handshake; return the server's response head ('' if it hung up)."""
        self.sock.sendall(request or self.handshake_request())
        while b"\r\n\r\n" not in self.buffer:
            data = self.recv()
            if not data:
                return self.buffer
            self.buffer += data
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return head + b"\r\n\r\n"

    def recv(self) -> bytes:
        try:
            return self.sock.recv(65536)
        except ConnectionResetError:
            return b""

    def frame(self) -> tuple[int, bytes]:
        """The next server frame: (first byte, payload)."""
        while True:
            if len(self.buffer) >= 2:
                n, at = self.buffer[1] & 0x7F, 2
                if n == 126:
                    n, at = struct.unpack(">H", self.buffer[2:4])[0], 4
                if len(self.buffer) >= at + n:
                    first, payload = self.buffer[0], self.buffer[at : at + n]
                    self.buffer = self.buffer[at + n :]
                    return first, payload
            data = self.recv()
            if not data:
                raise EOFError("the server closed the connection")
            self.buffer += data

    def rest(self) -> bytes:
        """Everything until the server closes."""
        while data := self.recv():
            self.buffer += data
        return self.buffer

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def expected_accept(key: str) -> str:
    import hashlib
    return base64.b64encode(hashlib.sha1(
        (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()


# ---------------------------------------------------------------------------
# the handshake
# ---------------------------------------------------------------------------


def test_accept_key_is_the_rfc_example() -> None:
    assert ws.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_a_raw_client_gets_101_with_the_accept_of_its_own_key() -> None:
    for _ in range(ROUNDS):
        with CommandServer(ws.handshake("/chat"), verbose=False) as srvr, \
                RawClient(srvr.port) as client:
            head = client.open(client.handshake_request(path="/chat"))
            assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
            response = Request.parse(b"GET / HTTP/1.0\r\n" + head.split(b"\r\n", 1)[1])
            assert response.headers["Sec-WebSocket-Accept"] == expected_accept(client.key)
            assert response.headers["Upgrade"] == "websocket"
            assert response.headers["Connection"] == "Upgrade"


HANDSHAKE_WRONG: list[tuple[dict[str, str], str]] = [
    ({"method": "POST"}, "the opening handshake is a POST request, not a GET"),
    ({"drop": "Upgrade"}, "missing header Upgrade (expected 'websocket')"),
    ({"Upgrade": "h2c"}, "header Upgrade: expected 'websocket', got 'h2c'"),
    ({"Connection": "keep-alive"},
     "header Connection: expected a list with 'Upgrade', got 'keep-alive'"),
    ({"drop": "Sec-WebSocket-Key"}, "missing header Sec-WebSocket-Key"),
    ({"Sec_WebSocket_Key": "c2hvcnQ="}, "Sec-WebSocket-Key 'c2hvcnQ=' is not the base64 of 16"),
    ({"Sec_WebSocket_Version": "8"}, "header Sec-WebSocket-Version: expected '13', got '8'"),
    ({"drop": "Sec-WebSocket-Version"}, "missing header Sec-WebSocket-Version"),
    ({"path": "/other"}, "expected GET /chat, got GET /other"),
]


@pytest.mark.parametrize(("change", "message"), HANDSHAKE_WRONG,
                         ids=[m for _, m in HANDSHAKE_WRONG])
def test_a_wrong_opening_handshake_fails_naming_what_is_wrong_and_its_twin_passes(
        change: dict[str, str], message: str) -> None:
    for _ in range(ROUNDS):
        with CommandServer(ws.handshake("/chat"), verbose=False) as srvr, \
                RawClient(srvr.port) as client:
            kwargs = {"path": "/chat", **change}
            assert client.open(client.handshake_request(**kwargs)) == b""
            failure = srvr.assert_failed("mismatch", step=0)
            assert message in failure.summary.split("\n  ")[0] or message in failure.summary
        with CommandServer(ws.handshake("/chat"), verbose=False) as srvr, \
                RawClient(srvr.port) as client:
            assert client.open(client.handshake_request(path="/chat")).startswith(
                b"HTTP/1.1 101 ")


def test_every_handshake_problem_is_listed_at_once() -> None:
    with CommandServer(ws.handshake(), verbose=False) as srvr, RawClient(srvr.port) as client:
        client.open(client.handshake_request(Upgrade="h2c", Sec_WebSocket_Version="8"))
        failure = srvr.assert_failed("mismatch", step=0)
    assert failure.summary.split("\n  ") == [
        "header Upgrade: expected 'websocket', got 'h2c'",
        "header Sec-WebSocket-Version: expected '13', got '8'",
    ]
    assert failure.expected == "a WebSocket opening handshake GET (any path)"


def test_accept_needs_the_handshake_read_just_before_it() -> None:
    with CommandServer([ReadUntil(b"\n"), ws.accept()], verbose=False) as srvr, \
            RawClient(srvr.port) as client:
        client.sock.sendall(b"hello\n")
        assert client.rest() == b""
        srvr.assert_failed("error", step=1, match="the bytes read last are not an HTTP request")


# ---------------------------------------------------------------------------
# client frames: read, unmasked, checked
# ---------------------------------------------------------------------------


def conversation() -> list[Any]:
    return [*ws.handshake(), ws.ExpectClientFrame("text", "hello"), ws.text_frame("world"),
            ws.ExpectClientFrame("binary", b"\x00\x01"), ws.binary_frame(b"\x02"),
            ws.ExpectClientFrame("close", code=1000), ws.close_frame(1000)]


def test_a_raw_client_that_masks_its_frames_passes_a_conversation() -> None:
    for _ in range(ROUNDS):
        with CommandServer(conversation(), verbose=False) as srvr, \
                RawClient(srvr.port) as client:
            assert client.open().startswith(b"HTTP/1.1 101 ")
            client.sock.sendall(client_frame(1, b"hello"))
            assert client.frame() == (0x81, b"world")
            client.sock.sendall(client_frame(2, b"\x00\x01"))
            assert client.frame() == (0x82, b"\x02")
            client.sock.sendall(client_frame(8, struct.pack(">H", 1000)))
            assert client.frame() == (0x88, b"\x03\xe8")
            assert client.rest() == b""  # the server closes the TCP connection first
        frames = [ws.WebSocketFrame.parse(chunk) for chunk in srvr.received[1:]]
        assert [(f.kind, f.payload, f.masked) for f in frames] == [
            ("text", b"hello", True), ("binary", b"\x00\x01", True), ("close", b"\x03\xe8", True)]


CLIENT_WRONG = [
    (client_frame(1, b"hello", masked=False),
     "the client text frame is not masked: a client masks every frame it sends (RFC 6455, 5.1)"),
    (client_frame(1, b"hello", rsv=4), "the client text frame sets RSV1, but no extension was "
     "negotiated"),
    (client_frame(3, b"x"), "the client frame has opcode 0x3, which RFC 6455 reserves"),
    (client_frame(9, b"p", fin=False), "the client ping frame is fragmented (FIN clear)"),
    (client_frame(9, b"p" * 126), "the client ping frame is longer than 125 bytes"),
    (client_frame(1, b"hello", long_form=True),
     "the frame's length 5 is encoded in 2 extra bytes, not the shortest form"),
    (client_frame(1, b"\xff\xfe"), "the client text frame is not valid UTF-8"),
    (client_frame(8, b"\x03"), "the client close frame has a 1-byte payload"),
    (client_frame(8, struct.pack(">H", 1005)), "the client close frame has code 1005, which a "
     "frame may not carry"),
]


@pytest.mark.parametrize(("wrong", "message"), CLIENT_WRONG, ids=[m for _, m in CLIENT_WRONG])
def test_a_frame_no_client_may_send_fails_in_websocket_terms_and_its_twin_passes(
        wrong: bytes, message: str) -> None:
    script = [*ws.handshake(), ws.ReadClientFrame(), ws.text_frame("ok")]
    for _ in range(ROUNDS):
        with CommandServer(script, verbose=False) as srvr, RawClient(srvr.port) as client:
            client.open()
            client.sock.sendall(wrong)
            assert client.rest() == b""
            failure = srvr.assert_failed("mismatch", step=2)
            assert failure.summary.startswith(message)
            assert failure.expected == "a masked WebSocket frame from the client"
        with CommandServer(script, verbose=False) as srvr, RawClient(srvr.port) as client:
            client.open()
            client.sock.sendall(client_frame(1, b"hello"))
            assert client.frame() == (0x81, b"ok")


def test_an_unmasked_frame_fails_at_its_second_byte_without_waiting_for_the_payload() -> None:
    script = [*ws.handshake(), ws.ReadClientFrame(timeout=60)]
    with CommandServer(script, verbose=False) as srvr, RawClient(srvr.port) as client:
        client.open()
        client.sock.sendall(client_frame(2, b"x" * 1000, masked=False)[:2])  # the header only
        assert client.rest() == b""
        srvr.assert_failed("mismatch", step=2, match="is not masked")


EXPECT_WRONG: list[tuple[Any, bytes, bytes, str]] = [
    (ws.ExpectClientFrame("text", "hello"), client_frame(2, b"hello"), client_frame(1, b"hello"),
     "expected a text frame, got a binary frame of 5 bytes: b'hello'"),
    (ws.ExpectClientFrame("text", "hello"), client_frame(1, b"hallo"), client_frame(1, b"hello"),
     "text frame: expected 'hello', got 'hallo'"),
    (ws.ExpectClientFrame("binary", b"\x00"), client_frame(2, b"\x01"), client_frame(2, b"\x00"),
     "binary frame: expected b'\\x00', got b'\\x01'"),
    (ws.ExpectClientFrame("text", re.compile(r"^\d+$")), client_frame(1, b"12a"),
     client_frame(1, b"123"),
     "text frame: expected a match for re.compile(b'^\\\\d+$'), got b'12a'"),
    (ws.ExpectClientFrame("text"), client_frame(1, b"he", fin=False), client_frame(1, b"whole"),
     "expected a final frame (FIN set), got a fragment (FIN clear)"),
    (ws.ExpectClientFrame("close", code=1000), client_frame(8, struct.pack(">H", 1001) + b"bye"),
     client_frame(8, struct.pack(">H", 1000)), "close frame: expected code 1000, got 1001 ('bye')"),
    (ws.ExpectClientFrame("close", code=1000), client_frame(8), client_frame(8, b"\x03\xe8ok"),
     "close frame: expected code 1000, got none (an empty close frame)"),
]


@pytest.mark.parametrize(("step", "wrong", "right", "message"), EXPECT_WRONG,
                         ids=[m for _, _, _, m in EXPECT_WRONG])
def test_expect_client_frame_names_the_difference_and_a_matching_frame_passes(
        step: ws.ExpectClientFrame, wrong: bytes, right: bytes, message: str) -> None:
    for _ in range(ROUNDS):
        with CommandServer([*ws.handshake(), step], verbose=False) as srvr, \
                RawClient(srvr.port) as client:
            client.open()
            client.sock.sendall(wrong)
            client.rest()
            assert srvr.assert_failed("mismatch", step=2).summary == message
        with CommandServer([*ws.handshake(), step, ws.text_frame("ok")], verbose=False) as srvr, \
                RawClient(srvr.port) as client:
            client.open()
            client.sock.sendall(right)
            assert client.frame() == (0x81, b"ok")


def test_a_client_that_drops_the_tcp_connection_without_a_close_frame_fails() -> None:
    script = [*ws.handshake(), ws.ExpectClientFrame("close")]
    for _ in range(ROUNDS):
        with CommandServer(script, verbose=False) as srvr, RawClient(srvr.port) as client:
            client.open()
            client.sock.shutdown(socket.SHUT_WR)
            client.rest()
            failure = srvr.assert_failed("closed", step=2)
            assert failure.summary == ("the client closed the connection without a close "
                                       "frame")
        with CommandServer(script, verbose=False) as srvr, RawClient(srvr.port) as client:
            client.open()
            client.sock.sendall(client_frame(8))
            client.rest()


# ---------------------------------------------------------------------------
# the websockets package as the client
# ---------------------------------------------------------------------------


def websockets_connect() -> Callable[..., Any]:
    sync_client = pytest.importorskip("websockets.sync.client")
    connect: Callable[..., Any] = sync_client.connect
    return connect


def test_the_websockets_client_holds_a_conversation_with_pings_and_fragments() -> None:
    connect = websockets_connect()
    script = [*ws.handshake("/chat", protocol="chat"),
              ws.ExpectClientFrame("text", "hello"), ws.text_frame("world"),
              ws.ping_frame(b"are you there"), ws.ExpectClientFrame("pong", b"are you there"),
              *ws.fragmented("text", "in three parts", 3), *ws.fragmented("binary", b"\x01\x02", 2),
              ws.ExpectClientFrame("close", code=1000), ws.close_frame(1000)]
    for _ in range(ROUNDS):
        with CommandServer(script, verbose=False) as srvr:
            with connect(f"ws://127.0.0.1:{srvr.port}/chat", subprotocols=["chat"],
                         open_timeout=CLIENT_TIMEOUT, close_timeout=CLIENT_TIMEOUT) as client:
                assert client.subprotocol == "chat"
                client.send("hello")
                assert client.recv(timeout=CLIENT_TIMEOUT) == "world"
                assert client.recv(timeout=CLIENT_TIMEOUT) == "in three parts"
                assert client.recv(timeout=CLIENT_TIMEOUT) == b"\x01\x02"


def test_a_websockets_client_that_offers_no_subprotocol_fails_the_handshake() -> None:
    connect = websockets_connect()
    from websockets.exceptions import InvalidHandshake
    for _ in range(ROUNDS):
        with CommandServer(ws.handshake(protocol="chat"), verbose=False) as srvr:
            with pytest.raises((InvalidHandshake, OSError)):
                connect(f"ws://127.0.0.1:{srvr.port}/", open_timeout=CLIENT_TIMEOUT)
            srvr.assert_failed("mismatch", step=0,
                               match="missing header Sec-WebSocket-Protocol")
        # The client closes with a close frame, which the script expects and answers: a
        # script of expectations says all the client sends.
        with CommandServer([*ws.handshake(protocol="chat"), *CLOSING],
                           verbose=False) as srvr:
            with connect(f"ws://127.0.0.1:{srvr.port}/", subprotocols=["chat"],
                         open_timeout=CLIENT_TIMEOUT, close_timeout=CLIENT_TIMEOUT) as client:
                assert client.subprotocol == "chat"


def test_the_websockets_client_refuses_a_wrong_accept_and_a_refusal() -> None:
    connect = websockets_connect()
    from websockets.exceptions import InvalidHeaderValue, InvalidStatus
    for _ in range(ROUNDS):
        with CommandServer([ws.ExpectHandshake(), ws.accept(accept_value="d3Jvbmc=")],
                           verbose=False) as srvr:
            with pytest.raises(InvalidHeaderValue, match="Sec-WebSocket-Accept"):
                connect(f"ws://127.0.0.1:{srvr.port}/", open_timeout=CLIENT_TIMEOUT)
        with CommandServer([ws.ExpectHandshake(), *ws.refuse(403, "go away")],
                           verbose=False) as srvr:
            with pytest.raises(InvalidStatus, match="403"):
                connect(f"ws://127.0.0.1:{srvr.port}/", open_timeout=CLIENT_TIMEOUT)


def test_a_websockets_client_sending_the_wrong_message_fails_with_the_difference() -> None:
    connect = websockets_connect()
    script = [*ws.handshake(), ws.ExpectClientFrame("text", "hello"), ws.text_frame("ok")]
    for _ in range(ROUNDS):
        with CommandServer(script, verbose=False) as srvr:
            with connect(f"ws://127.0.0.1:{srvr.port}/", open_timeout=CLIENT_TIMEOUT,
                         close_timeout=CLIENT_TIMEOUT) as client:
                client.send(b"hello")  # binary, not text
                with pytest.raises(Exception, match=r"no close frame|1006"):
                    client.recv(timeout=CLIENT_TIMEOUT)
            srvr.assert_failed("mismatch", step=2,
                               match="expected a text frame, got a binary frame of 5 bytes")
        with CommandServer([*script, *CLOSING], verbose=False) as srvr:
            with connect(f"ws://127.0.0.1:{srvr.port}/", open_timeout=CLIENT_TIMEOUT,
                         close_timeout=CLIENT_TIMEOUT) as client:
                client.send("hello")
                assert client.recv(timeout=CLIENT_TIMEOUT) == "ok"


def test_a_long_binary_message_from_websockets_is_unmasked_whole() -> None:
    connect = websockets_connect()
    payload = os.urandom(2 << 20)
    script = [*ws.handshake(), ws.ExpectClientFrame("binary", payload), ws.text_frame("got it"),
              *CLOSING]
    with CommandServer(script, verbose=False) as srvr:
        with connect(f"ws://127.0.0.1:{srvr.port}/", open_timeout=CLIENT_TIMEOUT,
                     close_timeout=CLIENT_TIMEOUT, max_size=None) as client:
            client.send(payload)
            assert client.recv(timeout=CLIENT_TIMEOUT) == "got it"
    assert ws.WebSocketFrame.parse(srvr.received[1]).payload == payload


@pytest.mark.parametrize(("bad", "reason"), [
    (ws.frame("text", "hi", mask=b"abcd"), "masking"),
    (ws.frame(3, b"x"), "opcode"),
    (ws.frame("text", "hi", rsv=4), "reserved bits"),
])
def test_a_misbehaving_server_frame_makes_the_websockets_client_fail_the_connection(
        bad: bytes, reason: str) -> None:
    connect = websockets_connect()
    from websockets.exceptions import ConnectionClosedError
    for _ in range(ROUNDS):
        with CommandServer([*ws.handshake(), bad, ws.ExpectClientFrame("close", code=1002)],
                           verbose=False) as srvr:
            with connect(f"ws://127.0.0.1:{srvr.port}/", open_timeout=CLIENT_TIMEOUT,
                         close_timeout=CLIENT_TIMEOUT) as client:
                with pytest.raises(ConnectionClosedError) as closed:
                    client.recv(timeout=CLIENT_TIMEOUT)
            assert closed.value.sent is not None and closed.value.sent.code == 1002
            assert reason in closed.value.sent.reason


# ---------------------------------------------------------------------------
# frames and steps without a socket
# ---------------------------------------------------------------------------


def test_server_frames_have_the_rfc_layout() -> None:
    assert ws.text_frame("hi") == b"\x81\x02hi"
    assert ws.binary_frame(b"\x00" * 200)[:4] == b"\x82\x7e\x00\xc8"
    assert ws.binary_frame(b"\x00" * 70000)[:10] == b"\x82\x7f" + (70000).to_bytes(8, "big")
    assert ws.ping_frame() == b"\x89\x00" and ws.pong_frame("x") == b"\x8a\x01x"
    assert ws.close_frame(1001, "bye") == b"\x88\x05\x03\xe9bye"
    assert ws.close_frame(None) == b"\x88\x00"
    assert ws.WebSocketFrame.parse(ws.frame("text", "hi", mask=b"abcd")).text == "hi"
    assert ws.fragmented("binary", b"abcdef", 3) == [b"\x02\x02ab", b"\x00\x02cd",
                                                     b"\x80\x02ef"]
    frame = ws.WebSocketFrame.parse(ws.close_frame(1000, "done"))
    assert (frame.kind, frame.code, frame.reason, frame.fin) == ("close", 1000, "done", True)


def test_frame_parse_and_steps_say_what_they_are() -> None:
    with pytest.raises(ValueError, match="2 bytes follow the frame"):
        ws.WebSocketFrame.parse(ws.text_frame("a") + b"xx")
    with pytest.raises(Mismatch, match="the client closed the connection inside a frame, "
                       "after 7 of its 8 bytes"):
        ws.ReadClientFrame().matcher().check(bytearray(b"\x81\x82abcdh"), True)
    assert repr(ws.ExpectClientFrame("close", code=1000)) == "ExpectClientFrame('close', code=1000)"
    assert repr(ws.ExpectClientFrame(payload=b"x", fin=None)) == (
        "ExpectClientFrame(payload=b'x', fin=None)")
    assert repr(ws.handshake("/c", protocol="p")) == (
        "[ExpectHandshake(path='/c', protocol='p'), Call(accept(protocol='p'))]")
    assert repr(ws.WebSocketFrame.parse(b"\x01\x01a")) == "WebSocketFrame('text', b'a', fin=False)"


@pytest.mark.parametrize(("call", "message"), [
    (lambda: ws.frame("txt"), "frame kind 'txt' is not one of"),
    (lambda: ws.frame(16), "opcode must be an int from 0 to 15"),
    (lambda: ws.frame("text", rsv=8), "rsv must be an int from 0 to 7"),
    (lambda: ws.frame("text", mask=b"abc"), "mask must be 4 bytes, not b'abc'"),
    (lambda: ws.ping_frame(b"x" * 126), "a ping frame's payload is at most 125 bytes, not 126"),
    (lambda: ws.close_frame(1005), "close code must be one a frame may carry"),
    (lambda: ws.close_frame(None, "why"), "a close frame with a reason needs a code"),
    (lambda: ws.text_frame(b"x"), "text must be a str, not b'x'"),
    (lambda: ws.fragmented("ping", b"x", 1), "a fragmented message is 'text' or 'binary'"),
    (lambda: ws.fragmented("text", "ab", 3), "2 bytes do not make 3 non-empty pieces"),
    (lambda: ws.ExpectClientFrame("text", code=1000), "code= and reason= are a close frame's"),
    (lambda: ws.ExpectClientFrame(payload=3), "payload must be bytes, str, a compiled regex"),
    (lambda: ws.accept(protocol=""), "protocol must be a subprotocol name"),
    (lambda: ws.accept(headers={"X": "a\nb"}), "the value must be a str without CR or LF"),
    (lambda: ws.refuse(101), "a refusal is a final status (>= 200), not 101"),
])
def test_a_bad_argument_is_refused_where_it_is_given(call: Callable[[], object],
                                                      message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=re.escape(message)):
        call()
