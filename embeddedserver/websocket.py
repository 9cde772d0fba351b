"""WebSocket (RFC 6455) for scripts: the opening handshake, the frames a server sends, and
the client's frames read, unmasked and checked. No I/O.

Model
-----
A WebSocket connection starts as HTTP: ``ExpectHandshake()`` is an
``embeddedserver.http.ExpectRequest`` that also checks what RFC 6455 (4.1) asks of the
client's opening handshake (a GET with ``Upgrade: websocket``, ``Connection: Upgrade``,
a ``Sec-WebSocket-Key`` of 16 base64 bytes, ``Sec-WebSocket-Version: 13``), each missing
or wrong one named. ``accept()`` answers ``101 Switching Protocols`` with the
``Sec-WebSocket-Accept`` computed from the key the client sent (it is a ``Call`` step: the
key is only known once the handshake has been read), or with a value you give (a wrong
one, to test that the client refuses it); ``refuse()`` answers with an HTTP error.
``handshake()`` is the two together.

Then frames. A server's frames are bytes, so they are send steps: ``text_frame("hi")``,
``binary_frame(b"...")``, ``ping_frame()``, ``pong_frame()``, ``close_frame(1000)``,
``fragmented("text", "...", 3)`` (a message in several frames), and ``frame(...)`` for any
header at all (reserved bits, a mask a server must not set, a bad opcode: misbehaviours).
``ReadClientFrame()`` reads one client frame; ``ExpectClientFrame("text", "hello")``
reads one and checks its kind, payload (unmasked), FIN bit or close code. Both fail, in
WebSocket's terms, a frame that is not masked, sets a reserved bit, has a reserved
opcode, a control frame that is fragmented or longer than 125 bytes, a text frame that is
not UTF-8, a close frame with a bad code. ``WebSocketFrame.parse(chunk)`` reads a chunk
of ``received`` back, unmasked.

Sections: the handshake - frames the server sends - client frames.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeAlias

from . import _args
from ._match import Matcher, Mismatch
from ._text import bytes_pattern, callable_name
from .http import ExpectRequest, RequestMatch, response
from .httpmessage import Request
from .record import ConnectionRecord, show_bytes
from .steps import Bytesish, Call, ReadStep, Send, Step

if TYPE_CHECKING:
    from ._connection import Connection

__all__ = [
    "GUID",
    "OPCODES",
    "ExpectClientFrame",
    "ExpectHandshake",
    "PayloadMatch",
    "ReadClientFrame",
    "WebSocketFrame",
    "accept",
    "accept_key",
    "binary_frame",
    "close_frame",
    "fragmented",
    "frame",
    "handshake",
    "ping_frame",
    "pong_frame",
    "refuse",
    "text_frame",
]

#: The GUID RFC 6455 (1.3) appends to the client's key before hashing it.
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: The opcodes by name.
OPCODES = {"continuation": 0x0, "text": 0x1, "binary": 0x2, "close": 0x8, "ping": 0x9,
           "pong": 0xA}
_NAMES = {code: name for name, code in OPCODES.items()}

# ---------------------------------------------------------------------------
# the handshake
# ---------------------------------------------------------------------------


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a server answers to the client's *key* (RFC 6455, 4.2.2).

    >>> accept_key("dGhlIHNhbXBsZSBub25jZQ==")
    's3pPLMBiTxaQ9kYGzzhZRbK+xOo='
    """
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def _tokens(value: str) -> list[str]:
    return [token.strip().lower() for token in value.split(",") if token.strip()]


def _valid_key(key: str) -> bool:
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == 16


class _Handshake(RequestMatch):
    """What RFC 6455 (4.1) asks of a client's opening handshake, and the user's criteria."""

    def __init__(self, path: str | re.Pattern[str] | None, protocol: str | None,
                 headers: Mapping[str, str | re.Pattern[str] | None] | None) -> None:
        super().__init__(None, path, headers=headers)
        if protocol is not None and not (isinstance(protocol, str) and protocol):
            raise TypeError(f"protocol must be a subprotocol name such as 'chat', not "
                            f"{protocol!r}")
        self.protocol = protocol

    def head_differences(self, request: Request) -> list[str]:
        found = []
        if request.method != "GET":
            found.append(f"the opening handshake is a {request.method} request, not a GET "
                         "(RFC 6455, 4.1)")
        if request.version != "HTTP/1.1":
            found.append(f"the opening handshake is {request.version}, not HTTP/1.1")
        found += super().head_differences(request)
        headers = request.headers
        for name, token, shown in (("Upgrade", "websocket", "'websocket'"),
                                   ("Connection", "upgrade", "a list with 'Upgrade'")):
            if name not in headers:
                found.append(f"missing header {name} (expected {shown})")
            elif token not in _tokens(headers[name]):
                found.append(f"header {name}: expected {shown}, got {headers[name]!r}")
        keys = headers.get_all("Sec-WebSocket-Key")
        if not keys:
            found.append("missing header Sec-WebSocket-Key (16 random bytes, base64)")
        elif len(keys) > 1:
            found.append(f"the handshake has {len(keys)} Sec-WebSocket-Key headers: {keys!r}")
        elif not _valid_key(keys[0]):
            found.append(f"Sec-WebSocket-Key {keys[0]!r} is not the base64 of 16 bytes "
                         "(RFC 6455, 4.1)")
        version = headers.get("Sec-WebSocket-Version")
        if version is None:
            found.append("missing header Sec-WebSocket-Version (expected '13')")
        elif version != "13":
            found.append(f"header Sec-WebSocket-Version: expected '13', got {version!r}")
        if self.protocol is not None:
            offered = headers.get("Sec-WebSocket-Protocol")
            if offered is None:
                found.append(f"missing header Sec-WebSocket-Protocol (expected an offer of "
                             f"{self.protocol!r})")
            elif self.protocol.lower() not in _tokens(offered):
                found.append(f"header Sec-WebSocket-Protocol: expected an offer of "
                             f"{self.protocol!r}, got {offered!r}")
        return found

    def describe(self) -> str:
        more = f" offering subprotocol {self.protocol!r}" if self.protocol else ""
        request = super().describe().replace("(any method)", "GET", 1)
        return "a WebSocket opening handshake " + request + more

    def _args(self) -> list[str]:
        args = [arg for arg in super()._args() if not arg.startswith("method=")]
        return args + ([f"protocol={self.protocol!r}"] if self.protocol else [])


class ExpectHandshake(ExpectRequest):
    """Read the client's opening handshake and check it (RFC 6455, 4.1), and the *path*
    (a str or a compiled regex), the subprotocol it must offer (*protocol*) and other
    *headers* (as ``ExpectRequest``'s) if given.

    >>> ExpectHandshake("/chat", protocol="chat")
    ExpectHandshake(path='/chat', protocol='chat')
    """

    def __init__(
        self,
        path: str | re.Pattern[str] | None = None,
        *,
        protocol: str | None = None,
        headers: Mapping[str, str | re.Pattern[str] | None] | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__(_Handshake(path, protocol, headers), timeout=timeout)

    def describe(self) -> str:
        return self.criteria.describe()

    def __repr__(self) -> str:
        return f"ExpectHandshake({', '.join(self._repr_args())})"


def _last_request(record: ConnectionRecord) -> Request:
    last = next((e.data for e in reversed(record.events) if e.kind == "recv"), None)
    if last is None:
        raise RuntimeError("accept() answers the opening handshake read by the step before "
                           "it (ExpectHandshake() or ReadRequest()), and nothing was read")
    try:
        return Request.parse(last)
    except ValueError as exc:
        raise RuntimeError(f"accept() answers the opening handshake read by the step before "
                           f"it (ExpectHandshake() or ReadRequest()); the bytes read last are "
                           f"not an HTTP request ({exc}): {show_bytes(last, 60)}") from None


class _Accept:
    """The function of ``accept()``'s ``Call`` step (its repr is the step's)."""

    def __init__(self, protocol: str | None, headers: list[tuple[str, str | None]],
                 accept_value: str | None) -> None:
        self.protocol = protocol
        self.headers = headers
        self.accept_value = accept_value

    def head(self, key: str) -> bytes:
        """The 101 response to a handshake whose key is *key*."""
        value = self.accept_value if self.accept_value is not None else accept_key(key)
        fields: list[tuple[str, str | None]] = [
            ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", value)]
        if self.protocol is not None:
            fields.append(("Sec-WebSocket-Protocol", self.protocol))
        for name, given in self.headers:  # the same name replaces a default; None drops it
            at = next((i for i, (n, _) in enumerate(fields) if n.lower() == name.lower()), None)
            if at is None:
                fields.append((name, given))
            else:
                fields[at] = (name, given)
        pairs = [(n, v) for n, v in fields if v is not None]
        step = response(status=101, headers=pairs)[0]
        assert isinstance(step, Send)  # one Send: a 101 has no body
        return step.data

    def __call__(self, conn: Connection) -> None:
        request = _last_request(conn.record)
        key = request.headers.get("Sec-WebSocket-Key")
        if key is None:
            raise RuntimeError("accept(): the handshake it answers has no Sec-WebSocket-Key")
        conn.send(self.head(key))

    def __repr__(self) -> str:
        args = [f"protocol={self.protocol!r}"] if self.protocol else []
        if self.headers:
            args.append(f"headers={dict(self.headers)!r}")
        if self.accept_value is not None:
            args.append(f"accept_value={self.accept_value!r}")
        return f"accept({', '.join(args)})"


def accept(
    *,
    protocol: str | None = None,
    headers: Mapping[str, str | None] | None = None,
    accept_value: str | None = None,
) -> Call:
    """The step that answers the handshake just read with ``101 Switching Protocols``.

    *protocol*: the subprotocol chosen (``Sec-WebSocket-Protocol``). *headers*: more
    headers; one named like a default (``Upgrade``, ``Connection``,
    ``Sec-WebSocket-Accept``) replaces it, None leaves it out. *accept_value*: the
    ``Sec-WebSocket-Accept`` to send instead of the right one (a client must then fail
    the connection).

    >>> accept(protocol="chat")
    Call(accept(protocol='chat'))
    """
    if protocol is not None and not (isinstance(protocol, str) and protocol):
        raise TypeError(f"protocol must be a subprotocol name such as 'chat', not {protocol!r}")
    if accept_value is not None and not isinstance(accept_value, str):
        raise TypeError(f"accept_value must be a str, not {accept_value!r}")
    if headers is not None and not isinstance(headers, Mapping):
        raise TypeError(f"headers must be a dict of names to values, not {headers!r}")
    pairs = list((headers or {}).items())
    response(status=101, headers=pairs)  # the same checks of names and values
    return Call(_Accept(protocol, pairs, accept_value))


def refuse(status: int = 403, body: Bytesish = b"", *,
           headers: Mapping[str, str | None] | None = None) -> list[Step]:
    """Refuse the handshake: an HTTP response other than 101 (``Connection: close``).

    >>> refuse(403)[0].data.split(b"\\r\\n")[0]
    b'HTTP/1.1 403 Forbidden'
    """
    if isinstance(status, int) and 100 <= status < 200:
        raise ValueError(f"a refusal is a final status (>= 200), not {status!r}")
    return response(body, status, headers=headers)


def handshake(
    path: str | re.Pattern[str] | None = None,
    *,
    protocol: str | None = None,
    timeout: float | None = None,
) -> list[Step]:
    """``[ExpectHandshake(path, protocol=protocol), accept(protocol=protocol)]``.

    >>> handshake("/chat")
    [ExpectHandshake(path='/chat'), Call(accept())]
    """
    return [ExpectHandshake(path, protocol=protocol, timeout=timeout),
            accept(protocol=protocol)]


# ---------------------------------------------------------------------------
# frames the server sends
# ---------------------------------------------------------------------------


def _opcode(kind: int | str) -> int:
    if isinstance(kind, str):
        if kind not in OPCODES:
            raise ValueError(f"frame kind {kind!r} is not one of {sorted(OPCODES)}")
        return OPCODES[kind]
    return _args.integer(kind, "opcode", 0, 15, "an int from 0 to 15 or a name such as 'text'")


def frame(
    kind: int | str,
    payload: Bytesish = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = None,
) -> bytes:
    """One frame's bytes, with any header: *kind* an opcode name or number (0-15), *rsv*
    the three reserved bits (0-7), *mask* 4 bytes to mask the payload with (a server
    must not: a misbehaviour) or None. Nothing else is checked: to misbehave.

    >>> frame("text", "hi")
    b'\\x81\\x02hi'
    """
    code = _opcode(kind)
    rsv = _args.integer(rsv, "rsv", 0, 7, "an int from 0 to 7 (RSV1 is 4)")
    data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
    head = bytearray([(0x80 if _args.flag(fin, "fin") else 0) | rsv << 4 | code])
    masked = 0x80 if mask is not None else 0
    n = len(data)
    if n < 126:
        head.append(masked | n)
    elif n < 1 << 16:
        head += bytes([masked | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([masked | 127]) + n.to_bytes(8, "big")
    if mask is not None:
        if not isinstance(mask, bytes) or len(mask) != 4:
            raise ValueError(f"mask must be 4 bytes, not {mask!r}")
        head += mask
        data = _unmask(data, mask)
    return bytes(head) + data


def _control(kind: str, payload: bytes) -> bytes:
    if len(payload) > 125:
        raise ValueError(f"a {kind} frame's payload is at most 125 bytes, not {len(payload)} "
                         "(frame() sends a longer one, to misbehave)")
    return frame(kind, payload)


def text_frame(text: str, *, fin: bool = True) -> bytes:
    """A text frame (UTF-8). ``text_frame("hi")`` is ``b'\\x81\\x02hi'``."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {text!r}")
    return frame("text", text, fin=fin)


def binary_frame(data: bytes | bytearray | memoryview, *, fin: bool = True) -> bytes:
    """A binary frame."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, not {data!r}")
    return frame("binary", data, fin=fin)


def ping_frame(payload: Bytesish = b"") -> bytes:
    """A ping (at most 125 bytes of payload): the client must answer a pong."""
    return _control("ping", payload.encode("utf-8") if isinstance(payload, str)
                    else bytes(payload))


def pong_frame(payload: Bytesish = b"") -> bytes:
    """A pong (at most 125 bytes of payload)."""
    return _control("pong", payload.encode("utf-8") if isinstance(payload, str)
                    else bytes(payload))


def _valid_code(code: int) -> bool:
    return (1000 <= code <= 1014 and code not in (1004, 1005, 1006)) or 3000 <= code <= 4999


def close_frame(code: int | None = 1000, reason: str = "") -> bytes:
    """A close frame: *code* (RFC 6455, 7.4: 1000 normal, 1001 going away, 1008 policy,
    1011 server error, 3000-4999 applications) and a *reason*; None sends no code.

    >>> close_frame(1000)
    b'\\x88\\x02\\x03\\xe8'
    """
    if code is None:
        if reason:
            raise ValueError("a close frame with a reason needs a code")
        return frame("close")
    if isinstance(code, bool) or not isinstance(code, int) or not _valid_code(code):
        raise ValueError(f"close code must be one a frame may carry (1000-1003, 1007-1014, "
                         f"3000-4999), not {code!r}; frame('close', ...) sends any")
    return _control("close", code.to_bytes(2, "big") + reason.encode("utf-8"))


def fragmented(kind: str, payload: Bytesish, pieces: int) -> list[bytes]:
    """One message in *pieces* frames: a *kind* (``"text"``/``"binary"``) frame without
    FIN, continuation frames, the last with FIN. Put them in a script with ``*``.

    >>> fragmented("text", "abc", 2)
    [b'\\x01\\x02ab', b'\\x80\\x01c']
    """
    if kind not in ("text", "binary"):
        raise ValueError(f"a fragmented message is 'text' or 'binary', not {kind!r}")
    data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
    pieces = _args.count(pieces, "pieces", 1)
    if pieces > max(1, len(data)):
        raise ValueError(f"{len(data)} bytes do not make {pieces} non-empty pieces")
    size = -(-len(data) // pieces)
    parts = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    return [frame(kind if i == 0 else "continuation", part, fin=i == len(parts) - 1)
            for i, part in enumerate(parts)]


# ---------------------------------------------------------------------------
# client frames
# ---------------------------------------------------------------------------


def _unmask(data: bytes, key: bytes) -> bytes:
    n = len(data)
    if not n:
        return b""
    keys = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(keys, "little")).to_bytes(n, "little")


class WebSocketFrame:
    """One frame, parsed: ``fin``, ``rsv`` (0-7), ``opcode``, ``kind`` (its name, or
    ``'0x3'``), ``masked``, ``payload`` (unmasked); ``text`` for a text frame,
    ``code`` and ``reason`` for a close frame (None without a code).

    >>> f = WebSocketFrame.parse(b"\\x81\\x82abcd" + bytes([ord("h") ^ 97, ord("i") ^ 98]))
    >>> f.kind, f.masked, f.text
    ('text', True, 'hi')
    """

    __slots__ = ("fin", "masked", "opcode", "payload", "rsv")

    def __init__(self, opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0,
                 masked: bool = False) -> None:
        self.opcode = opcode
        self.payload = payload
        self.fin = fin
        self.rsv = rsv
        self.masked = masked

    @property
    def kind(self) -> str:
        return _NAMES.get(self.opcode, f"0x{self.opcode:x}")

    @property
    def text(self) -> str:
        """The payload decoded as UTF-8 (UnicodeDecodeError if it is not)."""
        return self.payload.decode("utf-8")

    @property
    def code(self) -> int | None:
        return int.from_bytes(self.payload[:2], "big") if len(self.payload) >= 2 else None

    @property
    def reason(self) -> str:
        return self.payload[2:].decode("utf-8", "replace")

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> WebSocketFrame:
        """The one frame in *data* (masked or not); ValueError saying what is wrong."""
        reader = _FrameReader("a WebSocket frame", None, client=False)
        buffer = bytearray(data)
        try:
            end = reader.check(buffer, True)
        except Mismatch as exc:
            raise ValueError(exc.reason) from None
        assert end is not None and reader.frame is not None
        if end < len(buffer):
            raise ValueError(f"{len(buffer) - end} bytes follow the frame")
        return reader.frame

    def describe(self) -> str:
        """``'text frame of 5 bytes'``, as messages say it."""
        fragment = "" if self.fin else " (a fragment: FIN clear)"
        return f"{self.kind} frame of {len(self.payload)} bytes{fragment}"

    def __repr__(self) -> str:
        flags = "" if self.fin else ", fin=False"
        flags += f", rsv={self.rsv}" if self.rsv else ""
        flags += ", masked=True" if self.masked else ""
        return f"WebSocketFrame({self.kind!r}, {show_bytes(self.payload, 40)}{flags})"


#: What a client frame's payload must be: bytes (a str: the text, UTF-8), a compiled
#: regex searched in the payload, or a predicate ``func(payload: bytes) -> bool``.
PayloadMatch: TypeAlias = (
    bytes | str | re.Pattern[bytes] | re.Pattern[str] | Callable[[bytes], object]
)


class _FrameReader(Matcher):
    """The matcher of the client-frame steps: frames one frame, checks what RFC 6455
    asks of every frame (of a client's, with *client*), then the step's *check*."""

    def __init__(self, expected: str, check: ExpectClientFrame | None, *,
                 client: bool = True) -> None:
        self.expected = expected
        self.criteria = check
        self.client = client
        self.wants = 0
        self.frame: WebSocketFrame | None = None
        self._head = 0  # the header's length, once known
        self._length = 0  # the payload's

    def check(self, buffer: bytearray | memoryview, eof: bool) -> int | None:
        n = len(buffer)
        if not self._head:
            if n < 2:
                if eof:
                    raise self._closed(buffer, "without a close frame" if not n else
                                       "inside a frame header")
                return None
            self._first_bytes(buffer, buffer[0], buffer[1])
            length7 = buffer[1] & 0x7F
            extra = 2 if length7 == 126 else 8 if length7 == 127 else 0
            mask = 4 if buffer[1] & 0x80 else 0
            if n < 2 + extra:
                if eof:
                    raise self._closed(buffer, "inside a frame header")
                return None
            length = length7
            if extra:
                length = int.from_bytes(buffer[2 : 2 + extra], "big")
                if extra == 8 and length >> 63:
                    raise self._bad(buffer, "the frame's 64-bit length has its most significant "
                                    "bit set (RFC 6455, 5.2)")
                if length < (126 if extra == 2 else 1 << 16):
                    raise self._bad(buffer, f"the frame's length {length} is encoded in {extra} "
                                    "extra bytes, not the shortest form (RFC 6455, 5.2)")
            self._head = 2 + extra + mask
            self._length = length
            self.wants = self._head + length  # a long payload goes straight into its chunk
        end = self._head + self._length
        if n < end:
            if eof:
                raise self._closed(buffer, f"inside a frame, after {n} of its {end} bytes")
            return None
        b0, b1 = buffer[0], buffer[1]
        payload = bytes(buffer[self._head : end])
        if b1 & 0x80:
            payload = _unmask(payload, bytes(buffer[self._head - 4 : self._head]))
        self.frame = WebSocketFrame(b0 & 0x0F, payload, fin=bool(b0 & 0x80), rsv=b0 >> 4 & 7,
                                    masked=bool(b1 & 0x80))
        problems = self._payload_problems(self.frame)
        if self.criteria is not None and not problems:
            problems = self.criteria.differences(self.frame)
        if problems:
            raise Mismatch("\n  ".join(problems), self.expected, bytes(buffer))
        return end

    def _first_bytes(self, buffer: bytearray | memoryview, b0: int, b1: int) -> None:
        """What the first two bytes say: fail at once on a frame no client may send."""
        opcode, length7 = b0 & 0x0F, b1 & 0x7F
        name = _NAMES.get(opcode)
        who = "client " if self.client else ""
        if name is None:
            raise self._bad(buffer, f"the {who}frame has opcode 0x{opcode:x}, which RFC 6455 "
                            "reserves (5.2)")
        if b0 & 0x70:
            bits = "/".join(f"RSV{i}" for i in (1, 2, 3) if b0 & (0x40 >> (i - 1)))
            raise self._bad(buffer, f"the {who}{name} frame sets {bits}, but no extension was "
                            "negotiated (RFC 6455, 5.2)")
        if self.client and not b1 & 0x80:
            raise self._bad(buffer, f"the client {name} frame is not masked: a client masks "
                            "every frame it sends (RFC 6455, 5.1)")
        if opcode >= 8 and not b0 & 0x80:
            raise self._bad(buffer, f"the {who}{name} frame is fragmented (FIN clear): a "
                            "control frame cannot be (RFC 6455, 5.5)")
        if opcode >= 8 and length7 > 125:
            raise self._bad(buffer, f"the {who}{name} frame is longer than 125 bytes, the most "
                            "a control frame carries (RFC 6455, 5.5)")

    def _payload_problems(self, got: WebSocketFrame) -> list[str]:
        who = "client " if self.client else ""
        if got.opcode == OPCODES["text"] and got.fin:
            try:
                got.text  # noqa: B018 (decoding is the check)
            except UnicodeDecodeError as exc:
                return [f"the {who}text frame is not valid UTF-8 ({exc.reason} at byte "
                        f"{exc.start}): {show_bytes(got.payload, 40)}"]
        if got.opcode == OPCODES["close"] and got.payload:
            if len(got.payload) == 1:
                return [f"the {who}close frame has a 1-byte payload: it is empty, or a 2-byte "
                        "code and a reason (RFC 6455, 5.5.1)"]
            assert got.code is not None
            if not _valid_code(got.code):
                return [f"the {who}close frame has code {got.code}, which a frame may not "
                        "carry (RFC 6455, 7.4)"]
            try:
                got.payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                return [f"the {who}close frame's reason is not valid UTF-8"]
        return []

    def _bad(self, buffer: bytearray | memoryview, reason: str) -> Mismatch:
        return Mismatch(reason, self.expected, bytes(buffer))

    def _closed(self, buffer: bytearray | memoryview, where: str) -> Mismatch:
        return Mismatch(f"the client closed the connection {where}", self.expected,
                        bytes(buffer), len(buffer))


class ReadClientFrame(ReadStep):
    """Read one client frame (any kind); its chunk is the frame as sent (masked). A frame
    no client may send fails the step (see the module's docstring).

    >>> ReadClientFrame()
    ReadClientFrame()
    """

    def __init__(self, *, timeout: float | None = None) -> None:
        self.timeout = _args.optional_timeout(timeout)

    def _repr_args(self) -> list[str]:
        return self._timeout_arg()

    def describe(self) -> str:
        return "a masked WebSocket frame from the client"

    def matcher(self) -> Matcher:
        return _FrameReader(self.describe(), None)


class ExpectClientFrame(ReadClientFrame):
    """Read one client frame and check it.

    Arguments (each None: anything goes):
        kind: ``"text"``, ``"binary"``, ``"ping"``, ``"pong"``, ``"close"``,
            ``"continuation"`` (or an opcode).
        payload: a ``PayloadMatch`` (unmasked); a str is compared with the text.
        fin: True (the default): a whole message or its last frame; False: a fragment
            with more to come; None: either.
        code: a close frame's status code (1000...); reason: its reason text.

    >>> ExpectClientFrame("text", "hello")
    ExpectClientFrame('text', 'hello')
    """

    expects_exactly = True

    def __init__(
        self,
        kind: int | str | None = None,
        payload: PayloadMatch | None = None,
        *,
        fin: bool | None = True,
        code: int | None = None,
        reason: str | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__(timeout=timeout)
        self.opcode = None if kind is None else _opcode(kind)
        self.frame_kind = kind
        self.exact: bytes | None = None
        self.text: str | None = None
        self.pattern: re.Pattern[bytes] | None = None
        self.predicate: Callable[[bytes], object] | None = None
        if isinstance(payload, str):
            self.text = payload
        elif isinstance(payload, (bytes, bytearray, memoryview)):
            self.exact = bytes(payload)
        elif isinstance(payload, re.Pattern):
            self.pattern = bytes_pattern(payload)
        elif callable(payload):
            self.predicate = payload
        elif payload is not None:
            raise TypeError(f"payload must be bytes, str, a compiled regex or a predicate "
                            f"func(payload) -> bool, not {payload!r}")
        if fin is not None:
            _args.flag(fin, "fin")
        self.fin = fin
        if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
            raise TypeError(f"code must be a close code such as 1000, not {code!r}")
        if (code is not None or reason is not None) and self.opcode not in (None, 8):
            raise ValueError(f"code= and reason= are a close frame's, not a {kind!r} frame's")
        self.code = code
        self.reason = reason
        self._payload = payload

    def differences(self, got: WebSocketFrame) -> list[str]:
        """How *got* differs from this expectation (``[]``: it matches)."""
        if self.opcode is not None and got.opcode != self.opcode:
            want = _NAMES.get(self.opcode, f"0x{self.opcode:x}")
            return [f"expected a {want} frame, got a {got.describe()}: "
                    f"{show_bytes(got.payload, 60)}"]
        found = []
        if self.fin is not None and got.fin != self.fin:
            found.append("expected a final frame (FIN set), got a fragment (FIN clear)"
                         if self.fin else "expected a fragment (FIN clear), got FIN set")
        what = f"{got.kind} frame"
        if self.text is not None:
            text = got.payload.decode("utf-8", "replace")
            if text != self.text:
                found.append(f"{what}: expected {self.text!r}, got {text!r}")
        elif self.exact is not None and got.payload != self.exact:
            found.append(f"{what}: expected {show_bytes(self.exact, 60)}, got "
                         f"{show_bytes(got.payload, 60)}")
        elif self.pattern is not None and not self.pattern.search(got.payload):
            found.append(f"{what}: expected a match for re.compile({self.pattern.pattern!r}), "
                         f"got {show_bytes(got.payload, 60)}")
        elif self.predicate is not None and not self.predicate(got.payload):
            found.append(f"{what}: {callable_name(self.predicate)} returned False for "
                         f"{show_bytes(got.payload, 60)}")
        if self.code is not None and got.code != self.code:
            said = "none (an empty close frame)" if got.code is None else (
                f"{got.code}" + (f" ({got.reason!r})" if got.reason else ""))
            found.append(f"close frame: expected code {self.code}, got {said}")
        if self.reason is not None and got.reason != self.reason:
            found.append(f"close frame: expected reason {self.reason!r}, got {got.reason!r}")
        return found

    def _repr_args(self) -> list[str]:
        args = [] if self.frame_kind is None else [repr(self.frame_kind)]
        if self._payload is not None:
            shown = (repr(self._payload) if isinstance(self._payload, (str, bytes))
                     else f"re.compile({self.pattern.pattern!r})" if self.pattern is not None
                     else callable_name(self._payload) if callable(self._payload)
                     else repr(self._payload))
            args.append(shown if args else f"payload={shown}")
        if self.fin is not True:
            args.append(f"fin={self.fin!r}")
        args += [f"{n}={v!r}" for n, v in (("code", self.code), ("reason", self.reason))
                 if v is not None]
        return args + self._timeout_arg()

    def describe(self) -> str:
        kind = "any" if self.opcode is None else _NAMES.get(self.opcode, f"0x{self.opcode:x}")
        args = self._repr_args()[1:] if self.frame_kind is not None else self._repr_args()
        return f"a masked {kind} frame from the client" + (f" ({', '.join(args)})"
                                                           if args else "")

    def matcher(self) -> Matcher:
        return _FrameReader(self.describe(), self)

