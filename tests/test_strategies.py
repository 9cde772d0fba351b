"""embeddedserver.strategies: misbehaving variants of a script, and check_client.

1. The variants, without a socket: each kind changes what it says (a prefix then a close,
   pieces that join to the reply, one pause, one changed byte...), every variant is a
   script a server takes, its repr reads (and evaluates) as one, and the same settings
   draw the same variants.
2. Bad arguments fail where they are given, naming the value.
3. The strategies and check_client against real loopback servers: each buggy client of
   ``_buggyclients`` is found (Hypothesis raises with the falsifying variant), and the
   correct client passes the same search; hanging, runaway and raising clients are
   reported; with the ``command_server`` fixture, in asyncio tests; no leaks across
   hundreds of examples; a falsifying example replays from the database.

Searches are small (``max_examples`` a few dozen) with ``deadline=None``: a loaded
machine makes per-example deadlines flaky, and ``check_client``'s ``within`` bounds each.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from _buggyclients import (
    BODY,
    REQUEST,
    fetch,
    fetch_async,
    read_once,
    read_once_async,
    retry_forever,
    retry_three_times,
)
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.database import InMemoryExampleDatabase

import embeddedserver
from embeddedserver import (
    RECEIVE,
    Call,
    Close,
    CommandServer,
    Connection,
    Delay,
    Drip,
    Expect,
    Garbage,
    HalfClose,
    Hang,
    PerConnection,
    ReadUntil,
    Reset,
    Send,
    SendFrame,
    Step,
    compile_script,
    http_response,
)
from embeddedserver import strategies as strategies_module
from embeddedserver.strategies import (
    KINDS,
    Outcome,
    Variant,
    check_client,
    corruptions,
    cut_sends,
    delays,
    hangs,
    misbehaving,
    one_connection,
    split_sends,
    truncated_frames,
)

REPLY = http_response(BODY)
SCRIPT = [ReadUntil(b"\r\n\r\n"), REPLY]
FRAMES = [RECEIVE, SendFrame(b"first"), RECEIVE, SendFrame(b"second frame", ">H")]
#: Generous: far above what any client here takes (CLIENT_TIMEOUT on a hang).
WITHIN = 3.0
#: The kinds whose variants leave the bytes a client gets intact (or cut them short).
INTACT = tuple(kind for kind in KINDS if kind not in ("garbage", "flip"))

#: One bug per search, and no explain phase: each of its runs of a failing client costs up
#: to ``within`` seconds.
_QUICK = settings(deadline=None, derandomize=True, database=None, report_multiple_bugs=False,
                  phases=[p for p in Phase if p is not Phase.explain],
                  suppress_health_check=[HealthCheck.too_slow])


def _search(strategy: st.SearchStrategy[Variant], check: Callable[[Variant], object],
            max_examples: int, **more: Any) -> None:
    """Run *check* on up to *max_examples* variants drawn from *strategy*."""

    @settings(_QUICK, max_examples=max_examples, **more)
    @given(strategy)
    def search(variant: Variant) -> None:
        check(variant)

    search()


def _variants(strategy: st.SearchStrategy[Variant], n: int = 150) -> list[Variant]:
    """The first *n* variants a derandomized search draws (no server is started)."""
    drawn: list[Variant] = []
    _search(strategy, drawn.append, n)
    return drawn


def _sent(steps: list[Step]) -> bytes:
    """What a script sends, in order."""
    return b"".join(step.data for step in steps if isinstance(step, Send))


def _reprs(steps: Any) -> list[str]:
    """Steps compare by what they are (their repr), not by identity."""
    return [repr(step) for step in steps]


GOOD = _reprs(compile_script(SCRIPT))


def _correct_body(body: bytes) -> bool:
    return body == BODY


# ---------------------------------------------------------------------------
# 1. the variants, without a socket
# ---------------------------------------------------------------------------


def test_cut_sends_send_a_prefix_of_the_reply_then_end_as_the_note_says() -> None:
    seen = set()
    for variant in _variants(cut_sends(SCRIPT)):
        assert isinstance(variant.commands, list)
        steps = variant.commands
        sent = _sent(steps)
        assert REPLY.startswith(sent)
        assert f"after {len(sent)} of the {len(REPLY)} bytes of step 1" in variant.note
        ending = [type(step) for step in steps[len(steps) - (2 if variant.kind == "half-close"
                                                               else 1):]]
        assert ending == {"close": [Close], "reset": [Reset],
                          "half-close": [HalfClose, Hang]}[variant.kind]
        assert variant.note.startswith(variant.kind) and not variant.corrupts
        seen.add(variant.kind)
    assert seen == {"close", "reset", "half-close"}


def test_split_sends_pieces_join_to_the_reply_with_pauses_within_max_delay() -> None:
    for variant in _variants(split_sends(SCRIPT, max_delay=0.1, max_pieces=5)):
        assert isinstance(variant.commands, list)
        pieces = [s for s in variant.commands if isinstance(s, Send)]
        pauses = [s.seconds for s in variant.commands if isinstance(s, Delay)]
        assert _sent(variant.commands) == REPLY
        assert 2 <= len(pieces) <= 5 and all(piece.data for piece in pieces)
        assert sum(pauses) <= 0.1 + 1e-9 and all(p >= 0.01 for p in pauses)
        sizes = ", ".join(str(len(piece.data)) for piece in pieces)
        assert f"in {len(pieces)} pieces of {sizes} bytes" in variant.note


def test_delays_add_one_pause_and_hangs_fall_silent_for_good() -> None:
    for variant in _variants(delays(SCRIPT, max_delay=0.05), 60):
        assert isinstance(variant.commands, list)
        [pause] = [s for s in variant.commands if isinstance(s, Delay)]
        assert 0 < pause.seconds <= 0.05
        assert _reprs(s for s in variant.commands if s is not pause) == GOOD
    ends = set()
    for variant in _variants(hangs(SCRIPT), 60):
        assert isinstance(variant.commands, list)
        *before, last = variant.commands
        assert isinstance(last, Hang) and last.seconds is None
        assert _reprs(before) == GOOD[:len(before)]
        ends.add(len(before))
    assert ends == {0, 1, 2}  # before the read, instead of the reply, instead of the close


def test_corruptions_change_the_bytes_and_say_so() -> None:
    kinds = set()
    for variant in _variants(corruptions(SCRIPT, max_garbage=8)):
        assert variant.corrupts and isinstance(variant.commands, list)
        sent = _sent(variant.commands)
        kinds.add(variant.kind)
        if variant.kind == "flip":
            assert len(sent) == len(REPLY)
            assert sum(a != b for a, b in zip(sent, REPLY, strict=True)) == 1
        else:
            [where] = [i for i, s in enumerate(variant.commands) if isinstance(s, Garbage)]
            garbage = variant.commands[where]
            assert isinstance(garbage, Garbage) and 1 <= garbage.n <= 8
            at = len(_sent(variant.commands[:where]))
            assert len(sent) == len(REPLY) + garbage.n and sent[at:at + garbage.n] == garbage.data
            assert sent[:at] + sent[at + garbage.n:] == REPLY
            assert f"{garbage.n} bytes of garbage at byte {at} of step 1" in variant.note
    assert kinds == {"garbage", "flip"}


def test_truncated_frames_send_less_than_their_length_prefix_says() -> None:
    for variant in _variants(truncated_frames(FRAMES)):
        assert isinstance(variant.commands, list) and isinstance(variant.commands[-1], Close)
        sent = _sent(variant.commands)
        first = struct.pack(">I", 5) + b"first"
        if sent.startswith(first):  # the second frame is the one cut
            rest, size = sent[len(first):], 2
        else:
            rest, size = sent, 4
        if len(rest) >= size:
            claimed = struct.unpack(">I" if size == 4 else ">H", rest[:size])[0]
            assert claimed > len(rest) - size
        assert "the frame of step" in variant.note


def test_one_connection_misbehaves_and_the_others_follow_the_script() -> None:
    positions = set()
    for variant in _variants(one_connection(SCRIPT, kinds=("reset", "split"))):
        plan = variant.commands
        assert isinstance(plan, PerConnection) and variant.kind == "connection"
        bad = [n for n, script in enumerate(plan.scripts, 1) if _reprs(script) != GOOD]
        assert len(bad) == 1 and bad[0] == len(plan.scripts)
        assert plan.then is not None and _reprs(plan.then) == GOOD
        assert variant.note.startswith(f"connection {bad[0]} misbehaves (")
        positions.add(bad[0])
    assert positions == {1, 2, 3}


def test_a_recorded_plan_is_varied_one_connection_at_a_time() -> None:
    plan = PerConnection([RECEIVE, b"one"], [RECEIVE, b"two"])
    labels = set()
    for variant in _variants(misbehaving(plan, max_delay=0.01)):
        assert isinstance(variant.commands, PerConnection)
        scripts = variant.commands.scripts
        changed = [n for n, (new, old) in enumerate(zip(scripts, plan.scripts, strict=True), 1)
                   if _reprs(new) != _reprs(old)]
        assert len(changed) == 1 and variant.note.startswith(f"connection {changed[0]}: ")
        labels.add(changed[0])
    assert labels == {1, 2}


def test_a_script_file_recording_is_a_base_too(tmp_path: Any) -> None:
    path = tmp_path / "hello.script"
    path.write_text('client: "GET / HTTP/1.1\\r\\n\\r\\n"\nserver: "HTTP/1.1 200 OK\\r\\n"\n'
                    '        "Content-Length: 11\\r\\n\\r\\nhello world"\nclose\n')
    recorded = embeddedserver.load_script(path)
    assert isinstance(recorded, list) and _sent(recorded) == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world")
    variant = find(cut_sends(recorded, how=("reset",)),
                   lambda v: v.note.startswith("reset after 17 "))
    assert repr(variant).endswith(
        "Send(b'HTTP/1.1 200 OK\\r\\n'), Reset()], note='reset after 17 of the 50 bytes of "
        "step 1')")


def test_misbehaving_draws_every_kind_and_only_scripts_a_server_takes() -> None:
    kinds = set()
    for variant in _variants(misbehaving(FRAMES), 400):
        kinds.add(variant.kind)
        plan = variant.commands
        scripts = ([*plan.scripts, plan.then] if isinstance(plan, PerConnection) else [plan])
        for script in scripts:
            assert script is not None and compile_script(list(script))
    assert kinds == set(KINDS)


def test_a_variant_repr_reads_and_evaluates_as_the_same_script() -> None:
    names = {name: getattr(embeddedserver, name) for name in embeddedserver.__all__}
    for variant in _variants(misbehaving(SCRIPT), 200):
        again = eval(repr(variant), {**names, "Variant": Variant})
        assert repr(again) == repr(variant)
    variant = find(misbehaving([RECEIVE, b"pong"], kinds=("reset",)), lambda v: True)
    assert repr(variant) == (
        "Variant([RECEIVE, Reset()], note='reset after 0 of the 4 bytes of step 1')")


def test_the_same_settings_draw_the_same_variants() -> None:
    first = [repr(v) for v in _variants(misbehaving(SCRIPT), 80)]
    again = [repr(v) for v in _variants(misbehaving(SCRIPT), 80)]
    assert first == again and len(set(first)) > 40


def test_a_drip_is_cut_as_a_drip_and_not_split_again() -> None:
    script = [RECEIVE, Drip(b"slowly", chunk=2, interval=0.01)]
    variant = find(cut_sends(script, how=("close",)), lambda v: v.note.startswith("close after 3 "))
    assert repr(variant) == ("Variant([RECEIVE, Drip(b'slo', chunk=2, interval=0.01), "
                             "Close()], note='close after 3 of the 6 bytes of step 1')")
    with pytest.raises(ValueError, match="a Drip is split already"):
        split_sends(script)


# ---------------------------------------------------------------------------
# 2. bad arguments fail where they are given
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: misbehaving(SCRIPT, kinds=("rest",)), ValueError, "unknown kind 'rest'"),
        (lambda: misbehaving(SCRIPT, kinds="reset"), TypeError, "not 'reset'"),
        (lambda: misbehaving(SCRIPT, kinds=()), ValueError, "kinds is empty"),
        (lambda: misbehaving(SCRIPT, max_delay=-1), ValueError, "max_delay .* not -1"),
        (lambda: misbehaving([object()]), TypeError, "command 0"),
        (lambda: misbehaving([RECEIVE], kinds=("reset", "split")), ValueError,
         "reset: no step sends anything; split: no step sends 2 bytes"),
        (lambda: cut_sends(SCRIPT, how=("flip",)), ValueError, "unknown kind 'flip'"),
        (lambda: truncated_frames(SCRIPT), ValueError, "no step is a SendFrame"),
        (lambda: delays(SCRIPT, max_delay=0), ValueError, "max_delay=0 leaves no pause"),
        (lambda: split_sends(SCRIPT, max_pieces=1), ValueError, "max_pieces"),
        (lambda: corruptions(SCRIPT, max_garbage=0), ValueError, "max_garbage"),
        (lambda: one_connection(PerConnection([RECEIVE, b"x"])), ValueError,
         "a PerConnection plan already"),
        (lambda: one_connection(SCRIPT, kinds=("connection",)), ValueError,
         "unknown kind 'connection'"),
        (lambda: Variant([Reset(), b"x"], note="n"), ValueError, "can never run"),
    ],
)
def test_a_bad_argument_fails_at_once_naming_it(
    make: Callable[[], object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"may_raise": "ValueError"}, TypeError, "may_raise must be an exception class"),
        ({"may_raise": (ValueError, int)}, TypeError, "not \\(<class 'ValueError'>"),
        ({"within": 0}, ValueError, "within must be a number of seconds > 0, not 0"),
        ({"correct": b"hello"}, TypeError, "correct must be a callable"),
        ({"fail_on": "error"}, TypeError, "fail_on must be a collection"),
        ({"start": lambda commands, **options: object()}, TypeError,
         "start must make a CommandServer"),
    ],
)
def test_check_client_refuses_a_bad_argument(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        check_client(SCRIPT, fetch, **options)
    with pytest.raises(TypeError, match="client must be a callable"):
        check_client(SCRIPT, b"fetch")  # type: ignore[arg-type]


def test_without_hypothesis_the_module_says_which_extra_to_install() -> None:
    code = ("import sys; sys.modules['hypothesis'] = None\n"
            "try:\n    import embeddedserver.strategies\n"
            "except ImportError as exc:\n    print(exc)\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=root, timeout=60, check=True)
    assert done.stdout.strip() == (
        "embeddedserver.strategies needs Hypothesis: pip install 'embeddedserver[fuzz]'")


# ---------------------------------------------------------------------------
# 3. check_client against real servers
# ---------------------------------------------------------------------------


def test_the_known_good_script_passes_the_correct_client() -> None:
    outcome = check_client(SCRIPT, fetch, correct=_correct_body)
    assert isinstance(outcome, Outcome) and outcome.result == BODY and outcome.raised is None
    assert outcome.server.STOPPED and outcome.server.received == [REQUEST]
    assert 0 <= outcome.elapsed < WITHIN and outcome.tolerated == []


def test_the_correct_client_passes_every_misbehaviour_that_keeps_the_bytes() -> None:
    _search(misbehaving(SCRIPT, kinds=INTACT),
            lambda v: check_client(v, fetch, within=WITHIN, correct=_correct_body), 60)


def test_the_correct_client_survives_corruptions_raising_only_what_it_may() -> None:
    outcomes: list[Outcome[bytes]] = []
    _search(corruptions(SCRIPT),
            lambda v: outcomes.append(check_client(v, fetch, within=WITHIN)), 40)
    assert any(isinstance(o.raised, ValueError) for o in outcomes)  # most are noticed


def _hunt(strategy: st.SearchStrategy[Variant], client: Callable[[Any], Any],
          max_examples: int = 100, **options: Any) -> AssertionError:
    """Search for a variant *client* fails; return Hypothesis' error (a failure if none)."""
    with pytest.raises(AssertionError) as caught:
        _search(strategy, lambda v: check_client(v, client, **options), max_examples)
    return caught.value


def _falsifying(error: AssertionError) -> str:
    return "\n".join(getattr(error, "__notes__", []))


#: Variants that send what they send in one write and then close or half-close: one read
#: gets the same bytes each time a variant replays, so a client that takes one read for
#: the reply fails each replay alike. (With several writes, as garbage or a split sends,
#: how many one read gets depends on timing, and Hypothesis would call its own replay of
#: a failure flaky; a reset can discard the bytes before the read.)
ONE_WRITE = ("close", "half-close")


def test_a_client_that_takes_one_read_for_the_reply_is_found() -> None:
    error = _hunt(misbehaving(SCRIPT, kinds=ONE_WRITE), read_once, correct=_correct_body,
                  within=WITHIN)
    message = str(error)
    assert "as if it were right, and correct=_correct_body rejected it" in message
    assert message.splitlines()[1].startswith("  server: Variant([ReadUntil(b'\\r\\n\\r\\n'), ")
    assert "client: read_once(('127.0.0.1', " in message and "transcript (1 connection)" in message
    example = _falsifying(error)
    assert "Variant([ReadUntil(b'\\r\\n\\r\\n'), Send(b'HTTP/1.1 200" in example
    assert "close after" in example or "half-close after" in example


@pytest.mark.parametrize("seed", range(3))
def test_the_short_read_bug_is_found_by_every_random_search(seed: int) -> None:
    # Random searches (a seed each), stopped at their first failure: each finds the bug,
    # and a reply split in pieces is enough to show it.
    @hypothesis_seed(seed)
    @settings(deadline=None, database=None, max_examples=60, phases=[Phase.generate])
    @given(split_sends(SCRIPT))
    def search(variant: Variant) -> None:
        check_client(variant, read_once, correct=_correct_body, within=WITHIN)

    with pytest.raises(AssertionError, match="as if it were right"):
        search()


def test_a_client_that_retries_a_reset_forever_is_found_and_one_that_gives_up_passes() -> None:
    error = _hunt(cut_sends(SCRIPT, how=("reset",)), retry_forever, 30, within=0.5)
    assert "the client did not finish within 0.5 s (within=)" in str(error)
    assert "only once the server had stopped" in str(error)
    assert "Reset()" in _falsifying(error)
    _search(misbehaving(SCRIPT, kinds=("reset", "close", "connection")),
            lambda v: check_client(v, retry_three_times, within=WITHIN,
                                   correct=_correct_body), 40)


def test_an_async_client_is_checked_in_an_event_loop_of_its_own() -> None:
    error = _hunt(misbehaving(SCRIPT, kinds=ONE_WRITE), read_once_async, correct=_correct_body,
                  within=WITHIN)
    assert "client: read_once_async(" in str(error) and "as if it were right" in str(error)
    _search(misbehaving(SCRIPT, kinds=INTACT),
            lambda v: check_client(v, fetch_async, within=WITHIN, correct=_correct_body), 40)


def _never_times_out(address: tuple[str, int]) -> bytes:
    with socket.create_connection(address) as sock:  # no timeout: waits for ever
        sock.sendall(REQUEST)
        return sock.makefile("rb").read()


def test_a_hanging_client_is_reported_once_the_stop_unblocks_it() -> None:
    variant = find(hangs(SCRIPT), lambda v: isinstance(v.commands, list)
                   and len(v.commands) == 2)
    start = time.monotonic()
    with pytest.raises(AssertionError) as caught:
        check_client(variant, _never_times_out, within=0.3)
    assert time.monotonic() - start < 0.3 + 3.0
    message = str(caught.value)
    assert message.startswith("the client did not finish within 0.3 s (within=): it "
                              "returned b'' only once the server had stopped")
    assert "Hang()], note='silent (Hang) from step 1 on" in message


def test_a_client_that_ignores_the_stop_is_named_and_left_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(strategies_module, "_GRACE", 0.2)
    release = threading.Event()

    def stubborn(address: tuple[str, int]) -> None:
        release.wait(30)  # a client stuck on something that is not the server

    try:
        with pytest.raises(AssertionError) as caught:
            check_client(SCRIPT, stubborn, within=0.2)
        assert "nor 0.2 s after the server stopped" in str(caught.value)
        assert "its thread 'embeddedserver:client " in str(caught.value)
        assert "is left running" in str(caught.value)
    finally:
        release.set()
    for thread in threading.enumerate():
        if thread.name.startswith("embeddedserver:client"):
            thread.join(10)


def test_an_async_client_stuck_elsewhere_is_cancelled() -> None:
    async def stuck(address: tuple[str, int]) -> None:
        await asyncio.Event().wait()

    start = time.monotonic()
    with pytest.raises(AssertionError, match="it raised CancelledError only once the "
                       "server had stopped"):
        check_client(SCRIPT, stuck, within=0.2)
    assert time.monotonic() - start < 0.2 + 3.0


def test_an_exception_the_contract_does_not_allow_is_reported_with_its_cause() -> None:
    def parses_badly(address: tuple[str, int]) -> bytes:
        fetch(address)
        return {}["content-length"]  # type: ignore[no-any-return]

    with pytest.raises(AssertionError) as caught:
        check_client(SCRIPT, parses_badly)
    assert str(caught.value).startswith(
        "the client raised KeyError: 'content-length', which may_raise does not allow "
        "(it allows ConnectionError, TimeoutError, ValueError)")
    assert isinstance(caught.value.__cause__, KeyError)
    outcome = check_client(SCRIPT, parses_badly, may_raise=KeyError)
    assert isinstance(outcome.raised, KeyError) and outcome.result is None


def test_a_correct_check_that_raises_rejects_the_result() -> None:
    def strict(body: bytes) -> bool:
        assert body == b"goodbye", "not goodbye"
        return True

    with pytest.raises(AssertionError, match=r"correct=.*strict rejected it: raised "
                       r"AssertionError: not goodbye") as caught:
        check_client(SCRIPT, fetch, correct=strict)
    assert isinstance(caught.value.__cause__, AssertionError)


def test_the_clients_reactions_are_forgiven_but_a_server_error_is_not() -> None:
    def hangs_up(address: tuple[str, int]) -> None:
        socket.create_connection(address, timeout=10).close()

    outcome = check_client([Expect(REQUEST), REPLY], hangs_up)
    assert [f.kind for f in outcome.tolerated] == ["closed"]
    assert outcome.server.errors == []
    outcome.server.check()  # the forgiven failure was taken out

    def wrong_request(address: tuple[str, int]) -> None:
        with socket.create_connection(address, timeout=10) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\n\r\n")
            sock.recv(100)

    assert [f.kind for f in check_client([Expect(REQUEST), REPLY], wrong_request)
            .tolerated] == ["mismatch"]
    with pytest.raises(AssertionError, match=r"the server itself failed .*mismatch"):
        check_client([Expect(REQUEST), REPLY], wrong_request, fail_on=("error", "mismatch"))

    def broken_step(conn: Connection) -> None:
        raise RuntimeError("the test's own step is broken")

    with pytest.raises(AssertionError) as caught:
        check_client([ReadUntil(b"\r\n\r\n"), Call(broken_step)], fetch)
    message = str(caught.value)
    assert "the server itself failed (1 failure of kind error)" in message
    assert "RuntimeError: the test's own step is broken" in message


def test_a_unix_socket_server_hands_the_client_its_path() -> None:
    def fetch_unix(path: str) -> bytes:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(path)
            sock.sendall(REQUEST)
            return sock.makefile("rb").read().partition(b"\r\n\r\n")[2]

    with tempfile.TemporaryDirectory() as tmp:
        start = functools.partial(CommandServer, path=os.path.join(tmp, "fuzz.sock"))
        outcome = check_client(SCRIPT, fetch_unix, start=start, correct=_correct_body)
    assert outcome.server.address.endswith("fuzz.sock")


@settings(_QUICK, max_examples=25,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(variant=misbehaving(SCRIPT, kinds=INTACT))
def test_with_the_command_server_fixture(command_server: Any, variant: Variant) -> None:
    outcome = check_client(variant, fetch, start=command_server, correct=_correct_body)
    assert outcome.server.errors == []  # so the fixture's verdict at teardown passes


@pytest.mark.asyncio
@settings(_QUICK, max_examples=20)
@given(variant=misbehaving(SCRIPT, kinds=INTACT))
async def test_from_an_asyncio_test(variant: Variant) -> None:
    outcome = await asyncio.to_thread(check_client, variant, fetch_async,
                                      correct=_correct_body)
    assert outcome.raised is not None or outcome.result == BODY


def _fds() -> int:
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc (Linux)")
def test_hundreds_of_examples_leak_no_thread_and_no_socket() -> None:
    kinds = tuple(kind for kind in KINDS if kind != "hang")  # a hang waits the client out
    check_client(SCRIPT, fetch)  # whatever starts once per process has started
    threads, fds = threading.active_count(), _fds()
    _search(misbehaving(SCRIPT, kinds=kinds, max_delay=0.02),
            lambda v: check_client(v, fetch, within=WITHIN), 300)
    assert (threading.active_count(), _fds()) == (threads, fds)


def test_a_falsifying_example_replays_first_from_the_database() -> None:
    database = InMemoryExampleDatabase()
    tried: list[str] = []

    def check(variant: Variant) -> None:
        tried.append(repr(variant))
        check_client(variant, read_once, correct=_correct_body)

    strategy = misbehaving(SCRIPT, kinds=ONE_WRITE)  # each replay fails alike
    with pytest.raises(AssertionError) as first:
        _search(strategy, check, 100, derandomize=False, database=database)
    falsified = _falsifying(first.value)
    tried.clear()
    with pytest.raises(AssertionError):
        _search(strategy, check, 100, derandomize=False, database=database)
    assert tried[0] in falsified  # the saved example is the first one tried again
