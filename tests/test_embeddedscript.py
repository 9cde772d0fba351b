"""The pure parts of the engine, without sockets: step matching through ``Inbox``,
script compilation and every constructor's bad input, ``Failure.message()``,
transcript rendering and ``http_response``.

Sections: matching - compilation and bad input - failures and transcripts - http_response.
"""

from __future__ import annotations

import functools
import re
import struct
from typing import Any

import pytest

from embeddedrecord import ConnectionRecord, Failure, render_transcript, show_bytes
from embeddedscript import (
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
    Inbox,
    Mismatch,
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
    compile_script,
    describe_steps,
    http_response,
)


def feed_all(step: ReadStep, *pieces: bytes) -> tuple[list[bytes | None], Inbox]:
    """Begin *step*, feed each piece in turn and poll after each; return the polls."""
    inbox = Inbox()
    inbox.begin(step)
    results = []
    for piece in pieces:
        inbox.feed(piece)
        results.append(inbox.poll())
    return results, inbox


def mismatch(step: ReadStep, *pieces: bytes) -> Mismatch:
    """Feed *pieces* to *step* and return the Mismatch that must be raised."""
    inbox = Inbox()
    inbox.begin(step)
    with pytest.raises(Mismatch) as info:
        for piece in pieces:
            inbox.feed(piece)
            inbox.poll()
    return info.value


# ---------------------------------------------------------------------------
# matching: Receive and ints
# ---------------------------------------------------------------------------


def test_receive_takes_whatever_one_read_brought() -> None:
    results, inbox = feed_all(RECEIVE, b"GET / HTTP/1.1\r\n")
    assert results == [b"GET / HTTP/1.1\r\n"]
    assert not inbox.buffer


def test_receive_waits_for_at_least_one_byte() -> None:
    inbox = Inbox()
    inbox.begin(RECEIVE)
    assert inbox.poll() is None


def test_receive_n_waits_for_n_bytes_and_takes_all_that_arrived() -> None:
    results, _ = feed_all(Receive(5), b"ab", b"cd", b"efgh")
    assert results == [None, None, b"abcdefgh"]


def test_int_in_script_reads_at_least_that_many_bytes() -> None:
    (step,) = compile_script([20])
    assert isinstance(step, Receive) and step.n == 20
    results, _ = feed_all(step, b"x" * 19, b"yz")
    assert results == [None, b"x" * 19 + b"yz"]


def test_the_smallest_byte_count_in_a_script_is_one() -> None:
    (step,) = compile_script([1])  # 0 is rejected, and True/False are not counts
    assert repr(step) == "Receive(1)"
    results, _ = feed_all(step, b"a")
    assert results == [b"a"]


def test_receive_at_eof_with_nothing_is_a_mismatch_naming_the_close() -> None:
    exc = mismatch(Receive(3), b"ab", b"")
    assert "closed the connection before the step completed" in exc.reason
    assert exc.received == b"ab"
    assert exc.offset == 2
    assert exc.expected == "at least 3 bytes"


def test_bytes_left_by_one_step_serve_the_next() -> None:
    inbox = Inbox()
    inbox.begin(ReadLine())
    inbox.feed(b"one\ntwo\n")
    assert inbox.poll() == b"one\n"
    inbox.begin(ReadLine())
    assert inbox.poll() == b"two\n"
    assert inbox.buffer == b""


# ---------------------------------------------------------------------------
# matching: delimiters, lines, frames, until close
# ---------------------------------------------------------------------------


def test_read_until_finds_a_delimiter_straddling_two_feeds() -> None:
    results, inbox = feed_all(ReadUntil(b"\r\n\r\n"), b"GET / HTTP/1.1\r\nHost: x\r\n\r", b"\nbody")
    assert results == [None, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]
    assert bytes(inbox.buffer) == b"body"


def test_read_until_finds_a_delimiter_fed_one_byte_at_a_time() -> None:
    message = b"abc\r\n\r\nrest"
    inbox = Inbox()
    inbox.begin(ReadUntil(b"\r\n\r\n"))
    found = None
    for i in range(len(message)):
        inbox.feed(message[i : i + 1])
        found = found or inbox.poll()
    assert found == b"abc\r\n\r\n"
    assert bytes(inbox.buffer) == b"rest"


def test_read_until_takes_a_str_delimiter_as_utf8() -> None:
    results, _ = feed_all(ReadUntil("é"), "caf\u00e9!".encode())
    assert results == ["café".encode()]


def test_read_until_eof_before_delimiter_fails_with_what_arrived() -> None:
    exc = mismatch(ReadUntil(b"\r\n\r\n"), b"GET / HTTP/1.1\r\n", b"")
    assert exc.received == b"GET / HTTP/1.1\r\n"
    assert exc.expected == "bytes up to b'\\r\\n\\r\\n'"


def test_read_line_reads_up_to_and_including_newline() -> None:
    results, inbox = feed_all(ReadLine(), b"EHLO x\r", b"\nMAIL")
    assert results == [None, b"EHLO x\r\n"]
    assert bytes(inbox.buffer) == b"MAIL"


def test_read_frame_default_prefix_is_4_byte_big_endian() -> None:
    frame = struct.pack(">I", 5) + b"hello"
    results, inbox = feed_all(ReadFrame(), frame[:3], frame[3:7], frame[7:] + b"next")
    assert results == [None, None, frame]
    assert bytes(inbox.buffer) == b"next"


@pytest.mark.parametrize("prefix", [">H", "<H", "!B", "<Q", ">L", "=I"])
def test_read_frame_with_other_struct_prefixes(prefix: str) -> None:
    frame = struct.pack(prefix, 3) + b"abc"
    results, _ = feed_all(ReadFrame(prefix), frame[:1], frame[1:])
    assert results[-1] == frame


def test_read_frame_of_length_zero_is_just_the_prefix() -> None:
    results, _ = feed_all(ReadFrame(">H"), b"\x00\x00rest")
    assert results == [b"\x00\x00"]


def test_read_frame_eof_mid_payload_fails() -> None:
    exc = mismatch(ReadFrame(), struct.pack(">I", 10) + b"abc", b"")
    assert "closed" in exc.reason


def test_read_until_close_takes_everything_at_eof() -> None:
    results, inbox = feed_all(ReadUntilClose(), b"a", b"b", b"")
    assert results == [None, None, b"ab"]
    assert inbox.eof


def test_read_until_close_with_nothing_sent_gives_an_empty_chunk() -> None:
    results, _ = feed_all(ReadUntilClose(), b"")
    assert results == [b""]


# ---------------------------------------------------------------------------
# matching: exact expectations
# ---------------------------------------------------------------------------


def test_expect_exact_bytes_across_feeds_leaves_the_rest() -> None:
    results, inbox = feed_all(Expect(b"PING\r\n"), b"PI", b"NG\r", b"\nPONG")
    assert results == [None, None, b"PING\r\n"]
    assert bytes(inbox.buffer) == b"PONG"


def test_expect_str_is_utf8() -> None:
    results, _ = feed_all(Expect("héllo"), "héllo".encode())
    assert results == ["héllo".encode()]


def test_expect_fails_at_the_first_differing_byte() -> None:
    exc = mismatch(Expect(b"HELLO WORLD"), b"HELLO WXRLD")
    assert exc.offset == 7
    assert exc.reason == "wrong bytes at offset 7"
    assert exc.expected == "b'HELLO WORLD'"


def test_expect_fails_at_once_when_fewer_bytes_than_expected_arrived() -> None:
    """The wrong byte is seen in the first two bytes: no waiting for the other nine."""
    exc = mismatch(Expect(b"HELLO WORLD"), b"HX")
    assert exc.offset == 1
    assert exc.received.startswith(b"HX")


def test_expect_offset_counts_from_the_step_start_across_feeds() -> None:
    exc = mismatch(Expect(b"abcdefgh"), b"abc", b"de", b"fXh")
    assert exc.offset == 6
    assert exc.received.startswith(b"abcdefX")


def test_expect_offset_is_relative_to_the_step_not_to_earlier_steps() -> None:
    inbox = Inbox()
    inbox.begin(ReadLine())
    inbox.feed(b"first\nabX")
    assert inbox.poll() == b"first\n"
    inbox.begin(Expect(b"abc"))
    with pytest.raises(Mismatch) as info:
        inbox.poll()
    assert info.value.offset == 2


def test_expect_eof_mid_step_reports_where_the_data_ended() -> None:
    exc = mismatch(Expect(b"PING\r\n"), b"PIN", b"")
    assert exc.offset == 3
    assert exc.received == b"PIN"
    assert "closed" in exc.reason


def test_expect_mismatch_carries_everything_that_arrived() -> None:
    exc = mismatch(Expect(b"PING"), b"GET / HTTP/1.1\r\n")
    assert exc.offset == 0
    assert exc.received == b"GET / HTTP/1.1\r\n"


def test_expect_binary_mismatch() -> None:
    exc = mismatch(Expect(b"\x00\x01\x02\x03"), b"\x00\x01\xff")
    assert exc.offset == 2


# ---------------------------------------------------------------------------
# matching: regexes and predicates
# ---------------------------------------------------------------------------


def test_expect_regex_searches_the_stream_and_consumes_to_the_match_end() -> None:
    step = Expect(re.compile(rb"GET /\S+ HTTP/1\.[01]\r\n"))
    results, inbox = feed_all(step, b"GET /hel", b"lo HTTP/1.1\r\nHost: x\r\n")
    assert results == [None, b"GET /hello HTTP/1.1\r\n"]
    assert bytes(inbox.buffer) == b"Host: x\r\n"


def test_expect_regex_given_as_text_works_on_bytes() -> None:
    results, _ = feed_all(ExpectRegex(r"\d{3}"), b"code 250 ok")
    assert results == [b"code 250"]


def test_expect_str_compiled_regex_is_used_on_bytes() -> None:
    results, _ = feed_all(Expect(re.compile(r"QUIT\r\n")), b"QUIT\r\n")
    assert results == [b"QUIT\r\n"]


def test_expect_regex_without_a_match_at_eof_fails() -> None:
    exc = mismatch(ExpectRegex(rb"HELO"), b"EHLO", b"")
    assert exc.received == b"EHLO"
    assert "re.compile(b'HELO')" in exc.expected


def test_expect_regex_within_a_line_must_match_the_whole_line() -> None:
    step = ExpectRegex(rb"MAIL FROM:<\S+>\r\n", within=ReadLine())
    results, _ = feed_all(step, b"MAIL FROM:<a@b>\r\n")
    assert results == [b"MAIL FROM:<a@b>\r\n"]
    exc = mismatch(step, b"RCPT TO:<a@b>\r\n")
    assert exc.received == b"RCPT TO:<a@b>\r\n"
    assert exc.reason == "the data did not match"
    assert "a line ending in b'\\n'" in exc.expected


def test_expect_predicate_applies_to_one_read_by_default() -> None:
    results, _ = feed_all(Expect(lambda chunk: chunk.startswith(b"G")), b"GET")
    assert results == [b"GET"]
    exc = mismatch(Expect(lambda chunk: chunk.startswith(b"G")), b"POST")
    assert exc.received == b"POST"
    assert "any bytes accepted by" in exc.expected


def test_expect_predicate_within_a_frame() -> None:
    def even_payload(frame: bytes) -> bool:
        return len(frame[4:]) % 2 == 0

    step = Expect(even_payload, within=ReadFrame())
    assert feed_all(step, struct.pack(">I", 2) + b"ab")[0] == [struct.pack(">I", 2) + b"ab"]
    exc = mismatch(step, struct.pack(">I", 3) + b"abc")
    assert "even_payload" in exc.expected
    assert "within=ReadFrame()" in repr(step)


def test_expect_predicate_exception_propagates_to_the_runner() -> None:
    def broken(chunk: bytes) -> bool:
        raise KeyError("boom")

    inbox = Inbox()
    inbox.begin(Expect(broken))
    inbox.feed(b"x")
    with pytest.raises(KeyError):
        inbox.poll()


# ---------------------------------------------------------------------------
# matching: frames with expected payloads, and ExpectClose
# ---------------------------------------------------------------------------


def test_expect_frame_matches_prefix_and_payload() -> None:
    frame = struct.pack(">I", 4) + b"ping"
    results, _ = feed_all(ExpectFrame(b"ping"), frame[:2], frame[2:])
    assert results == [None, frame]


def test_expect_frame_with_other_prefix() -> None:
    frame = struct.pack("<H", 4) + b"ping"
    assert feed_all(ExpectFrame(b"ping", "<H"), frame)[0] == [frame]


def test_expect_frame_wrong_length_fails_before_the_payload_arrives() -> None:
    exc = mismatch(ExpectFrame(b"ping"), struct.pack(">I", 9))
    assert "length prefix says 9 bytes, expected 4" in exc.reason


def test_expect_frame_wrong_payload_byte_gives_the_payload_offset() -> None:
    exc = mismatch(ExpectFrame(b"ping"), struct.pack(">I", 4) + b"pi", b"Ng")
    assert exc.offset == 2
    assert exc.received.startswith(b"piN")


def test_expect_close_completes_at_eof_with_an_empty_chunk() -> None:
    assert feed_all(ExpectClose(), b"")[0] == [b""]


def test_expect_close_fails_on_unexpected_data() -> None:
    exc = mismatch(ExpectClose(), b"more")
    assert exc.received == b"more"
    assert exc.offset == 0
    assert exc.expected == "the client to close the connection"
    assert "unexpected data" in exc.reason


def test_expect_close_fails_on_data_left_by_an_earlier_step() -> None:
    inbox = Inbox()
    inbox.begin(ReadLine())
    inbox.feed(b"line\nextra")
    inbox.poll()
    inbox.begin(ExpectClose())
    with pytest.raises(Mismatch) as info:
        inbox.poll()
    assert info.value.received == b"extra"


def test_inbox_poll_before_begin_is_an_api_error() -> None:
    with pytest.raises(AssertionError, match="begin"):
        Inbox().poll()


# ---------------------------------------------------------------------------
# compilation
# ---------------------------------------------------------------------------


def test_lone_str_or_bytes_means_receive_then_send() -> None:
    assert repr(compile_script("hi")) == "(Receive(), Send(b'hi'))"
    steps = compile_script(b"hi")
    assert steps[0] is RECEIVE
    assert isinstance(steps[1], Send) and steps[1].data == b"hi"


def test_sends_accept_bytes_bytearray_memoryview_and_str() -> None:
    steps = compile_script([b"a", bytearray(b"b"), memoryview(b"c"), "d\u00e9"])
    assert [s.data for s in steps if isinstance(s, Send)] == [b"a", b"b", b"c", "dé".encode()]


def test_a_lone_step_is_a_one_step_script() -> None:
    (step,) = compile_script(AcceptAndClose())
    assert isinstance(step, AcceptAndClose)


def test_a_callable_becomes_a_call_step() -> None:
    def custom(conn: Any) -> None:
        pass

    (step,) = compile_script([custom])
    assert isinstance(step, Call) and step.func is custom
    assert repr(step) == "Call(test_a_callable_becomes_a_call_step.<locals>.custom)"


class _Handler:
    """A callable object whose repr shows its own Call step: repr(step) comes back here."""

    def __init__(self) -> None:
        self.repr_calls = 0
        self.step = Call(self)
        self.method_step = Call(self.handle)

    def __repr__(self) -> str:
        self.repr_calls += 1
        return f"_Handler(step={self.step!r})"

    def __call__(self, conn: Any) -> None:
        pass

    def handle(self, conn: Any) -> None:
        pass


class _BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("not built yet")

    def __call__(self, conn: Any) -> None:
        pass

    def handle(self, conn: Any) -> None:
        pass


def test_a_call_step_repr_names_a_method_without_the_objects_repr() -> None:
    handler = _Handler()
    assert repr(handler.method_step) == "Call(_Handler.handle)"
    assert repr(Call(_BrokenRepr().handle)) == "Call(_BrokenRepr.handle)"
    assert repr(Expect(_BrokenRepr().handle)) == "Expect(_BrokenRepr.handle)"
    assert handler.repr_calls == 0


def test_a_call_step_repr_of_an_object_that_shows_the_step_does_not_recurse() -> None:
    handler = _Handler()
    assert repr(handler.step) == "Call(_Handler(step=Call(...)))"
    assert handler.repr_calls == 1
    broken = Call(_BrokenRepr())
    assert repr(broken) == "Call(<_BrokenRepr object (repr failed: RuntimeError)>)"


def test_a_call_step_repr_of_a_partial_names_its_function_not_its_arguments() -> None:
    def greet(conn: Any, greeting: bytes) -> None:
        pass

    big = functools.partial(greet, greeting=b"x" * 10_000)
    assert repr(Call(big)) == (
        "Call(partial(test_a_call_step_repr_of_a_partial_names_its_function_not_its_"
        "arguments.<locals>.greet, ...))"
    )
    assert repr(Call(functools.partial(len))) == "Call(partial(len))"
    assert repr(Expect(functools.partial(bool))) == "Expect(partial(bool))"


def test_describe_steps_numbers_them() -> None:
    text = describe_steps(compile_script([RECEIVE, "ok", Close()]))
    assert text == "  0: Receive()\n  1: Send(b'ok')\n  2: Close()"


@pytest.mark.parametrize(
    ("step", "text"),
    [
        (Receive(20, timeout=1), "Receive(20, timeout=1.0)"),
        (ReadUntil(b"\r\n"), "ReadUntil(b'\\r\\n')"),
        (ReadLine(timeout=2), "ReadLine(timeout=2.0)"),
        (ReadFrame(">H"), "ReadFrame('>H')"),
        (ReadUntilClose(), "ReadUntilClose()"),
        (Expect(b"x"), "Expect(b'x')"),
        (ExpectFrame(b"p", "<H"), "ExpectFrame(b'p', '<H')"),
        (ExpectClose(timeout=3), "ExpectClose(timeout=3.0)"),
        (Send("x"), "Send(b'x')"),
        (SendFrame(b"x", ">H"), "SendFrame(b'x', '>H')"),
        (Garbage(5, seed=3), "Garbage(5, seed=3)"),
        (Drip(b"ab", chunk=2, interval=0.5), "Drip(b'ab', chunk=2, interval=0.5)"),
        (Delay(1), "Delay(1.0)"),
        (Close(), "Close()"),
        (AcceptAndClose(), "AcceptAndClose()"),
        (Reset(), "Reset()"),
        (HalfClose(), "HalfClose()"),
        (Hang(), "Hang()"),
        (Hang(2), "Hang(2.0)"),
    ],
)
def test_every_step_has_a_readable_repr(step: Any, text: str) -> None:
    assert repr(step) == text


def test_send_frame_and_garbage_produce_their_bytes() -> None:
    assert SendFrame(b"abc").data == b"\x00\x00\x00\x03abc"
    assert SendFrame(b"abc", "<H").data == b"\x03\x00abc"
    assert Garbage(16, seed=7).data == Garbage(16, seed=7).data
    assert Garbage(16, seed=7).data != Garbage(16, seed=8).data
    assert len(Garbage(1000).data) == 1000


def test_per_connection_gives_each_connection_its_script_then_the_fallback() -> None:
    plan = PerConnection([Reset()], [RECEIVE, "ok"], then="later")
    assert isinstance(plan.script_for(1)[0], Reset)  # type: ignore[index]
    assert repr(plan.script_for(2)) == "(Receive(), Send(b'ok'))"
    assert repr(plan.script_for(3)) == "(Receive(), Send(b'later'))"
    assert PerConnection([Reset()]).script_for(2) is None


# ---------------------------------------------------------------------------
# bad input: compile_script
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("commands", "error", "words"),
    [
        ([RECEIVE, 1.5], TypeError, ["command 1", "1.5", "not supported", "RECEIVE", "int"]),
        ([None], TypeError, ["command 0", "None", "bytes"]),
        ([RECEIVE, "ok", {"a": 1}], TypeError, ["command 2", "{'a': 1}"]),
        ([RECEIVE, True], TypeError, ["command 1", "True", "not supported"]),
        ([False], TypeError, ["command 0", "False"]),
        ([RECEIVE, -1], ValueError, ["command 1", "-1", ">= 1", "read at least"]),
        ([RECEIVE, 0], ValueError, ["command 1 (0)", ">= 1", "read at least", "RECEIVE"]),
        ([Reset], TypeError, ["command 0", "step class", "Reset()"]),
        ([RECEIVE, [b"nested"]], TypeError, ["command 1", "[b'nested']"]),
    ],
)
def test_bad_command_names_index_value_and_what_is_accepted(
    commands: list[Any], error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as info:
        compile_script(commands)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("commands", [42, None, {RECEIVE}, iter([RECEIVE])])
def test_commands_that_are_not_a_list_are_a_type_error(commands: Any) -> None:
    with pytest.raises(TypeError, match="list of steps"):
        compile_script(commands)


@pytest.mark.parametrize("last", [Close(), Reset(), AcceptAndClose()])
def test_steps_after_a_closing_step_are_rejected(last: Any) -> None:
    with pytest.raises(ValueError) as info:
        compile_script([RECEIVE, last, "too late"])
    text = str(info.value)
    assert "command 2 (Send(b'too late')) can never run" in text
    assert f"command 1 ({last!r}) ends the connection" in text


@pytest.mark.parametrize("late", ["data", SendFrame(b"x"), Garbage(3), Drip(b"x"), HalfClose()])
def test_writes_after_half_close_are_rejected(late: Any) -> None:
    with pytest.raises(ValueError) as info:
        compile_script([RECEIVE, HalfClose(), ReadLine(), late])
    assert "command 3" in str(info.value)
    assert "after HalfClose() at command 1" in str(info.value)


def test_reads_after_half_close_are_fine() -> None:
    assert len(compile_script(["bye", HalfClose(), ReadUntilClose(), Call(print)])) == 4


def test_per_connection_names_the_connection_of_a_bad_script() -> None:
    with pytest.raises(TypeError, match="script for connection 2: command 1"):
        PerConnection([RECEIVE], [RECEIVE, 2.5])
    with pytest.raises(ValueError, match="at least one script"):
        PerConnection()


# ---------------------------------------------------------------------------
# bad input: step constructors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda: Receive(0), ValueError, ["Receive(0) would read nothing", "n >= 1",
                                          "Receive() / RECEIVE"]),
        (lambda: Receive(-1), ValueError, ["byte count", ">= 1", "-1"]),
        (lambda: Receive(0.0), TypeError, ["byte count", "int", "0.0"]),
        (lambda: Receive(False), TypeError, ["byte count", "int", "False"]),
        (lambda: Receive(True), TypeError, ["byte count", "int", "True"]),
        (lambda: Receive(2.5), TypeError, ["int", "2.5"]),
        (lambda: Receive(timeout=0), ValueError, ["timeout", "> 0", "0"]),
        (lambda: Receive(timeout=-1), ValueError, ["timeout", "-1"]),
        (lambda: Receive(timeout="5"), TypeError, ["timeout", "'5'"]),
        (lambda: ReadLine(timeout=True), TypeError, ["timeout", "True"]),
        (lambda: ReadUntil(b""), ValueError, ["delimiter", "empty"]),
        (lambda: ReadUntil(""), ValueError, ["delimiter", "empty"]),
        (lambda: ReadUntil(10), TypeError, ["delimiter", "bytes", "10"]),
        (lambda: ReadFrame("I I"), ValueError, ["prefix", "'I I'", "one unsigned integer"]),
        (lambda: ReadFrame("zz"), ValueError, ["prefix", "'zz'", "struct format"]),
        (lambda: ReadFrame(4), TypeError, ["prefix", "'>I'", "4"]),
        (lambda: ReadFrame(">f"), ValueError, ["prefix", "'>f'", "integer"]),
        (lambda: ReadFrame(">i"), ValueError, ["prefix", "'>i'", "unsigned"]),
        (lambda: ReadFrame("?"), ValueError, ["prefix", "'?'"]),
        (lambda: ExpectFrame(b"x", ">q"), ValueError, ["prefix", "'>q'"]),
        (lambda: ExpectFrame(12), TypeError, ["payload", "12"]),
        (lambda: Expect(b""), ValueError, ["Expect(b'')", "at least one byte"]),
        (lambda: Expect(12), TypeError, ["Expect takes", "12"]),
        (lambda: Expect(b"x", within=ReadLine()), TypeError, ["within", "exact bytes"]),
        (lambda: Expect(len, within="line"), TypeError, ["within", "read step", "'line'"]),
        (lambda: ExpectRegex("(unclosed"), ValueError, ["invalid regex", "(unclosed"]),
        (lambda: ExpectRegex(rb"[z-a]"), ValueError, ["invalid regex", "[z-a]"]),
        (lambda: ExpectRegex(12), TypeError, ["pattern", "12"]),
        (lambda: Send(12), TypeError, ["data to send", "12"]),
        (lambda: Send(None), TypeError, ["data to send", "None"]),
        (lambda: SendFrame(b"x" * 256, ">B"), ValueError, ["256 bytes", "'>B'"]),
        (lambda: SendFrame(b"x", "bad"), ValueError, ["prefix", "'bad'"]),
        (lambda: Garbage(0), ValueError, ["garbage byte count", ">= 1", "0"]),
        (lambda: Garbage(-5), ValueError, ["garbage byte count", "-5"]),
        (lambda: Garbage(5, seed="x"), TypeError, ["seed", "'x'"]),
        (lambda: Garbage(5, seed=True), TypeError, ["seed", "True"]),
        (lambda: Drip(b"x", chunk=0), ValueError, ["chunk size", ">= 1", "0"]),
        (lambda: Drip(b"x", interval=-1), ValueError, ["interval", ">= 0", "-1"]),
        (lambda: Drip(b"x", interval="1"), TypeError, ["interval", "'1'"]),
        (lambda: Delay(-0.5), ValueError, ["delay", ">= 0", "-0.5"]),
        (lambda: Delay(None), TypeError, ["delay", "None"]),
        (lambda: Delay(True), TypeError, ["delay", "True"]),
        (lambda: Hang(-1), ValueError, ["hang time", "-1"]),
        (lambda: Hang("1"), TypeError, ["hang time", "'1'"]),
        (lambda: Call("not callable"), TypeError, ["callable", "'not callable'"]),
        (lambda: http_response(12), TypeError, ["body", "12"]),
    ],
)
def test_bad_step_arguments_raise_naming_the_value(
    make: Any, error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as info:
        make()
    for word in words:
        assert word in str(info.value), f"{word!r} not in {str(info.value)!r}"


# ---------------------------------------------------------------------------
# Failure.message()
# ---------------------------------------------------------------------------


def _record(*events: tuple[str, bytes, str]) -> ConnectionRecord:
    record = ConnectionRecord(3, ("127.0.0.1", 50123))
    for kind, data, text in events:
        record.add(kind, data, text)
    return record


def test_failure_message_has_connection_step_expected_received_offset_and_transcript() -> None:
    step = Expect(b"HELLO WORLD")
    record = _record(("note", b"", "connected"), ("recv", b"HELLO WXRLD", ""))
    failure = Failure(
        kind="mismatch",
        summary="wrong bytes at offset 7",
        connection=3,
        peer=("127.0.0.1", 50123),
        step_index=2,
        step=step,
        script_length=4,
        expected=step.describe(),
        received=b"HELLO WXRLD",
        offset=7,
        transcript=record.render(tail=8),
    )
    text = failure.message()
    assert text.startswith(
        "connection #3 from 127.0.0.1:50123, step 2 of 4: Expect(b'HELLO WORLD'): "
        "wrong bytes at offset 7"
    )
    assert "  expected: b'HELLO WORLD'" in text
    assert "  received: b'HELLO WXRLD'" in text
    assert "first difference at byte offset 7: expected b'O' (0x4f), got b'X' (0x58)" in text
    assert "(hex)" not in text  # text data needs no hex
    assert "transcript (last events):" in text
    assert "<- client 11 bytes  b'HELLO WXRLD'" in text
    assert str(failure) == text


def test_failure_message_shows_hex_for_binary_data() -> None:
    step = Expect(b"\x00\x01\x02")
    failure = Failure(
        "mismatch", "wrong bytes at offset 2", connection=1, peer=("::1", 4000, 0, 0),
        step_index=0, step=step, script_length=1, expected=step.describe(),
        received=b"\x00\x01\xff", offset=2,
    )
    text = failure.message()
    assert "connection #1 from [::1]:4000" in text
    assert "received (hex): 00 01 ff" in text
    assert "expected b'\\x02' (0x02), got b'\\xff' (0xff)" in text


def test_failure_message_when_the_data_ended_before_the_difference() -> None:
    failure = Failure(
        "closed", "the client closed the connection before the step completed",
        connection=1, step_index=0, step=Expect(b"PING"), script_length=1,
        expected="b'PING'", received=b"PI", offset=2,
    )
    assert "first difference at byte offset 2: the data ended there" in failure.message()


def test_failure_message_of_an_exception_has_the_traceback() -> None:
    failure = Failure("error", "ValueError: boom", traceback="Traceback...\nValueError: boom\n")
    text = failure.message()
    assert text.startswith("ValueError: boom")
    assert "  server-side traceback:\n    Traceback...\n    ValueError: boom" in text


def test_failure_message_cuts_long_received_data() -> None:
    failure = Failure("mismatch", "x", received=b"a" * 500, offset=None)
    assert "... (500 bytes)" in failure.message()


# ---------------------------------------------------------------------------
# transcripts
# ---------------------------------------------------------------------------


def test_record_render_shows_peer_direction_sizes_and_ending() -> None:
    record = _record(
        ("note", b"", "connected"), ("recv", b"GET /", ""), ("send", b"HTTP/1.1 200 OK", "")
    )
    record.ended = "client closed"
    text = record.render()
    lines = text.splitlines()
    assert lines[0] == "connection #3 from 127.0.0.1:50123 [client closed]"
    assert lines[1].endswith("connected")
    assert "<- client 5 bytes  b'GET /'" in lines[2]
    assert "-> server 15 bytes  b'HTTP/1.1 200 OK'" in lines[3]
    assert re.match(r"^\s+\d+\.\d{3}s  ", lines[1])
    assert record.received == b"GET /"
    assert record.sent == b"HTTP/1.1 200 OK"


def test_record_render_tail_counts_the_earlier_events() -> None:
    record = _record(*[("recv", bytes([65 + i]), "") for i in range(10)])
    text = record.render(tail=3)
    assert "[open]" in text.splitlines()[0]
    assert "... 7 earlier events" in text
    assert "b'J'" in text and "b'G'" not in text


def test_record_render_shows_the_coming_ending_of_an_open_connection() -> None:
    record = _record(("recv", b"wrong", ""))
    assert record.render(ending="failed").splitlines()[0].endswith(" [failed]")
    record.ended = "client reset"  # how it did end wins over how it was about to
    assert record.render(ending="failed").splitlines()[0].endswith(" [client reset]")


def test_render_transcript_joins_records_and_says_when_there_are_none() -> None:
    assert render_transcript([]) == "(no connections)"
    one, two = ConnectionRecord(1, ("127.0.0.1", 1)), ConnectionRecord(2, None)
    text = render_transcript([one, two])
    assert "connection #1 from 127.0.0.1:1 [open]" in text
    assert "connection #2 from (unnamed peer) [open]" in text


def test_show_bytes_cuts_and_counts() -> None:
    assert show_bytes(b"abc") == "b'abc'"
    assert show_bytes(b"x" * 100, 10) == "b'xxxxxxxxxx'... (100 bytes)"


# ---------------------------------------------------------------------------
# http_response
# ---------------------------------------------------------------------------


def test_http_response_is_complete_with_content_length() -> None:
    assert http_response("hello world") == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world"
    )


def test_http_response_status_reason_and_headers() -> None:
    data = http_response(b"", status=404, headers={"X-A": "1", "Connection": "keep-alive"})
    assert data.startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert b"X-A: 1\r\n" in data
    assert b"Connection: keep-alive\r\n" in data and b"close" not in data
    assert b"Content-Length: 0\r\n" in data
    assert http_response(status=599).startswith(b"HTTP/1.1 599 Unknown\r\n")
    assert http_response(status=200, reason="Fine").startswith(b"HTTP/1.1 200 Fine\r\n")


def test_http_response_body_is_utf8() -> None:
    assert http_response("é").endswith(b"Content-Length: 2\r\nConnection: close\r\n\r\n\xc3\xa9")
