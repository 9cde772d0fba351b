"""Matching read steps against a byte stream: the matchers, the ``Inbox`` and ``Mismatch``.

Model
-----
A read step of ``embeddedserver.steps`` says what it waits for; this module matches it, and
touches no socket either. Each time a read step starts, ``step.matcher()`` makes a fresh
*matcher*: the state of that one execution (how far a delimiter was searched, how many
expected bytes were compared). An ``Inbox`` holds the bytes received on one connection and
not yet consumed: the I/O shell (``_connection``) feeds it what arrives (``b""`` is EOF) and
polls it. A matcher's ``check(buffer, eof)`` returns how many bytes the complete step
consumes, None while it needs more, or raises ``Mismatch`` when it can never complete:
at the first differing byte, so a wrong client fails at once rather than at a timeout.

This is the per-connection hot path: a poll is one ``check`` call, and a matcher does
not compare or search again the bytes it has already seen. ``embeddedserver.steps`` re-exports
``Inbox`` and ``Mismatch``.

A long chunk is received straight into the ``bytes`` object that becomes it, with no growing
buffer and no copy at the end. A matcher says how long its chunk will be once it knows
(``wants``: ``Receive(n)``, ``Expect`` of bytes, a frame once its prefix arrived), or that its
chunk is everything up to a point found later (``accumulates``: ``ReadUntil``,
``ReadUntilClose``). When that is long, the inbox moves what it holds into a *sink*. While the
sink has room, ``space()`` offers it: the shell reads into it and ``commit()``s the count.
A sink for a chunk of unknown length then grows as ``feed()`` appends to it.
Meanwhile ``check`` sees a memoryview of the sink instead of the bytearray.

Sections: the mismatch - matchers - the sink - the inbox.
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, TypeAlias

from ._prefix import BadPrefix, LengthPrefix
from .record import show_bytes

if TYPE_CHECKING:
    from .steps import Expect, ReadStep

__all__ = [
    "AtLeast",
    "Checked",
    "Closed",
    "Exact",
    "Frame",
    "Inbox",
    "Matcher",
    "Mismatch",
    "ToEof",
    "Until",
]

#: What the check of a matcher with ``wants`` or ``accumulates`` is given: the inbox's
#: bytearray, or a memoryview of its sink.
Buffer: TypeAlias = bytearray | memoryview
#: A sink is worth it for a chunk this long (shorter ones take a read or two of RECV_SIZE)...
SINK_MIN = 256 * 1024
#: ...and is made up front only up to this size: a frame prefix from a wrong client may
#: claim gigabytes. A longer chunk is collected in the bytearray, as a short one is.
SINK_MAX = 256 * 1024 * 1024
#: The room reserved (address space only: pages are used as bytes arrive) for a chunk of
#: a length not known yet; past it, the sink grows by appending.
GROWING_ROOM = 64 * 1024 * 1024

# ---------------------------------------------------------------------------
# the mismatch: a read step that can never complete
# ---------------------------------------------------------------------------


class Mismatch(Exception):
    """A read step can never match what the client sent (raised by the matchers).

    ``expected`` describes what the step wanted, ``received`` is what had arrived for
    the step, ``offset`` the first byte that differs (or None), ``reason`` a short phrase.
    """

    def __init__(
        self, reason: str, expected: str, received: bytes, offset: int | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expected = expected
        self.received = bytes(received)
        self.offset = offset


# ---------------------------------------------------------------------------
# matchers: one per kind of read step, made by its matcher()
# ---------------------------------------------------------------------------


class Matcher:
    """Per-execution state of a read step. ``check`` returns the byte count the step
    consumes when complete, None while incomplete, and raises Mismatch if impossible.

    ``wants``: the length of the step's chunk once known, else 0. ``accumulates``: True if
    the chunk is everything up to a point found later. Either lets the inbox receive a long
    chunk into a sink; ``check`` must then take a memoryview as well as the bytearray (the
    built-in matchers declare ``Buffer``). A matcher that sets neither only sees the
    bytearray."""

    wants = 0
    accumulates = False

    def check(self, buffer: bytearray, eof: bool) -> int | None:
        raise NotImplementedError


class AtLeast(Matcher):
    """``Receive``: complete once *n* bytes are buffered; takes all of them."""

    def __init__(self, n: int) -> None:
        self.n = self.wants = n

    def check(self, buffer: Buffer, eof: bool) -> int | None:
        return len(buffer) if len(buffer) >= self.n else None


class Until(Matcher):
    """``ReadUntil``, ``ReadLine``: up to the end of the first *delimiter*."""

    accumulates = True

    def __init__(self, delimiter: bytes) -> None:
        self.delimiter = delimiter
        self.searched = 0  # bytes already known not to start the delimiter
        self._pattern: re.Pattern[bytes] | None = None  # for a sink's memoryview

    def check(self, buffer: Buffer, eof: bool) -> int | None:
        # Each search covers the new bytes and the len(delimiter) - 1 before them.
        if type(buffer) is bytearray:
            at = buffer.find(self.delimiter, self.searched)
        else:  # a sink's memoryview has no find(); re searches any buffer, in C
            if self._pattern is None:
                self._pattern = re.compile(re.escape(self.delimiter))
            found = self._pattern.search(buffer, self.searched)
            at = -1 if found is None else found.start()
        if at < 0:
            self.searched = max(0, len(buffer) - len(self.delimiter) + 1)
            return None
        return at + len(self.delimiter)


class Frame(Matcher):
    """``ReadFrame``, ``ExpectFrame`` (with *payload*): one length-prefixed frame, its
    length a struct prefix or a varint (``embeddedserver._prefix``)."""

    def __init__(self, prefix: LengthPrefix, payload: bytes | None, step: ReadStep) -> None:
        self.prefix = prefix
        self.packer = prefix.packer
        self.payload = payload
        self.step = step
        self.checked = 0

    def check(self, buffer: Buffer, eof: bool) -> int | None:
        packer = self.packer
        if packer is not None:  # the usual case: no call, no tuple
            size = packer.size
            if len(buffer) < size:
                return None
            (length,) = packer.unpack_from(buffer)
        else:
            try:
                found = self.prefix.decode(buffer, eof)
            except BadPrefix as exc:
                at = len(exc.data) if exc.truncated else None
                raise Mismatch(exc.reason, self.step.describe(), exc.data, at) from None
            if found is None:
                return None
            size, length = found
        self.wants = size + length
        if self.payload is not None:
            if length != len(self.payload):
                raise Mismatch(
                    f"frame length prefix says {length} bytes, expected {len(self.payload)}",
                    f"frame with payload {show_bytes(self.payload)}",
                    bytes(buffer[: size + min(length, 256)]),
                    None,
                )
            end = min(len(buffer), size + length)
            _compare(self.payload, buffer, size + self.checked, end, size, self.step)
            self.checked = end - size
        return size + length if len(buffer) >= size + length else None


class ToEof(Matcher):
    """``ReadUntilClose``: everything, once the client has closed."""

    accumulates = True

    def check(self, buffer: Buffer, eof: bool) -> int | None:
        return len(buffer) if eof else None


def _compare(
    expected: bytes, buffer: Buffer, start: int, end: int, base: int, step: ReadStep
) -> None:
    """Compare buffer[start:end] with expected[start-base:end-base]; raise at a difference
    (a Mismatch saying what *step* expected)."""
    if end <= start:
        return
    if start == base == 0 and end == len(buffer) and expected.startswith(buffer):
        return  # the whole buffer matches (the usual case): no view needed
    # bytes.startswith compares at memcmp speed; memoryview == memoryview goes byte by byte.
    with memoryview(buffer) as view:
        if expected.startswith(view[start:end], start - base):
            return
        lo, hi = start, end  # buffer[start:lo] matches; the first difference is before hi
        while hi - lo > 64:
            mid = (lo + hi) // 2
            if expected.startswith(view[lo:mid], lo - base):
                lo = mid
            else:
                hi = mid
        offset = next(i for i in range(lo, hi) if view[i] != expected[i - base]) - base
    # The view is released: a traceback that keeps it would keep the bytearray exported
    # (no resize while handling). Everything that arrived, not just the expected length:
    # a user needs to see what the client said instead ("GET / HTTP/1.1..." rather than
    # the first 6 bytes of it).
    raise Mismatch(f"wrong bytes at offset {offset}", step.describe(), bytes(buffer[base:]), offset)


class Exact(Matcher):
    """``Expect`` of exact bytes: fails at the first byte that differs."""

    def __init__(self, expected: bytes, step: ReadStep) -> None:
        self.expected = expected
        self.step = step
        self.checked = 0
        self.wants = len(expected)

    def check(self, buffer: Buffer, eof: bool) -> int | None:
        end = min(len(buffer), len(self.expected))
        _compare(self.expected, buffer, self.checked, end, 0, self.step)
        self.checked = end
        return len(self.expected) if end == len(self.expected) else None


class Checked(Matcher):
    """``Expect`` of a regex or predicate, streaming or on one *within* unit."""

    def __init__(self, step: Expect) -> None:
        self.step = step
        self.unit = step.within.matcher() if step.within is not None else None

    def check(self, buffer: bytearray, eof: bool) -> int | None:
        step = self.step
        if self.unit is None:  # streaming regex search
            assert step.pattern is not None
            found = step.pattern.search(buffer)
            return found.end() if found else None
        n = self.unit.check(buffer, eof)
        if n is None:
            return None
        chunk = bytes(buffer[:n])
        if step.pattern is not None:
            ok: object = step.pattern.fullmatch(chunk)
        else:
            assert step.predicate is not None
            ok = step.predicate(chunk)
        if not ok:
            raise Mismatch("the data did not match", step.describe(), chunk, None)
        return n


class Closed(Matcher):
    """``ExpectClose``: EOF with nothing buffered; any byte fails it."""

    def check(self, buffer: bytearray, eof: bool) -> int | None:
        if buffer:
            raise Mismatch(
                "unexpected data while waiting for the client to close",
                "the client to close the connection",
                bytes(buffer),
                0,
            )
        return 0 if eof else None


# ---------------------------------------------------------------------------
# the sink: one long chunk, received into the bytes object that becomes it
# ---------------------------------------------------------------------------


class _Sink:
    """One long chunk, collected in the ``bytes`` object that becomes it (``finish``).

    The sink is a ``BytesIO`` made from ``bytes(size)``: it holds that very object
    (calloc'ed: its pages cost nothing until written) and, while no one else refers to it,
    ``getbuffer()`` is a writable view of it, so the shell's reads fill it in place
    (``space``). A *growing* sink, for a chunk whose length is not known yet, is appended to
    (``write``) once that room is full: its ``bytes`` grows by realloc, which moves a large
    block's pages without copying them. Either way ``getvalue()`` hands the object back
    without a copy once no view is left. That is CPython's ``BytesIO``; another one may
    copy, which is slower but never wrong.
    """

    __slots__ = ("growing", "io", "view")

    def __init__(self, head: bytearray, size: int, growing: bool) -> None:
        """A sink of room for *size* bytes that starts with *head*."""
        self.growing = growing
        self.io = io.BytesIO(bytes(size))
        self.view: memoryview | None = self.io.getbuffer()
        self.view[: len(head)] = head
        self.io.seek(len(head))  # the position is how much is filled

    def space(self) -> memoryview | None:
        """The free room (None once it is full: then ``write``)."""
        view = self.view
        if view is None:
            return None
        at = self.io.tell()
        if at < len(view):
            return view[at:]
        if self.growing:  # from now on, appended to
            view.release()
            self.view = None
        return None

    def commit(self, n: int) -> None:
        """*n* bytes were read into ``space()``."""
        self.io.seek(n, io.SEEK_CUR)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Copy in what fits of *data* (all of it, growing); return the count copied."""
        n = 0
        room = self.space()
        if room is not None:
            n = min(len(data), len(room))
            room[:n] = data[:n]
            room.release()
            self.io.seek(n, io.SEEK_CUR)
            if n == len(data) or self.space() is not None:
                return n
        if not self.growing:
            return n
        try:
            return n + self.io.write(data[n:])
        except BufferError:  # a view from data() is still alive: go on in a copy
            at = self.io.tell()
            self.io = io.BytesIO(self.io.getvalue())
            self.io.seek(at)
            return n + self.io.write(data[n:])

    def data(self) -> memoryview:
        """The bytes so far (drop the view before the next ``write``)."""
        if self.view is None:
            return self.io.getbuffer()
        return self.view[: self.io.tell()]

    def finish(self, n: int) -> tuple[bytes, bytes]:
        """The first *n* bytes as ``bytes`` (the sink's own object), and the rest."""
        with self.io.getbuffer() as view:
            rest = bytes(view[n : self.io.tell()])
        try:
            if self.view is not None:
                self.view.release()
            self.io.truncate(n)  # a growing sink's unused room: realloc gives it back
        except BufferError:  # a view is still alive: the bytes object cannot be handed over
            return self.io.getvalue()[:n], rest
        return self.io.getvalue(), rest


# ---------------------------------------------------------------------------
# the inbox: one connection's unconsumed bytes, matched step by step
# ---------------------------------------------------------------------------


class Inbox:
    """Bytes received on one connection and not yet consumed by a step.

    ``begin(step)`` starts a read step; ``feed(data)`` adds bytes (``b""`` is EOF);
    ``poll()`` returns the step's chunk once complete, None while it needs more, and raises
    ``Mismatch`` when it cannot complete (wrong bytes, or EOF before the end).

    >>> from embeddedserver.steps import Expect
    >>> inbox = Inbox()
    >>> inbox.begin(Expect(b"PING"))
    >>> inbox.feed(b"PI"); inbox.poll() is None
    True
    >>> inbox.feed(b"NG!"); inbox.poll()
    b'PING'
    >>> bytes(inbox.buffer)
    b'!'

    A reader that can read into memory asks ``space()`` first: when a long chunk is under
    way it is a writable view to read into, then ``commit(n)`` the count (0 is EOF); when
    it is None, read as usual and ``feed()`` what arrived.

    >>> from embeddedserver.steps import Receive
    >>> inbox.begin(Receive(1 << 20)); inbox.poll() is None
    True
    >>> room = inbox.space(); len(room)
    1048575
    >>> room[:3] = b"abc"; inbox.commit(3); inbox.space() is not None
    True
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._sink: _Sink | None = None
        self.eof = False
        self.step: ReadStep | None = None
        self._matcher: Matcher | None = None

    @property
    def buffer(self) -> bytearray:
        """The unconsumed bytes (a sink's, if one is under way, are moved back first)."""
        if self._sink is not None:
            self._spill()
        return self._buf

    @property
    def idle(self) -> bool:
        """True when nothing is buffered and the client has not closed: no step can end."""
        return not (self._buf or self._sink is not None or self.eof)

    def begin(self, step: ReadStep) -> None:
        if self._sink is not None:
            self._spill()
        self.step = step
        self._matcher = step.matcher()

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            self.eof = True
        elif self._sink is None:
            self._buf += data
        else:
            n = self._sink.write(data)
            if n < len(data):  # beyond the chunk: the next step's
                self._buf += data[n:]

    def space(self) -> memoryview | None:
        """Where the next read should go, or None: read as usual and ``feed()`` it."""
        return None if self._sink is None else self._sink.space()

    def commit(self, n: int) -> None:
        """*n* bytes were read into ``space()``; 0: the client shut its write side (EOF)."""
        if n:
            assert self._sink is not None, "commit() only after space() gave room"
            self._sink.commit(n)
        else:
            self.eof = True

    def poll(self) -> bytes | None:
        matcher = self._matcher
        assert matcher is not None and self.step is not None, "begin() a step first"
        sink = self._sink
        if sink is None:
            n = matcher.check(self._buf, self.eof)
            if n is not None:
                return self.take(n)
            if not self.eof:
                self._open_sink(matcher)
                return None
        else:
            # Only a matcher with wants or accumulates gets here; it takes a memoryview.
            n = matcher.check(sink.data(), self.eof)  # type: ignore[arg-type]
            if n is not None:
                self._sink = None
                chunk, rest = sink.finish(n)
                if rest:
                    self._buf[:0] = rest
                return chunk
            if not self.eof:
                return None
        buffered = self.buffer
        raise Mismatch(
            "the client closed the connection before the step completed",
            self.step.describe(),
            bytes(buffered),
            len(buffered),
        )

    def take(self, n: int) -> bytes:
        """Remove and return the first *n* buffered bytes."""
        buffer = self.buffer
        if n >= len(buffer):
            chunk = bytes(buffer)
            buffer.clear()
        else:
            chunk = bytes(memoryview(buffer)[:n])
            del buffer[:n]
        return chunk

    def _open_sink(self, matcher: Matcher) -> None:
        """Start a sink if the step's chunk is long enough to be worth one."""
        have = len(self._buf)
        wants = getattr(matcher, "wants", 0)
        if wants:
            if wants - have < SINK_MIN or wants > SINK_MAX:
                return
            sink = _Sink(self._buf, wants, growing=False)
        elif have >= SINK_MIN and getattr(matcher, "accumulates", False):
            try:
                sink = _Sink(self._buf, max(GROWING_ROOM, 2 * have), growing=True)
            except MemoryError:  # no address space to spare: the bytearray will do
                return
        else:
            return
        self._buf.clear()
        self._sink = sink

    def _spill(self) -> None:
        """Move a sink's bytes back into the bytearray, before what follows them."""
        assert self._sink is not None
        self._buf[:0] = self._sink.data()
        self._sink = None
