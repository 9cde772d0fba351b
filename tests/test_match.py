"""Matching read steps against a byte stream, without sockets: each kind of read step
fed through an ``Inbox`` in pieces, what completes it, what it leaves for the next step,
and the ``Mismatch`` it raises (reason, what was expected, what arrived, the offset).
Also: ``embeddedserver.steps`` still exports what moved here.

Sections: matching (one per kind of read step) - the module.
"""

from __future__ import annotations

import doctest
import itertools
import re
import struct

import pytest

import embeddedserver._match
import embeddedserver.steps
from embeddedserver._match import Inbox, Mismatch
from embeddedserver.steps import (
    RECEIVE,
    Expect,
    ExpectClose,
    ExpectFrame,
    ExpectRegex,
    ReadFrame,
    ReadLine,
    ReadStep,
    ReadUntil,
    ReadUntilClose,
    Receive,
    compile_script,
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
# long chunks: received into a sink (thresholds lowered so that short data uses one)
# ---------------------------------------------------------------------------


@pytest.fixture
def small_sinks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sinks from 4 bytes on; a growing sink's room is 8 bytes, so it also appends."""
    monkeypatch.setattr(embeddedserver._match, "SINK_MIN", 4)
    monkeypatch.setattr(embeddedserver._match, "GROWING_ROOM", 8)


_DATA = b"0123456789abcdefghij\r\n\r\nNEXT"
_FRAME = struct.pack(">I", 20) + _DATA[:20]
#: (step, the client's bytes, the chunk, what is left for the next step)
_LONG_CASES = [
    (Receive(20), _DATA[:20], _DATA[:20], b""),
    (ReadFrame(), _FRAME + b"NEXT", _FRAME, b"NEXT"),
    (ExpectFrame(_DATA[:20]), _FRAME + b"NEXT", _FRAME, b"NEXT"),
    (Expect(_DATA[:24]), _DATA, _DATA[:24], b"NEXT"),
    (ReadUntil(b"\r\n\r\n"), _DATA, _DATA[:24], b"NEXT"),
    (ReadLine(), _DATA, _DATA[:22], b"\r\nNEXT"),
]


def _read_in(inbox: Inbox, data: bytes, cuts: list[int], *, into: bool) -> bytes | None:
    """Deliver *data* cut at *cuts*, as a shell does (into ``space()`` when *into* and
    there is room, else ``feed``); poll after each read. The chunk, or None."""
    chunk = None
    bounds = [0, *cuts, len(data)]
    for start, end in itertools.pairwise(bounds):
        piece = data[start:end]
        while piece and chunk is None:
            room = inbox.space() if into else None
            if room is None:
                inbox.feed(piece)
                piece = b""
            else:
                n = min(len(room), len(piece))
                room[:n] = piece[:n]
                room.release()
                inbox.commit(n)
                piece = piece[n:]
            chunk = inbox.poll()
        if piece:  # the step ended inside this read: the rest arrived with it
            inbox.feed(piece)
    return chunk


@pytest.mark.usefixtures("small_sinks")
@pytest.mark.parametrize("into", [True, False], ids=["recv_into", "feed"])
@pytest.mark.parametrize(("step", "data", "chunk", "rest"), _LONG_CASES,
                         ids=[repr(case[0]) for case in _LONG_CASES])
def test_a_long_chunk_split_at_every_boundary_matches_as_one_read(
    step: ReadStep, data: bytes, chunk: bytes, rest: bytes, into: bool
) -> None:
    for a in range(len(data) + 1):
        for b in range(a, len(data) + 1):
            inbox = Inbox()
            inbox.begin(step)
            got = _read_in(inbox, data, [a, b], into=into)
            assert (got, bytes(inbox.buffer)) == (chunk, rest), (a, b)
            assert type(got) is bytes


@pytest.mark.usefixtures("small_sinks")
def test_read_until_close_collects_past_its_room_and_hands_over_bytes() -> None:
    data = bytes(range(256)) * 4
    inbox = Inbox()
    inbox.begin(ReadUntilClose())
    assert _read_in(inbox, data, list(range(3, len(data), 7)), into=True) is None
    inbox.commit(0)  # EOF
    chunk = inbox.poll()
    assert chunk == data and type(chunk) is bytes
    assert not inbox.buffer


@pytest.mark.usefixtures("small_sinks")
@pytest.mark.parametrize("into", [True, False], ids=["recv_into", "feed"])
def test_an_expect_mismatch_in_a_sink_reports_the_exact_offset(into: bool) -> None:
    expected = bytes(range(100, 200))
    for wrong in range(len(expected)):
        data = expected[:wrong] + b"\x00" + expected[wrong + 1 :]
        for cut in (1, 5, wrong, wrong + 1, 64, 99):
            inbox = Inbox()
            inbox.begin(Expect(expected))
            with pytest.raises(Mismatch) as info:
                _read_in(inbox, data, [min(cut, len(data))], into=into)
            assert info.value.offset == wrong, (wrong, cut)
            assert info.value.reason == f"wrong bytes at offset {wrong}"
            assert info.value.received == (data[:cut] if wrong < cut else data)


def test_a_long_expect_mismatch_offset_is_exact_in_one_read() -> None:
    expected = bytes(1 << 20)
    for wrong in (0, 1, 63, 64, 65, 4096, (1 << 20) - 1):
        data = bytearray(expected)
        data[wrong] = 1
        info = mismatch(Expect(expected), bytes(data))
        assert info.offset == wrong
        assert info.received == data


@pytest.mark.usefixtures("small_sinks")
def test_the_buffer_shows_what_a_sink_holds_and_the_step_goes_on() -> None:
    inbox = Inbox()
    inbox.begin(Receive(10))
    inbox.feed(b"abc")
    assert inbox.poll() is None
    room = inbox.space()
    assert room is not None and len(room) == 7
    room[:2] = b"de"
    room.release()
    inbox.commit(2)
    assert bytes(inbox.buffer) == b"abcde"  # a timeout's message needs them
    inbox.feed(b"fghijXY")
    assert inbox.poll() == b"abcdefghijXY"  # back in the bytearray: all that arrived


@pytest.mark.usefixtures("small_sinks")
def test_eof_inside_a_sink_reports_what_arrived() -> None:
    inbox = Inbox()
    inbox.begin(Receive(10))
    inbox.feed(b"abcdef")
    assert inbox.poll() is None
    inbox.commit(0)
    with pytest.raises(Mismatch) as info:
        inbox.poll()
    assert (info.value.received, info.value.offset) == (b"abcdef", 6)


def test_a_frame_prefix_claiming_gigabytes_reserves_nothing() -> None:
    inbox = Inbox()
    inbox.begin(ReadFrame(">Q"))
    inbox.feed(struct.pack(">Q", 1 << 40) + b"x")
    assert inbox.poll() is None
    assert inbox.space() is None


# ---------------------------------------------------------------------------
# the module
# ---------------------------------------------------------------------------


def test_module_example_runs() -> None:
    result = doctest.testmod(embeddedserver._match)
    assert result.attempted and not result.failed
