"""Reading one Redis command from bytes that only grow: the parser behind
``embeddedserver.resp``'s ``ReadCommand``, ``ExpectCommand`` and ``parse_command``. No I/O.

A command is a RESP array of bulk strings (``*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n``) or, typed
by hand, an inline line (``GET k\\r\\n``, split on spaces with Redis's quoting). The parser
keeps its place between polls (an Inbox feeds it the same buffer, grown), so a long bulk
string costs one length check a poll; what can never be a command raises
``ProtocolError`` at once, naming it in RESP terms, within Redis's own limits.

    >>> parser = CommandParser(inline=True)
    >>> buffer = bytearray(b"*1\\r\\n$4\\r\\nPI")
    >>> parser.feed(buffer, eof=False) is None
    True
    >>> buffer += b"NG\\r\\n"; parser.feed(buffer, eof=False), parser.args
    (14, [b'PING'])
"""

from __future__ import annotations

import re

from ._text import plural
from .record import show_bytes

__all__ = ["MAX_ARGS", "MAX_BULK", "MAX_LINE", "CommandParser", "ProtocolError"]

#: Redis's own limits: proto-max-bulk-len, the arguments a command may have, and the
#: longest header or inline line (PROTO_INLINE_MAX_SIZE).
MAX_BULK = 512 * 1024 * 1024
MAX_ARGS = 1024 * 1024
MAX_LINE = 64 * 1024
_CRLF = b"\r\n"


class ProtocolError(ValueError):
    """What a client sent is not a RESP command: the message says why, in RESP terms."""


_RESP_TYPES = {
    ord("+"): "simple string", ord("-"): "error", ord(":"): "integer", ord("$"): "bulk string",
    ord("_"): "RESP3 null", ord(","): "RESP3 double", ord("#"): "RESP3 boolean",
    ord("("): "RESP3 big number", ord("!"): "RESP3 blob error",
    ord("="): "RESP3 verbatim string", ord("%"): "RESP3 map", ord("~"): "RESP3 set",
    ord(">"): "RESP3 push", ord("|"): "RESP3 attribute",
}
_NUMBER = re.compile(rb"-?[0-9]+")
_SHAPE = ("a command is an array of bulk strings: *<count>\\r\\n, then "
          "$<length>\\r\\n<arg>\\r\\n for each argument")


class CommandParser:
    """The state of reading one command from a buffer that only grows (an Inbox's): how
    far it got, the arguments so far. ``feed(buffer, eof)`` returns the bytes the command
    took once it is whole, None while it needs more; ``ProtocolError`` when it is not a
    command, or the client closed inside it."""

    __slots__ = ("args", "count", "inline", "length", "pos")

    def __init__(self, inline: bool) -> None:
        self.inline = inline
        self.pos = 0  # where the next line or bulk string starts
        self.count: int | None = None  # the array's length, once read
        self.length: int | None = None  # the bulk string under way: its length
        self.args: list[bytes] = []

    def _line(self, buffer: bytearray, what: str) -> bytes | None:
        end = buffer.find(b"\n", self.pos, self.pos + MAX_LINE + 2)
        if end < 0:
            if len(buffer) - self.pos > MAX_LINE:
                raise ProtocolError(f"{what} has no \\r\\n in its first {MAX_LINE} bytes: "
                                    f"{show_bytes(bytes(buffer[self.pos:self.pos + 40]))}")
            return None
        if end == self.pos or buffer[end - 1] != 13:
            raise ProtocolError(f"{what} {show_bytes(bytes(buffer[self.pos:end + 1]))} ends "
                                "in \\n without the \\r before it (RESP lines end in \\r\\n)")
        line = bytes(buffer[self.pos:end - 1])
        self.pos = end + 1
        return line

    def feed(self, buffer: bytearray, eof: bool) -> int | None:
        done = self._parse(buffer)
        if done is None and eof and buffer:
            raise ProtocolError(self._cut_short(buffer))
        return done

    def _cut_short(self, buffer: bytearray) -> str:
        if self.count is None:
            return (f"the client closed the connection in the middle of a command "
                    f"({show_bytes(bytes(buffer), 40)})")
        return (f"the client closed the connection in the middle of a command: "
                f"{len(self.args)} of its {plural(self.count, 'argument')} arrived")

    def _parse(self, buffer: bytearray) -> int | None:
        if self.count is None:
            if not buffer:
                return None
            first = buffer[0]
            if first != 42:  # not "*"
                return self._inline(buffer, first)
            line = self._line(buffer, "the array header")
            if line is None:
                return None
            if not _NUMBER.fullmatch(line[1:]):
                raise ProtocolError(f"array length {line.decode('latin-1')!r} is not a number")
            count = int(line[1:])
            if count == 0:
                raise ProtocolError("an empty array (*0) is not a command")
            if count < 0:
                raise ProtocolError(f"a null array ({line.decode('latin-1')}) is not a command")
            if count > MAX_ARGS:
                raise ProtocolError(f"array length {count} is over Redis's limit of "
                                    f"{MAX_ARGS} arguments")
            self.count = count
        while len(self.args) < self.count:
            number = len(self.args)
            if self.length is None:
                if self.pos >= len(buffer):
                    return None
                if buffer[self.pos] != 36:  # not "$"
                    got = chr(buffer[self.pos])
                    kind = _RESP_TYPES.get(buffer[self.pos])
                    raise ProtocolError(
                        f"argument {number} is not a bulk string: expected '$', got {got!r}"
                        + (f" (a {kind})" if kind else "") + f"; {_SHAPE}")
                line = self._line(buffer, f"the bulk length of argument {number}")
                if line is None:
                    return None
                text = line.decode("latin-1")
                if not _NUMBER.fullmatch(line[1:]):
                    raise ProtocolError(f"bulk length {text!r} is not a number")
                length = int(line[1:])
                if length < 0:
                    raise ProtocolError(f"bulk length {text!r} of argument {number} is "
                                        "negative: a command's arguments are never null")
                if length > MAX_BULK:
                    raise ProtocolError(f"bulk length {length} of argument {number} is over "
                                        "Redis's 512 MB limit (proto-max-bulk-len)")
                self.length = length
            end = self.pos + self.length
            if len(buffer) < end + 2:
                return None
            if buffer[end:end + 2] != _CRLF:
                data = show_bytes(bytes(buffer[self.pos:end]), 40)
                after = show_bytes(bytes(buffer[end:end + 2]))
                raise ProtocolError(
                    f"argument {number}: its bulk length says {self.length} bytes, and "
                    f"{data} is followed by {after}, not b'\\r\\n'")
            self.args.append(bytes(buffer[self.pos:end]))
            self.pos = end + 2
            self.length = None
        return self.pos

    def _inline(self, buffer: bytearray, first: int) -> int | None:
        kind = _RESP_TYPES.get(first)
        if kind is not None or not self.inline:
            line_end = buffer.find(b"\n", 0, 60)
            shown = show_bytes(bytes(buffer[: line_end + 1 if line_end >= 0 else 40]), 40)
            what = f" (a {kind})" if kind else (
                " (an inline command? ReadCommand(inline=True) reads those)")
            raise ProtocolError(f"not a RESP array: {shown}{what}; {_SHAPE}")
        end = buffer.find(b"\n", 0, MAX_LINE + 1)
        if end < 0:
            if len(buffer) > MAX_LINE:
                raise ProtocolError(f"an inline command longer than {MAX_LINE} bytes, "
                                    f"with no \\n: {show_bytes(bytes(buffer[:40]))}")
            return None
        line = bytes(buffer[:end]).removesuffix(b"\r")
        args = _split_inline(line)
        if not args:
            raise ProtocolError(f"an empty line ({show_bytes(bytes(buffer[:end + 1]))}) is not "
                                "a command")
        self.args = args
        self.count = len(args)
        self.pos = end + 1
        return self.pos


_QUOTED = re.compile(rb'"((?:[^"\\]|\\.)*)"|\'((?:[^\'\\]|\\.)*)\'|([^\s"\']+)')
_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b",
            ord("a"): b"\a"}


def _unquote(body: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c == 92 and i + 1 < len(body):  # a backslash
            nxt = body[i + 1]
            if nxt == ord("x") and re.fullmatch(rb"[0-9a-fA-F]{2}", body[i + 2:i + 4]):
                out.append(int(body[i + 2:i + 4], 16))
                i += 4
                continue
            out += _ESCAPES.get(nxt, bytes([nxt]))
            i += 2
            continue
        out.append(c)
        i += 1
    return bytes(out)


def _split_inline(line: bytes) -> list[bytes]:
    """An inline command's arguments, split as Redis splits them: on spaces, with
    "double" (escapes \\n \\r \\t \\xHH...) and 'single' quotes."""
    args: list[bytes] = []
    at = 0
    while True:
        while at < len(line) and line[at] in b" \t":
            at += 1
        if at >= len(line):
            return args
        found = _QUOTED.match(line, at)
        if found is None:
            raise ProtocolError(f"inline command {show_bytes(line)} has unbalanced quotes")
        end = found.end()
        if end < len(line) and line[end] not in b" \t":
            raise ProtocolError(f"inline command {show_bytes(line)}: a closing quote must be "
                                "followed by a space")
        double, single, plain = found.groups()
        if plain is not None:
            args.append(plain)
        elif double is not None:
            args.append(_unquote(double))
        else:
            args.append(single.replace(b"\\'", b"'"))
        at = end
