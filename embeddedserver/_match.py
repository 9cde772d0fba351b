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

Sections: the mismatch - matchers - the inbox.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

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
    consumes when complete, None while incomplete, and raises Mismatch if impossible."""

    def check(self, buffer: bytearray, eof: bool) -> int | None:
        raise NotImplementedError


class AtLeast(Matcher):
    """``Receive``: complete once *n* bytes are buffered; takes all of them."""

    def __init__(self, n: int) -> None:
        self.n = n

    def check(self, buffer: bytearray, eof: bool) -> int | None:
        return len(buffer) if len(buffer) >= self.n else None


class Until(Matcher):
    """``ReadUntil``, ``ReadLine``: up to the end of the first *delimiter*."""

    def __init__(self, delimiter: bytes) -> None:
        self.delimiter = delimiter
        self.searched = 0  # bytes already known not to start the delimiter

    def check(self, buffer: bytearray, eof: bool) -> int | None:
        at = buffer.find(self.delimiter, self.searched)
        if at < 0:
            self.searched = max(0, len(buffer) - len(self.delimiter) + 1)
            return None
        return at + len(self.delimiter)


class Frame(Matcher):
    """``ReadFrame``, ``ExpectFrame`` (with *payload*): one length-prefixed frame."""

    def __init__(self, packer: struct.Struct, payload: bytes | None, step: ReadStep) -> None:
        self.packer = packer
        self.payload = payload
        self.step = step
        self.checked = 0

    def check(self, buffer: bytearray, eof: bool) -> int | None:
        size = self.packer.size
        if len(buffer) < size:
            return None
        (length,) = self.packer.unpack_from(buffer)
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

    def check(self, buffer: bytearray, eof: bool) -> int | None:
        return len(buffer) if eof else None


def _compare(
    expected: bytes, buffer: bytearray, start: int, end: int, base: int, step: ReadStep
) -> None:
    """Compare buffer[start:end] with expected[start-base:end-base]; raise at a difference
    (a Mismatch saying what *step* expected)."""
    if end <= start:
        return
    got = memoryview(buffer)[start:end]
    want = memoryview(expected)[start - base : end - base]
    if got == want:
        return
    offset = next(i for i in range(len(got)) if got[i] != want[i]) + start - base
    got.release()  # else the traceback keeps the buffer exported: no resize while handling
    # Everything that arrived, not just the expected length: a user needs to see what
    # the client said instead ("GET / HTTP/1.1..." rather than the first 6 bytes of it).
    raise Mismatch(f"wrong bytes at offset {offset}", step.describe(), bytes(buffer[base:]), offset)


class Exact(Matcher):
    """``Expect`` of exact bytes: fails at the first byte that differs."""

    def __init__(self, expected: bytes, step: ReadStep) -> None:
        self.expected = expected
        self.step = step
        self.checked = 0

    def check(self, buffer: bytearray, eof: bool) -> int | None:
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
    """

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.eof = False
        self.step: ReadStep | None = None
        self._matcher: Matcher | None = None

    def begin(self, step: ReadStep) -> None:
        self.step = step
        self._matcher = step.matcher()

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            self.eof = True
        else:
            self.buffer += data

    def poll(self) -> bytes | None:
        assert self._matcher is not None and self.step is not None, "begin() a step first"
        n = self._matcher.check(self.buffer, self.eof)
        if n is None:
            if self.eof:
                raise Mismatch(
                    "the client closed the connection before the step completed",
                    self.step.describe(),
                    bytes(self.buffer),
                    len(self.buffer),
                )
            return None
        return self.take(n)

    def take(self, n: int) -> bytes:
        """Remove and return the first *n* buffered bytes."""
        if n >= len(self.buffer):
            chunk = bytes(self.buffer)
            self.buffer.clear()
        else:
            chunk = bytes(memoryview(self.buffer)[:n])
            del self.buffer[:n]
        return chunk
