"""What the command line and the demo print, and the name they print it under."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ._text import format_address
from .record import ConnectionRecord, Event, show_bytes

if TYPE_CHECKING:
    from ._runtime import BaseServer

__all__ = [
    "CLIENT_ARROWS",
    "PROG",
    "PROXY_ARROWS",
    "Interrupted",
    "emit",
    "event_line",
    "on_sigterm",
    "signals_blocked",
    "signals_stop",
    "wait_for_count",
]

#: How the command line is invoked, in its usage text and the demo's hints.
PROG = "python -m embeddedserver"

# The main thread waits for connections in slices this long; a slice that ends is
# simply renewed. It only bounds each wait (Ctrl-C interrupts any wait at once).
_WAIT_SLICE = 3600.0

#: How a server's transcript line names what the client sent and what the server sent.
CLIENT_ARROWS = ("<- client", "-> server")
#: The same for a proxy, which sits between the two.
PROXY_ARROWS = ("client -> server", "server -> client")


def emit(text: str = "") -> None:
    """Print one block of output at once; a closed stdout (a pipe) is not an error."""
    try:
        print(text, flush=True)
    except (BrokenPipeError, ValueError):
        pass


def event_line(
    record: ConnectionRecord, event: Event, width: int,
    arrows: tuple[str, str] = CLIENT_ARROWS,
) -> str:
    """One line of a live transcript: ``#1    0.002s  <- client 5 bytes  b'hello'``."""
    head = f"#{record.number} {event.at:8.3f}s  "
    if event.kind == "note":
        text = event.text
        if text == "connected":
            text += f" from {format_address(record.peer)}"
        return head + text
    arrow = arrows[0] if event.kind == "recv" else arrows[1]
    note = f"  {event.text}" if event.text else ""
    return f"{head}{arrow} {len(event.data)} bytes  {show_bytes(event.data, width)}{note}"


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised in the main thread and handled like Ctrl-C."""


def on_sigterm(signum: int, frame: object) -> None:
    raise Interrupted()


@contextlib.contextmanager
def signals_blocked() -> Iterator[None]:
    """Block SIGINT/SIGTERM while threads start, so they inherit the mask and those
    signals always reach the main thread (and interrupt its wait)."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def signals_stop() -> Iterator[None]:
    """Within the block, Ctrl-C raises KeyboardInterrupt and SIGTERM ``Interrupted``,
    even when this process was started with SIGINT ignored (as a shell's background
    job is); the old handlers come back after it."""
    old: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        old[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
        old[signal.SIGTERM] = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        for signum, handler in old.items():
            if handler is not None:
                signal.signal(signum, handler)


def wait_for_count(
    server: BaseServer, count: int | None, after_each: Callable[[], object] | None = None
) -> int:
    """Wait until *count* connections to *server* have ended (None: until interrupted),
    calling *after_each* after each one; return how many ended. Ctrl-C and SIGTERM
    (``signals_stop``) interrupt the wait with their exception."""
    done = 0
    while count is None or done < count:
        try:
            server.wait_for_connections(done + 1, timeout=_WAIT_SLICE)
        except TimeoutError:
            continue
        done += 1
        if after_each is not None:
            after_each()
    return done
