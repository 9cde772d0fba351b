"""How a TcpServer failure is worded: in terms of the call that added the step.

Model
-----
Each ``TcpServer`` call such as ``expect_bytes(b"hi")`` appends a ``Planned`` step: the
call as the user wrote it (its *label*, which is also its repr in a failure report), a
*kind* (connect, bytes, frame, send, close, disconnect), its timeout and the engine step
that its connection's ``ScriptRunner`` runs. The engine reports a ``Failure`` in its own terms
(timeout, mismatch, closed, reset); ``explain`` rewords it for the kind of call, e.g. a
timeout on ``expect_disconnect()`` asks whether the client closed. ``unread_failure``
words a client that closed with bytes the server sent still unread, exactly counted or
estimated from what was sent since the client last spoke.

Pure functions of their arguments: no socket, no thread, no lock. ``embeddedserver.tcpserver``
builds the steps and calls these when a step fails; nothing here is public.

Sections: planned steps and stream clients - engine failures in tcpserver words - data left
unread.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .record import Failure, show_bytes
from .steps import ReadStep, Step

__all__ = ["Planned", "StreamClient", "explain", "unread_failure"]

# ---------------------------------------------------------------------------
# planned steps: what the user wrote, and the engine step
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """One step of a TcpServer script: what the user wrote, and the engine step."""

    label: str  # as the user wrote it, e.g. "expect_bytes(b'hi')"
    kind: str  # connect, bytes, frame, send, close, disconnect
    timeout: float
    step: Step | None = None

    def __repr__(self) -> str:
        return self.label

    def expected_bytes(self) -> bytes | None:  # used by Failure for the difference line
        return self.step.expected_bytes() if isinstance(self.step, ReadStep) else None


@dataclass
class StreamClient:
    """What an instrumented asyncio stream client did with its connection."""

    address: tuple[Any, ...]  # the client's (host, port): the server sees it as the peer
    consumed: int = 0  # bytes its StreamReader handed to the application
    closed: bool = False  # writer.close() was called
    wait_closed_awaited: bool = False


# ---------------------------------------------------------------------------
# engine failures in tcpserver words
# ---------------------------------------------------------------------------


def explain(
    planned: Planned, failure: Failure, unread: tuple[bytes, bool], steps: int
) -> Failure:
    """Reword an engine failure in terms of the tcpserver call that added the step;
    *unread* is (bytes the client did not read, whether that is exact) after a reset."""
    kind, got, t = failure.kind, failure.received or b"", planned.timeout
    want = planned.expected_bytes() or b""
    if planned.kind == "disconnect" and kind == "reset":
        if unread[0]:
            return unread_failure(
                replace(failure, step=planned, script_length=steps), *unread, reset=True
            )
        summary = "the client reset the connection (ECONNRESET) instead of closing it"
    elif kind == "timeout" and planned.kind == "disconnect":
        summary = (
            f"the client did not close the connection within {t:g} s: did the client close? "
            "(asyncio: writer.close(); await writer.wait_closed(). socket: sock.close())"
        )
    elif kind == "timeout" and planned.kind in ("bytes", "frame"):
        what = f"{len(want)} bytes" if planned.kind == "bytes" else "a frame"
        arrived = f"only {len(got)} bytes arrived" if got else "nothing arrived"
        summary = f"timed out after {t:g} s waiting for the client to send {what}: {arrived}"
    elif kind == "mismatch" and planned.kind == "disconnect":
        summary = (
            f"unexpected data while waiting for the client to disconnect: "
            f"it sent {len(got)} more bytes instead of closing"
        )
    elif kind == "mismatch" and planned.kind == "frame":
        summary = f"wrong frame from the client: {failure.summary}"
    elif kind == "mismatch":
        summary = f"wrong bytes from the client: first difference at byte offset {failure.offset}"
    elif kind == "closed" and planned.kind == "bytes":
        summary = (
            f"the client closed the connection after sending only {len(got)} of the "
            f"{len(want)} expected bytes"
        )
    elif kind == "closed" and planned.kind == "frame":
        summary = (
            f"the client closed the connection before the frame was complete "
            f"({len(got)} bytes of it arrived)"
        )
    elif kind == "closed":
        summary = "the client had already closed the connection (EPIPE)"
    elif kind == "reset":
        doing = "sending" if planned.kind == "send" else "waiting for data"
        summary = f"the client reset the connection (ECONNRESET) while the server was {doing}"
    else:
        summary = failure.summary
    return replace(failure, summary=summary, step=planned, script_length=steps)


# ---------------------------------------------------------------------------
# data left unread: the client closed before reading everything
# ---------------------------------------------------------------------------


def unread_failure(failure: Failure, unread: bytes, exact: bool, reset: bool) -> Failure:
    how = " (its close arrived as a reset, ECONNRESET)" if reset else ""
    if exact:
        summary = (
            f"the client closed the connection with {len(unread)} bytes the server sent "
            f"still unread{how}: {show_bytes(unread)}"
        )
    else:
        summary = (
            f"the client closed the connection while data the server sent was still "
            f"unread{how}; the bytes sent since the client last sent anything: "
            f"{show_bytes(unread)} ({len(unread)} bytes)"
        )
    return replace(
        failure, kind="unread", summary=summary, received=None, offset=None,
        expected="the client to read everything the server sent, then close",
    )
