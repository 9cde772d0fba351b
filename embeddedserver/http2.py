"""HTTP/2 at the frame level: the client's connection preface, frames to send, frames to
read and check. No I/O, no HPACK.

Model
-----
An HTTP/2 client (after ALPN chose ``h2``: see ``embeddedserver.alpn``) opens with the
24-byte magic ``PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n`` and a SETTINGS frame; then both sides
exchange frames, each a 9-byte header (a 24-bit length, a type, flags, a 31-bit stream
id) and its payload. This module gives:

* ``ExpectH2Preface(settings=...)``: a read step for the magic and the SETTINGS frame,
  failing at the first wrong byte of the magic ("the client speaks HTTP/1.1, not
  HTTP/2") or at a wrong first frame, in HTTP/2's terms; ``settings=`` checks values.
* frames to send (bytes, for send steps and ``Rule`` replies): ``settings()``,
  ``settings_ack()``, ``goaway()``, ``ping()``, ``window_update()``, ``rst_stream()``,
  ``headers()`` (an HPACK block you give: ``b"\\x88"`` is ``:status: 200`` from the static
  table), ``data()``, and ``frame()`` for any other.
* ``ReadH2Frame()``, a read step for one frame (the read step of a ``Rules`` table that
  answers frames), ``ExpectH2Frame(FrameType.SETTINGS, flags=ACK)`` and ``matches(...)``,
  its ``Rule`` predicate; ``parse_frame(chunk)`` gives a ``Frame`` back.

    >>> settings({Setting.ENABLE_PUSH: 0})
    b'\\x00\\x00\\x06\\x04\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\x00\\x00\\x00'
    >>> parse_frame(goaway(1, ErrorCode.PROTOCOL_ERROR)).describe()
    'GOAWAY (0x7) on stream 0, 8 bytes'

Sections: the protocol's numbers - frames (the value, encoding) - steps.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from . import _args
from ._match import Matcher, Mismatch
from .record import show_bytes
from .steps import ReadStep

__all__ = [
    "ACK",
    "DEFAULT_MAX_FRAME_SIZE",
    "END_HEADERS",
    "END_STREAM",
    "PADDED",
    "PREFACE",
    "PRIORITY",
    "ErrorCode",
    "ExpectH2Frame",
    "ExpectH2Preface",
    "Frame",
    "FramePattern",
    "FrameType",
    "ReadH2Frame",
    "Setting",
    "data",
    "frame",
    "goaway",
    "headers",
    "matches",
    "parse_frame",
    "parse_settings",
    "ping",
    "rst_stream",
    "settings",
    "settings_ack",
    "window_update",
]

# ---------------------------------------------------------------------------
# the protocol's numbers (RFC 9113)
# ---------------------------------------------------------------------------

#: The client's connection preface, before its first SETTINGS frame.
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: The largest frame payload a peer takes until its SETTINGS_MAX_FRAME_SIZE says more.
DEFAULT_MAX_FRAME_SIZE = 16384
_HEADER = 9


class FrameType(enum.IntEnum):
    """HTTP/2's frame types."""

    DATA = 0x0
    HEADERS = 0x1
    PRIORITY = 0x2
    RST_STREAM = 0x3
    SETTINGS = 0x4
    PUSH_PROMISE = 0x5
    PING = 0x6
    GOAWAY = 0x7
    WINDOW_UPDATE = 0x8
    CONTINUATION = 0x9


class Setting(enum.IntEnum):
    """The identifiers of HTTP/2's SETTINGS parameters."""

    HEADER_TABLE_SIZE = 0x1
    ENABLE_PUSH = 0x2
    MAX_CONCURRENT_STREAMS = 0x3
    INITIAL_WINDOW_SIZE = 0x4
    MAX_FRAME_SIZE = 0x5
    MAX_HEADER_LIST_SIZE = 0x6
    ENABLE_CONNECT_PROTOCOL = 0x8


class ErrorCode(enum.IntEnum):
    """HTTP/2's error codes (RST_STREAM, GOAWAY)."""

    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    SETTINGS_TIMEOUT = 0x4
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    CONNECT_ERROR = 0xA
    ENHANCE_YOUR_CALM = 0xB
    INADEQUATE_SECURITY = 0xC
    HTTP_1_1_REQUIRED = 0xD


#: Flags: ACK (SETTINGS, PING), END_STREAM (DATA, HEADERS), END_HEADERS (HEADERS,
#: CONTINUATION), PADDED, PRIORITY (HEADERS).
ACK = 0x1
END_STREAM = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY = 0x20


def _type_name(kind: int) -> str:
    try:
        return f"{FrameType(kind).name} (0x{kind:x})"
    except ValueError:
        return f"an unknown type (0x{kind:x})"


def _setting_name(ident: int) -> str:
    try:
        return Setting(ident).name
    except ValueError:
        return f"setting 0x{ident:x}"


# ---------------------------------------------------------------------------
# frames
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One frame as ``parse_frame`` reads it: *type* (a ``FrameType`` when known),
    *flags*, *stream_id* and *payload*."""

    type: int
    flags: int
    stream_id: int
    payload: bytes

    def describe(self) -> str:
        """``SETTINGS (0x4) with ACK on stream 0, 0 bytes``, for messages."""
        flags = _flag_names(self.type, self.flags)
        return (f"{_type_name(self.type)}{' with ' + flags if flags else ''} on stream "
                f"{self.stream_id}, {len(self.payload)} bytes")


_FLAG_NAMES: dict[int, dict[int, str]] = {
    FrameType.SETTINGS: {ACK: "ACK"}, FrameType.PING: {ACK: "ACK"},
    FrameType.DATA: {END_STREAM: "END_STREAM", PADDED: "PADDED"},
    FrameType.HEADERS: {END_STREAM: "END_STREAM", END_HEADERS: "END_HEADERS", PADDED: "PADDED",
                        PRIORITY: "PRIORITY"},
    FrameType.CONTINUATION: {END_HEADERS: "END_HEADERS"},
}


def _flag_names(kind: int, flags: int) -> str:
    names = _FLAG_NAMES.get(kind, {})
    shown = [name for bit, name in names.items() if flags & bit]
    rest = flags & ~sum(bit for bit in names if flags & bit)
    return "|".join(shown + ([f"0x{rest:x}"] if rest else []))


def _int(value: object, what: str, top: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise ValueError(f"{what} must be an int from 0 to {top}, not {value!r}")
    return value


def frame(type: int, payload: bytes = b"", *, flags: int = 0, stream_id: int = 0) -> bytes:
    """One frame: the 9-byte header, then *payload*. Raises ValueError naming a bad field.

    >>> frame(FrameType.PING, bytes(8), flags=ACK)[:9]
    b'\\x00\\x00\\x08\\x06\\x01\\x00\\x00\\x00\\x00'
    """
    kind = _int(type, "the frame type", 255)
    if not isinstance(payload, (bytes, bytearray)):
        raise TypeError(f"payload must be bytes, not {payload!r}")
    _int(len(payload), "the payload length", 2**24 - 1)
    return (len(payload).to_bytes(3, "big") + bytes([kind, _int(flags, "flags", 255)])
            + _int(stream_id, "the stream id", 2**31 - 1).to_bytes(4, "big") + bytes(payload))


def settings(values: Mapping[int, int] | None = None) -> bytes:
    """A SETTINGS frame with *values* ({``Setting.X``: value}), in the order given."""
    payload = b"".join(_int(ident, "a setting's identifier", 0xFFFF).to_bytes(2, "big")
                       + _int(value, f"the value of {_setting_name(ident)}",
                              2**32 - 1).to_bytes(4, "big")
                       for ident, value in (values or {}).items())
    return frame(FrameType.SETTINGS, payload)


def settings_ack() -> bytes:
    """The SETTINGS frame with ACK that acknowledges the peer's settings."""
    return frame(FrameType.SETTINGS, flags=ACK)


def goaway(last_stream_id: int = 0, error: int = ErrorCode.NO_ERROR, debug: bytes = b"") -> bytes:
    """A GOAWAY frame: streams after *last_stream_id* were not processed; *error* says why."""
    return frame(FrameType.GOAWAY, _int(last_stream_id, "last_stream_id", 2**31 - 1).to_bytes(
        4, "big") + _int(error, "the error code", 2**32 - 1).to_bytes(4, "big") + bytes(debug))


def ping(opaque: bytes = bytes(8), *, ack: bool = False) -> bytes:
    """A PING frame (its 8 opaque bytes), or its ACK."""
    if len(opaque) != 8:
        raise ValueError(f"a PING carries exactly 8 bytes, not {len(opaque)}")
    return frame(FrameType.PING, opaque, flags=ACK if ack else 0)


def window_update(increment: int, stream_id: int = 0) -> bytes:
    """A WINDOW_UPDATE frame for the connection (stream 0) or a stream."""
    if increment == 0:
        raise ValueError("a WINDOW_UPDATE increment must be at least 1")
    return frame(FrameType.WINDOW_UPDATE,
                 _int(increment, "the increment", 2**31 - 1).to_bytes(4, "big"),
                 stream_id=stream_id)


def rst_stream(stream_id: int, error: int = ErrorCode.CANCEL) -> bytes:
    """A RST_STREAM frame ending *stream_id* with *error*."""
    return frame(FrameType.RST_STREAM, _int(error, "the error code", 2**32 - 1).to_bytes(
        4, "big"), stream_id=stream_id)


def headers(stream_id: int, block: bytes, *, end_stream: bool = False,
            end_headers: bool = True) -> bytes:
    """A HEADERS frame carrying *block*, an HPACK header block as bytes (no HPACK here:
    ``b"\\x88"`` is ``:status: 200``, ``b"\\x8d"`` ``:status: 404``, static-table entries)."""
    flags = (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
    return frame(FrameType.HEADERS, block, flags=flags, stream_id=stream_id)


def data(stream_id: int, payload: bytes, *, end_stream: bool = False) -> bytes:
    """A DATA frame on *stream_id*."""
    return frame(FrameType.DATA, payload, flags=END_STREAM if end_stream else 0,
                 stream_id=stream_id)


def _decode(buffer: bytes | bytearray) -> Frame:
    length = int.from_bytes(buffer[:3], "big")
    known: int = buffer[3]
    try:
        known = FrameType(known)
    except ValueError:
        pass
    return Frame(known, buffer[4], int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF,
                 bytes(buffer[_HEADER:_HEADER + length]))


def parse_frame(chunk: bytes | bytearray | memoryview) -> Frame:
    """The one frame *chunk* holds (a ``ReadH2Frame`` chunk); ValueError if it holds
    more or less."""
    buffer = bytes(chunk)
    if len(buffer) < _HEADER or len(buffer) != _HEADER + int.from_bytes(buffer[:3], "big"):
        raise ValueError(f"not one whole HTTP/2 frame: {show_bytes(buffer, 40)}")
    return _decode(buffer)


def parse_settings(payload: bytes) -> dict[int, int]:
    """A SETTINGS payload as {identifier: value} (``Setting`` members when known); the
    last value wins, as RFC 9113 says. ValueError unless its length is a multiple of 6."""
    if len(payload) % 6:
        raise ValueError(f"a SETTINGS payload is a multiple of 6 bytes, not {len(payload)}")
    found: dict[int, int] = {}
    for at in range(0, len(payload), 6):
        key: int = int.from_bytes(payload[at:at + 2], "big")
        try:
            key = Setting(key)
        except ValueError:
            pass
        found[key] = int.from_bytes(payload[at + 2:at + 6], "big")
    return found


def _show_settings(values: Mapping[int, int]) -> str:
    return ", ".join(f"{_setting_name(k)}={v}" for k, v in values.items()) or "none"


# ---------------------------------------------------------------------------
# steps
# ---------------------------------------------------------------------------


def _frame_end(buffer: bytearray, start: int, max_size: int, what: str) -> int | None:
    """Where the frame at *start* ends, once its header is there; Mismatch-worthy
    ValueError if its length is over *max_size*."""
    if len(buffer) < start + _HEADER:
        return None
    length = int.from_bytes(buffer[start:start + 3], "big")
    if length > max_size:
        kind = _type_name(buffer[start + 3])
        raise ValueError(f"{what} {kind} of {length} bytes is over the maximum frame size "
                         f"{max_size} (SETTINGS_MAX_FRAME_SIZE)")
    return start + _HEADER + length


class _PrefaceMatcher(Matcher):
    def __init__(self, step: ExpectH2Preface) -> None:
        self.step = step
        self.checked = 0

    def check(self, buffer: bytearray, eof: bool) -> int | None:
        step = self.step
        end = min(len(buffer), len(PREFACE))
        for at in range(self.checked, end):
            if buffer[at] != PREFACE[at]:
                hint = ""
                if 65 <= buffer[0] <= 90:  # an upper-case letter: a method
                    hint = " (it looks like HTTP/1.x, not HTTP/2: did ALPN negotiate 'h2'?)"
                elif buffer[0] == 0x16:
                    hint = " (a TLS ClientHello: does the server have ssl_context=?)"
                raise Mismatch(f"not the HTTP/2 client preface: wrong byte at offset {at}{hint}",
                               step.describe(), bytes(buffer[:128]), at)
        self.checked = end
        if end < len(PREFACE):
            return None
        try:
            stop = _frame_end(buffer, len(PREFACE), step.max_size, "the preface's frame is")
        except ValueError as exc:
            raise Mismatch(str(exc), step.describe(), bytes(buffer[:128]), None) from None
        if stop is None:
            return None
        if len(buffer) < stop:
            return None
        why = step.mismatch(_decode(buffer[len(PREFACE):stop]))
        if why is not None:
            raise Mismatch(why, step.describe(), bytes(buffer[:stop]), None)
        return stop


class ExpectH2Preface(ReadStep):
    """Expect the HTTP/2 client connection preface: the 24-byte magic
    ``PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n``, then a SETTINGS frame (not an ACK, on
    stream 0, a multiple of 6 bytes). *settings* ({``Setting.X``: value}) are values it
    must carry. The chunk is the magic and the frame. A wrong byte of the magic fails at
    once ("not the HTTP/2 client preface: wrong byte at offset 0 (it speaks HTTP/1.x...)").

    >>> ExpectH2Preface(settings={Setting.ENABLE_PUSH: 0})
    ExpectH2Preface(settings={<Setting.ENABLE_PUSH: 2>: 0})
    """

    expects_exactly = True

    def __init__(self, *, settings: Mapping[int, int] | None = None,
                 max_size: int = DEFAULT_MAX_FRAME_SIZE, timeout: float | None = None) -> None:
        if settings is not None:
            if not isinstance(settings, Mapping):
                raise TypeError(f"settings must be a dict {{Setting.X: value}}, not {settings!r}")
            for ident, value in settings.items():
                _int(ident, "a setting's identifier", 0xFFFF)
                _int(value, f"the value of {_setting_name(ident)}", 2**32 - 1)
        self.settings = dict(settings) if settings is not None else None
        self.max_size = _int(max_size, "max_size", 2**24 - 1)
        self.timeout = _args.optional_timeout(timeout)

    def _repr_args(self) -> list[str]:
        args = [] if self.settings is None else [f"settings={self.settings!r}"]
        return args + self._timeout_arg()

    def describe(self) -> str:
        extra = "" if not self.settings else f" with {_show_settings(self.settings)}"
        return f"the HTTP/2 client preface {show_bytes(PREFACE)} and a SETTINGS frame{extra}"

    def expected_bytes(self) -> bytes | None:
        return PREFACE

    def mismatch(self, first: Frame) -> str | None:
        """How the preface's *first* frame differs from what is expected, or None."""
        if first.type != FrameType.SETTINGS:
            return (f"the preface's first frame is {_type_name(first.type)}, expected "
                    "SETTINGS (0x4)")
        if first.flags & ACK:
            return "the preface's SETTINGS frame has the ACK flag: it must carry settings"
        if first.stream_id:
            return f"the preface's SETTINGS frame is on stream {first.stream_id}, not 0"
        if len(first.payload) % 6:
            return (f"the preface's SETTINGS frame is {len(first.payload)} bytes, not a "
                    "multiple of 6")
        if not self.settings:
            return None
        got = parse_settings(first.payload)
        for ident, value in self.settings.items():
            if ident not in got:
                return (f"the preface's SETTINGS has no {_setting_name(ident)} (it has: "
                        f"{_show_settings(got)}), expected {value}")
            if got[ident] != value:
                return (f"the preface's SETTINGS has {_setting_name(ident)} = {got[ident]}, "
                        f"expected {value}")
        return None

    def matcher(self) -> Matcher:
        return _PrefaceMatcher(self)


class FramePattern:
    """What a frame must be: its *type*, and (each None: any) *flags* it must have set,
    its *stream_id*, its exact *payload*. Called with a frame's bytes it answers True or
    False: a ``Rule`` predicate (``matches()`` makes one), whose ``difference(request)``
    says how a frame differs; ``mismatch(frame)`` does so for a parsed ``Frame``."""

    __slots__ = ("flags", "payload", "stream_id", "type")

    def __init__(self, type: int, flags: int | None = None, stream_id: int | None = None,
                 payload: bytes | None = None) -> None:
        self.type = _int(type, "the frame type", 255)
        self.flags = None if flags is None else _int(flags, "flags", 255)
        self.stream_id = None if stream_id is None else _int(stream_id, "the stream id",
                                                             2**31 - 1)
        if payload is not None and not isinstance(payload, (bytes, bytearray)):
            raise TypeError(f"payload must be bytes or None, not {payload!r}")
        self.payload = None if payload is None else bytes(payload)

    def mismatch(self, got: Frame) -> str | None:
        """How *got* differs, in HTTP/2's terms; None when it matches."""
        if got.type != self.type or (
                self.flags is not None and got.flags & self.flags != self.flags) or (
                self.stream_id is not None and got.stream_id != self.stream_id):
            return f"expected {self}, got {got.describe()}"
        if self.payload is not None and got.payload != self.payload:
            return (f"the {_type_name(got.type)} payload is {show_bytes(got.payload, 40)}, "
                    f"expected {show_bytes(self.payload, 40)}")
        return None

    def __call__(self, request: bytes) -> bool:
        try:
            return self.mismatch(parse_frame(request)) is None
        except ValueError:
            return False

    def difference(self, request: bytes) -> str:
        """How the frame in *request* differs (a ``Rules`` failure shows it)."""
        try:
            return self.mismatch(parse_frame(request)) or "matches"
        except ValueError as exc:
            return str(exc)

    def similarity(self, request: bytes) -> float:
        """How close the frame in *request* is, from 0 to 1 (ranks the closest rules): its
        type counts most, then its flags and its stream."""
        try:
            got = parse_frame(request)
        except ValueError:
            return 0.0
        flags = self.flags is None or got.flags & self.flags == self.flags
        stream = self.stream_id is None or got.stream_id == self.stream_id
        return 0.5 * (got.type == self.type) + 0.25 * flags + 0.25 * stream

    def __str__(self) -> str:
        text = f"a {_type_name(self.type)} frame"
        if self.flags:
            text += " with " + _flag_names(self.type, self.flags)
        if self.stream_id is not None:
            text += f" on stream {self.stream_id}"
        return text

    def repr_args(self) -> list[str]:
        """The arguments as given, for reprs."""
        try:
            args = [f"FrameType.{FrameType(self.type).name}"]
        except ValueError:
            args = [f"0x{self.type:x}"]
        for name in ("flags", "stream_id", "payload"):
            if getattr(self, name) is not None:
                args.append(f"{name}={getattr(self, name)!r}")
        return args

    def __repr__(self) -> str:
        return f"matches({', '.join(self.repr_args())})"


def matches(type: int, *, flags: int | None = None, stream_id: int | None = None,
            payload: bytes | None = None) -> FramePattern:
    """A ``Rule`` predicate for one frame (see ``FramePattern``).

    >>> matches(FrameType.SETTINGS, flags=ACK)(settings_ack())
    True
    """
    return FramePattern(type, flags, stream_id, payload)


class _FrameMatcher(Matcher):
    def __init__(self, step: ReadH2Frame, pattern: FramePattern | None) -> None:
        self.step = step
        self.pattern = pattern

    def check(self, buffer: bytearray, eof: bool) -> int | None:
        step = self.step
        try:
            stop = _frame_end(buffer, 0, step.max_size, "a frame")
        except ValueError as exc:
            raise Mismatch(str(exc), step.describe(), bytes(buffer[:64]), None) from None
        if stop is None or len(buffer) < stop:
            if eof and buffer:
                got = ("its 9-byte header" if len(buffer) < _HEADER
                       else _type_name(buffer[3]) + "'s payload")
                raise Mismatch(f"the client closed the connection inside a frame "
                               f"({got}), after {len(buffer)} bytes", step.describe(),
                               bytes(buffer), len(buffer))
            return None
        if self.pattern is not None:
            why = self.pattern.mismatch(_decode(buffer[:stop]))
            if why is not None:
                raise Mismatch(why, step.describe(), bytes(buffer[:stop]), None)
        return stop


class ReadH2Frame(ReadStep):
    """Read one HTTP/2 frame (its header and payload: ``parse_frame`` reads the chunk); a
    frame over *max_size* (the server's SETTINGS_MAX_FRAME_SIZE, by default 16384) fails.
    The read step of a ``Rules`` table that answers frames.

    >>> ReadH2Frame()
    ReadH2Frame()
    """

    def __init__(self, *, max_size: int = DEFAULT_MAX_FRAME_SIZE,
                 timeout: float | None = None) -> None:
        self.max_size = _int(max_size, "max_size", 2**24 - 1)
        self.timeout = _args.optional_timeout(timeout)

    def _repr_args(self) -> list[str]:
        size = [] if self.max_size == DEFAULT_MAX_FRAME_SIZE else [f"max_size={self.max_size}"]
        return size + self._timeout_arg()

    def describe(self) -> str:
        return "an HTTP/2 frame"

    def matcher(self) -> Matcher:
        return _FrameMatcher(self, None)


class ExpectH2Frame(ReadH2Frame):
    """Expect one frame of *type*, with *flags* set, on *stream_id*, with exactly
    *payload* (each None: any); fail "expected a SETTINGS (0x4) frame with ACK, got
    WINDOW_UPDATE (0x8) on stream 0, 4 bytes".

    >>> ExpectH2Frame(FrameType.SETTINGS, flags=ACK)
    ExpectH2Frame(FrameType.SETTINGS, flags=1)
    """

    expects_exactly = True

    def __init__(self, type: int, *, flags: int | None = None, stream_id: int | None = None,
                 payload: bytes | None = None, max_size: int = DEFAULT_MAX_FRAME_SIZE,
                 timeout: float | None = None) -> None:
        super().__init__(max_size=max_size, timeout=timeout)
        self.pattern = FramePattern(type, flags, stream_id, payload)

    def _repr_args(self) -> list[str]:
        return [*self.pattern.repr_args(), *super()._repr_args()]

    def describe(self) -> str:
        return str(self.pattern)

    def matcher(self) -> Matcher:
        return _FrameMatcher(self, self.pattern)
