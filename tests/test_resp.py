"""The RESP kit: a fake Redis made of replies, a command reader and expectations.

First without a socket: the encoders against the bytes the RESP2/RESP3 specs give, the
command parser (arrays, inline commands) and what it says about malformed input, the
patterns. Then redis-py (pytest.importorskip) against a fake Redis made as a rules table:
its connect handshake in RESP2 and RESP3, every encoder read back by its parser, a pool
of connections sending commands in random order, MOVED/ASK/LOADING raising redis-py's
exceptions, a wrong command failing in RESP terms beside its correct twin (in a loop),
and the fault proxy resetting the first connection while redis-py's retry reconnects.
"""

from __future__ import annotations

import doctest
import random
import re
import socket
import threading
from typing import Any

import pytest
from _twins import wrong_then_right

import embeddedserver._respparse
import embeddedserver.resp
from embeddedserver import (
    CommandServer,
    FaultProxy,
    ResetPeer,
    Rule,
    Rules,
    resp,
)
from embeddedserver._match import Inbox, Mismatch
from embeddedserver.resp import (
    ANY,
    ExpectCommand,
    ProtocolError,
    ReadCommand,
    command,
    matches,
    parse_command,
)

ROUNDS = 10
CLIENT_TIMEOUT = 10.0


def _redis() -> Any:
    return pytest.importorskip("redis")


def no_retry(redis: Any) -> Any:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Retry(NoBackoff(), 0)


def fake_redis(protocol: int = 2, *rules: Rule, **kwargs: Any) -> Rules:
    """A fake Redis: the connect handshake, then *rules*; anything else an error."""
    return Rules(resp.ReadCommand(), *resp.handshake_rules(protocol), *rules,  # type: ignore[arg-type]
                 unmatched=resp.error("ERR unknown command"), **kwargs)


# ---------------------------------------------------------------------------
# replies: the bytes the specs give
# ---------------------------------------------------------------------------

SPEC_BYTES = [
    (resp.simple("OK"), b"+OK\r\n"),
    (resp.error("ERR unknown command 'foo'"), b"-ERR unknown command 'foo'\r\n"),
    (resp.moved(3999, "127.0.0.1", 6381), b"-MOVED 3999 127.0.0.1:6381\r\n"),
    (resp.ask(3999, "127.0.0.1", 6381), b"-ASK 3999 127.0.0.1:6381\r\n"),
    (resp.loading(), b"-LOADING Redis is loading the dataset in memory\r\n"),
    (resp.integer(1000), b":1000\r\n"),
    (resp.integer(-1), b":-1\r\n"),
    (resp.bulk("hello"), b"$5\r\nhello\r\n"),
    (resp.bulk(b""), b"$0\r\n\r\n"),
    (resp.null(), b"$-1\r\n"),
    (resp.null(3), b"_\r\n"),
    (resp.array(None), b"*-1\r\n"),
    (resp.array([]), b"*0\r\n"),
    (resp.array(["hello", "world"]), b"*2\r\n$5\r\nhello\r\n$5\r\nworld\r\n"),
    (resp.array([1, 2, 3]), b"*3\r\n:1\r\n:2\r\n:3\r\n"),
    (resp.array([[1, 2, 3], [resp.simple("Hello"), resp.error("World")]]),
     b"*2\r\n*3\r\n:1\r\n:2\r\n:3\r\n*2\r\n+Hello\r\n-World\r\n"),
    (resp.map({"first": 1, "second": 2}),
     b"%2\r\n$5\r\nfirst\r\n:1\r\n$6\r\nsecond\r\n:2\r\n"),
    (resp.set(["a", 1]), b"~2\r\n$1\r\na\r\n:1\r\n"),
    (resp.double(1.23), b",1.23\r\n"),
    (resp.double(float("-inf")), b",-inf\r\n"),
    (resp.double(float("nan")), b",nan\r\n"),
    (resp.boolean(True), b"#t\r\n"),
    (resp.boolean(False), b"#f\r\n"),
    (resp.big_number(3492890328409238509324850943850943825024385),
     b"(3492890328409238509324850943850943825024385\r\n"),
    (resp.verbatim("Some string"), b"=15\r\ntxt:Some string\r\n"),
    (resp.push(["message", "news", "hi"]),
     b">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n"),
    (resp.command("SET", "k", 10), b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n10\r\n"),
]


@pytest.mark.parametrize(("encoded", "expected"), SPEC_BYTES)
def test_each_encoder_gives_the_bytes_the_spec_gives(encoded: bytes, expected: bytes) -> None:
    assert encoded == expected
    assert isinstance(encoded, resp.Encoded)


def test_encode_maps_python_values_for_each_protocol() -> None:
    assert resp.encode("v") == resp.encode(b"v") == b"$1\r\nv\r\n"
    assert resp.encode(None) == b"$-1\r\n" and resp.encode(None, 3) == b"_\r\n"
    assert resp.encode(True) == b":1\r\n" and resp.encode(True, 3) == b"#t\r\n"
    assert resp.encode(2.5) == b"$3\r\n2.5\r\n" and resp.encode(2.5, 3) == b",2.5\r\n"
    assert resp.encode({"a": 1}) == b"*2\r\n$1\r\na\r\n:1\r\n"
    assert resp.encode({"a": 1}, 3) == b"%1\r\n$1\r\na\r\n:1\r\n"
    assert resp.encode(frozenset(["x"]), 3) == b"~1\r\n$1\r\nx\r\n"
    assert resp.encode(2**70, 3) == b"(1180591620717411303424\r\n"
    assert resp.encode([resp.simple("OK"), b"+OK\r\n"]) == (
        b"*2\r\n+OK\r\n$5\r\n+OK\r\n\r\n")  # Encoded passes through; plain bytes are bulk


@pytest.mark.parametrize(("call", "words"), [
    (lambda: resp.simple("two\r\nlines"), "a simple string cannot hold"),
    (lambda: resp.error(""), "an error needs its text"),
    (lambda: resp.moved(16384, "h", 1), "from 0 to 16383, not 16384"),
    (lambda: resp.ask(1, "h", 0), "port must be an int from 1 to 65535, not 0"),
    (lambda: resp.integer(True), "integer() takes an int, not True"),
    (lambda: resp.integer(2**63), "signed 64-bit"),
    (lambda: resp.null(4), "protocol must be 2 (RESP2) or 3 (RESP3), not 4"),
    (lambda: resp.array("abc"), "takes an iterable of values such as a list, not 'abc'"),
    (lambda: resp.map([("a", 1, 2)]), "a dict or (key, value) pairs"),
    (lambda: resp.verbatim("x", "text"), "three characters"),
    (lambda: resp.boolean(1), "True or False, not 1"),
    (lambda: resp.encode(object()), "encode() takes str, bytes"),
    (lambda: resp.command(), "at least the command's name"),
    (lambda: matches(), "at least the command's name"),
    (lambda: matches("GET", ..., "x"), "may only come last"),
    (lambda: matches("GET", 1.5), "argument 1 is 1.5"),
    (lambda: ReadCommand(inline=1), "inline must be True or False, not 1"),
])
def test_bad_arguments_are_refused_where_given_naming_the_value(call: Any, words: str) -> None:
    with pytest.raises((TypeError, ValueError), match=re.escape(words)):
        call()


def test_the_module_doctests_pass() -> None:
    assert doctest.testmod(embeddedserver.resp).failed == 0
    assert doctest.testmod(embeddedserver._respparse).failed == 0


# ---------------------------------------------------------------------------
# commands: parsing, and what malformed input is called
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "args"), [
    (command("SET", "k", "v"), [b"SET", b"k", b"v"]),
    (command("SET", "k", b"\r\n\x00"), [b"SET", b"k", b"\r\n\x00"]),
    (b"PING\r\n", [b"PING"]),
    (b"PING\n", [b"PING"]),  # Redis takes an inline line ended by \n alone
    (b"  set  k   'a b'\r\n", [b"set", b"k", b"a b"]),
    (b'SET k "line\\r\\n\\x41"\r\n', [b"SET", b"k", b"line\r\nA"]),
])
def test_parse_command_reads_arrays_and_inline_commands(data: bytes, args: list[bytes]) -> None:
    assert parse_command(data) == args


@pytest.mark.parametrize(("data", "words"), [
    (b"*x\r\n", "array length '*x' is not a number"),
    (b"*0\r\n", "an empty array (*0) is not a command"),
    (b"*-1\r\n", "a null array (*-1) is not a command"),
    (b"*2000000\r\n", "over Redis's limit of 1048576 arguments"),
    (b"*1\r\n$x\r\nPING\r\n", "bulk length '$x' is not a number"),
    (b"*1\r\n$-1\r\n", "bulk length '$-1' of argument 0 is negative"),
    (b"*1\r\n$3\r\nPING\r\n", "argument 0: its bulk length says 3 bytes, and b'PIN' is "
                               "followed by b'G\\r', not b'\\r\\n'"),
    (b"*2\r\n$3\r\nGET\r\n:1\r\n", "argument 1 is not a bulk string: expected '$', got ':' "
                                    "(a integer)"),
    (b"*1\n$4\r\nPING\r\n", "the array header b'*1\\n' ends in \\n without the \\r"),
    (b"+PING\r\n", "not a RESP array: b'+PING\\r\\n' (a simple string)"),
    (b"\r\n", "an empty line (b'\\r\\n') is not a command"),
    (b"SET k 'unclosed\r\n", "has unbalanced quotes"),
    (b"*2\r\n$3\r\nGET\r\n", "the client closed the connection in the middle of a command: "
                              "1 of its 2 arguments arrived"),
    (command("PING") + b"extra", "5 bytes follow the command"),
])
def test_malformed_commands_are_named_in_resp_terms(data: bytes, words: str) -> None:
    with pytest.raises(ProtocolError, match=re.escape(words)):
        parse_command(data)


def test_inline_false_takes_only_arrays() -> None:
    with pytest.raises(ProtocolError, match=re.escape(
            "not a RESP array: b'HELLO\\r\\n' (an inline command? ReadCommand(inline=True)")):
        parse_command(b"HELLO\r\n", inline=False)


def test_read_command_frames_one_command_byte_by_byte_and_leaves_the_next() -> None:
    first, second = command("SET", "k", "v" * 300), command("GET", "k")
    data = first + second
    inbox = Inbox()
    inbox.begin(ReadCommand())
    polls = []
    for i in range(len(first)):
        inbox.feed(data[i:i + 1])
        polls.append(inbox.poll())
    assert polls[:-1] == [None] * (len(first) - 1) and polls[-1] == first
    inbox.feed(data[len(first):])
    inbox.begin(ReadCommand())
    assert inbox.poll() == second


def test_expect_command_mismatch_says_where_the_commands_part() -> None:
    def mismatch(step: ExpectCommand, data: bytes) -> Mismatch:
        inbox = Inbox()
        inbox.begin(step)
        inbox.feed(data)
        with pytest.raises(Mismatch) as info:
            inbox.poll()
        return info.value

    wrong_value = mismatch(ExpectCommand("SET", "k", "v"), command("SET", "k", "w"))
    assert wrong_value.reason.startswith("argument 2: expected 'v', got 'w'")
    assert wrong_value.expected == "the command SET k v"
    wrong_name = mismatch(ExpectCommand("SET", "k", "v"), command("GET", "k"))
    assert wrong_name.reason == "expected command SET k v, got GET k"
    too_few = mismatch(ExpectCommand("SET", "k", "v"), command("SET", "k"))
    assert too_few.reason == "expected command SET k v, got SET k (2 arguments, expected 3)"
    binary = mismatch(ExpectCommand("SET", "k", b"\x00"), command("SET", "k", b"\xff"))
    assert "argument 2: expected '\\x00', got b'\\xff'" in binary.reason


def test_patterns_take_any_a_regex_a_rest_and_ignore_the_case_of_the_name() -> None:
    pattern = matches("client", "SETINFO", re.compile(r"LIB-(NAME|VER)"), ANY)
    assert pattern(command("CLIENT", "SETINFO", "LIB-VER", "8.1.0"))
    assert not pattern(command("CLIENT", "SETINFO", "LIB-XYZ", "1"))
    assert not pattern(command("CLIENT", "setinfo", "LIB-VER", "1"))  # only the name's case
    assert not pattern(b"not a command")
    rest = matches("HELLO", ...)
    assert rest(command("HELLO")) and rest(command("HELLO", "3", "AUTH", "u", "p"))
    assert repr(pattern) == "matches('client', 'SETINFO', re.compile(b'LIB-(NAME|VER)'), ANY)"
    assert repr(ExpectCommand("GET", ANY, ..., timeout=2)) == (
        "ExpectCommand('GET', ANY, ..., timeout=2.0)")
    assert pattern.difference(command("CLIENT", "SETINFO", "LIB-XYZ", "1")).startswith(
        "argument 2: expected an argument matching re.compile(b'LIB-(NAME|VER)'), got 'LIB-XYZ'")


# ---------------------------------------------------------------------------
# raw sockets: a hand-written client, wrong and right, in a loop
# ---------------------------------------------------------------------------

WRONG_CLIENTS = {
    # the step, what the wrong client sends, what its twin sends, the failure's words
    "inline where arrays are wanted": (
        ReadCommand(inline=False), b"HELLO\r\n", command("HELLO"),
        "not a RESP array: b'HELLO\\r\\n'"),
    "a bulk length that is no number": (
        ReadCommand(), b"*1\r\n$x\r\nPING\r\n", command("PING"),
        "bulk length '$x' is not a number"),
    "a bulk length one short": (
        ReadCommand(), b"*1\r\n$3\r\nPING\r\n", command("PING"),
        "its bulk length says 3 bytes"),
    "an integer for an argument": (
        ReadCommand(), b"*2\r\n$6\r\nEXPIRE\r\n:1\r\n", command("EXPIRE", 1),
        "argument 1 is not a bulk string: expected '$', got ':'"),
    "the wrong command": (
        ExpectCommand("SET", "k", "v"), command("GET", "k"), command("set", "k", "v"),
        "expected command SET k v, got GET k"),
    "the wrong value": (
        ExpectCommand("SET", "k", "v"), command("SET", "k", "w"), command("SET", "k", "v"),
        "argument 2: expected 'v', got 'w'"),
    "a command cut short": (
        ReadCommand(), b"*2\r\n$3\r\nGET\r\n", command("GET", "k"),
        "1 of its 2 arguments arrived"),
}


@pytest.mark.parametrize("case", sorted(WRONG_CLIENTS))
def test_a_wrong_command_fails_in_resp_terms_and_its_twin_passes(case: str) -> None:
    step, wrong_bytes, right_bytes, words = WRONG_CLIENTS[case]
    wrong_then_right(step, resp.simple("OK"), wrong_bytes, right_bytes, words, ROUNDS)


def test_a_rules_table_answers_a_raw_client_and_names_the_closest_rule() -> None:
    table = Rules(ReadCommand(),
                  Rule(matches("GET", "k"), resp.bulk("v")),
                  Rule(matches("SET", "k", ANY), resp.simple("OK")),
                  unmatched=resp.error("ERR unknown command"))
    with CommandServer([table], verbose=False) as server:
        with socket.create_connection(server.address, timeout=CLIENT_TIMEOUT) as client, \
                client.makefile("rb") as reader:
            client.sendall(command("SET", "k", "1") + b"GET k\r\n")  # pipelined, one inline
            assert reader.readline() == b"+OK\r\n"
            assert reader.readline() + reader.readline() == b"$1\r\nv\r\n"
            client.sendall(command("GET", "other"))
            assert reader.readline() == b"-ERR unknown command\r\n"
        failure = server.assert_failed("unmatched")
    message = failure.message()
    assert "rule 0 Rule(matches('GET', 'k'), b'$1\\r\\nv\\r\\n'): argument 1: expected 'k', " \
           "got 'other'" in message
    assert [parse_command(chunk) for chunk in server.received] == [
        [b"SET", b"k", b"1"], [b"GET", b"k"], [b"GET", b"other"]]


# ---------------------------------------------------------------------------
# redis-py
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_connects_to_a_fake_redis_rules_table_and_gets_and_sets(protocol: int) -> None:
    redis = _redis()
    table = fake_redis(protocol,
                       Rule(matches("SET", "greeting", "hello"), resp.simple("OK")),
                       Rule(matches("GET", "greeting"), resp.bulk("hello")),
                       Rule(matches("GET", ANY), resp.null(protocol)))  # type: ignore[arg-type]
    for _ in range(3):
        with CommandServer([table], verbose=False) as server:
            client = redis.Redis(port=server.port, protocol=protocol,
                                 socket_timeout=CLIENT_TIMEOUT, retry=no_retry(redis))
            try:
                assert client.set("greeting", "hello") is True
                assert client.get("greeting") == b"hello"
                assert client.get("missing") is None
            finally:
                client.close()
        commands = [parse_command(chunk)[:2] for chunk in server.received]
        assert [b"CLIENT", b"SETINFO"] in commands  # redis-py >= 5 says who it is
        assert (commands[0] == [b"HELLO", b"3"]) is (protocol == 3)


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_reads_every_encoder_back_as_the_value_it_stands_for(protocol: int) -> None:
    redis = _redis()
    p: Any = protocol
    replies: list[tuple[bytes, Any]] = [
        (resp.simple("OK"), b"OK"),
        (resp.integer(-5), -5),
        (resp.bulk(b"\x00\xff"), b"\x00\xff"),
        (resp.null(p), None),
        (resp.array([1, "a", [b"x", None]], p), [1, b"a", [b"x", None]]),
        (resp.encode({"a": 1}, p), {b"a": 1} if protocol == 3 else [b"a", 1]),
        (resp.encode(1.5, p), 1.5 if protocol == 3 else b"1.5"),
        (resp.encode(True, p), True if protocol == 3 else 1),
    ]
    if protocol == 3:
        replies += [
            (resp.set(["x"]), [b"x"]),  # redis-py gives a RESP3 set as a list
            (resp.double(float("inf")), float("inf")),
            (resp.big_number(2**100), 2**100),
            (resp.verbatim("hello"), b"hello"),
        ]
    rules = [Rule(matches(f"REPLY{i}"), reply) for i, (reply, _) in enumerate(replies)]
    with CommandServer([fake_redis(protocol, *rules)], verbose=False) as server:
        client = redis.Redis(port=server.port, protocol=protocol,
                             socket_timeout=CLIENT_TIMEOUT, retry=no_retry(redis))
        try:
            for i, (reply, value) in enumerate(replies):
                assert client.execute_command(f"REPLY{i}") == value, reply
        finally:
            client.close()


def test_a_pool_sending_commands_in_random_order_gets_the_right_reply_to_each() -> None:
    redis = _redis()
    keys = {f"user:{n}": f"name-{n}" for n in range(8)}
    table = fake_redis(2, *(Rule(matches("GET", key), resp.bulk(value))
                            for key, value in keys.items()),
                       Rule(matches("INCRBY", "hits", 1), resp.integer(1)))  # redis-py's incr()
    failures: list[BaseException] = []

    def worker(client: Any, seed: int) -> None:
        order = list(keys) * 3
        random.Random(seed).shuffle(order)
        try:
            for key in order:
                assert client.get(key) == keys[key].encode()
                assert client.incr("hits") == 1
        except BaseException as exc:  # reported by the test's thread
            failures.append(exc)

    for round_ in range(3):
        with CommandServer([table], concurrent=True, verbose=False) as server:
            pool = redis.ConnectionPool(port=server.port, protocol=2, max_connections=4,
                                        socket_timeout=CLIENT_TIMEOUT, retry=no_retry(redis))
            client = redis.Redis(connection_pool=pool)
            threads = [threading.Thread(target=worker, args=(client, round_ * 10 + n))
                       for n in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            pool.disconnect()
        assert not failures, failures
        assert len(server.connections) >= 1
        gets = sum(parse_command(chunk)[0] == b"GET" for chunk in server.received)
        assert gets == 4 * 3 * len(keys)


def test_moved_ask_and_loading_raise_redis_pys_exceptions() -> None:
    redis = _redis()
    from redis.exceptions import AskError, BusyLoadingError, MovedError, ResponseError

    table = fake_redis(2,
                       Rule(matches("GET", "moved"), resp.moved(3999, "127.0.0.1", 6381)),
                       Rule(matches("GET", "asked"), resp.ask(12, "10.0.0.2", 7000)),
                       Rule(matches("GET", "warming"), resp.loading()))
    with CommandServer([table], verbose=False) as server:
        client = redis.Redis(port=server.port, protocol=2, socket_timeout=CLIENT_TIMEOUT,
                             retry=no_retry(redis))
        try:
            with pytest.raises(MovedError) as moved:
                client.get("moved")
            assert isinstance(moved.value, ResponseError)
            assert (moved.value.slot_id, moved.value.host, moved.value.port) == (
                3999, "127.0.0.1", 6381)
            with pytest.raises(AskError) as asked:
                client.get("asked")
            assert (asked.value.slot_id, asked.value.port) == (12, 7000)
            with pytest.raises(BusyLoadingError, match="loading the dataset"):
                client.get("warming")
        finally:
            client.close()


def test_a_retrying_client_gets_past_one_loading_reply() -> None:
    redis = _redis()
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    table = fake_redis(2, Rule(matches("GET", "k"), resp.loading(), times=1),
                       Rule(matches("GET", "k"), resp.bulk("ready")), ordered=False)
    for _ in range(3):
        with CommandServer([table], concurrent=True, verbose=False) as server:
            client = redis.Redis(port=server.port, protocol=2, socket_timeout=CLIENT_TIMEOUT,
                                 retry=Retry(NoBackoff(), 2))
            try:
                assert client.get("k") == b"ready"
            finally:
                client.close()
        # BusyLoadingError is a ConnectionError to redis-py: it reconnects to retry
        assert len(server.connections) == 2


def store_session(client: Any, session: str, user: str, wrong: bool) -> None:
    """The client code under test: a session expires after a minute (the wrong version
    forgets the expiry)."""
    if wrong:
        client.set(f"session:{session}", user)
    else:
        client.set(f"session:{session}", user, ex=60)


def test_redis_py_sending_the_wrong_command_fails_in_resp_terms_and_its_twin_passes() -> None:
    redis = _redis()
    script = [
        ExpectCommand("CLIENT", "SETINFO", "LIB-NAME", ANY), resp.simple("OK"),
        ExpectCommand("CLIENT", "SETINFO", "LIB-VER", ANY), resp.simple("OK"),
        ExpectCommand("SET", "session:42", "ada", "EX", 60), resp.simple("OK"),
    ]
    for round_ in range(ROUNDS):
        wrong = round_ % 2 == 0
        server = CommandServer(script, verbose=False)
        try:
            client = redis.Redis(port=server.port, protocol=2, socket_timeout=CLIENT_TIMEOUT,
                                 retry=no_retry(redis))
            try:
                if wrong:
                    with pytest.raises(redis.exceptions.ConnectionError):
                        store_session(client, "42", "ada", wrong)  # the server hung up
                else:
                    store_session(client, "42", "ada", wrong)
            finally:
                client.close()
            if wrong:
                with pytest.raises(AssertionError, match=re.escape(
                        "expected command SET session:42 ada EX 60, got SET session:42 ada "
                        "(3 arguments, expected 5)")):
                    server.verdict()
            else:
                server.verdict()
        finally:
            server.stop()


def test_the_fault_proxy_resets_the_first_connection_and_redis_pys_retry_reconnects() -> None:
    redis = _redis()
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    table = fake_redis(2, Rule(matches("GET", "k"), resp.bulk("v")))
    for _ in range(3):
        with CommandServer([table], concurrent=True, verbose=False) as server:
            with FaultProxy(server.address, seed=1) as proxy:
                proxy.add(ResetPeer(after_bytes=0), "downstream", connections=1)
                client = redis.Redis(host=proxy.address[0], port=proxy.address[1], protocol=2,
                                     socket_timeout=CLIENT_TIMEOUT, retry=Retry(NoBackoff(), 1))
                try:
                    assert client.get("k") == b"v"
                finally:
                    client.close()
                proxy.wait_idle()
                assert [c.ended for c in proxy.connections][:1] == ["fault: reset"]
                assert len(proxy.connections) == 2
            # the fake saw its first connection reset by the proxy, as a real Redis would
            reset = server.assert_failed("reset")
            assert reset.connection == 1
