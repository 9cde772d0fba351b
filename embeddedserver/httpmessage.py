"""HTTP/1.1 requests as a server reads them: the parsed ``Request``, its ``Headers`` and
``Query``, and the incremental reader that frames one request in a byte stream. No I/O.

Model
-----
``RequestReader`` is the matcher (see ``embeddedserver._match``) of the read steps of
``embeddedserver.http``: fed the bytes of one connection as they arrive, it parses the
request line, the header lines and the body, framed by ``Content-Length`` or by
``Transfer-Encoding: chunked`` (chunks, then trailer lines), or absent. It answers how
many bytes the request took once it is complete, None while it needs more, and raises
``Mismatch`` at the first line that is not HTTP/1.1, in HTTP's terms ("request line
'GET /x' has no HTTP version", "chunk size 'zz' is not hex"), so a wrong client fails at
once. A check of a step (``embeddedserver.http.ExpectRequest``) may look at the head
as soon as it has ended and at the whole request at its end (``on_head``, ``on_done``).

The reader is strict where RFC 9112 says a client MUST: lines end in CRLF, a header name
is a token with no space before its colon, no obsolete line folding, a Host header in
every HTTP/1.1 request, not both Content-Length and Transfer-Encoding. A server MAY
ignore empty lines before a request line, and this one does.

``Request.parse(data)`` runs the same reader on bytes you hold (``srvr.received[0]``).

Sections: fields - the request - the reader.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeAlias
from urllib.parse import parse_qsl, urlsplit

from ._match import Matcher, Mismatch
from .record import show_bytes

__all__ = ["MAX_HEAD", "Headers", "Query", "Request", "RequestReader"]

#: The longest request head (request line and header lines) the reader waits for.
MAX_HEAD = 64 * 1024
#: The longest chunk-size line (with its extensions) the reader waits for.
_MAX_CHUNK_LINE = 4096

Buffer: TypeAlias = bytearray | memoryview

# ---------------------------------------------------------------------------
# fields: header lines and query parameters, in order, names that may repeat
# ---------------------------------------------------------------------------


class _Fields(Mapping[str, str]):
    """(name, value) pairs in the order they came, looked up by name."""

    __slots__ = ("_index", "fields")

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        #: Every (name, value) pair, as sent.
        self.fields: tuple[tuple[str, str], ...] = tuple(fields)
        index: dict[str, list[str]] = {}
        for name, value in self.fields:
            index.setdefault(self._key(name), []).append(value)
        self._index = index

    @staticmethod
    def _key(name: str) -> str:
        return name

    def get_all(self, name: str) -> list[str]:
        """Every value of *name*, in order (``[]`` if there is none)."""
        return list(self._index.get(self._key(name), ()))

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for name, _ in self.fields:
            if self._key(name) not in seen:
                seen.add(self._key(name))
                yield name

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) in self._index

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self.fields)!r})"


class Headers(_Fields):
    """Header fields: names case-insensitive, a name may repeat.

    ``headers["content-type"]`` is the value (several lines of one name: their values
    joined with ``", "``, as RFC 9110 combines them); ``get_all(name)`` lists them one by
    one; ``fields`` holds the pairs as sent.

    >>> h = Headers([("Accept", "text/html"), ("Host", "x"), ("accept", "*/*")])
    >>> h["ACCEPT"], h.get_all("accept"), "host" in h
    ('text/html, */*', ['text/html', '*/*'], True)
    """

    __slots__ = ()

    @staticmethod
    def _key(name: str) -> str:
        return name.lower()

    def __getitem__(self, name: str) -> str:
        return ", ".join(self._index[name.lower()])


class Query(_Fields):
    """Query parameters, percent-decoded: ``query["a"]`` is the first value of ``a``,
    ``get_all("a")`` every one.

    >>> q = Query([("a", "1"), ("b", ""), ("a", "2")])
    >>> q["a"], q.get_all("a"), dict(q)
    ('1', ['1', '2'], {'a': '1', 'b': ''})
    """

    __slots__ = ()

    def __getitem__(self, name: str) -> str:
        return self._index[name][0]


# ---------------------------------------------------------------------------
# the request
# ---------------------------------------------------------------------------


class Request:
    """One parsed HTTP request.

    ``method`` (``"GET"``), ``target`` (as sent: ``"/items?a=1"``), ``path`` (the target's
    path, percent-encoding kept: ``"/items"``), ``query`` (a ``Query``), ``version``
    (``"HTTP/1.1"``), ``headers`` (``Headers``), ``body`` (bytes, de-chunked),
    ``trailers`` (``Headers`` after a chunked body; empty otherwise), ``chunked``.

    >>> r = Request.parse(b"POST /items?a=1 HTTP/1.1\\r\\nHost: x\\r\\n"
    ...                   b"Content-Length: 8\\r\\n\\r\\n{\\"n\\": 1}")
    >>> r.method, r.path, r.query["a"], r.headers["content-length"], r.json()
    ('POST', '/items', '1', '8', {'n': 1})
    """

    __slots__ = ("body", "chunked", "headers", "method", "path", "query", "target",
                 "trailers", "version")

    def __init__(
        self,
        method: str,
        target: str,
        version: str = "HTTP/1.1",
        headers: Headers | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        trailers: Headers | Iterable[tuple[str, str]] = (),
        chunked: bool = False,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = body
        self.trailers = trailers if isinstance(trailers, Headers) else Headers(trailers)
        self.chunked = chunked
        if target.startswith("/"):
            path, _, query = target.partition("?")
        elif "://" in target:  # absolute-form, as sent to a proxy
            parts = urlsplit(target)
            path, query = parts.path or "/", parts.query
        else:  # "*" (OPTIONS), or host:port (CONNECT)
            path, query = target, ""
        self.path = path
        self.query = Query(parse_qsl(query, keep_blank_values=True))

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> Request:
        """Parse the one complete request in *data*; ValueError saying, in HTTP's terms,
        what is wrong with it (or that bytes follow it)."""
        reader = RequestReader(build=True)
        buffer = bytearray(data)
        try:
            end = reader.check(buffer, True)
        except Mismatch as exc:
            closed = "the client closed the connection "
            reason = exc.reason
            if reason.startswith(closed):  # bytes at hand: no client closed anything
                reason = "the data ends " + reason[len(closed):]
            raise ValueError(reason) from None
        assert end is not None and reader.request is not None
        if end < len(buffer):
            raise ValueError(f"{len(buffer) - end} bytes follow the end of the request: "
                             f"{show_bytes(bytes(buffer[end:]), 40)}")
        return reader.request

    def json(self) -> Any:
        """The body parsed as JSON (ValueError if it is not: ``json.JSONDecodeError``, or
        ``UnicodeDecodeError`` for bytes that are no Unicode text)."""
        return json.loads(self.body)

    def text(self) -> str:
        """The body decoded with the charset of its Content-Type (UTF-8 if none, or one
        Python does not know); undecodable bytes become U+FFFD."""
        found = re.search(r"charset=\"?([\w.:-]+)", self.headers.get("Content-Type", ""))
        try:
            return self.body.decode(found.group(1) if found else "utf-8", "replace")
        except LookupError:  # a charset Python does not know
            return self.body.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return (f"Request({self.method} {self.target} {self.version}, "
                f"{len(self.headers.fields)} headers, body {show_bytes(self.body, 40)})")


# ---------------------------------------------------------------------------
# the reader: one request framed in a byte stream
# ---------------------------------------------------------------------------

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN_START = frozenset(b"!#$%&'*+-.^_`|~0123456789"
                         b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")
_HEX = re.compile(rb"[0-9A-Fa-f]+")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

# What the reader is waiting for.
_START, _HEAD, _LENGTH, _SIZE, _DATA, _TRAILERS = range(6)


def _show(line: bytes) -> str:
    """A line of the request for a message: its text when it is printable, else its repr."""
    if len(line) > 80:
        return repr(line[:80].decode("latin-1")) + f"... ({len(line)} bytes)"
    text = line.decode("latin-1")
    return repr(text) if text.isprintable() else show_bytes(line)


class RequestReader(Matcher):
    """The matcher of ``embeddedserver.http``'s read steps: frames one request.

    *expected* is the step's description for messages. With *build* (or a subclass's
    ``on_head``/``on_done``) it makes the ``Request``: ``request`` holds it once complete,
    ``head`` (the request with no body) once the head has ended.
    """

    def __init__(self, expected: str = "an HTTP/1.1 request", *, build: bool = False) -> None:
        self.expected = expected
        self.build = build
        self.wants = 0
        self.head: Request | None = None
        self.request: Request | None = None
        self._state = _START
        self._pos = 0  # where the next line (or the body, or a chunk's data) starts
        self._line_start = 0  # the request line's offset (after empty lines before it)
        self._request_line: tuple[str, str, str] = ("", "", "")
        self._fields: list[tuple[str, str]] = []
        self._trailers: list[tuple[str, str]] = []
        self._end = 0  # with a Content-Length: where the body ends
        self._size = 0  # in a chunked body: the size of the chunk being read
        self._chunks = 0
        self._body = bytearray()

    # -- what a step adds ----------------------------------------------------------

    def on_head(self, head: Request) -> list[str]:
        """The head has ended: the ways it is wrong (a subclass's check), else ``[]``."""
        return []

    def on_done(self, request: Request) -> list[str]:
        """The request is complete: the ways it is wrong, else ``[]``."""
        return []

    # -- the matcher ---------------------------------------------------------------

    def check(self, buffer: Buffer, eof: bool) -> int | None:
        try:
            return self._check(buffer, eof)
        except _Malformed as exc:  # everything that arrived, as other read steps show it
            raise Mismatch(exc.reason, self.expected, bytes(buffer), exc.offset) from None

    def _check(self, buffer: Buffer, eof: bool) -> int | None:
        while True:
            state = self._state
            if state == _LENGTH:  # the only state whose buffer may be a sink's memoryview
                if len(buffer) >= self._end:
                    return self._done(buffer, self._end)
                if eof:
                    got = len(buffer) - self._pos
                    raise self._closed(buffer, f"after {got} of the {self._end - self._pos} "
                                       "body bytes its Content-Length announced")
                return None
            if state == _DATA:
                if not self._chunk_data(buffer, eof):
                    return None
                continue
            line = self._next_line(buffer, eof)
            if line is None:
                return None
            if state == _START:
                self._start(line)
            elif state == _HEAD:
                if line:
                    self._fields.append(self._field(line, "header"))
                elif self._head_ended(buffer):
                    return self._done(buffer, self._pos)
            elif state == _SIZE:
                self._chunk_size(line)
            elif line:
                self._trailers.append(self._field(line, "trailer"))
            else:
                return self._done(buffer, self._pos)

    # -- lines -----------------------------------------------------------------------

    def _next_line(self, buffer: Buffer, eof: bool) -> bytes | None:
        """The next CRLF-ended line without its CRLF (and the position moved past it), or
        None while it has not arrived."""
        start = self._pos
        if self._state == _START:
            while bytes(buffer[start : start + 2]) == b"\r\n":  # empty lines before it
                start += 2
            self._pos = self._line_start = start
            if start < len(buffer) and buffer[start] not in _TOKEN_START:
                first = bytes(buffer[start : start + 1])
                guess = (" (a TLS handshake: the client speaks TLS to a plain HTTP server?)"
                         if first == b"\x16" else "")
                raise self._bad(f"the request starts with {first!r} (0x{first[0]:02x}), "
                                f"not a method{guess}", start)
        newline = buffer.find(b"\n", start)  # type: ignore[union-attr]
        if newline < 0:
            if eof:
                raise self._closed(buffer, self._where(buffer))
            limit = _MAX_CHUNK_LINE if self._state == _SIZE else MAX_HEAD
            if len(buffer) - (start if self._state == _SIZE else self._line_start) > limit:
                what = "chunk-size line" if self._state == _SIZE else "request head"
                raise self._bad(f"the {what} is over {limit} bytes and has not ended",
                                start)
            return None
        line = bytes(buffer[start:newline])
        if not line.endswith(b"\r"):
            raise self._bad(f"{self._what_line()} {_show(line)} ends in a bare LF "
                            "(\\n), not CRLF (\\r\\n)", start)
        self._pos = newline + 1
        return line[:-1]

    def _what_line(self) -> str:
        return {_START: "request line", _HEAD: "header line", _SIZE: "chunk-size line",
                _TRAILERS: "trailer line"}.get(self._state, "line")

    def _where(self, buffer: Buffer) -> str:
        state = self._state
        if state == _START:
            started = len(buffer) > self._line_start  # more than empty lines arrived
            return "in the request line" if started else "before sending a request"
        if state == _HEAD:
            return "in the request head (no blank line ended the headers)"
        return (f"inside the chunked body, after {len(self._body)} body bytes in "
                f"{self._chunks} chunks (no final 0-size chunk and blank line)")

    def _start(self, line: bytes) -> None:
        parts = line.split(b" ")
        shown = _show(line)
        if len(parts) < 3:
            missing = "no target and no HTTP version" if len(parts) == 1 else "no HTTP version"
            raise self._bad(f"request line {shown} has {missing} "
                            "(METHOD TARGET HTTP/1.1)", self._line_start)
        if len(parts) > 3:
            raise self._bad(f"request line {shown} has {len(parts)} space-separated "
                            "parts, not 3 (METHOD TARGET HTTP/1.1): a space in the target "
                            "is sent as %20", self._line_start)
        method, target, version = parts
        if not _TOKEN.fullmatch(method):
            raise self._bad(f"method {_show(method)} is not a token", self._line_start)
        if not target:
            raise self._bad(f"request line {shown} has an empty target", self._line_start)
        if not (target.startswith(b"/") or b"://" in target or target == b"*"
                or (method == b"CONNECT" and b":" in target)):
            raise self._bad(f"request target {_show(target)} is not a path starting "
                            "with '/', an absolute URL or '*'", self._line_start)
        if _CONTROL.search(target) or b"\t" in target:
            raise self._bad(f"request target {_show(target)} has a control character",
                            self._line_start)
        if not _VERSION.fullmatch(version):
            raise self._bad(f"request line {shown} ends in {_show(version)}, not an "
                            "HTTP version such as HTTP/1.1", self._line_start)
        if version not in (b"HTTP/1.1", b"HTTP/1.0"):
            raise self._bad(f"HTTP version {_show(version)} is not HTTP/1.1 or HTTP/1.0",
                            self._line_start)
        self._request_line = (method.decode("ascii"), target.decode("latin-1"),
                              version.decode("ascii"))
        self._state = _HEAD

    def _field(self, line: bytes, what: str) -> tuple[str, str]:
        at = self._pos - len(line) - 2
        if line[:1] in (b" ", b"\t"):
            raise self._bad(f"{what} line {_show(line)} starts with whitespace: obsolete "
                            "line folding, which RFC 9112 (5.2) forbids", at)
        name, colon, value = line.partition(b":")
        if not colon:
            raise self._bad(f"{what} line {_show(line)} has no colon (NAME: VALUE)", at)
        if name != name.rstrip(b" \t"):
            raise self._bad(f"{what} line {_show(line)} has whitespace before the colon, "
                            "which RFC 9112 (5.1) forbids", at)
        if not _TOKEN.fullmatch(name):
            raise self._bad(f"{what} name {_show(name)} is not a token", at)
        value = value.strip(b" \t")
        if _CONTROL.search(value):
            raise self._bad(f"{what} {name.decode('ascii')} has a control character in "
                            f"its value {_show(value)}", at)
        return name.decode("ascii"), value.decode("latin-1")

    # -- the end of the head: how the body is framed ---------------------------------------

    def _head_ended(self, buffer: Buffer) -> bool:
        """Check the head and start the body; True if there is none (the request is
        complete)."""
        method, target, version = self._request_line
        headers = Headers(self._fields)
        hosts = headers.get_all("Host")
        if version == "HTTP/1.1" and not hosts:
            raise self._bad("the HTTP/1.1 request has no Host header (RFC 9112, 3.2)")
        if len(hosts) > 1:
            raise self._bad(f"the request has {len(hosts)} Host headers: {hosts!r}")
        codings = [c.strip().lower() for v in headers.get_all("Transfer-Encoding")
                   for c in v.split(",")]
        lengths = [c.strip() for v in headers.get_all("Content-Length") for c in v.split(",")]
        if codings and lengths:
            raise self._bad("the request has both Transfer-Encoding and Content-Length, "
                            "which a client must not send (RFC 9112, 6.2)")
        self.head = Request(method, target, version, headers, chunked=bool(codings))
        problems = self.on_head(self.head)
        if problems:
            raise Mismatch("\n  ".join(problems), self.expected, bytes(buffer))
        if codings:
            if codings[-1] != "chunked" or codings.count("chunked") > 1:
                raise self._bad(f"Transfer-Encoding {headers['Transfer-Encoding']!r} "
                                "does not end in a single chunked: the body's length is "
                                "unknown")
            self._state = _SIZE
            return False
        if not lengths:
            return True
        if not all(n.isdigit() and n.isascii() for n in lengths):
            bad = next(n for n in lengths if not (n.isdigit() and n.isascii()))
            raise self._bad(f"Content-Length {bad!r} is not a number of bytes")
        if len({int(n) for n in lengths}) > 1:
            raise self._bad(f"the Content-Length values disagree: {lengths!r}")
        size = int(lengths[0])
        if not size:
            return True
        self._end = self._pos + size
        self.wants = self._end  # a long body is received straight into its chunk
        self._state = _LENGTH
        return False

    # -- a chunked body ---------------------------------------------------------------

    def _chunk_size(self, line: bytes) -> None:
        at = self._pos - len(line) - 2
        size, _, _extensions = line.partition(b";")
        size = size.rstrip(b" \t")
        if not _HEX.fullmatch(size):
            raise self._bad(f"chunk size {_show(size)} is not hex", at)
        if len(size) > 15:
            raise self._bad(f"chunk size {_show(size)} is too large", at)
        self._size = int(size, 16)
        self._state = _DATA if self._size else _TRAILERS

    def _chunk_data(self, buffer: Buffer, eof: bool) -> bool:
        """A chunk's data and its CRLF: True once they are all there."""
        end = self._pos + self._size
        after = bytes(buffer[end : end + 2])
        if after and after != b"\r\n"[: len(after)]:
            raise self._bad(f"chunk {self._chunks + 1} ({self._size} bytes) is followed "
                            f"by {show_bytes(after)}, not CRLF: its data is longer than its "
                            "size says", end)
        if len(after) < 2:
            if eof:
                got = max(0, min(len(buffer), end) - self._pos)
                raise self._closed(buffer, f"inside chunk {self._chunks + 1}, after {got} of "
                                   f"its {self._size} bytes")
            return False
        if self.build or type(self).on_done is not RequestReader.on_done:
            self._body += buffer[self._pos : end]
        self._chunks += 1
        self._pos = end + 2
        self._state = _SIZE
        return True

    # -- the end -------------------------------------------------------------------

    def _done(self, buffer: Buffer, end: int) -> int:
        head = self.head
        assert head is not None
        if self.build or type(self).on_done is not RequestReader.on_done:
            if self._state == _LENGTH:
                body = bytes(buffer[self._pos : end])
            else:
                body = bytes(self._body)
            self.request = Request(head.method, head.target, head.version, head.headers, body,
                                   trailers=self._trailers, chunked=head.chunked)
            problems = self.on_done(self.request)
            if problems:
                raise Mismatch("\n  ".join(problems), self.expected, bytes(buffer))
        return end

    @staticmethod
    def _bad(reason: str, offset: int | None = None) -> _Malformed:
        """A malformed request, at *offset* (the bad line)."""
        return _Malformed(reason, offset)

    def _closed(self, buffer: Buffer, where: str) -> Mismatch:
        return Mismatch(f"the client closed the connection {where}", self.expected,
                        bytes(buffer), len(buffer))


class _Malformed(Exception):
    """A malformed request, raised where a line is parsed; ``check`` makes it a Mismatch
    with the bytes that arrived."""

    def __init__(self, reason: str, offset: int | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset
