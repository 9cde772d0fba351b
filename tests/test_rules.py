"""Rules: replies chosen by what the client sends, for pooled, pipelining and retrying
clients; counts shared by a server's connections and judged at the verdict.

The runner is driven without a socket first; then real loopback sockets against every
server class (serial, concurrent, one-shot, asyncio), TLS and a Unix socket. Each way a
client can be wrong has its twin with a correct client, run in the same loop.
"""

from __future__ import annotations

import random
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _servers import SERVER_CLASSES, MakeServer, ServerMaker

from embeddedserver import (
    AsyncioCommandServer,
    Close,
    CommandServer,
    ConnectionRecord,
    Delay,
    Hang,
    LocalTLS,
    ReadFrame,
    ReadLine,
    ReadUntilClose,
    Reset,
    Rule,
    RuleBook,
    Rules,
    SendFrame,
    at_least,
    compile_script,
)
from embeddedserver._runner import Action, ScriptRunner

CLIENT_TIMEOUT = 10.0
ROUNDS = 30


@pytest.fixture(params=SERVER_CLASSES, ids=lambda cls: cls.__name__)
def make_server(request: pytest.FixtureRequest) -> Iterator[MakeServer]:
    with ServerMaker(request.param) as make:
        yield make


class LineClient:
    """A client of one connection that sends lines and reads line replies."""

    def __init__(self, address: Any, family: int = socket.AF_INET,
                 wrap: Callable[[socket.socket], socket.socket] | None = None) -> None:
        raw = socket.socket(family, socket.SOCK_STREAM)
        raw.settimeout(CLIENT_TIMEOUT)
        raw.connect(address)
        self.sock = wrap(raw) if wrap is not None else raw
        self._buf = b""

    def ask(self, line: bytes) -> bytes:
        self.sock.sendall(line)
        return self.reply()

    def reply(self) -> bytes:
        while b"\n" not in self._buf:
            data = self.sock.recv(4096)
            if not data:
                return self._buf
            self._buf += data
        line, _, self._buf = self._buf.partition(b"\n")
        return line + b"\n"

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> LineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def redis_like(**kwargs: Any) -> Rules:
    return Rules(
        ReadLine(),
        Rule(b"PING\n", b"+PONG\n"),
        Rule(re.compile(rb"^GET (a|b)\n\Z"), b"$value\n"),
        Rule(lambda request: request.startswith(b"ECHO "), b"+echo\n"),
        Rule(b"QUIT\n", [b"+BYE\n", Close()]),
        **kwargs,
    )


# ---------------------------------------------------------------------------
# the runner, without a socket
# ---------------------------------------------------------------------------


def drive(runner: ScriptRunner, inputs: list[bytes]) -> tuple[list[Action], list[bytes]]:
    """Feed *inputs* one per READ; SENDs done at once. The actions and what was sent."""
    actions: list[Action] = []
    sent: list[bytes] = []
    now = 0.0
    for _ in range(1000):
        action = runner.next_action(now)
        actions.append(action)
        if action is Action.READ:
            if not inputs:
                return actions, sent
            runner.receive(inputs.pop(0))
        elif action is Action.SEND:
            sent.append(runner.outgoing)
            runner.done()
        elif action is Action.PAUSE:
            assert runner.deadline is not None
            now = runner.deadline
        else:
            return actions, sent
    raise AssertionError("the runner never settled")


def make_runner(steps: Any, book: RuleBook | None = None) -> ScriptRunner:
    return ScriptRunner(compile_script(steps), ConnectionRecord(1, None), 5.0, rulebook=book)


def test_runner_answers_each_request_by_its_rule_until_the_client_closes() -> None:
    runner = make_runner([redis_like()])
    actions, sent = drive(runner, [b"GET a\nPI", b"NG\nECHO x\n", b"QUIT\n"])
    assert sent == [b"$value\n", b"+PONG\n", b"+echo\n", b"+BYE\n"]
    assert actions[-1] is Action.CLOSE and runner.ending == "server closed"
    assert runner.failure is None and runner.reported == []
    notes = [e.text for e in runner.record.events if e.kind == "note"]
    assert "request 2 answered by rule 0: Rule(b'PING\\n', b'+PONG\\n')" in notes


def test_runner_ends_the_step_when_the_client_closes_between_requests() -> None:
    runner = make_runner([redis_like(), "bye"])
    actions, sent = drive(runner, [b"PING\n", b""])
    assert sent == [b"+PONG\n", b"bye"]
    assert actions[-1] is Action.DONE and runner.ending == "client closed"
    assert runner.failure is None


def test_runner_fails_when_the_client_closes_inside_a_request() -> None:
    runner = make_runner([redis_like()])
    actions, _ = drive(runner, [b"PING\nPI", b""])
    assert actions[-1] is Action.FAILED
    assert runner.failure is not None and runner.failure.kind == "closed"
    assert runner.failure.received == b"PI"


def test_runner_reports_an_unmatched_request_and_goes_on_with_the_unmatched_reply() -> None:
    runner = make_runner([redis_like(unmatched=b"-ERR\n")])
    actions, sent = drive(runner, [b"PONG\n", b"PING\n", b""])
    assert sent == [b"-ERR\n", b"+PONG\n"]
    assert runner.failure is None and actions[-1] is Action.DONE
    [failure] = runner.reported
    assert failure.kind == "unmatched" and failure.received == b"PONG\n"
    assert "no rule takes the request b'PONG\\n'" in failure.summary


def test_runner_rule_counts_are_shared_through_one_rulebook() -> None:
    step = Rules(ReadLine(), Rule(b"GET\n", b"first\n", times=1), Rule(b"GET\n", b"later\n"))
    book = RuleBook()
    _, first = drive(make_runner([step], book), [b"GET\n", b""])
    _, second = drive(make_runner([step], book), [b"GET\n", b""])
    assert (first, second) == ([b"first\n"], [b"later\n"])
    assert book.used(step) == [1, 1]
    assert book.failures([step]) == []


def test_runner_a_failing_send_in_a_reply_names_the_rules_step() -> None:
    runner = make_runner([redis_like()])
    assert drive(runner, [b"PING\n"])[0][-1] is Action.READ
    runner.receive(b"PING\n")
    assert runner.next_action(0.0) is Action.SEND
    runner.io_error(BrokenPipeError())
    assert runner.next_action(0.0) is Action.FAILED
    assert runner.failure is not None
    assert isinstance(runner.failure.step, Rules) and runner.failure.step_index == 0
    assert "in the reply to request 2, at Send(b'+PONG\\n')" in runner.failure.summary


def test_runner_a_reply_that_hangs_records_what_arrives() -> None:
    runner = make_runner([Rules(ReadLine(), Rule(b"WAIT\n", Hang()))])
    actions, _ = drive(runner, [b"WAIT\n", b"more", b""])
    assert actions[-1] is Action.CLOSE and runner.ending == "client closed"
    assert (b"more", "(while hanging)") in [(e.data, e.text) for e in runner.record.events]


def test_runner_a_predicate_that_raises_fails_the_step_with_its_traceback() -> None:
    def broken(request: bytes) -> bool:
        raise KeyError(request)

    runner = make_runner([Rules(ReadLine(), Rule(broken, b"never"))])
    actions, sent = drive(runner, [b"x\n"])
    assert actions[-1] is Action.FAILED and sent == []
    assert runner.failure is not None and runner.failure.kind == "error"
    assert "KeyError: b'x\\n'" in runner.failure.summary
    assert "in broken" in runner.failure.traceback


def test_runner_a_client_silent_between_requests_times_out() -> None:
    runner = ScriptRunner(compile_script([Rules(ReadLine(timeout=2), Rule(b"a\n", b"A"))]),
                          ConnectionRecord(1, None), 5.0)
    assert runner.next_action(0.0) is Action.READ and runner.deadline == 2.0
    runner.receive(b"a\n")
    assert runner.next_action(1.0) is Action.SEND
    runner.done()
    assert runner.next_action(1.5) is Action.READ and runner.deadline == 3.5  # per request
    assert runner.next_action(3.5) is Action.FAILED
    assert runner.failure is not None and runner.failure.kind == "timeout"
    assert "timed out after 2 s waiting for a line" in runner.failure.summary


def test_a_rules_step_after_half_close_is_refused() -> None:
    from embeddedserver import HalfClose

    with pytest.raises(ValueError, match=re.escape("would write after HalfClose()")):
        compile_script([HalfClose(), Rules(ReadLine(), Rule(b"x"))])


# ---------------------------------------------------------------------------
# arguments
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda: Rules(Close(), Rule(b"x")), TypeError, "read step that frames one request"),  # type: ignore[arg-type]
        (lambda: Rules(ReadLine()), ValueError, "at least one Rule"),
        (lambda: Rules(ReadLine(), b"x"), TypeError, "rule 0 must be a Rule"),  # type: ignore[arg-type]
        (lambda: Rules(ReadLine(), Rule(b"x"), ordered=1), TypeError, "ordered must be"),  # type: ignore[arg-type]
        (lambda: Rules(ReadLine(), Rule(b"x"), unmatched=[ReadLine()]), ValueError,
         "unmatched: command 0 (ReadLine()) reads"),
        (lambda: Rule(42), TypeError, "not 42"),  # type: ignore[arg-type]
        (lambda: Rule(b""), ValueError, "at least one byte"),
        (lambda: Rule(b"x", [ReadLine()]), ValueError, "a reply only sends or acts"),
        (lambda: Rule(b"x", [Close(), b"y"]), ValueError, "ends the connection"),
        (lambda: Rule(b"x", times=0), ValueError, "times must be >= 1, not 0"),
        (lambda: Rule(b"x", times="2"), TypeError, "not '2'"),  # type: ignore[arg-type]
        (lambda: Rule(b"x", times=range(3, 1)), ValueError, "non-empty range"),
    ],
)
def test_bad_arguments_raise_at_the_constructor(
    make: Callable[[], object], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=re.escape(words)):
        make()


def test_rules_and_rule_reprs_read_as_code() -> None:
    step = Rules(3, Rule(b"abc", b"ok", times=2), unmatched=Reset(), ordered=True)
    assert repr(step) == ("Rules(Receive(3), Rule(b'abc', b'ok', times=2), "
                          "unmatched=[Reset()], ordered=True)")


# ---------------------------------------------------------------------------
# on sockets: every server class
# ---------------------------------------------------------------------------


def test_a_client_gets_the_reply_of_each_rule(make_server: MakeServer) -> None:
    server = make_server([redis_like()])
    with LineClient(server.address) as client:
        assert client.ask(b"ECHO hi\n") == b"+echo\n"
        assert client.ask(b"GET b\n") == b"$value\n"
        assert client.ask(b"PING\n") == b"+PONG\n"
    server.verdict()
    assert server.received == [b"ECHO hi\n", b"GET b\n", b"PING\n"]
    assert "request 3 answered by rule 0" in server.transcript()


def test_a_pipelining_client_gets_the_replies_in_order(make_server: MakeServer) -> None:
    server = make_server([redis_like()])
    with LineClient(server.address) as client:
        client.sock.sendall(b"PING\nGET a\nECHO 1\nQUIT\n")
        replies = [client.reply() for _ in range(4)]
        assert client.reply() == b""  # QUIT's reply closes
    assert replies == [b"+PONG\n", b"$value\n", b"+echo\n", b"+BYE\n"]
    server.verdict()


def test_a_pooled_client_in_random_order_gets_the_right_reply_for_each() -> None:
    """Four connections at once, each sending its requests in its own random order; the
    counted rule is shared by them all (4 x 2 = exactly 8)."""
    table = {b"GET /%d\n" % i: b"body %d\n" % i for i in range(5)}
    step = Rules(
        ReadLine(),
        *(Rule(request, reply) for request, reply in table.items()),
        Rule(b"HEALTH\n", b"up\n", times=8),
    )
    results: dict[int, list[tuple[bytes, bytes]]] = {}
    errors: list[BaseException] = []
    with CommandServer([step], concurrent=True, verbose=False,
                       expect_connections=4) as server:
        start = threading.Barrier(4, timeout=CLIENT_TIMEOUT)

        def one_connection(n: int) -> None:
            requests = [*table, *table, b"HEALTH\n", b"HEALTH\n"]
            random.Random(n).shuffle(requests)
            try:
                with LineClient(server.address) as client:
                    start.wait()  # all four open at once
                    results[n] = [(r, client.ask(r)) for r in requests]
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=one_connection, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(CLIENT_TIMEOUT)
    assert not errors
    assert len(results) == 4
    for pairs in results.values():
        for request, reply in pairs:
            assert reply == table.get(request, b"up\n")
    assert len(server.received) == 4 * 12


def test_an_unmatched_request_fails_showing_the_closest_rules(make_server: MakeServer) -> None:
    server = make_server([redis_like(unmatched=b"-ERR unknown\n")])
    with LineClient(server.address) as client:
        assert client.ask(b"PINGG\n") == b"-ERR unknown\n"
        assert client.ask(b"PING\n") == b"+PONG\n"  # the step goes on
    with pytest.raises(AssertionError) as caught:
        server.verdict()
    message = str(caught.value)
    assert "1 failure" in message
    assert "request 1 on this connection: no rule takes the request b'PINGG\\n'" in message
    closest = message[message.index("the closest rules:"):]
    lines = closest.splitlines()
    # ranked by similarity: the PING rule first, with the byte where they part
    assert lines[1].strip() == (
        "rule 0 Rule(b'PING\\n', b'+PONG\\n'): differs at byte 4: the rule has "
        "b'\\n' there, the request b'G\\n'")
    assert "did not match" in closest and "returned False" in closest
    assert "step 0 of 1: Rules(ReadLine()" in message


def test_an_unmatched_request_closes_the_connection_by_default(
    make_server: MakeServer,
) -> None:
    server = make_server([redis_like()])
    with LineClient(server.address) as client:
        assert client.ask(b"HELLO\n") == b""
    failure = server.assert_failed("unmatched", step=0, match=r"no rule takes the request")
    assert failure.received == b"HELLO\n"
    server.verdict()  # taken out: the verdict passes


def test_required_rules_never_matched_fail_at_the_verdict(make_server: MakeServer) -> None:
    server = make_server([Rules(
        ReadLine(),
        Rule(b"PING\n", b"+PONG\n"),
        Rule(b"AUTH\n", b"+OK\n", times=1),
        Rule(b"SYNC\n", b"+OK\n", times=at_least(2)),
        Rule(b"FLUSH\n", b"+OK\n", times=range(0, 1)),
    )])
    with LineClient(server.address) as client:
        assert client.ask(b"PING\n") == b"+PONG\n"
        assert client.ask(b"SYNC\n") == b"+OK\n"
        assert client.ask(b"FLUSH\n") == b""  # allowed never: refused, unmatched closes
    with pytest.raises(AssertionError) as caught:
        server.verdict()
    message = str(caught.value)
    assert "rule 1 Rule(b'AUTH\\n', b'+OK\\n', times=1) was to match exactly once, " \
           "and matched 0 times" in message
    assert "was to match at least 2 times, and matched once" in message
    assert "rule 3 Rule(b'FLUSH\\n', b'+OK\\n', times=range(0, 1)) was to match never, " \
           "and matched once (1 more after it was used up)" in message
    assert "accepts it but is used up (matched 0 times, never allowed)" in message
    assert "4 failures" in message  # the refused FLUSH, and three counts: not PING's


def test_a_one_shot_rule_answers_once_then_the_next_matching_rule(
    make_server: MakeServer,
) -> None:
    server = make_server([Rules(
        ReadLine(),
        Rule(b"GET\n", b"first\n", times=1),
        Rule(b"GET\n", b"again\n"),
        Rule(b"TOKEN\n", b"t1\n", times=1),
        unmatched=b"-ERR\n",
    )])
    with LineClient(server.address) as client:
        assert [client.ask(b"GET\n") for _ in range(3)] == [b"first\n", b"again\n", b"again\n"]
        assert client.ask(b"TOKEN\n") == b"t1\n"
        assert client.ask(b"TOKEN\n") == b"-ERR\n"  # used up, and no other rule takes it
    with pytest.raises(AssertionError) as caught:
        server.verdict()
    message = str(caught.value)
    assert "rule 2 Rule(b'TOKEN\\n', b't1\\n', times=1) accepts it but is used up" in message
    assert "was to match exactly once, and matched 2 times" in message


def test_a_rule_whose_reply_is_reset_gives_the_client_econnreset(
    make_server: MakeServer,
) -> None:
    server = make_server([Rules(ReadLine(), Rule(b"PING\n", b"+PONG\n"),
                                Rule(b"BOOM\n", Reset()))])
    with LineClient(server.address) as client:
        assert client.ask(b"PING\n") == b"+PONG\n"
        client.sock.sendall(b"BOOM\n")
        with pytest.raises(ConnectionResetError):
            client.sock.recv(10)
    server.verdict()
    assert "request 2 answered by rule 1: Rule(b'BOOM\\n', [Reset()])" in server.transcript()


def test_a_rule_may_delay_its_reply(make_server: MakeServer) -> None:
    server = make_server([Rules(ReadLine(), Rule(b"SLOW\n", [Delay(0.05), b"late\n"]))])
    with LineClient(server.address) as client:
        assert client.ask(b"SLOW\n") == b"late\n"
    server.verdict()


def test_framed_requests_are_matched_whole(make_server: MakeServer) -> None:
    frame = SendFrame(b"hello").data
    server = make_server([Rules(ReadFrame(), Rule(frame, SendFrame(b"world")))])
    with socket.create_connection(server.address, timeout=CLIENT_TIMEOUT) as client:
        client.sendall(frame[:3])
        client.sendall(frame[3:])
        assert client.recv(100) == SendFrame(b"world").data
    server.verdict()


def test_one_rules_step_in_several_scripts_of_a_plan_counts_once_per_server() -> None:
    from embeddedserver import PerConnection

    step = Rules(ReadLine(), Rule(b"HI\n", b"hello\n", times=2))
    plan = PerConnection([step], [b"x\n", step])
    with CommandServer(plan, verbose=False, expect_connections=2) as server:
        with LineClient(server.address) as client:
            assert client.ask(b"HI\n") == b"hello\n"
        with LineClient(server.address) as client:
            assert client.reply() == b"x\n"
            client.sock.sendall(b"HI\n")
            assert client.reply() == b"hello\n"


def test_two_servers_with_the_same_rules_step_count_apart() -> None:
    step = Rules(ReadLine(), Rule(b"HI\n", b"hello\n", times=1))
    for _ in range(2):
        with CommandServer([step], verbose=False) as server:
            with LineClient(server.address) as client:
                assert client.ask(b"HI\n") == b"hello\n"


def test_ordered_rules_answer_in_their_order() -> None:
    step = Rules(ReadLine(), Rule(b"LOGIN\n", b"ok\n", times=1),
                 Rule(b"GET\n", b"data\n"), ordered=True, unmatched=b"-ERR\n")
    with CommandServer([step], verbose=False) as server:
        with LineClient(server.address) as client:
            assert client.ask(b"LOGIN\n") == b"ok\n"
            assert client.ask(b"GET\n") == b"data\n"
            assert client.ask(b"GET\n") == b"data\n"
    with pytest.raises(AssertionError) as caught:
        with CommandServer([step], verbose=False) as server:
            with LineClient(server.address) as client:
                assert client.ask(b"GET\n") == b"-ERR\n"
                assert client.ask(b"LOGIN\n") == b"ok\n"
    message = str(caught.value)
    assert ("rule 1 Rule(b'GET\\n', b'data\\n') accepts it, but the rules are ordered and "
            "rule 0 Rule(b'LOGIN\\n', b'ok\\n', times=1) comes first: it has matched "
            "0 times of exactly once") in message


def test_ordered_rules_close_a_rule_passed_over() -> None:
    step = Rules(ReadLine(), Rule(b"A\n", b"a\n", times=range(1, 3)),
                 Rule(b"B\n", b"b\n", times=1), Rule(b"C\n", b"c\n"), ordered=True,
                 unmatched=b"-ERR\n")
    with pytest.raises(AssertionError) as caught:
        with CommandServer([step], verbose=False) as server:
            with LineClient(server.address) as client:
                assert [client.ask(r) for r in (b"A\n", b"B\n", b"A\n", b"C\n")] == [
                    b"a\n", b"b\n", b"-ERR\n", b"c\n"]
    message = str(caught.value)
    assert ("rule 0 Rule(b'A\\n', b'a\\n', times=range(1, 3)) accepts it, but the rules "
            "are ordered and a later rule has answered since") in message


def test_a_connection_left_idle_between_requests_is_not_unfinished() -> None:
    with CommandServer([redis_like()], verbose=False, concurrent=True) as server:
        idle = LineClient(server.address)
        with LineClient(server.address) as client:
            assert client.ask(b"PING\n") == b"+PONG\n"
        assert idle.ask(b"PING\n") == b"+PONG\n"
    idle.close()  # after the verdict: the server stopped while it waited


def test_a_request_left_half_sent_is_unfinished() -> None:
    client: LineClient | None = None
    try:
        with pytest.raises(AssertionError, match=r"the client sent nothing more in 0\.05 s"):
            with CommandServer([redis_like()], verbose=False, settle=0.05) as server:
                client = LineClient(server.address)
                assert client.ask(b"PING\n") == b"+PONG\n"
                client.sock.sendall(b"PI")
    finally:
        if client is not None:
            client.close()


def test_rules_over_tls() -> None:
    with LocalTLS() as tls, CommandServer([redis_like()], verbose=False,
                                          ssl_context=tls.server_context) as server:
        def wrap(raw: socket.socket) -> ssl.SSLSocket:
            return tls.client_context.wrap_socket(raw, server_hostname="localhost")

        with LineClient(server.address, wrap=wrap) as client:
            assert client.ask(b"PING\n") == b"+PONG\n"
            assert client.ask(b"GET a\n") == b"$value\n"


def test_rules_over_a_unix_socket(tmp_path: Path) -> None:
    with CommandServer([redis_like()], verbose=False, path=tmp_path / "r.sock") as server:
        with LineClient(server.address, family=socket.AF_UNIX) as client:
            assert client.ask(b"PING\n") == b"+PONG\n"


def test_rules_feed_an_asyncio_server_reader() -> None:
    import asyncio

    loop = asyncio.new_event_loop()
    try:
        with AsyncioCommandServer([redis_like()], verbose=False, loop=loop) as server:
            with LineClient(server.address) as client:
                assert client.ask(b"PING\n") == b"+PONG\n"
        assert server.received == [b"PING\n"]
    finally:
        loop.close()


def test_a_request_read_until_close_ends_the_step() -> None:
    step = Rules(ReadUntilClose(), Rule(b"all of it", b"got it"))
    with CommandServer([step], verbose=False) as server:
        with socket.create_connection(server.address, timeout=CLIENT_TIMEOUT) as client:
            client.sendall(b"all of it")
            client.shutdown(socket.SHUT_WR)
            assert client.recv(100) == b"got it"


# ---------------------------------------------------------------------------
# a pass must be earned: each wrong client and its correct twin, in a loop
# ---------------------------------------------------------------------------


def _counted() -> Rules:
    return Rules(ReadLine(), Rule(b"PING\n", b"+PONG\n"), Rule(b"AUTH\n", b"+OK\n", times=1),
                 unmatched=b"-ERR\n")


def _unmatched_last(client: LineClient, wrong: bool) -> None:
    client.ask(b"AUTH\n")
    client.sock.sendall(b"PONG\n" if wrong else b"PING\n")  # the last, unread


def _half_request(client: LineClient, wrong: bool) -> None:
    client.ask(b"AUTH\n")
    client.sock.sendall(b"PI" if wrong else b"PING\n")


def _required_missing(client: LineClient, wrong: bool) -> None:
    if not wrong:
        client.ask(b"AUTH\n")
    client.ask(b"PING\n")


def _too_many(client: LineClient, wrong: bool) -> None:
    client.ask(b"AUTH\n")
    client.sock.sendall(b"AUTH\n" if wrong else b"PING\n")


WRONG_CLIENTS = {
    "unmatched request last": (_unmatched_last, "no rule takes the request b'PONG\\n'"),
    "EOF inside a request": (_half_request, "closed the connection before the step"),
    "required rule missing": (_required_missing, "matched 0 times"),
    "one-shot rule twice": (_too_many, "matched 2 times"),
}


@pytest.mark.parametrize("case", WRONG_CLIENTS)
@pytest.mark.parametrize("concurrent", [False, True], ids=["serial", "concurrent"])
def test_each_wrong_client_fails_and_its_twin_passes_every_time(
    case: str, concurrent: bool
) -> None:
    client_does, words = WRONG_CLIENTS[case]
    for round_ in range(ROUNDS):
        wrong = round_ % 2 == 0
        server = CommandServer([_counted()], verbose=False, concurrent=concurrent)
        try:
            with LineClient(server.address) as client:
                client_does(client, wrong)
                # the last request is the last thing sent: shut the write side at once
                # and read to the end (closing with a reply unread would be a reset)
                client.sock.shutdown(socket.SHUT_WR)
                while client.sock.recv(4096):
                    pass
            # the client is gone: the verdict must judge all it sent, neither late nor never
            if wrong:
                with pytest.raises(AssertionError, match=re.escape(words)):
                    server.verdict()
            else:
                server.verdict()
        finally:
            server.stop()


# ---------------------------------------------------------------------------
# the script-file form
# ---------------------------------------------------------------------------

RULES_FILE = r'''
# a Redis-like server, answering in any order
rules read line
  rule "PING\n"
    server: "+PONG\n"
  rule times 1 regex "^AUTH "
    server: "+OK\n"
  rule times 0..1 "BOOM\n"
    reset
  unmatched
    server: "-ERR unknown\n"
end rules
'''


def test_a_script_file_rules_block_loads_as_a_rules_step() -> None:
    from embeddedserver import parse_script

    script = parse_script(RULES_FILE)
    assert isinstance(script, list)
    [step] = script
    assert isinstance(step, Rules)
    assert repr(step) == (
        "Rules(ReadLine(), Rule(b'PING\\n', [Send(b'+PONG\\n')]), "
        "Rule(re.compile(b'^AUTH '), [Send(b'+OK\\n')], times=1), "
        "Rule(b'BOOM\\n', [Reset()], times=range(0, 2)), "
        "unmatched=[Send(b'-ERR unknown\\n')])")


def test_a_script_file_with_rules_serves_clients(tmp_path: Path) -> None:
    path = tmp_path / "redis.script"
    path.write_text(RULES_FILE, encoding="utf-8")
    with CommandServer.from_file(path, verbose=False) as server:
        with LineClient(server.address) as client:
            assert client.ask(b"PING\n") == b"+PONG\n"
            assert client.ask(b"AUTH me\n") == b"+OK\n"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('rules read line\n  rule "x"\n', "line 1: this rules block has no 'end rules' line"),
        ('rule "x"\n', "rule outside a rules block"),
        ("rules line\nend rules\n", "rules takes the read step that frames a request"),
        ('rules read line\n  rule times two "x"\nend rules\n', "rule times takes N"),
        ('rules read line\n  rule times 0 "x"\nend rules\n', "times must be >= 1"),
        ('rules read line\n  rule "x"\n    read line\nend rules\n', "a reply only sends"),
        ("rules read line\nend rules\n", "Rules needs at least one Rule"),
        ('rules read line\n  server: "x"\nend rules\n', "starts with a rule line"),
    ],
)
def test_a_bad_rules_block_names_its_line(text: str, words: str) -> None:
    from embeddedserver import ScriptSyntaxError, parse_script

    with pytest.raises(ScriptSyntaxError, match=re.escape(words)):
        parse_script(text)
