"""Properties of the engine, checked with hypothesis against real loopback servers.

1. A random script of reads, sends, frames and delimited messages, and a client
   generated to follow it (its bytes cut at random points), always passes, and the
   transcript is exactly the script's exchanges in order.
2. Random bytes against an exact expectation fail at the first differing byte (or,
   when they are a short prefix, as a close at the byte where they ended), both in the
   pure ``Inbox`` and on a real server.
3. Garbage passed as a command list raises TypeError or ValueError when the server is
   built, never later; steps built from random arguments either raise one of those at
   construction or run without an engine error.

Example counts stay modest (each example starts a server); ``deadline=None`` because a
loaded CI machine makes any per-example deadline flaky.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
import re
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from embeddedserver import (
    RECEIVE,
    AcceptAndClose,
    Close,
    CommandServer,
    Delay,
    Drip,
    Expect,
    ExpectFrame,
    ExpectRegex,
    Garbage,
    HalfClose,
    Hang,
    Inbox,
    Mismatch,
    ReadFrame,
    ReadLine,
    ReadUntil,
    Receive,
    Reset,
    Send,
    SendFrame,
    Step,
    compile_script,
)

CLIENT_TIMEOUT = 30.0
LONG = 120.0  # a server read timeout no example waits for
SERVER_EXAMPLES = settings(
    deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
)
PURE_EXAMPLES = settings(deadline=None, max_examples=300)

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """One step of a generated script and what the client does for it.

    *wire* is what crosses the connection for the step; *chunk* what the server
    records for it (a read step's chunk, or the bytes a send step sent)."""

    step: Any
    reads: bool  # True: the server reads *wire*; False: the server sends it
    wire: bytes

    @property
    def event(self) -> tuple[str, bytes]:
        return ("recv" if self.reads else "send", self.wire)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"the server closed after {len(data)} of {n} bytes")
        data += chunk
    return bytes(data)


def read_to_eof(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def first_difference(expected: bytes, got: bytes) -> int | None:
    pairs = zip(expected, got, strict=False)
    return next((i for i, (a, b) in enumerate(pairs) if a != b), None)


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    """*data* split at the given offsets (taken modulo its length)."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


PREFIXES = {">I": 2**16, ">H": 2**16, "<Q": 2**16, "!B": 255, "<H": 2**16}

payloads = st.binary(min_size=1, max_size=48)
frame_payloads = st.binary(max_size=48)
prefixes = st.sampled_from(sorted(PREFIXES))


def _frame(prefix: str, payload: bytes) -> bytes:
    return struct.pack(prefix, len(payload)) + payload


@st.composite
def delimited(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """(body, delimiter) such that the delimiter first occurs right after the body."""
    delimiter = draw(st.binary(min_size=1, max_size=4))
    body = draw(st.binary(max_size=48)).replace(delimiter, b"")
    assume((body + delimiter).find(delimiter) == len(body))
    return body, delimiter


@st.composite
def exchanges(draw: st.DrawFn) -> Exchange:
    kind = draw(st.sampled_from([
        "expect", "expect_text", "regex", "receive", "count", "until", "line", "frame",
        "expect_frame", "send", "send_text", "send_step", "send_frame", "garbage",
    ]))
    if kind == "expect":
        data = draw(payloads)
        return Exchange(Expect(data), True, data)
    if kind == "expect_text":
        text = draw(st.text(min_size=1, max_size=24))
        return Exchange(Expect(text), True, text.encode("utf-8"))
    if kind == "regex":
        data = draw(payloads)
        return Exchange(ExpectRegex(re.escape(data)), True, data)
    if kind in ("receive", "count"):  # "at least n": only safe before a send, see below
        data = draw(payloads)
        return Exchange(Receive(len(data)) if kind == "receive" else len(data), True, data)
    if kind == "until":
        body, delimiter = draw(delimited())
        return Exchange(ReadUntil(delimiter), True, body + delimiter)
    if kind == "line":
        body = draw(st.binary(max_size=48)).replace(b"\n", b"")
        return Exchange(ReadLine(), True, body + b"\n")
    if kind in ("frame", "expect_frame"):
        prefix = draw(prefixes)
        payload = draw(frame_payloads)
        step = ReadFrame(prefix) if kind == "frame" else ExpectFrame(payload, prefix)
        return Exchange(step, True, _frame(prefix, payload))
    if kind == "send":
        data = draw(payloads)
        return Exchange(data, False, data)
    if kind == "send_text":
        text = draw(st.text(min_size=1, max_size=24))
        return Exchange(text, False, text.encode("utf-8"))
    if kind == "send_step":
        data = draw(payloads)
        return Exchange(Send(data), False, data)
    if kind == "send_frame":
        prefix = draw(prefixes)
        payload = draw(frame_payloads)
        return Exchange(SendFrame(payload, prefix), False, _frame(prefix, payload))
    noise = Garbage(draw(st.integers(1, 64)), draw(st.integers(0, 2**32)))
    return Exchange(noise, False, noise.data)


def _greedy(ex: Exchange) -> bool:
    return isinstance(ex.step, (int, Receive))


@st.composite
def scripts(draw: st.DrawFn) -> list[Exchange]:
    """A script of 1-8 exchanges. An "at least n bytes" read takes whatever has arrived,
    so one followed by another read becomes an exact Expect: the client would
    legitimately send both messages back to back."""
    items = draw(st.lists(exchanges(), min_size=1, max_size=8))
    fixed = []
    for i, ex in enumerate(items):
        nxt = items[i + 1] if i + 1 < len(items) else None
        if _greedy(ex) and nxt is not None and nxt.reads:
            ex = Exchange(Expect(ex.wire), True, ex.wire)
        fixed.append(ex)
    return fixed


# ---------------------------------------------------------------------------
# 1. a client that follows a random script always passes
# ---------------------------------------------------------------------------


@SERVER_EXAMPLES
@given(
    script=scripts(),
    cuts=st.lists(st.integers(0, 64), max_size=4),
    concurrent=st.booleans(),
)
def test_a_client_following_a_random_script_passes_with_a_matching_transcript(
    script: list[Exchange], cuts: list[int], concurrent: bool
) -> None:
    server = CommandServer(
        [ex.step for ex in script], verbose=False, timeout=LONG, concurrent=concurrent
    )
    try:
        assert server.port is not None
        with socket.create_connection(("127.0.0.1", server.port), CLIENT_TIMEOUT) as sock:
            for ex in script:
                if ex.reads:
                    for piece in cut(ex.wire, cuts):
                        sock.sendall(piece)
                else:
                    assert recv_exactly(sock, len(ex.wire)) == ex.wire
            assert read_to_eof(sock) == b""  # the script ended: the server closed
        server.wait_for_connections(1, CLIENT_TIMEOUT)
    finally:
        server.stop()
    server.check()
    record = server.connections[0]
    assert [(e.kind, e.data) for e in record.events if e.kind != "note"] == [
        ex.event for ex in script
    ]
    assert server.received == [ex.wire for ex in script if ex.reads]
    assert record.ended == "server closed"


# ---------------------------------------------------------------------------
# 2. wrong bytes fail at the right offset
# ---------------------------------------------------------------------------


@PURE_EXAMPLES
@given(
    expected=st.binary(min_size=1, max_size=64),
    got=st.binary(max_size=80),
    cuts=st.lists(st.integers(0, 80), max_size=6),
)
@example(expected=b"\xb0", got=b"\xb0\x00", cuts=[1])  # more bytes after the step completed
def test_inbox_reports_the_first_wrong_byte(
    expected: bytes, got: bytes, cuts: list[int]
) -> None:
    inbox = Inbox()
    inbox.begin(Expect(expected))
    diff = first_difference(expected, got)
    pieces = [*cut(got, cuts), b""]  # b"" is EOF
    outcome: bytes | Mismatch | None = None
    while pieces:
        inbox.feed(pieces.pop(0))
        try:
            outcome = inbox.poll()
        except Mismatch as exc:
            outcome = exc
        if outcome is not None:
            break
    if diff is not None:
        assert isinstance(outcome, Mismatch)
        assert outcome.offset == diff
        assert len(outcome.received) > diff
        assert got.startswith(outcome.received)
    elif len(got) < len(expected):
        assert isinstance(outcome, Mismatch)
        assert outcome.offset == len(got)
        assert outcome.received == got
    else:
        assert outcome == expected
        for piece in pieces[:-1]:  # what arrives after the step completed stays buffered
            inbox.feed(piece)
        assert bytes(inbox.buffer) == got[len(expected):]


@SERVER_EXAMPLES
@given(expected=st.binary(min_size=1, max_size=64), got=st.binary(max_size=80))
def test_a_server_reports_the_first_wrong_byte(expected: bytes, got: bytes) -> None:
    server = CommandServer([Expect(expected), b"ok"], verbose=False, timeout=LONG)
    try:
        assert server.port is not None
        with socket.create_connection(("127.0.0.1", server.port), CLIENT_TIMEOUT) as sock:
            sock.sendall(got)
            sock.shutdown(socket.SHUT_WR)
            try:
                reply = read_to_eof(sock)
            except ConnectionResetError:  # the server closed with our extra bytes unread
                reply = b""
        server.wait_for_connections(1, CLIENT_TIMEOUT)
    finally:
        server.stop()
    diff = first_difference(expected, got)
    if diff is None and len(got) >= len(expected):
        # Bytes past the expectation are a failure when the server saw them before it
        # closed (the verdict on extra bytes); one that closed first saw none.
        extra = [f for f in server.errors if f.kind == "extra bytes"]
        assert len(got) > len(expected) or not extra, server.failure_report()
        assert [f for f in server.errors if f not in extra] == [], server.failure_report()
        assert reply in (b"ok", b"")
        assert server.received == [expected]
        return
    assert len(server.errors) == 1, server.failure_report()
    failure = server.errors[0]
    assert failure.step_index == 0
    assert failure.received is not None
    if diff is not None:
        assert (failure.kind, failure.offset) == ("mismatch", diff)
        assert got.startswith(failure.received) and len(failure.received) > diff
        assert f"offset {diff}" in failure.message()
    else:
        assert (failure.kind, failure.offset) == ("closed", len(got))
        assert failure.received == got


# ---------------------------------------------------------------------------
# 3. garbage fails at construction, never later
# ---------------------------------------------------------------------------

STEP_CLASSES = [
    Receive, ReadUntil, ReadLine, ReadFrame, Expect, ExpectFrame, Send, SendFrame,
    Garbage, Drip, Delay, Close, Reset, HalfClose, Hang, AcceptAndClose,
]

not_callable = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.booleans(),
    st.integers(max_value=-1),
    st.complex_numbers(),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sets(st.integers(), max_size=2),
    st.lists(st.integers(), max_size=2),
    st.tuples(st.binary(max_size=2)),
    st.fractions(),
    st.sampled_from([object(), Ellipsis, NotImplemented, 1j, range(3)]),
)
invalid_commands = st.one_of(not_callable, st.sampled_from(STEP_CLASSES))
valid_commands = st.one_of(
    st.integers(1, 64),  # a byte count starts at 1: a bare 0 is rejected
    st.binary(max_size=8),
    st.text(max_size=8),
    st.just(RECEIVE),
    st.builds(Expect, st.binary(min_size=1, max_size=8)),
    st.builds(Send, st.binary(max_size=8)),
)


@st.composite
def garbage_lists(draw: st.DrawFn) -> list[Any]:
    before = draw(st.lists(valid_commands, max_size=3))
    after = draw(st.lists(st.one_of(valid_commands, invalid_commands), max_size=3))
    bad = draw(st.one_of(
        invalid_commands.map(lambda c: [c]),
        st.sampled_from([Close(), Reset(), AcceptAndClose()]).map(lambda c: [c, b"x"]),
        st.just([HalfClose(), b"late"]),
        st.just([HalfClose(), HalfClose()]),
    ))
    return [*before, *bad, *after]


@PURE_EXAMPLES
@given(commands=st.lists(valid_commands, max_size=6))
def test_valid_commands_compile(commands: list[Any]) -> None:
    assert len(compile_script(commands)) == len(commands)


@SERVER_EXAMPLES
@given(
    commands=st.one_of(
        garbage_lists(),  # a list or tuple is a script: only other things are garbage here
        not_callable.filter(lambda c: not isinstance(c, (list, tuple))),
    )
)
def test_garbage_commands_raise_at_construction(commands: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        server = CommandServer(commands, verbose=False)
        server.stop()  # reached only if construction wrongly accepted the garbage


seconds = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-2, 10**12),
    st.none(),
    st.text(max_size=2),
    st.booleans(),
)
byte_args = st.one_of(st.binary(max_size=6), st.text(max_size=6), st.integers(), st.none())
prefix_args = st.one_of(st.text(max_size=3), st.sampled_from(sorted(PREFIXES)), st.integers())

step_builders: list[st.SearchStrategy[Callable[[], Step]]] = [
    st.builds(lambda n, t: lambda: Receive(n, timeout=t), st.one_of(st.integers(-2, 8), byte_args),
              seconds),
    st.builds(lambda d, t: lambda: ReadUntil(d, timeout=t), byte_args, seconds),
    st.builds(lambda p, t: lambda: ReadFrame(p, timeout=t), prefix_args, seconds),
    st.builds(lambda d, p: lambda: ExpectFrame(d, p), byte_args, prefix_args),
    st.builds(lambda d, p: lambda: SendFrame(d, p), byte_args, prefix_args),
    st.builds(lambda d, t: lambda: Expect(d, timeout=t), byte_args, seconds),
    st.builds(lambda p: lambda: ExpectRegex(p), st.one_of(st.text(max_size=4), byte_args)),
    st.builds(lambda s: lambda: Delay(s), seconds),
    st.builds(lambda s: lambda: Hang(s), seconds),
    st.builds(lambda n, s: lambda: Garbage(n, s), st.one_of(st.integers(-2, 64), byte_args),
              st.one_of(st.integers(), byte_args)),
    st.builds(lambda d, c, i: lambda: Drip(d, c, i), byte_args, st.integers(-1, 4), seconds),
]


@SERVER_EXAMPLES
@given(build=st.one_of(step_builders), sent=st.binary(max_size=16), timeout=seconds)
@example(build=lambda: Hang(math.inf), sent=b"", timeout=None)  # once an OverflowError
@example(build=lambda: Receive(5, timeout=math.inf), sent=b"abc", timeout=None)
@example(build=lambda: Delay(1e10), sent=b"", timeout=None)  # more ms than poll() takes
@example(build=lambda: Delay(math.nan), sent=b"", timeout=None)  # once waited forever
@example(build=lambda: Receive(5), sent=b"abc", timeout=math.inf)
def test_steps_from_random_arguments_fail_at_construction_or_run_cleanly(
    build: Callable[[], Step], sent: bytes, timeout: Any
) -> None:
    try:
        step = build()
        server = CommandServer([step, b"done"], verbose=False, timeout=timeout or LONG)
    except (TypeError, ValueError):
        return
    try:
        assert server.port is not None
        with socket.create_connection(("127.0.0.1", server.port), CLIENT_TIMEOUT) as sock:
            with contextlib.suppress(OSError):  # the server may be done with us already
                sock.sendall(sent)
                sock.shutdown(socket.SHUT_WR)
            server.wait_for_connections(1, CLIENT_TIMEOUT, finished=False)
        # A step that waits on (a Delay, a Hang, a long timeout) is ended by stop().
    finally:
        server.stop()
    engine_errors = [f for f in server.errors if f.kind == "error"]
    assert not engine_errors, engine_errors[0].message()
    assert all(f.kind in ("mismatch", "closed", "timeout", "reset", "unfinished",
                          "extra bytes") for f in server.errors)


def test_cut_covers_the_data() -> None:
    rng = random.Random(0)
    for _ in range(100):
        data = rng.randbytes(rng.randrange(0, 20))
        cuts = [rng.randrange(0, 30) for _ in range(rng.randrange(0, 5))]
        assert b"".join(cut(data, cuts)) == data
