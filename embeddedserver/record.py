"""Records of what happened on fake-server connections, and failure reports.

A ``ConnectionRecord`` is the transcript of one connection: timestamped events (bytes
read, bytes sent, notes) and how it ended. A ``Failure`` is one thing that went wrong
(a step the client did not satisfy, or an exception on a server thread) with all a
user needs to act on it: the connection, the step (index and repr), what was expected,
what arrived (repr, hex for binary, offset of the first difference) and the tail of the
transcript. Pure data and text rendering; no sockets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ._text import format_address

__all__ = [
    "ConnectionRecord",
    "Event",
    "Failure",
    "render_transcript",
    "show_bytes",
]

# ---------------------------------------------------------------------------
# byte rendering
# ---------------------------------------------------------------------------


def show_bytes(data: bytes, limit: int = 80) -> str:
    """Render *data* for a message: its repr, cut to *limit* bytes, with a length note."""
    if len(data) <= limit:
        return repr(bytes(data))
    return f"{bytes(data[:limit])!r}... ({len(data)} bytes)"


def _hex(data: bytes, limit: int = 32) -> str:
    text = bytes(data[:limit]).hex(" ")
    return text + (" ..." if len(data) > limit else "")


def _is_binary(data: bytes) -> bool:
    return any(b < 9 or 13 < b < 32 or b > 126 for b in data[:256])


# ---------------------------------------------------------------------------
# records and failures
# ---------------------------------------------------------------------------


@dataclass(slots=True)
class Event:
    """One line of a transcript: *kind* is 'recv', 'send' or 'note'."""

    at: float
    kind: str
    data: bytes = b""
    text: str = ""


@dataclass
class ConnectionRecord:
    """Everything that happened on one connection, in order.

    ``ended`` says how it ended: 'client closed', 'server closed', 'server reset',
    'client reset', 'timeout', 'failed', 'error', 'stopped' (None while open).
    """

    number: int
    peer: Any
    started: float = field(default_factory=time.monotonic)
    events: list[Event] = field(default_factory=list)
    ended: str | None = None
    script_length: int = 0
    #: Called as ``listener(record, event)`` after each event is added (the CLI prints
    #: the transcript live with it). Runs on the server thread: be quick, do not raise.
    listener: Callable[[ConnectionRecord, Event], object] | None = field(
        default=None, repr=False, compare=False
    )

    def add(self, kind: str, data: bytes = b"", text: str = "") -> Event:
        event = Event(time.monotonic() - self.started, kind, data, text)
        self.events.append(event)
        if self.listener is not None:
            self.listener(self, event)
        return event

    @property
    def received(self) -> bytes:
        """All bytes read from the client on this connection."""
        return b"".join(e.data for e in self.events if e.kind == "recv")

    @property
    def sent(self) -> bytes:
        """All bytes sent to the client on this connection."""
        return b"".join(e.data for e in self.events if e.kind == "send")

    def render(
        self, tail: int | None = None, width: int = 76, *, ending: str | None = None
    ) -> str:
        """The events as text under a head line saying how the connection ended:
        ``ended``, else *ending* (how it is about to end: a failure report is made just
        before the connection is closed), else "open". *tail*: only the last events."""
        head = f"connection #{self.number} from {format_address(self.peer)}"
        ended = self.ended or ending
        lines = [head + (f" [{ended}]" if ended else " [open]")]
        events = self.events if tail is None else self.events[-tail:]
        if tail is not None and len(self.events) > tail:
            lines.append(f"  ... {len(self.events) - tail} earlier events")
        for e in events:
            if e.kind == "note":
                lines.append(f"  {e.at:8.3f}s  {e.text}")
            else:
                arrow = "<-" if e.kind == "recv" else "->"
                who = "client" if e.kind == "recv" else "server"
                lines.append(
                    f"  {e.at:8.3f}s  {arrow} {who} {len(e.data)} bytes  "
                    f"{show_bytes(e.data, width)}" + (f"  {e.text}" if e.text else "")
                )
        return "\n".join(lines)


def render_transcript(records: Iterable[ConnectionRecord]) -> str:
    """Render connection records as readable text, one block per connection."""
    blocks = [r.render() for r in records]
    return "\n".join(blocks) if blocks else "(no connections)"


@dataclass
class Failure:
    """A failed step or an exception on a server thread, with what is needed to act.

    *kind*: 'mismatch', 'timeout', 'closed', 'reset', 'error', 'unexpected connection',
    'tls' (the client broke the TLS handshake), 'unmatched' (a request no rule of a
    ``Rules`` step takes), 'rules' (a rule matched too few or too many times).
    """

    kind: str
    summary: str
    connection: int | None = None
    peer: Any = None
    step_index: int | None = None
    step: Any = None
    script_length: int = 0
    expected: str = ""
    received: bytes | None = None
    offset: int | None = None
    traceback: str = ""
    transcript: str = ""

    def __str__(self) -> str:
        return self.message()

    def message(self) -> str:
        """The full, multi-line explanation shown by ``check()``."""
        where = []
        if self.connection is not None:
            where.append(f"connection #{self.connection} from {format_address(self.peer)}")
        if self.step_index is not None:
            where.append(f"step {self.step_index} of {self.script_length}: {self.step!r}")
        lines = [(", ".join(where) + ": " if where else "") + self.summary]
        if self.expected:
            lines.append(f"  expected: {self.expected}")
        if self.received is not None:
            lines.append(f"  received: {show_bytes(self.received, 120)}")
            if self.offset is not None:
                lines.append(self._difference())
            if self.received and _is_binary(self.received):
                lines.append(f"  received (hex): {_hex(self.received)}")
        if self.traceback:
            lines.append("  server-side traceback:")
            lines.extend("    " + ln for ln in self.traceback.rstrip().splitlines())
        if self.transcript:
            lines.append("  transcript (last events):")
            lines.extend("  " + ln for ln in self.transcript.splitlines())
        return "\n".join(lines)

    def _difference(self) -> str:
        assert self.received is not None and self.offset is not None
        got = self.received[self.offset : self.offset + 1]
        text = f"  first difference at byte offset {self.offset}"
        want = self._expected_byte()
        if got and want is not None:
            return text + f": expected {want!r} (0x{want[0]:02x}), got {got!r} (0x{got[0]:02x})"
        if not got:
            return text + ": the data ended there"
        return text

    def _expected_byte(self) -> bytes | None:
        assert self.offset is not None
        expected = getattr(self.step, "expected_bytes", lambda: None)()
        if not expected:
            return None
        return expected[self.offset : self.offset + 1] or None
