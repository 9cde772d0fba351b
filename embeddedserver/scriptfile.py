"""Script files: a readable, diff-friendly, hand-editable text form of fake-server scripts.

Model
-----
``format_script`` / ``save_script`` turn ``ConnectionRecord`` transcripts (recorded by
``embeddedserver.replay.RecordingProxy`` from a real server, or kept by any fake server) into a
*script file*; ``parse_script`` / ``load_script`` turn a script file back into steps for
any server class (``CommandServer.from_file(path)``; ``python -m embeddedserver --script
FILE``). Pure text and steps: no sockets. ``embeddedserver.replay`` re-exports all of it.

The script file format
----------------------
UTF-8 text, one step per line; a step's data may continue on the following lines.
``#`` starts a comment (outside quotes); blank lines and indentation do not matter::

    # embeddedserver script 1
    connection 1
    client: "GET /hello HTTP/1.1\\r\\n"
            "Host: 127.0.0.1:8000\\r\\n"
            "\\r\\n"
    delay 0.250
    server: "HTTP/1.0 200 OK\\r\\n"
            "\\r\\n"
            "hello"
            hex 00 01 fe ff
    close

*Data* is one or more pieces, concatenated: quoted text (``"..."``, UTF-8, with the
escapes ``\\r \\n \\t \\0 \\\\ \\" \\xHH``) and ``hex`` runs (pairs of hex digits). A
line that starts with ``"`` or ``hex`` continues the data of the step above it. The
writer quotes text (one line of the data per line of the file) and uses ``hex`` for
binary data, 16 bytes a line.

==========================  =========================================================
``connection [N]``          the script of the next connection (1, 2, ... in order);
                            steps before the first header belong to connection 1
``client: DATA``            the client sent DATA. ``exact=True``: expect exactly these
                            bytes (``Expect``); else read as much (``ReadLike``: as many
                            lines, then as many bytes; a byte count for binary data)
``server: DATA``            send DATA
``expect DATA``             expect exactly DATA (in both modes)
``expect regex "RE"``       expect bytes matching RE, given as written (no unescaping:
                            the regex itself understands ``\\r``, ``\\xHH``, ``\\"``)
``expect close``            expect the client to close its side
``read``, ``read N``        read what arrives (``RECEIVE``); at least N bytes
``read line``               read one line (up to ``\\n``)
``read until DATA``         read up to and including DATA
``read to close``           read until the client closes its side
``delay SECONDS``           pause (recorded timing): kept with ``keep_timing=True``,
                            dropped otherwise
``close``, ``reset``        close gracefully; reset (the client gets ECONNRESET)
``half-close``              shut the server's write side, keep reading
``hang [SECONDS]``          stay silent until the client closes (or SECONDS pass)
``rules [ordered] read ..`` a ``Rules`` step (``embeddedserver.rules``) whose requests
                            the read after it frames (``rules read line``...), up to
                            ``end rules``; inside, each ``rule [times T] DATA`` or
                            ``rule [times T] regex "RE"`` line is followed by the steps
                            of its reply, ``unmatched`` by the reply to a request no
                            rule takes (by default: close). T is N (exactly), N..M or
                            N.. (at least N)
==========================  =========================================================

For example::

    rules read line
      rule "PING\\r\\n"
        server: "+PONG\\r\\n"
      rule times 1 regex "^AUTH "
        server: "+OK\\r\\n"
      unmatched
        server: "-ERR unknown\\r\\n"
    end rules

A file with one connection loads as a plain script (served to every connection); with
several it loads as a ``PerConnection`` plan (one script per connection, in order). A
mistake raises ``ScriptSyntaxError`` (a ValueError) naming the file, the line number and
the line.

Sections: text helpers - writing scripts - reading scripts.
"""
from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from . import _args
from ._match import Matcher
from ._text import CLIENT_EOF_NOTE, ESCAPES_ACCEPTED, SERVER_EOF_NOTE, BadEscape, unescape
from .record import ConnectionRecord, show_bytes
from .rules import Rule, Rules
from .steps import (
    RECEIVE,
    Close,
    Delay,
    Expect,
    ExpectClose,
    ExpectRegex,
    HalfClose,
    Hang,
    PerConnection,
    ReadLine,
    ReadStep,
    ReadUntil,
    ReadUntilClose,
    Receive,
    Reset,
    Send,
    Step,
    compile_script,
)

__all__ = [
    "FORMAT_HEADER",
    "ReadLike",
    "ScriptSyntaxError",
    "format_script",
    "load_script",
    "parse_script",
    "save_script",
]

log = logging.getLogger(__name__)

#: The first line ``format_script`` writes (a comment: the reader does not require it).
FORMAT_HEADER = "# embeddedserver script 1 (format: see the embeddedserver.scriptfile module)"

# ---------------------------------------------------------------------------
# text helpers: quoting bytes for the file, and telling text from binary
# ---------------------------------------------------------------------------

_NAMED = {"\\": "\\\\", '"': '\\"', "\r": "\\r", "\n": "\\n", "\t": "\\t"}
_WIDTH = 76  # escaped characters per quoted piece before the writer starts another


def _escape_char(ch: str) -> str:
    """One character of ``bytes.decode('utf-8', 'surrogateescape')``, as file text."""
    if ch in _NAMED:
        return _NAMED[ch]
    if "\udc80" <= ch <= "\udcff":  # a byte that is not UTF-8
        return f"\\x{ord(ch) - 0xDC00:02x}"
    if not ch.isprintable():
        return "".join(f"\\x{b:02x}" for b in ch.encode("utf-8"))
    return ch


# Characters _escape_char may change: all but printable ASCII, and backslash and quote.
_MAY_ESCAPE = re.compile(r'[^\x20-\x7e]|[\\"]')
_LINE = re.compile(r"[^\n]*\n|[^\n]+")
# Bytes written as \x escapes: C0 controls other than \t \n \r, and DEL.
_CONTROL_BYTES = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])


def _is_textual(data: bytes) -> bool:
    """True when *data* reads best as quoted text: at most a quarter of its bytes become
    \\x escapes (controls, and bytes that are not UTF-8). Counted at C speed."""
    controls = len(data) - len(data.translate(None, _CONTROL_BYTES))
    not_utf8 = len(data) - len(data.decode("utf-8", "ignore").encode("utf-8"))
    return (controls + not_utf8) * 4 <= len(data)


def _quoted_pieces(data: bytes) -> list[str]:
    """Quoted strings for *data*: one per line of the data, and lines longer than
    _WIDTH characters cut into pieces of _WIDTH characters (before escaping)."""
    text = data.decode("utf-8", "surrogateescape")
    pieces = [
        '"' + _MAY_ESCAPE.sub(lambda m: _escape_char(m.group()), line[i : i + _WIDTH]) + '"'
        for line in _LINE.findall(text)
        for i in range(0, len(line), _WIDTH)
    ]
    return pieces or ['""']


def _data_lines(data: bytes) -> list[str]:
    if _is_textual(data):
        return _quoted_pieces(data)
    spaced = data.hex(" ")  # 16 bytes are 47 characters, then the separating space
    return ["hex " + spaced[i : i + 47] for i in range(0, len(spaced), 48)]


# ---------------------------------------------------------------------------
# writing scripts
# ---------------------------------------------------------------------------


@dataclass
class _Block:
    keyword: str  # "client:" or "server:"
    data: bytearray = field(default_factory=bytearray)


def _record_lines(record: ConnectionRecord, timing: bool, min_delay: float) -> list[str]:
    """The steps of one recorded connection, as script lines."""
    lines: list[str] = []
    block: _Block | None = None
    last_at = 0.0
    expected_close = False
    events = list(record.events)

    def flush() -> None:
        nonlocal block
        if block is not None:
            data = _data_lines(bytes(block.data))
            lines.append(f"{block.keyword} {data[0]}")
            lines.extend(" " * (len(block.keyword) + 1) + piece for piece in data[1:])
            block = None

    for index, event in enumerate(events):
        if event.kind == "recv" and event.data:
            if block is None or block.keyword != "client:":
                flush()
                block = _Block("client:")
            block.data += event.data
            last_at = event.at
        elif event.kind == "send" and event.data:
            gap = event.at - last_at
            pause = timing and gap >= min_delay
            if block is None or block.keyword != "server:" or pause:
                flush()
                if pause:
                    lines.append(f"delay {gap:.3f}")
                block = _Block("server:")
            block.data += event.data
            last_at = event.at
        elif event.kind == "note" and event.text.startswith(CLIENT_EOF_NOTE):
            flush()
            lines.append("expect close")
            expected_close = True
        elif event.kind == "note" and event.text.startswith(SERVER_EOF_NOTE):
            flush()
            if any(e.kind == "recv" and e.data for e in events[index + 1 :]):
                lines.append("half-close")
            else:  # the server closed: what the client does after that is its reaction
                lines.append("close")
                return lines
    flush()
    ended = record.ended or ""
    if ended == "server reset":
        lines.append("reset")
    elif ended.startswith("server closed"):
        lines.append("close")
    elif ended == "client closed":
        if not expected_close:
            lines.append("expect close")
    elif ended == "client reset":
        lines.append("# the client reset the connection here")
    else:
        lines.append(f"# the connection was still open when recording ended ({ended or 'open'})")
    return lines


def format_script(
    records: Iterable[ConnectionRecord],
    *,
    timing: bool = True,
    min_delay: float = 0.01,
    comment: str = "",
) -> str:
    """Render connection records as script file text (see the module docstring).

    Arguments:
        records: ``ConnectionRecord`` objects, e.g. ``RecordingProxy.connections`` or
            a fake server's ``connections``.
        timing: write a ``delay`` line before each server block that came at least
            *min_delay* seconds after the event before it.
        min_delay: the smallest pause worth a ``delay`` line (loopback noise is below it).
        comment: text for comment lines after the header (e.g. what was recorded).

    Consecutive chunks in one direction become one block (one turn of the conversation).

    >>> from embeddedserver.record import ConnectionRecord
    >>> record = ConnectionRecord(1, None, ended="server closed")
    >>> _ = record.add("recv", b"PING\\r\\n"); _ = record.add("send", b"PONG\\r\\n")
    >>> print(format_script([record], timing=False))
    # embeddedserver script 1 (format: see the embeddedserver.scriptfile module)
    <BLANKLINE>
    connection 1
    client: "PING\\r\\n"
    server: "PONG\\r\\n"
    close
    <BLANKLINE>
    """
    if isinstance(min_delay, bool) or not isinstance(min_delay, (int, float)) or min_delay < 0:
        raise ValueError(f"min_delay must be a number of seconds >= 0, not {min_delay!r}")
    if not isinstance(comment, str):
        raise TypeError(f"comment must be a str, not {comment!r}")
    lines = [FORMAT_HEADER]
    lines.extend(f"# {line}".rstrip() for line in comment.splitlines())
    count = 0
    for count, record in enumerate(records, 1):
        if not isinstance(record, ConnectionRecord):
            raise TypeError(f"records must be ConnectionRecord objects, not {record!r}")
        lines += ["", f"connection {count}", *_record_lines(record, timing, float(min_delay))]
    if not count:
        raise ValueError("no connections to write: the recording is empty")
    return "\n".join(lines) + "\n"


def save_script(
    records: Iterable[ConnectionRecord],
    path: str | os.PathLike[str],
    *,
    timing: bool = True,
    min_delay: float = 0.01,
    comment: str = "",
) -> None:
    """Write ``format_script(records, ...)`` to *path* (UTF-8, ``\\n`` line ends).

    >>> import tempfile
    >>> from embeddedserver.record import ConnectionRecord
    >>> record = ConnectionRecord(1, None, ended="server closed")
    >>> _ = record.add("send", b"220 ready\\r\\n")
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     save_script([record], os.path.join(tmp, "greeting.script"))
    """
    text = format_script(records, timing=timing, min_delay=min_delay, comment=comment)
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.write(text)


# ---------------------------------------------------------------------------
# reading scripts
# ---------------------------------------------------------------------------


class ScriptSyntaxError(ValueError):
    """A script file is wrong: ``filename``, ``lineno`` (1-based), ``line`` and the
    ``reason`` say where and why."""

    def __init__(self, reason: str, filename: str, lineno: int, line: str) -> None:
        self.reason = reason
        self.filename = filename
        self.lineno = lineno
        self.line = line
        super().__init__(f"{filename}, line {lineno}: {reason}\n    {line.strip()}")


class ReadLike(ReadStep):
    """Read as much as a recorded client turn did, without checking the bytes.

    For text: as many lines as *sample* holds, then as many bytes as followed its last
    newline (so an HTTP request with a longer Host header still reads as one request).
    For binary data: exactly ``len(sample)`` bytes. What ``client:`` lines load as
    when ``exact=False``.

    >>> ReadLike(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n").describe()
    "3 lines (like b'GET / HTTP/1.1\\\\r\\\\nHost: x\\\\r\\\\n\\\\r\\\\n')"
    """

    def __init__(self, sample: bytes, *, timeout: float | None = None) -> None:
        if not isinstance(sample, (bytes, bytearray)) or not sample:
            raise TypeError(f"sample must be non-empty bytes the client sent, not {sample!r}")
        self.sample = bytes(sample)
        if _is_textual(self.sample):
            self.lines = self.sample.count(b"\n")
            self.tail = len(self.sample) - (self.sample.rfind(b"\n") + 1)
        else:
            self.lines, self.tail = 0, len(self.sample)
        self.timeout = _args.optional_timeout(timeout)

    def _repr_args(self) -> list[str]:
        timeout = [] if self.timeout is None else [f"timeout={self.timeout!r}"]
        return [show_bytes(self.sample, 40), *timeout]

    def describe(self) -> str:
        parts = []
        if self.lines:
            parts.append(f"{self.lines} line{'s' if self.lines != 1 else ''}")
        if self.tail:
            parts.append(f"{self.tail} byte{'s' if self.tail != 1 else ''}")
        return f"{' then '.join(parts)} (like {show_bytes(self.sample, 40)})"

    def matcher(self) -> Matcher:
        return _LinesThenBytes(self.lines, self.tail)


class _LinesThenBytes(Matcher):
    def __init__(self, lines: int, tail: int) -> None:
        self.lines = lines
        self.tail = tail
        self.found = 0
        self.end = 0  # just after the last newline found so far

    def check(self, buffer: bytearray, eof: bool) -> int | None:
        while self.found < self.lines:
            at = buffer.find(b"\n", self.end)
            if at < 0:
                return None
            self.found += 1
            self.end = at + 1
        return self.end + self.tail if len(buffer) >= self.end + self.tail else None


@dataclass
class _Item:
    """One step as parsed: its line, keyword and arguments (data grows with continuations)."""

    lineno: int
    line: str
    keyword: str
    data: bytearray | None = None
    args: list[str] = field(default_factory=list)


@dataclass
class _Section:
    lineno: int
    line: str
    items: list[_Item] = field(default_factory=list)


_STRING_BODY = re.compile(r'(?:[^"\\]|\\.)*')  # the text up to the closing quote
_HEX_RUN = re.compile(r'[^"#]*')  # a hex run ends at a quote, a comment or the line end

_KEYWORDS = (
    "connection", "client:", "server:", "expect", "read", "delay", "close", "reset",
    "half-close", "hang", "rules", "rule", "unmatched", "end",
)
_DATA_KEYWORDS = ("client:", "server:")
# steps whose data may go on
_CONTINUED = ("client:", "server:", "expect", "read until", "rule")
_TIMES = re.compile(r"(\d+)(?:(\.\.)(\d*))?")  # times N, N..M, N..


class _Lexer:
    """Parses the data and words of one line; errors name the file, line and reason."""

    def __init__(self, filename: str, lineno: int, line: str) -> None:
        self.filename = filename
        self.lineno = lineno
        self.line = line

    def error(self, reason: str) -> ScriptSyntaxError:
        return ScriptSyntaxError(reason, self.filename, self.lineno, self.line)

    def words(self, rest: str) -> list[str]:
        return rest.split("#", 1)[0].split()

    def data(self, rest: str, what: str) -> bytes:
        """Parse quoted strings and hex runs up to the end of the line or a comment."""
        out = bytearray()
        pos = 0
        pieces = 0
        while True:
            while pos < len(rest) and rest[pos].isspace():
                pos += 1
            if pos == len(rest) or rest[pos] == "#":
                break
            if rest[pos] == '"':
                pos = self._string(rest, pos + 1, out)
            elif rest.startswith("hex", pos) and (pos + 3 == len(rest) or rest[pos + 3].isspace()):
                pos = self._hex(rest, pos + 3, out)
            else:
                raise self.error(
                    f"expected quoted text (\"...\") or hex bytes (hex 0d 0a) for {what}, "
                    f"found {rest[pos:].rstrip()!r}"
                )
            pieces += 1
        if not pieces:
            raise self.error(f'{what} needs data: quoted text ("...") or hex bytes (hex 0d 0a)')
        return bytes(out)

    def _string(self, rest: str, pos: int, out: bytearray) -> int:
        body = _STRING_BODY.match(rest, pos)
        assert body is not None  # the pattern matches the empty string
        if body.end() >= len(rest) or rest[body.end()] != '"':
            raise self.error('unterminated quoted text: end it with a "')
        try:
            out += unescape(body.group())
        except BadEscape as exc:
            raise self.error(
                f"unknown escape {exc.escape!r} in quoted text; use {ESCAPES_ACCEPTED}"
            ) from None
        return body.end() + 1

    def _hex(self, rest: str, pos: int, out: bytearray) -> int:
        match = _HEX_RUN.match(rest, pos)
        assert match is not None
        try:
            out += bytes.fromhex(match.group())
        except ValueError:
            bad = next(t for t in match.group().split()
                       if len(t) % 2 or not re.fullmatch(r"[0-9a-fA-F]+", t))
            raise self.error(
                f"bad hex {bad!r}: write bytes as pairs of hex digits, e.g. hex 0d 0a ff"
            ) from None
        return match.end()

    def regex(self, rest: str) -> bytes:
        """A quoted regex, taken as written (only the closing quote is looked for)."""
        rest = rest.strip()
        if not rest.startswith('"'):
            raise self.error('expect regex needs a quoted pattern, e.g. expect regex "GET /\\S*"')
        pos = 1
        while pos < len(rest) and rest[pos] != '"':
            pos += 2 if rest[pos] == "\\" else 1
        if pos >= len(rest):
            raise self.error('unterminated regex: end it with a "')
        self.nothing_after(rest[pos + 1 :], "the regex")
        return rest[1:pos].encode("utf-8")

    def nothing_after(self, rest: str, what: str) -> None:
        extra = self.words(rest)
        if extra:
            raise self.error(f"unexpected {' '.join(extra)!r} after {what}")

    def seconds(self, word: str, what: str) -> float:
        try:
            value = float(word)
        except ValueError:
            value = -1.0
        if not value >= 0 or value == float("inf"):
            raise self.error(f"{what} takes a number of seconds >= 0, such as 0.25, not {word!r}")
        return value


def _parse_sections(text: str, filename: str) -> list[_Section]:
    sections: list[_Section] = []
    last: _Item | None = None  # the step a continuation line adds data to
    for lineno, line in enumerate(text.splitlines(), 1):
        lex = _Lexer(filename, lineno, line)
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith('"') or re.match(r"hex(\s|$)", stripped):
            if last is None or last.keyword not in _CONTINUED:
                raise lex.error(
                    "a line starting with quoted text or hex continues the data of the "
                    "step above, but there is no client:, server:, expect or read until "
                    "step just above it"
                )
            assert last.data is not None
            last.data += lex.data(stripped, last.keyword)
            continue
        keyword, _, rest = stripped.partition(" ")
        if keyword not in _KEYWORDS:
            close = difflib.get_close_matches(keyword, _KEYWORDS, 1)
            raise lex.error(
                f"unknown step {keyword!r}"
                + (f" (did you mean {close[0]!r}?)" if close else "")
                + f"; steps are: {', '.join(_KEYWORDS)}"
            )
        if keyword == "connection":
            words = lex.words(rest)
            expected = len(sections) + 1
            if len(words) > 1 or (words and words[0] != str(expected)):
                raise lex.error(
                    f"connections are numbered 1, 2, 3... in order: write "
                    f"'connection {expected}' (or just 'connection') here"
                )
            sections.append(_Section(lineno, line))
            last = None
            continue
        if not sections:
            sections.append(_Section(lineno, "connection 1 (implicit)"))
        last = _parse_step(lex, keyword, rest)
        sections[-1].items.append(last)
    return sections


def _parse_step(lex: _Lexer, keyword: str, rest: str) -> _Item:
    item = _Item(lex.lineno, lex.line, keyword)
    words = lex.words(rest)
    if keyword in _DATA_KEYWORDS:
        item.data = bytearray(lex.data(rest, keyword))
    elif keyword == "expect":
        sub, _, after = rest.strip().partition(" ")
        if sub == "close":
            lex.nothing_after(after, "expect close")
            item.keyword = "expect close"
        elif sub == "regex":
            item.keyword = "expect regex"
            item.data = bytearray(lex.regex(after))
        else:
            item.data = bytearray(lex.data(rest, "expect"))
    elif keyword == "read":
        if words[:1] == ["until"]:
            item.keyword = "read until"
            item.data = bytearray(lex.data(rest.strip()[len("until") :], "read until"))
        elif len(words) == 1 and words[0].isdecimal() and int(words[0]) == 0:
            raise lex.error(
                f"read {words[0]} would read nothing: a byte count starts at 1 ('read N' "
                "reads at least N bytes); a plain 'read' reads what arrives"
            )
        elif words in ([], ["line"], ["to", "close"]) or (
            len(words) == 1 and words[0].isdecimal()  # what int() reads: not "²"
        ):
            item.args = words
        else:
            raise lex.error(
                f"read takes nothing, a byte count, 'line', 'until DATA' or 'to close', "
                f"not {' '.join(words)!r}"
            )
    elif keyword == "rules":
        if words[:1] == ["ordered"]:
            item.args = ["ordered"]
            rest = rest.strip()[len("ordered"):]
            words = words[1:]
        if words[:1] != ["read"]:
            raise lex.error("rules takes the read step that frames a request: rules read "
                            "line, rules read until DATA, rules read N (after 'ordered')")
        read = _parse_step(lex, "read", rest.strip()[len("read"):])
        item.data, item.args = read.data, [*item.args, read.keyword, *read.args]
    elif keyword == "rule":
        rest = rest.strip()
        if words[:1] == ["times"]:
            times = _TIMES.fullmatch(words[1]) if len(words) > 1 else None
            if times is None:
                raise lex.error("rule times takes N (exactly), N..M or N.. (at least N), "
                                "such as rule times 2 \"PING\\r\\n\"")
            item.args = [words[1]]
            rest = rest[len("times"):].strip()[len(words[1]):]
        if rest.strip().startswith("regex"):
            item.keyword = "rule regex"
            item.data = bytearray(lex.regex(rest.strip()[len("regex"):]))
        else:
            item.data = bytearray(lex.data(rest, "rule"))
    elif keyword == "end":
        if words != ["rules"]:
            raise lex.error("end takes 'rules': end rules closes a rules block")
    elif keyword == "delay":
        if len(words) != 1:
            raise lex.error("delay takes one number of seconds, such as delay 0.25")
        item.args = [str(lex.seconds(words[0], "delay"))]
    elif keyword == "hang":
        if len(words) > 1:
            raise lex.error("hang takes at most one number of seconds, such as hang 2")
        item.args = [str(lex.seconds(w, "hang")) for w in words]
    elif words:
        raise lex.error(f"{keyword} takes no arguments; unexpected {' '.join(words)!r}")
    return item


def _build_step(item: _Item, exact: bool) -> Step:
    data = bytes(item.data) if item.data is not None else b""
    key = item.keyword
    if key == "client:":
        if not data:
            raise ValueError('client: data must not be empty (an empty read matches nothing)')
        return Expect(data) if exact else ReadLike(data)
    if key == "server:":
        return Send(data)
    if key == "expect":
        return Expect(data)
    if key == "expect regex":
        return ExpectRegex(data)
    if key == "expect close":
        return ExpectClose()
    if key == "read until":
        return ReadUntil(data)
    if key == "read":
        if not item.args:
            return RECEIVE
        if item.args == ["line"]:
            return ReadLine()
        if item.args == ["to", "close"]:
            return ReadUntilClose()
        return Receive(int(item.args[0]))
    if key == "delay":
        return Delay(float(item.args[0]))
    if key == "hang":
        return Hang(float(item.args[0]) if item.args else None)
    if key == "close":
        return Close()
    if key == "reset":
        return Reset()
    assert key == "half-close", key
    return HalfClose()


def _times(word: str) -> int | range:
    match = _TIMES.fullmatch(word)
    assert match is not None  # checked by the parser
    low, dots, high = match.groups()
    if not dots:
        return int(low)
    return range(int(low), int(high) + 1 if high else 2**62)


def _build_rules(
    items: list[_Item], filename: str, exact: bool, keep_timing: bool
) -> tuple[Step, int]:
    """The Rules step of the block that starts at ``items[0]``, and the items it took."""
    head = items[0]
    end = next((i for i, it in enumerate(items) if it.keyword == "end"), None)
    if end is None:
        raise ScriptSyntaxError("this rules block has no 'end rules' line", filename,
                                head.lineno, head.line)
    ordered = head.args[:1] == ["ordered"]
    read_args = head.args[1:] if ordered else head.args
    read = _build_step(_Item(head.lineno, head.line, read_args[0], head.data, read_args[1:]),
                       exact)
    rules: list[Rule] = []
    unmatched: list[Step] | None = None
    owner: _Item | None = None
    reply: list[Step] = []

    def finish() -> None:
        nonlocal unmatched
        if owner is None:
            return
        try:
            if owner.keyword == "unmatched":
                unmatched = reply[:]
            else:
                data = bytes(owner.data or b"")
                match: bytes | re.Pattern[bytes] = (
                    re.compile(data) if owner.keyword == "rule regex" else data)
                times = _times(owner.args[0]) if owner.args else None
                rules.append(Rule(match, reply[:], times=times))
        except (TypeError, ValueError, re.error) as exc:
            raise ScriptSyntaxError(str(exc), filename, owner.lineno, owner.line) from None

    for item in items[1:end]:
        if item.keyword in ("rule", "rule regex", "unmatched"):
            finish()
            owner, reply = item, []
        elif owner is None:
            raise ScriptSyntaxError("a rules block starts with a rule line", filename,
                                    item.lineno, item.line)
        elif item.keyword in ("rules", "connection"):
            raise ScriptSyntaxError(f"{item.keyword} inside a rules block (end it first "
                                    "with 'end rules')", filename, item.lineno, item.line)
        elif item.keyword != "delay" or keep_timing:
            try:
                reply.append(_build_step(item, exact))
            except (TypeError, ValueError) as exc:
                raise ScriptSyntaxError(str(exc), filename, item.lineno, item.line) from None
    finish()
    try:
        assert isinstance(read, ReadStep)
        step = Rules(read, *rules, unmatched=Close() if unmatched is None else unmatched,
                     ordered=ordered)
    except (TypeError, ValueError) as exc:
        raise ScriptSyntaxError(str(exc), filename, head.lineno, head.line) from None
    return step, end + 1


def _build_script(section: _Section, filename: str, exact: bool, keep_timing: bool) -> list[Step]:
    steps: list[Step] = []
    owners: list[_Item] = []
    dropped = 0
    at = 0
    while at < len(section.items):
        item = section.items[at]
        at += 1
        if item.keyword == "delay" and not keep_timing:
            dropped += 1
            continue
        if item.keyword == "rules":
            step, took = _build_rules(section.items[at - 1:], filename, exact, keep_timing)
            at += took - 1
        elif item.keyword in ("rule", "rule regex", "unmatched", "end"):
            raise ScriptSyntaxError(f"{item.keyword.split()[0]} outside a rules block (start "
                                    "one with 'rules read line' or another read)",
                                    filename, item.lineno, item.line)
        else:
            try:
                step = _build_step(item, exact)
            except (TypeError, ValueError) as exc:
                raise ScriptSyntaxError(str(exc), filename, item.lineno, item.line) from None
        if owners and steps[-1].ends_connection:
            raise ScriptSyntaxError(
                f"this step can never run: line {owners[-1].lineno} "
                f"({owners[-1].line.strip()!r}) ends the connection",
                filename, item.lineno, item.line,
            )
        shut = next((o for s, o in zip(steps, owners, strict=True) if isinstance(s, HalfClose)),
                    None)
        if shut is not None and isinstance(step, (Send, HalfClose, Rules)):
            raise ScriptSyntaxError(
                f"this step would write after half-close at line {shut.lineno}, "
                "which shut the server's write side",
                filename, item.lineno, item.line,
            )
        steps.append(step)
        owners.append(item)
    if dropped:
        log.debug("%s: %d delay line(s) of %s dropped (keep_timing=False)",
                  filename, dropped, section.line.strip())
    try:
        compile_script(steps)
    except (TypeError, ValueError) as exc:  # a rule checked only by the engine
        raise ScriptSyntaxError(str(exc), filename, section.lineno, section.line) from None
    return steps


def parse_script(
    text: str,
    *,
    exact: bool = False,
    keep_timing: bool = False,
    filename: str = "<script>",
) -> list[Step] | PerConnection:
    """Turn script file text into commands for any server class.

    Arguments:
        text: the script (see the module docstring for the format).
        exact: ``client:`` data becomes ``Expect`` (the client must send exactly those
            bytes); by default it becomes ``ReadLike`` (read as much, check nothing).
        keep_timing: ``delay`` lines become ``Delay`` steps; by default they are dropped.
        filename: the name error messages give.

    Returns a list of steps for a one-connection script, else a ``PerConnection`` plan.
    Raises ``ScriptSyntaxError`` (a ValueError) naming the line.

    >>> parse_script('client: "PING\\\\r\\\\n"\\nserver: "PONG\\\\r\\\\n"', exact=True)
    [Expect(b'PING\\r\\n'), Send(b'PONG\\r\\n')]
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be the script as a str, not {text!r}")
    for flag, name in ((exact, "exact"), (keep_timing, "keep_timing")):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False, not {flag!r}")
    sections = _parse_sections(text, filename)
    if not sections:
        first = text.splitlines()[0] if text.strip() else text
        raise ScriptSyntaxError("the script has no steps", filename, 1, first)
    scripts = [_build_script(s, filename, exact, keep_timing) for s in sections]
    if len(scripts) == 1:
        return scripts[0]
    return PerConnection(*scripts)


def load_script(
    path: str | os.PathLike[str], *, exact: bool = False, keep_timing: bool = False
) -> list[Step] | PerConnection:
    """Read a script file and return commands for any server class (see ``parse_script``).

    Raises ``ScriptSyntaxError`` naming the line for a mistake (also for text that is not
    UTF-8), OSError if the file cannot be read.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     name = os.path.join(tmp, "ping.script")
    ...     with open(name, "w") as out:
    ...         _ = out.write('read line\\nserver: "PONG\\\\r\\\\n"\\n')
    ...     load_script(name)
    [ReadLine(), Send(b'PONG\\r\\n')]
    """
    filename = os.fspath(path)
    with open(filename, "rb") as source:
        raw = source.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = raw.count(b"\n", 0, exc.start) + 1
        line = raw.split(b"\n")[lineno - 1].decode("utf-8", "replace")
        raise ScriptSyntaxError(
            f"the file is not UTF-8 text (byte {raw[exc.start]:#04x}); write binary data "
            "as hex or \\xHH escapes",
            str(filename), lineno, line,
        ) from None
    return parse_script(text, exact=exact, keep_timing=keep_timing, filename=str(filename))
