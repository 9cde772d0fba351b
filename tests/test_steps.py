"""The pure parts of the engine, without sockets: script compilation and every
constructor's bad input, ``Failure.message()``, transcript rendering and
``http_response``. Matching read steps through ``Inbox`` is in ``test_match``.

Sections: compilation and bad input - failures and transcripts - http_response.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import pytest

from embeddedserver.record import ConnectionRecord, Failure, render_transcript, show_bytes
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
        (lambda: ExpectRegex("a{99999999999}"), ValueError,
         ["invalid regex", "a{99999999999}", "repetition number", "at most 4294967294"]),
        (lambda: ExpectRegex(rb"x{1,4294967295}"), ValueError,
         ["invalid regex", "x{1,4294967295}"]),
        (lambda: ExpectRegex("(" * 1000 + ")" * 1000), ValueError,
         ["invalid regex", "((((", "nested too deeply"]),
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


def test_regexes_at_the_limits_of_re_are_accepted() -> None:
    assert ExpectRegex(b"x{4294967294}").pattern == re.compile(b"x{4294967294}")
    nested = "(" * 50 + "a" + ")" * 50
    assert ExpectRegex(nested).pattern == re.compile(nested.encode())
    assert Expect(re.compile(nested)).pattern == re.compile(nested.encode())


def test_expect_of_a_str_regex_too_deep_to_recompile_as_bytes_is_a_value_error() -> None:
    # re parses recursively, so a str pattern that compiles here can pass the recursion
    # limit when Expect compiles it again as bytes further down the stack.
    def nested(depth: int) -> str:
        return "(" * depth + ")" * depth

    depth = 1
    while True:  # the deepest nesting that still compiles at this depth
        try:
            pattern = re.compile(nested(depth + 1))
        except RecursionError:
            break
        depth += 1
    pattern = re.compile(nested(depth))

    def further_down(frames: int) -> Expect:
        return further_down(frames - 1) if frames else Expect(pattern)

    with pytest.raises(ValueError, match=r"cannot be used on bytes: groups nested too deeply"):
        further_down(100)


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
