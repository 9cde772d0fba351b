"""The script runner (``embeddedserver._runner.ScriptRunner``) driven by hand: no socket, no
thread, no sleep. Each test plays the I/O shell (``_connection.Connection.run``) itself: it
asks ``next_action(now)`` with a fake monotonic time it chooses, performs nothing real, and
feeds back what a read returned (``receive``; ``b""`` is EOF), ``done()``, ``partly_sent``
and ``io_error``. So the whole script language is checked here, step kind by step kind, with
what each one records, what it leaves in the inbox, and how it fails; every test of a wrong
client has a twin in which the right client passes.

Sections: helpers - read steps (completing, wrong bytes and EOF, deadlines) - sends - Drip
and Delay - Hang - Close, Reset, HalfClose, Call - the end of a script - TLS - growing
scripts - shared compiled scripts - properties - known defects.
"""

from __future__ import annotations

import itertools
import re
import struct
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embeddedserver._runner import Action, ScriptRunner
from embeddedserver.record import ConnectionRecord
from embeddedserver.steps import (
    RECEIVE,
    AcceptAndClose,
    Call,
    Close,
    Delay,
    Drip,
    Expect,
    ExpectClose,
    ExpectFrame,
    ExpectRegex,
    Garbage,
    HalfClose,
    Hang,
    PerConnection,
    ReadFrame,
    ReadLine,
    ReadStep,
    ReadUntil,
    ReadUntilClose,
    Receive,
    Reset,
    Send,
    SendFrame,
    Step,
    compile_script,
)
from embeddedserver.tls import AbortHandshake, PlaintextReply

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

PEER = ("127.0.0.1", 40000)
#: The runner's own read timeout in these tests (a step's ``timeout=`` wins over it).
TIMEOUT = 5.0
#: What ends a drive: the script is over, failed, or waits for more steps.
FINAL = frozenset({Action.DONE, Action.CLOSE, Action.RESET, Action.FAILED, Action.IDLE})

PURE_EXAMPLES = settings(deadline=None, max_examples=200)


def make_runner(
    commands: Any = (),
    *,
    timeout: float = TIMEOUT,
    growing: bool = False,
    on_chunk: Callable[[bytes], None] | None = None,
    emit: Callable[[ConnectionRecord, str], None] | None = None,
    tls: bool = False,
    first_index: int = 0,
) -> ScriptRunner:
    """A runner for connection #1 from PEER over ``compile_script(commands)`` (as a list
    for a growing script, which ``append()`` needs)."""
    steps = compile_script(commands)
    return ScriptRunner(
        list(steps) if growing else steps,
        ConnectionRecord(1, PEER),
        timeout,
        emit=emit,
        on_chunk=on_chunk,
        tls=tls,
        growing=growing,
        first_index=first_index,
    )


def drive(
    runner: ScriptRunner,
    inputs: Iterable[bytes] = (),
    *,
    now: float = 0.0,
    stop_at: Action | None = None,
) -> list[Action]:
    """Play a well-behaved I/O shell with a fake clock and no socket.

    On READ, feed the next of *inputs* (``b""`` is EOF), stopping there when they have run
    out; SEND, HALF_CLOSE, CALL and START_TLS are reported ``done()`` at once (a CALL's
    function is not called); PAUSE moves the clock to its deadline. Returns every action
    asked for; the last is where the drive stopped (READ with no input left, a FINAL one,
    or the first *stop_at*, left undone for the test to answer).
    """
    pending = list(inputs)
    actions: list[Action] = []
    for _ in range(10_000):  # a runner that never settles is a bug, not a hang of the suite
        action = runner.next_action(now)
        actions.append(action)
        if action in FINAL or action is stop_at:
            return actions
        if action is Action.READ:
            if not pending:
                return actions
            runner.receive(pending.pop(0))
        elif action is Action.PAUSE:
            assert runner.deadline is not None
            now = runner.deadline
        else:
            runner.done()
    raise AssertionError(f"the runner never settled: {actions[-10:]}")


def feed(runner: ScriptRunner, *pieces: bytes, now: float = 0.0) -> list[Action]:
    """Feed *pieces* one read at a time; the action asked for after each."""
    actions = []
    for piece in pieces:
        runner.receive(piece)
        actions.append(runner.next_action(now))
    return actions


def recvs(runner: ScriptRunner) -> list[tuple[bytes, str]]:
    """The (data, text) of each "recv" event of the runner's record."""
    return [(e.data, e.text) for e in runner.record.events if e.kind == "recv"]


def sends(runner: ScriptRunner) -> list[tuple[bytes, str]]:
    """The (data, text) of each "send" event of the runner's record."""
    return [(e.data, e.text) for e in runner.record.events if e.kind == "send"]


def notes(runner: ScriptRunner) -> list[str]:
    return [e.text for e in runner.record.events if e.kind == "note"]


def frame(payload: bytes, prefix: str = ">I") -> bytes:
    """*payload* behind its length prefix, as a client sends a frame."""
    return struct.pack(prefix, len(payload)) + payload


def raised(exc: BaseException) -> BaseException:
    """*exc* after it was raised and caught, so it carries a traceback as a real one does."""
    try:
        raise exc
    except BaseException as caught:
        return caught


# ---------------------------------------------------------------------------
# read steps: each kind completes on bytes fed in pieces, and leaves the rest
# ---------------------------------------------------------------------------

# (step, pieces fed one read at a time: only the last completes it, chunk, left over)
READ_CASES: list[tuple[Any, list[bytes], bytes, bytes]] = [
    (RECEIVE, [b"hello"], b"hello", b""),
    (Receive(), [b"hi"], b"hi", b""),
    (Receive(5), [b"ab", b"cd", b"efg"], b"abcdefg", b""),  # at least n: all that arrived
    (5, [b"abc", b"de"], b"abcde", b""),  # a bare int is Receive(n)
    (ReadUntil(b"\r\n\r\n"), [b"GET / HTTP/1.1\r", b"\n\r", b"\nBODY"],
     b"GET / HTTP/1.1\r\n\r\n", b"BODY"),
    (ReadUntil("END"), [b"aE", b"N", b"Dz"], b"aEND", b"z"),
    (ReadLine(), [b"hel", b"lo\nwor"], b"hello\n", b"wor"),
    (ReadFrame(), [b"\x00\x00", b"\x00\x03ab", b"cX"], frame(b"abc"), b"X"),
    (ReadFrame(">H"), [b"\x00", b"\x02h", b"i++"], frame(b"hi", ">H"), b"++"),
    (ReadUntilClose(), [b"ab", b"cd", b""], b"abcd", b""),
    (Expect(b"PING\r\n"), [b"PI", b"NG", b"\r\nNEXT"], b"PING\r\n", b"NEXT"),
    (Expect("héllo"), [b"h\xc3", b"\xa9llo!"], "héllo".encode(), b"!"),
    (Expect(re.compile(rb"GET /\S+ ")), [b"GET /ind", b"ex.html HTTP"],
     b"GET /index.html ", b"HTTP"),
    (Expect(re.compile(rb"\d+\n"), within=ReadLine()), [b"12", b"3\nX"], b"123\n", b"X"),
    (Expect(lambda chunk: chunk.startswith(b"he"), within=ReadLine()),
     [b"he", b"llo\nmore"], b"hello\n", b"more"),
    (Expect(lambda chunk: b"@" in chunk), [b"a@b"], b"a@b", b""),  # within one read
    (ExpectRegex(rb"HTTP/1\.[01]"), [b"HTTP/1", b".1 200"], b"HTTP/1.1", b" 200"),
    (ExpectRegex("ab+c;", within=ReadUntil(b";")), [b"ab", b"bbc;rest"], b"abbbc;", b"rest"),
    (ExpectFrame(b"hello"), [b"\x00\x00\x00\x05he", b"llo!"], frame(b"hello"), b"!"),
    (ExpectFrame("ok", ">H"), [b"\x00\x02o", b"k"], frame(b"ok", ">H"), b""),
    (ExpectClose(), [b""], b"", b""),
]
READ_IDS = [repr(case[0]) for case in READ_CASES]


@pytest.mark.parametrize(("step", "pieces", "chunk", "rest"), READ_CASES, ids=READ_IDS)
def test_a_read_step_completes_on_bytes_fed_in_pieces_and_leaves_the_rest(
    step: Any, pieces: list[bytes], chunk: bytes, rest: bytes
) -> None:
    chunks: list[bytes] = []
    runner = make_runner([step, b"next"], on_chunk=chunks.append)
    assert runner.next_action(now=0.0) is Action.READ
    actions = feed(runner, *pieces, now=0.1)
    assert actions[:-1] == [Action.READ] * (len(pieces) - 1)  # not complete before the last
    assert actions[-1] is Action.SEND and runner.outgoing == b"next"
    assert runner.failure is None
    assert recvs(runner) == [(chunk, "")]
    assert chunks == [chunk]
    assert bytes(runner.inbox.buffer) == rest


def test_bytes_beyond_a_read_step_are_the_next_read_steps_bytes() -> None:
    runner = make_runner([Expect(b"HELO\r\n"), ReadLine(), Receive(3)])
    # The first read brings both lines and part of the third step's bytes.
    assert drive(runner, [b"HELO\r\nMAIL FROM:<a>\r\nab", b"c"]) == [
        Action.READ, Action.READ, Action.DONE
    ]
    assert [data for data, _ in recvs(runner)] == [b"HELO\r\n", b"MAIL FROM:<a>\r\n", b"abc"]


def test_a_read_step_completes_on_bytes_already_buffered_without_a_read() -> None:
    runner = make_runner([ReadLine(), ReadLine(), "ok"])
    assert runner.next_action(now=0.0) is Action.READ
    runner.receive(b"one\ntwo\n")
    assert runner.next_action(now=0.0) is Action.SEND  # both lines taken in one go
    assert [data for data, _ in recvs(runner)] == [b"one\n", b"two\n"]


def test_no_read_step_completes_on_nothing() -> None:
    runner = make_runner([Receive(), "x"])
    assert runner.next_action(now=0.0) is Action.READ
    assert runner.next_action(now=1.0) is Action.READ
    assert recvs(runner) == []


def test_read_until_close_and_expect_close_note_the_clients_eof() -> None:
    for step in (ReadUntilClose(), ExpectClose()):
        runner = make_runner([step])
        drive(runner, [b""])
        assert notes(runner) == ["client closed its side (EOF)"]


def test_the_live_log_gets_each_chunk_read_and_each_send() -> None:
    logged: list[str] = []
    runner = make_runner([ReadLine(), "pong"], emit=lambda record, text: logged.append(text))
    drive(runner, [b"ping\n"])
    assert logged == ["read 5 bytes: b'ping\\n'", "sent 4 bytes: b'pong'"]


# ---------------------------------------------------------------------------
# read steps: wrong bytes fail at once, EOF before the end fails as "closed"
# ---------------------------------------------------------------------------

# (step, right bytes, wrong bytes, offset of the first wrong byte or None, summary part)
WRONG_CASES: list[tuple[ReadStep, bytes, bytes, int | None, str]] = [
    (Expect(b"PING\r\n"), b"PING\r\n", b"PONG\r\n", 1, "wrong bytes at offset 1"),
    (Expect(b"PING\r\n"), b"PING\r\n", b"X", 0, "wrong bytes at offset 0"),
    (ExpectFrame(b"hello"), frame(b"hello"), frame(b"helpo"), 3, "wrong bytes at offset 3"),
    (ExpectFrame(b"hello"), frame(b"hello"), frame(b"hi"), None,
     "frame length prefix says 2 bytes, expected 5"),
    (ExpectClose(), b"", b"data", 0, "unexpected data while waiting for the client to close"),
    (Expect(lambda chunk: chunk.rstrip().isdigit(), within=ReadLine()), b"123\n", b"12a\n", None,
     "the data did not match"),
    (Expect(re.compile(rb"\d+\n"), within=ReadLine()), b"42\n", b"4x2\n", None,
     "the data did not match"),
    (ExpectRegex(rb"[A-Z]+;", within=ReadUntil(b";")), b"ABC;", b"AbC;", None,
     "the data did not match"),
]
WRONG_IDS = [f"{case[0]!r}-{case[2]!r}" for case in WRONG_CASES]


@pytest.mark.parametrize(("step", "right", "wrong", "offset", "summary"), WRONG_CASES,
                         ids=WRONG_IDS)
def test_wrong_bytes_fail_the_step_at_once_naming_step_offset_and_what_arrived(
    step: ReadStep, right: bytes, wrong: bytes, offset: int | None, summary: str
) -> None:
    runner = make_runner([RECEIVE, step, "reply"])
    drive(runner, [b"hello"])
    assert runner.next_action(now=0.0) is Action.READ
    runner.receive(wrong)
    assert runner.next_action(now=0.001) is Action.FAILED  # long before the deadline
    failure = runner.failure
    assert failure is not None
    assert (failure.kind, failure.step_index, failure.offset) == ("mismatch", 1, offset)
    assert failure.step is step and failure.script_length == 3
    assert summary in failure.summary
    assert failure.expected == step.describe()
    assert failure.received is not None and failure.received in wrong
    assert recvs(runner)[-1] == (failure.received, "(partial, step failed)")
    message = failure.message()
    assert f"step 1 of 3: {step!r}" in message
    assert "connection #1 from 127.0.0.1:40000" in message
    assert f"received: {failure.received!r}" in message
    assert (f"first difference at byte offset {offset}" in message) == (offset is not None)
    assert runner.next_action(now=0.002) is Action.FAILED  # and stays failed
    assert runner.ending_after(failure.kind) == "failed"


@pytest.mark.parametrize(("step", "right", "wrong", "offset", "summary"), WRONG_CASES,
                         ids=WRONG_IDS)
def test_the_right_bytes_pass_the_step_that_wrong_bytes_fail(
    step: ReadStep, right: bytes, wrong: bytes, offset: int | None, summary: str
) -> None:
    runner = make_runner([RECEIVE, step, "reply"])
    actions = drive(runner, [b"hello", right])
    assert actions[-1] is Action.DONE and runner.failure is None
    assert runner.record.sent == b"reply"
    assert [data for data, _ in recvs(runner)] == [b"hello", right]


def test_expect_fails_at_the_first_wrong_byte_even_when_it_arrives_in_a_later_piece() -> None:
    runner = make_runner([Expect(b"HELLO WORLD")])
    runner.next_action(now=0.0)
    assert feed(runner, b"HEL", b"LO W", b"Xrld") == [Action.READ, Action.READ, Action.FAILED]
    failure = runner.failure
    assert failure is not None and (failure.kind, failure.offset) == ("mismatch", 7)
    assert failure.received == b"HELLO WXrld"  # all that arrived, not just the expected length
    assert "first difference at byte offset 7: expected b'O' (0x4f), got b'X' (0x58)" in (
        failure.message()
    )
    assert recvs(runner) == [(b"HELLO WXrld", "(partial, step failed)")]


def test_a_failure_message_shows_binary_bytes_in_hex() -> None:
    runner = make_runner([Expect(b"\x00\x01\x02")])
    drive(runner, [b"\x00\x01\xff"])
    assert runner.failure is not None
    assert "received (hex): 00 01 ff" in runner.failure.message()


# (step, what arrives before the client closes)
EOF_CASES: list[tuple[Any, bytes]] = [
    (RECEIVE, b""),
    (Receive(5), b"abc"),
    (ReadUntil(b"\r\n\r\n"), b"GET / HTTP/1.1\r\n"),
    (ReadLine(), b"no newline"),
    (ReadFrame(), b"\x00\x00"),
    (ReadFrame(), b"\x00\x00\x00\x09short"),
    (Expect(b"PING\r\n"), b"PIN"),
    (Expect(b"PING\r\n"), b""),
    (Expect(re.compile(rb"\r\n")), b"no end"),
    (Expect(lambda chunk: True), b""),
    (Expect(lambda chunk: True, within=ReadLine()), b"half a li"),
    (ExpectFrame(b"hello"), b"\x00\x00\x00\x05hel"),
]


@pytest.mark.parametrize(("step", "before"), EOF_CASES, ids=[f"{s!r}-{b!r}" for s, b in EOF_CASES])
def test_eof_before_a_read_step_completes_fails_it_as_closed(step: Any, before: bytes) -> None:
    runner = make_runner([step, "reply"])
    runner.next_action(now=0.0)
    actions = feed(runner, *([before] if before else []), b"", now=0.5)
    assert actions[-1] is Action.FAILED
    failure = runner.failure
    assert failure is not None
    assert (failure.kind, failure.step_index) == ("closed", 0)
    assert failure.summary == "the client closed the connection before the step completed"
    assert (failure.received, failure.offset) == (before, len(before))
    assert "the data ended there" in failure.message()
    assert runner.ending_after(failure.kind) == "client closed"
    assert runner.record.sent == b""


def test_a_client_that_closes_after_the_whole_message_passes() -> None:
    runner = make_runner([Expect(b"PING\r\n"), "PONG"])
    runner.next_action(now=0.0)
    assert feed(runner, b"PI") == [Action.READ]
    runner.receive(b"NG\r\n")
    runner.receive(b"")  # the client's FIN right behind its last bytes
    assert drive(runner, now=0.1) == [Action.SEND, Action.DONE]
    assert runner.failure is None and runner.ending == "client closed"


def test_a_read_step_fails_at_once_on_bytes_that_arrived_with_the_eof() -> None:
    runner = make_runner([Expect(b"PING")])
    runner.next_action(now=0.0)
    runner.receive(b"PX")
    runner.receive(b"")
    assert runner.next_action(now=0.0) is Action.FAILED
    assert runner.failure is not None
    assert (runner.failure.kind, runner.failure.offset) == ("mismatch", 1)  # not "closed"


def test_a_predicate_that_raises_fails_the_step_with_its_traceback() -> None:
    def strict(chunk: bytes) -> bool:
        raise ValueError(f"cannot judge {chunk!r}")

    runner = make_runner([Expect(strict), "ok"])
    drive(runner, [b"abc"])
    failure = runner.failure
    assert failure is not None and failure.kind == "error"
    assert failure.summary == "ValueError: cannot judge b'abc'"
    assert "Traceback (most recent call last)" in failure.traceback
    assert "server-side traceback:" in failure.message()


def test_a_predicate_that_accepts_the_chunk_passes() -> None:
    runner = make_runner([Expect(lambda chunk: chunk == b"abc"), "ok"])
    assert drive(runner, [b"abc"])[-1] is Action.DONE and runner.failure is None


def test_a_chunk_hook_that_raises_fails_the_step_as_an_error() -> None:
    def broken(chunk: bytes) -> None:
        raise RuntimeError("the reader is gone")

    runner = make_runner([ReadLine(), "ok"], on_chunk=broken)
    drive(runner, [b"line\n"])
    assert runner.failure is not None
    assert (runner.failure.kind, runner.failure.summary) == (
        "error", "RuntimeError: the reader is gone"
    )


def test_a_reset_during_a_read_step_fails_it_as_reset_with_the_bytes_that_arrived() -> None:
    runner = make_runner([ReadLine(), "ok"])
    runner.next_action(now=0.0)
    runner.receive(b"half")
    assert runner.next_action(now=0.0) is Action.READ
    runner.io_error(ConnectionResetError())
    assert runner.next_action(now=0.0) is Action.FAILED
    failure = runner.failure
    assert failure is not None
    assert (failure.kind, failure.received) == ("reset", b"half")
    assert failure.summary == "the client reset the connection (ECONNRESET)"
    assert runner.record.ended == "client reset"
    assert recvs(runner) == [(b"half", "(partial, step failed)")]


# ---------------------------------------------------------------------------
# read steps: deadlines
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "seconds"),
    [(RECEIVE, TIMEOUT), (ReadLine(timeout=0.5), 0.5), (Expect(b"x", timeout=30), 30.0),
     (ReadFrame(timeout=2), 2.0), (ExpectClose(timeout=1.5), 1.5)],
    ids=["runner's", "ReadLine(timeout=0.5)", "Expect(timeout=30)", "ReadFrame(timeout=2)",
         "ExpectClose(timeout=1.5)"],
)
def test_a_read_step_times_out_only_when_the_time_passes_its_deadline(
    step: ReadStep, seconds: float
) -> None:
    runner = make_runner([step, "late"])
    assert runner.next_action(now=100.0) is Action.READ
    assert runner.deadline == 100.0 + seconds  # the step's own timeout wins over the runner's
    assert runner.next_action(now=100.0 + seconds - 0.001) is Action.READ
    assert runner.failure is None
    assert runner.next_action(now=100.0 + seconds) is Action.FAILED
    failure = runner.failure
    assert failure is not None
    assert (failure.kind, failure.step_index) == ("timeout", 0)
    assert failure.summary == (
        f"timed out after {seconds:g} s waiting for {step.describe()} (the client sent nothing)"
    )
    assert failure.expected == step.describe()
    assert runner.ending_after(failure.kind) == "timeout"
    assert runner.record.sent == b""


def test_a_timeout_says_how_many_bytes_arrived_and_records_them() -> None:
    runner = make_runner([ReadUntil(b"\r\n\r\n"), "late"])
    runner.next_action(now=0.0)
    assert feed(runner, b"GET / HT", b"TP/1.1\r\n", now=1.0) == [Action.READ, Action.READ]
    assert runner.next_action(now=TIMEOUT) is Action.FAILED
    failure = runner.failure
    assert failure is not None
    assert failure.summary.endswith("(16 bytes arrived)")
    assert failure.received == b"GET / HTTP/1.1\r\n"
    assert recvs(runner) == [(b"GET / HTTP/1.1\r\n", "(partial, step failed)")]


def test_bytes_that_complete_a_read_step_by_its_deadline_pass_it() -> None:
    runner = make_runner([ReadLine(timeout=1), "ok"])
    runner.next_action(now=0.0)
    runner.receive(b"just in time\n")
    assert runner.next_action(now=1.0) is Action.SEND and runner.failure is None


def test_a_read_steps_deadline_runs_from_when_the_step_starts() -> None:
    runner = make_runner([Delay(3), RECEIVE, ReadLine(timeout=1)])
    assert runner.next_action(now=0.0) is Action.PAUSE
    assert runner.next_action(now=3.0) is Action.READ and runner.deadline == 3.0 + TIMEOUT
    runner.receive(b"a")
    assert runner.next_action(now=7.5) is Action.READ and runner.deadline == 8.5


# ---------------------------------------------------------------------------
# sends
# ---------------------------------------------------------------------------

SEND_CASES: list[tuple[Any, bytes]] = [
    (b"raw bytes", b"raw bytes"),
    ("héllo", "héllo".encode()),
    (Send(bytearray(b"from a bytearray")), b"from a bytearray"),
    (Send(memoryview(b"view")), b"view"),
    (SendFrame(b"abc"), b"\x00\x00\x00\x03abc"),
    (SendFrame("hi", ">H"), b"\x00\x02hi"),
    (Garbage(16, seed=3), Garbage(16, seed=3).data),
]


@pytest.mark.parametrize(("command", "data"), SEND_CASES, ids=[repr(c) for c, _ in SEND_CASES])
def test_a_send_step_asks_for_a_send_and_is_recorded_only_when_done(
    command: Any, data: bytes
) -> None:
    logged: list[str] = []
    runner = make_runner([command], emit=lambda record, text: logged.append(text))
    assert runner.next_action(now=0.0) is Action.SEND
    assert runner.outgoing == data
    assert sends(runner) == [] and logged == []  # nothing went out yet
    runner.done()
    assert sends(runner) == [(data, "")]
    assert logged == [f"sent {len(data)} bytes: {data!r}"]
    assert runner.next_action(now=0.0) is Action.DONE


def test_garbage_is_the_same_bytes_for_the_same_seed() -> None:
    runner = make_runner([Garbage(100, seed=7)])
    runner.next_action(now=0.0)
    assert len(runner.outgoing) == 100 and runner.outgoing == Garbage(100, seed=7).data
    assert runner.outgoing != Garbage(100, seed=8).data


def test_a_partly_sent_send_records_the_bytes_that_went_out() -> None:
    runner = make_runner(["0123456789"])
    runner.next_action(now=0.0)
    runner.partly_sent(4, "the send failed")
    assert sends(runner) == [(b"0123", "(partial, the send failed)")]


def test_a_send_that_sent_nothing_records_nothing() -> None:
    runner = make_runner(["0123456789"])
    runner.next_action(now=0.0)
    runner.partly_sent(0, "the server stopped")
    assert sends(runner) == []


@pytest.mark.parametrize(
    ("exc", "kind", "ended", "summary"),
    [
        (BrokenPipeError(), "closed", "client closed",
         "the client had closed the connection (EPIPE)"),
        (ConnectionAbortedError(), "closed", "client closed",
         "the client had closed the connection (EPIPE)"),
        (ConnectionResetError(), "reset", "client reset",
         "the client reset the connection (ECONNRESET)"),
        (TimeoutError("the client read nothing for 5.0 s (4 of 10 bytes sent)"), "timeout",
         None, "the client read nothing for 5.0 s (4 of 10 bytes sent)"),
    ],
    ids=["EPIPE", "ECONNABORTED", "ECONNRESET", "stalled"],
)
def test_an_io_error_during_a_send_fails_the_step_by_its_kind(
    exc: OSError, kind: str, ended: str | None, summary: str
) -> None:
    runner = make_runner([RECEIVE, "0123456789", "more"])
    assert drive(runner, [b"go"], stop_at=Action.SEND) == [Action.READ, Action.SEND]
    assert runner.outgoing == b"0123456789"
    runner.partly_sent(4, "the send failed")
    runner.io_error(exc)
    assert runner.next_action(now=0.0) is Action.FAILED
    failure = runner.failure
    assert failure is not None
    assert (failure.kind, failure.step_index, failure.summary) == (kind, 1, summary)
    assert failure.received is None  # a send step reads nothing
    assert runner.record.ended == ended
    assert runner.ending_after(kind) == (ended or "timeout")
    assert sends(runner) == [(b"0123", "(partial, the send failed)")]
    assert "step 1 of 3: Send(b'0123456789')" in failure.message()


def test_a_send_that_completes_is_not_a_failure() -> None:
    runner = make_runner([RECEIVE, "0123456789", "more"])
    assert drive(runner, [b"go"])[-1] is Action.DONE
    assert runner.failure is None and runner.record.sent == b"0123456789more"


def test_only_the_first_io_error_counts() -> None:
    runner = make_runner(["data"])
    runner.next_action(now=0.0)
    runner.io_error(ConnectionResetError())
    runner.io_error(BrokenPipeError())
    assert runner.failure is not None and runner.failure.kind == "reset"


# ---------------------------------------------------------------------------
# Drip and Delay
# ---------------------------------------------------------------------------


def test_drip_sends_each_chunk_with_a_pause_measured_from_the_previous_chunk() -> None:
    runner = make_runner([Drip(b"abcde", chunk=2, interval=0.5)])
    assert runner.next_action(now=0.0) is Action.SEND and runner.outgoing == b"ab"
    runner.done()
    # The shell comes back at 3.0 (the send took that long): the gap runs from there.
    assert runner.next_action(now=3.0) is Action.PAUSE and runner.deadline == 3.5
    assert runner.next_action(now=3.499) is Action.PAUSE and runner.deadline == 3.5
    assert runner.next_action(now=3.5) is Action.SEND and runner.outgoing == b"cd"
    runner.done()
    assert runner.next_action(now=4.0) is Action.PAUSE and runner.deadline == 4.5
    assert runner.next_action(now=4.5) is Action.SEND and runner.outgoing == b"e"
    runner.done()
    assert runner.next_action(now=4.5) is Action.DONE
    assert sends(runner) == [(b"ab", ""), (b"cd", ""), (b"e", "")]


def test_drip_of_one_chunk_sends_it_without_a_pause() -> None:
    runner = make_runner([Drip(b"abc", chunk=10, interval=1), "next"])
    assert drive(runner) == [Action.SEND, Action.SEND, Action.DONE]
    assert sends(runner) == [(b"abc", ""), (b"next", "")]


def test_a_drip_cut_short_records_the_chunks_sent_and_the_partial_one() -> None:
    runner = make_runner([Drip(b"abcdef", chunk=3, interval=0.1)])
    runner.next_action(now=0.0)
    runner.done()
    assert runner.next_action(now=0.0) is Action.PAUSE
    assert runner.next_action(now=0.1) is Action.SEND and runner.outgoing == b"def"
    runner.partly_sent(1, "the send failed")
    runner.io_error(BrokenPipeError())
    assert runner.next_action(now=0.1) is Action.FAILED
    assert sends(runner) == [(b"abc", ""), (b"d", "(partial, the send failed)")]


def test_delay_pauses_until_its_time_then_runs_the_next_step() -> None:
    runner = make_runner([Delay(2), "after"])
    assert runner.next_action(now=10.0) is Action.PAUSE and runner.deadline == 12.0
    assert runner.next_action(now=11.999) is Action.PAUSE and runner.deadline == 12.0
    assert runner.next_action(now=12.0) is Action.SEND and runner.outgoing == b"after"


def test_a_zero_delay_does_not_pause() -> None:
    runner = make_runner([Delay(0), "after"])
    assert runner.next_action(now=1.0) is Action.SEND


# ---------------------------------------------------------------------------
# Hang
# ---------------------------------------------------------------------------


def test_hang_without_a_limit_reads_with_no_deadline() -> None:
    runner = make_runner([Hang()])
    assert runner.next_action(now=5.0) is Action.READ and runner.deadline is None
    assert runner.next_action(now=1e9) is Action.READ  # no time ends it
    assert notes(runner) == ["hanging"]


def test_hang_records_the_bytes_that_arrive_while_hanging() -> None:
    runner = make_runner([Hang()])
    runner.next_action(now=0.0)
    assert feed(runner, b"are you", b" there?") == [Action.READ, Action.READ]
    assert recvs(runner) == [(b"are you", "(while hanging)"), (b" there?", "(while hanging)")]
    assert runner.inbox.buffer == b""


def test_the_client_closing_ends_a_hang_and_the_script() -> None:
    runner = make_runner([Hang(), "never sent"])
    runner.next_action(now=0.0)
    runner.receive(b"bye")
    runner.receive(b"")
    assert runner.next_action(now=1.0) is Action.CLOSE
    assert runner.ending == "client closed" and runner.failure is None
    assert recvs(runner) == [(b"bye", "(while hanging)")]
    assert runner.next_action(now=2.0) is Action.CLOSE  # the script is over
    assert runner.record.sent == b""


def test_a_timed_hang_moves_on_when_its_time_passes() -> None:
    runner = make_runner([Hang(2), "after"])
    assert runner.next_action(now=10.0) is Action.READ and runner.deadline == 12.0
    assert notes(runner) == ["hanging for 2 s"]
    assert runner.next_action(now=11.999) is Action.READ
    assert runner.next_action(now=12.0) is Action.SEND and runner.outgoing == b"after"


def test_a_timed_hang_still_ends_at_once_when_the_client_closes() -> None:
    runner = make_runner([Hang(2), "after"])
    runner.next_action(now=0.0)
    assert feed(runner, b"", now=1.0) == [Action.CLOSE]
    assert runner.ending == "client closed"


def test_a_client_reset_ends_a_hang_without_a_failure() -> None:
    runner = make_runner([Hang(), "never sent"])
    runner.next_action(now=0.0)
    runner.io_error(ConnectionResetError())
    assert runner.next_action(now=0.0) is Action.CLOSE
    assert runner.ending == "client reset" and runner.failure is None
    runner.io_error(BrokenPipeError())  # the script is over: nothing more to fail
    assert runner.failure is None


# ---------------------------------------------------------------------------
# Close, Reset, HalfClose, Call
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("step", [Close(), AcceptAndClose()], ids=repr)
def test_close_ends_the_script_with_a_graceful_close(step: Step) -> None:
    runner = make_runner([RECEIVE, step])
    assert drive(runner, [b"x"]) == [Action.READ, Action.CLOSE]
    assert runner.ending == "server closed"
    assert runner.next_action(now=1.0) is Action.CLOSE


def test_reset_ends_the_script_with_an_abortive_close() -> None:
    runner = make_runner(["hi", Reset()])
    assert drive(runner) == [Action.SEND, Action.RESET]
    assert runner.ending == "server reset"
    assert runner.next_action(now=1.0) is Action.RESET


def test_half_close_shuts_the_write_side_and_later_read_steps_still_run() -> None:
    runner = make_runner(["bye", HalfClose(), ReadUntilClose()])
    assert runner.next_action(now=0.0) is Action.SEND
    runner.done()
    assert runner.next_action(now=0.0) is Action.HALF_CLOSE
    assert notes(runner) == []  # noted once it is done
    runner.done()
    assert notes(runner) == ["server shut its write side (half-close)"]
    assert runner.next_action(now=0.0) is Action.READ
    assert feed(runner, b"last words", b"") == [Action.READ, Action.DONE]
    assert recvs(runner) == [(b"last words", "")]
    assert runner.ending == "client closed"


def test_a_half_close_that_fails_fails_the_step_as_an_error() -> None:
    runner = make_runner([HalfClose(), ReadUntilClose()])
    assert runner.next_action(now=0.0) is Action.HALF_CLOSE
    runner.io_error(raised(OSError(107, "Transport endpoint is not connected")))
    assert runner.next_action(now=0.0) is Action.FAILED
    assert runner.failure is not None and runner.failure.kind == "error"
    assert notes(runner) == []


def test_call_hands_the_users_function_to_the_shell_then_runs_on() -> None:
    def custom(conn: Any) -> None:
        raise AssertionError("the runner never calls it itself")

    runner = make_runner([custom, "after"])  # a bare callable is a Call
    assert runner.next_action(now=0.0) is Action.CALL and runner.call is custom
    runner.done()
    assert runner.next_action(now=0.0) is Action.SEND and runner.outgoing == b"after"


def test_an_exception_from_a_call_fails_the_step_with_its_text_and_traceback() -> None:
    def custom(conn: Any) -> None:
        raise ValueError("the protocol went wrong")

    runner = make_runner([RECEIVE, Call(custom), "after"])
    assert drive(runner, [b"x"], stop_at=Action.CALL)[-1] is Action.CALL
    assert runner.call is custom
    try:
        runner.call(None)
    except ValueError as exc:
        runner.io_error(exc)
    assert runner.next_action(now=0.0) is Action.FAILED
    failure = runner.failure
    assert failure is not None
    assert (failure.kind, failure.step_index) == ("error", 1)
    assert failure.summary == "ValueError: the protocol went wrong"
    assert "Traceback (most recent call last)" in failure.traceback
    assert "in custom" in failure.traceback
    message = failure.message()
    assert "step 1 of 3: Call(" in message and "server-side traceback:" in message
    assert runner.ending_after(failure.kind) == "error"


def test_a_step_the_runner_does_not_know_fails_as_an_error() -> None:
    class Teleport(Step):
        pass

    runner = make_runner([RECEIVE, Teleport()])
    assert drive(runner, [b"x"])[-1] is Action.FAILED
    assert runner.failure is not None
    assert (runner.failure.kind, runner.failure.step_index) == ("error", 1)
    assert runner.failure.summary == "TypeError: this server cannot run Teleport()"


# ---------------------------------------------------------------------------
# the end of a script
# ---------------------------------------------------------------------------


def test_an_empty_script_is_done_at_once_by_the_server() -> None:
    runner = make_runner([])
    assert runner.next_action(now=0.0) is Action.DONE
    assert runner.ending == "server closed"


def test_a_script_that_runs_out_is_done_and_closed_by_the_server() -> None:
    runner = make_runner([RECEIVE, "pong"])
    assert drive(runner, [b"ping"]) == [Action.READ, Action.SEND, Action.DONE]
    assert runner.ending == "server closed"
    assert runner.next_action(now=1.0) is Action.DONE  # and stays done


def test_a_script_that_ends_after_the_clients_eof_is_ended_by_the_client() -> None:
    runner = make_runner([RECEIVE, "pong"])
    runner.next_action(now=0.0)
    runner.receive(b"ping")
    runner.receive(b"")  # the client's FIN came with its request
    assert runner.next_action(now=0.0) is Action.SEND
    runner.done()
    assert runner.next_action(now=0.0) is Action.DONE
    assert runner.ending == "client closed"


def test_the_runner_docstring_example_runs() -> None:
    runner = ScriptRunner(compile_script("pong"), ConnectionRecord(1, None), timeout=5)
    assert (runner.next_action(now=0.0), runner.deadline) == (Action.READ, 5.0)
    runner.receive(b"ping")
    assert (runner.next_action(now=0.1), runner.outgoing) == (Action.SEND, b"pong")
    runner.done()
    assert (runner.next_action(now=0.2), runner.ending) == (Action.DONE, "server closed")


# ---------------------------------------------------------------------------
# TLS: the leading before_tls steps, then START_TLS once, then the rest
# ---------------------------------------------------------------------------


class RawBanner(Send):
    """A send that runs on the raw socket before the handshake (as STARTTLS servers greet)."""

    before_tls = True


def test_before_tls_steps_come_from_tls_py() -> None:
    assert AbortHandshake().before_tls and PlaintextReply().before_tls
    assert not Send(b"x").before_tls and not RECEIVE.before_tls


def test_tls_starts_before_a_script_with_no_before_tls_steps() -> None:
    runner = make_runner([RECEIVE, "pong"], tls=True)
    assert drive(runner, [b"ping"]) == [
        Action.START_TLS, Action.READ, Action.SEND, Action.DONE
    ]


def test_tls_starts_once_after_the_leading_before_tls_steps() -> None:
    runner = make_runner([RawBanner(b"220 hi\r\n"), RawBanner(b"ready\r\n"), RECEIVE, "pong",
                          RawBanner(b"late")], tls=True)
    actions = drive(runner, [b"ping"])
    assert actions == [
        Action.SEND, Action.SEND, Action.START_TLS, Action.READ, Action.SEND, Action.SEND,
        Action.DONE,
    ]
    assert runner.record.sent == b"220 hi\r\nready\r\npong" + b"late"


def test_a_script_of_only_before_tls_steps_still_starts_tls_before_it_is_done() -> None:
    runner = make_runner([AbortHandshake()], tls=True)
    assert runner.next_action(now=0.0) is Action.CALL
    assert isinstance(runner.steps[0], Call) and runner.call is runner.steps[0].func
    runner.done()
    assert runner.next_action(now=0.0) is Action.START_TLS
    runner.done()
    assert runner.next_action(now=0.0) is Action.DONE


@pytest.mark.parametrize("step", [AbortHandshake(reset=True), PlaintextReply()], ids=repr)
def test_without_tls_a_before_tls_step_is_an_ordinary_step(step: Step) -> None:
    runner = make_runner([step])
    assert drive(runner) == [Action.CALL, Action.DONE]


def test_an_empty_script_with_tls_still_starts_tls() -> None:
    runner = make_runner([], tls=True)
    assert drive(runner) == [Action.START_TLS, Action.DONE]


def test_a_before_tls_step_that_fails_fails_before_tls_starts() -> None:
    runner = make_runner([RawBanner(b"220\r\n"), RECEIVE], tls=True)
    assert runner.next_action(now=0.0) is Action.SEND
    runner.io_error(BrokenPipeError())
    assert runner.next_action(now=0.0) is Action.FAILED
    assert runner.failure is not None and runner.failure.step_index == 0


# ---------------------------------------------------------------------------
# growing scripts (TcpServer gives its runner each step as it is planned)
# ---------------------------------------------------------------------------


def test_a_growing_script_is_idle_when_out_of_steps_and_runs_what_is_appended() -> None:
    runner = make_runner([], growing=True, first_index=3)
    assert runner.next_action(now=0.0) is Action.IDLE
    runner.append(Expect(b"hello"))
    assert runner.next_action(now=0.0) is Action.READ
    assert feed(runner, b"hel", b"lo") == [Action.READ, Action.IDLE]
    runner.append(Send(b"hi"))
    assert drive(runner) == [Action.SEND, Action.IDLE]
    assert runner.record.sent == b"hi" and runner.failure is None


def test_a_growing_scripts_bytes_wait_in_the_inbox_for_the_step_appended_later() -> None:
    runner = make_runner([RECEIVE], growing=True)
    assert drive(runner, [b"first"]) == [Action.READ, Action.IDLE]
    runner.receive(b"LINE\nextra")  # arrived while no step was running
    runner.append(ReadLine())
    assert runner.next_action(now=0.0) is Action.IDLE
    assert [data for data, _ in recvs(runner)] == [b"first", b"LINE\n"]
    assert runner.inbox.buffer == b"extra"


def test_a_growing_scripts_failures_count_steps_from_first_index() -> None:
    runner = make_runner([], growing=True, first_index=3)
    runner.script_length = 7  # the owner's whole plan
    runner.append(Expect(b"hello"))
    runner.append(Expect(b"world"))
    assert drive(runner, [b"hello", b"wOrld"])[-1] is Action.FAILED
    failure = runner.failure
    assert failure is not None
    assert (failure.step_index, failure.script_length, failure.offset) == (4, 7, 1)
    assert runner.index == 4
    assert "step 4 of 7: Expect(b'world')" in failure.message()


def test_a_growing_script_counts_its_own_length_unless_told_otherwise() -> None:
    runner = make_runner([Expect(b"a")], growing=True, first_index=1)
    drive(runner, [b"b"])
    assert runner.failure is not None
    assert "step 1 of 1: Expect(b'a')" in runner.failure.message()


# ---------------------------------------------------------------------------
# compiled scripts are shared: PerConnection, compile_script
# ---------------------------------------------------------------------------


def test_each_script_of_a_per_connection_plan_runs_through_a_runner() -> None:
    plan = PerConnection([Expect(b"one"), "1"], [Expect(b"two"), "2"], then=[RECEIVE, "n"])
    outcomes = []
    for number, (hello, reply) in enumerate(
        [(b"one", b"1"), (b"two", b"2"), (b"three", b"n"), (b"four", b"n")], 1
    ):
        script = plan.script_for(number)
        assert script is not None
        runner = ScriptRunner(script, ConnectionRecord(number, PEER), TIMEOUT)
        outcomes.append((drive(runner, [hello])[-1], runner.record.sent))
        assert outcomes[-1] == (Action.DONE, reply)
    assert plan.script_for(3) is plan.script_for(4)  # one compiled script, two runners


def test_a_per_connection_script_fails_its_connection_only() -> None:
    plan = PerConnection([Expect(b"one"), "1"], [Expect(b"two"), "2"])
    first, second = (plan.script_for(n) for n in (1, 2))
    assert first is not None and second is not None
    bad = ScriptRunner(first, ConnectionRecord(1, PEER), TIMEOUT)
    good = ScriptRunner(second, ConnectionRecord(2, PEER), TIMEOUT)
    drive(bad, [b"two"])
    drive(good, [b"two"])
    assert bad.failure is not None and bad.failure.connection == 1
    assert good.failure is None and good.record.sent == b"2"


def test_two_runners_over_one_compiled_script_interleaved_do_not_disturb_each_other() -> None:
    steps = compile_script([Expect(b"HELLO"), ReadLine(), Drip(b"abc", 1, 0.5), "bye"])
    right = ScriptRunner(steps, ConnectionRecord(1, PEER), TIMEOUT)
    wrong = ScriptRunner(steps, ConnectionRecord(2, PEER), TIMEOUT)
    assert right.next_action(now=0.0) is Action.READ
    assert wrong.next_action(now=0.0) is Action.READ
    right.receive(b"HEL")  # the Expect's matcher state is the runner's, not the step's
    wrong.receive(b"HEX")
    assert right.next_action(now=0.1) is Action.READ
    assert wrong.next_action(now=0.1) is Action.FAILED
    right.receive(b"LOa line\n")
    assert right.next_action(now=0.2) is Action.SEND and right.outgoing == b"a"
    right.done()
    assert right.next_action(now=0.3) is Action.PAUSE and right.deadline == 0.8
    assert wrong.failure is not None and wrong.failure.offset == 2
    assert right.failure is None
    assert drive(right, now=0.8)[-1] is Action.DONE
    assert right.record.sent == b"abcbye" and wrong.record.sent == b""
    assert [d for d, _ in recvs(right)] == [b"HELLO", b"a line\n"]
    assert recvs(wrong) == [(b"HEX", "(partial, step failed)")]


# ---------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------


def cut(data: bytes, positions: list[int]) -> list[bytes]:
    """*data* cut at *positions* (clamped, sorted), without empty pieces (b"" is EOF)."""
    points = sorted({min(p, len(data)) for p in positions} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


@st.composite
def wrong_at(draw: st.DrawFn) -> tuple[bytes, bytes, int]:
    """An expected payload, bytes that first differ from it at index i, and i."""
    payload = draw(st.binary(min_size=1, max_size=48))
    i = draw(st.integers(min_value=0, max_value=len(payload) - 1))
    wrong = draw(st.integers(min_value=0, max_value=255).filter(lambda b: b != payload[i]))
    tail = draw(st.binary(max_size=16))
    return payload, payload[:i] + bytes([wrong]) + tail, i


@PURE_EXAMPLES
@given(
    payload=st.binary(min_size=1, max_size=64),
    extra=st.binary(max_size=16),
    positions=st.lists(st.integers(min_value=0, max_value=80), max_size=12),
)
def test_expect_completes_on_its_payload_however_it_is_cut(
    payload: bytes, extra: bytes, positions: list[int]
) -> None:
    chunks: list[bytes] = []
    runner = make_runner([Expect(payload), "ok"], on_chunk=chunks.append)
    pieces = cut(payload + extra, positions)
    actions = drive(runner, pieces)
    assert Action.FAILED not in actions and runner.failure is None
    assert actions[-1] is Action.DONE
    assert chunks == [payload]
    assert recvs(runner) == [(payload, "")]
    assert runner.record.sent == b"ok"
    # Whatever came after the payload in the piece that completed it stays for a later step;
    # pieces after that one were never read.
    consumed = 0
    for n, piece in enumerate(pieces):
        consumed += len(piece)
        if consumed >= len(payload):
            assert bytes(runner.inbox.buffer) == (payload + extra)[len(payload):consumed]
            assert actions.count(Action.READ) == n + 1
            break


@PURE_EXAMPLES
@given(case=wrong_at(), positions=st.lists(st.integers(min_value=0, max_value=80), max_size=12))
def test_expect_fails_at_the_first_differing_byte_however_it_is_cut(
    case: tuple[bytes, bytes, int], positions: list[int]
) -> None:
    payload, got, i = case
    runner = make_runner([Expect(payload), "ok"])
    assert runner.next_action(now=0.0) is Action.READ
    arrived = 0
    for piece in cut(got, positions):
        runner.receive(piece)
        arrived += len(piece)
        action = runner.next_action(now=0.0)
        if arrived <= i:  # the wrong byte has not arrived yet
            assert action is Action.READ
        else:  # it fails with the piece that brings it, before any deadline
            assert action is Action.FAILED
            break
    failure = runner.failure
    assert failure is not None
    assert (failure.kind, failure.offset, failure.step_index) == ("mismatch", i, 0)
    assert failure.received == got[:arrived]
    assert f"first difference at byte offset {i}" in failure.message()
    assert runner.record.sent == b""


@PURE_EXAMPLES
@given(
    payload=st.binary(min_size=2, max_size=48),
    data=st.data(),
    positions=st.lists(st.integers(min_value=0, max_value=48), max_size=8),
)
def test_expect_fails_as_closed_where_a_prefix_of_its_payload_ends(
    payload: bytes, data: st.DataObject, positions: list[int]
) -> None:
    n = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
    runner = make_runner([Expect(payload), "ok"])
    assert drive(runner, [*cut(payload[:n], positions), b""])[-1] is Action.FAILED
    failure = runner.failure
    assert failure is not None
    assert (failure.kind, failure.offset, failure.received) == ("closed", n, payload[:n])


# ---------------------------------------------------------------------------
# defects this file found, fixed: each test failed before its fix
# ---------------------------------------------------------------------------


def test_an_empty_drip_sends_nothing() -> None:
    runner = make_runner([Drip(b""), "after"])
    assert runner.next_action(now=0.0) is Action.SEND
    assert runner.outgoing == b"after"
    runner.done()
    assert sends(runner) == [(b"after", "")]


def test_a_read_step_whose_matcher_raises_fails_the_step_as_an_error() -> None:
    class Broken(ReadStep):
        def matcher(self) -> Any:
            raise RuntimeError("no matcher today")

    runner = ScriptRunner([RECEIVE, Broken()], ConnectionRecord(1, PEER), TIMEOUT)
    runner.next_action(now=0.0)
    runner.receive(b"x")
    assert runner.next_action(now=0.0) is Action.FAILED
    assert runner.failure is not None
    assert (runner.failure.kind, runner.failure.step_index) == ("error", 1)


def test_a_live_log_that_raises_on_a_send_fails_the_step_as_on_a_read() -> None:
    def broken_log(record: ConnectionRecord, text: str) -> None:
        raise RuntimeError("the log is closed")

    runner = make_runner(["hi"], emit=broken_log)
    assert runner.next_action(now=0.0) is Action.SEND
    runner.done()
    assert runner.next_action(now=0.0) is Action.FAILED
    assert runner.failure is not None and runner.failure.kind == "error"


def test_a_live_log_that_raises_on_a_read_fails_the_step_as_an_error() -> None:
    def broken_log(record: ConnectionRecord, text: str) -> None:
        raise RuntimeError("the log is closed")

    runner = make_runner([RECEIVE], emit=broken_log)
    drive(runner, [b"x"])
    assert runner.failure is not None
    assert (runner.failure.kind, runner.failure.summary) == (
        "error", "RuntimeError: the log is closed"
    )
