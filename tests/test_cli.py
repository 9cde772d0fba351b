"""The command line: STEP syntax, serving (in-process and as ``python -m embeddedserver``),
Ctrl-C, bad arguments, ``--demo`` (the demo's own checks are in test_demo.py),
and the reference page docs/reference/cli.md (every step and option is there).

In-process tests run ``main()`` on the test's thread with ``--count`` while a helper
thread drives a client; the client learns the port from the first line ``main`` prints
(stdout is replaced by a console that signals that line). Subprocess tests read the
child's stdout for the same reason: nothing here sleeps to synchronise.
"""

from __future__ import annotations

import http.client
import re
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _cli import (
    CHILD_ENV,
    ROOT,
    WAIT,
    children,
    connect,
    exchange,
    http_get,
    port_line,
    read_to_eof,
    run_cli,
)
from _readme import section

import embeddedserver.cli
from embeddedserver._text import unescape
from embeddedserver.cli import main, parse_step
from embeddedserver.steps import (
    AcceptAndClose,
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
    ReadFrame,
    ReadLine,
    ReadUntil,
    ReadUntilClose,
    Receive,
    Reset,
    Send,
    SendFrame,
    Step,
    http_response,
)


@pytest.fixture
def child() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``python -m embeddedserver ARGS`` with piped output; kill it if a test fails."""
    with children() as start:
        yield start


# ---------------------------------------------------------------------------
# step syntax
# ---------------------------------------------------------------------------


def test_unescape_decodes_escapes_and_utf8() -> None:
    assert unescape(r"a\r\n\t\0\\b") == b"a\r\n\t\0\\b"
    assert unescape(r"\xff\x00\x7F") == b"\xff\x00\x7f"
    assert unescape("café") == "café".encode()
    assert unescape("") == b""


@pytest.mark.parametrize("text", [r"\q", r"\x4", r"\xZZ"])
def test_unescape_rejects_unknown_escapes(text: str) -> None:
    with pytest.raises(ValueError, match=r"unknown escape .*use \\r \\n"):
        unescape(text)


def test_unescape_rejects_a_lone_trailing_backslash() -> None:
    with pytest.raises(ValueError, match=r"a lone backslash at the end: write \\\\"):
        unescape("tail\\")


STEPS: list[tuple[str, Step]] = [
    ("recv", Receive()),
    ("recv:20", Receive(20)),
    ("recv,timeout=2:5", Receive(5, timeout=2)),
    ("receive", Receive()),
    ("headers", ReadUntil(b"\r\n\r\n")),
    (r"until:\r\n\r\n", ReadUntil(b"\r\n\r\n")),
    ("until,timeout=1.5:;", ReadUntil(b";", timeout=1.5)),
    ("line", ReadLine()),
    ("frame", ReadFrame()),
    ("frame,prefix=>H", ReadFrame(">H")),
    ("untilclose", ReadUntilClose()),
    (r"expect:HELLO\r\n", Expect(b"HELLO\r\n")),
    (r"regex:GET /\S+ HTTP/1\.1\r\n", ExpectRegex(rb"GET /\S+ HTTP/1\.1\r\n")),
    ("regex:a{4294967294}", ExpectRegex(b"a{4294967294}")),
    ("expectframe:hi", ExpectFrame(b"hi")),
    ("expectframe,prefix=!B:hi", ExpectFrame(b"hi", "!B")),
    ("expectclose", ExpectClose()),
    ("expect-close", ExpectClose()),
    ("send:hello world", Send(b"hello world")),
    (r"send:a:b,c\x00", Send(b"a:b,c\x00")),
    ("sendframe:hi", SendFrame(b"hi")),
    ("garbage:100", Garbage(100)),
    ("garbage,seed=3:10", Garbage(10, seed=3)),
    ("drip:abc", Drip(b"abc")),
    ("drip,chunk=4,interval=0.2:hello", Drip(b"hello", chunk=4, interval=0.2)),
    ("delay:0.5", Delay(0.5)),
    ("close", Close()),
    ("reset", Reset()),
    ("halfclose", HalfClose()),
    ("half-close", HalfClose()),
    ("HalfClose", HalfClose()),
    ("hang", Hang()),
    ("hang:2", Hang(2)),
    ("acceptclose", AcceptAndClose()),
]


@pytest.mark.parametrize(("text", "step"), STEPS, ids=[t for t, _ in STEPS])
def test_parse_step_builds_the_same_step_as_python(text: str, step: Step) -> None:
    parsed = parse_step(text)
    assert type(parsed) is type(step)
    assert repr(parsed) == repr(step)
    if isinstance(step, Send):
        assert isinstance(parsed, Send) and parsed.data == step.data


@pytest.mark.parametrize(
    ("text", "body", "status", "headers"),
    [
        ("http:200:hello", b"hello", 200, None),
        ("http:404", b"", 404, None),
        (r"http:503:busy: try later\n", b"busy: try later\n", 503, None),
        ('http,type=application/json:200:{"ok": true}', b'{"ok": true}', 200,
         {"Content-Type": "application/json"}),
    ],
)
def test_http_step_sends_a_whole_response(
    text: str, body: bytes, status: int, headers: dict[str, str] | None
) -> None:
    step = parse_step(text)
    assert isinstance(step, Send)
    assert step.data == http_response(body, status, headers=headers)


BAD_STEPS = [
    ("bogus:1", r"unknown step 'bogus' in 'bogus:1'; steps are: recv\[:N\], headers"),
    ("recv:abc", r"bad step 'recv:abc': N must be a whole number, not 'abc' \(use recv"),
    ("recv:-1", "N must be >= 0"),
    ("until", r"until needs an argument \(use until\[,timeout=\.\.\.\]:DELIM\)"),
    ("close:now", "close takes no argument"),
    (r"send:\q", r"unknown escape '\\\\q'"),
    ("regex:(", "invalid regex"),
    ("regex:a{99999999999}", r"invalid regex b'a\{99999999999\}': the repetition number"),
    ("drip,speed=3:x", r"unknown option 'speed=3' for drip \(options: chunk, interval\)"),
    ("drip,chunk=0:x", "chunk must be >= 1"),
    ("recv,timeout=0", "timeout must be > 0"),
    ("recv,timeout", "option timeout needs a value"),
    ("delay:-1", "must be a finite number of seconds >= 0"),
    ("delay:soon", "must be a number of seconds"),
    ("garbage:0", "N must be >= 1"),
    ("http:abc", "the HTTP status must be a whole number"),
    ("http:1000:x", "100 to 999"),
    ("frame,prefix=>Z", "not a valid struct format"),
    ("sendframe,prefix=>B:" + "x" * 300, "does not fit"),
]


@pytest.mark.parametrize(("text", "message"), BAD_STEPS, ids=[t[:20] for t, _ in BAD_STEPS])
def test_parse_step_rejects_bad_syntax_naming_it(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_step(text)


def test_every_step_name_is_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for spec in embeddedserver.cli._SPECS:
        assert spec.usage in out
    assert "next" in out and "drip,chunk=4,interval=0.2:hello" in out


def test_version_prints_the_package_version(
    child: Callable[..., subprocess.Popen[str]],
) -> None:
    proc = child("--version")
    out, err = proc.communicate(timeout=WAIT)
    assert (proc.returncode, out, err) == (0, f"embeddedserver {embeddedserver.__version__}\n", "")
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?",
                        embeddedserver.__version__), "not a PEP 440 release version"


# ---------------------------------------------------------------------------
# bad arguments: exit code 2 and a message naming the argument
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bogus:1"], "argument STEP: unknown step 'bogus' in 'bogus:1'; steps are: recv"),
        (["recv", "send:\\q"], "argument STEP: bad step 'send:\\\\q': TEXT: unknown escape"),
        (["regex:a{99999999999}"],
         "argument STEP: bad step 'regex:a{99999999999}': invalid regex b'a{99999999999}': "
         "the repetition number is too large"),
        (["regex:" + "(" * 1000 + ")" * 1000], "nested too deeply"),
        ([], "give at least one STEP"),
        (["--count", "0", "recv"], "argument --count: expected a whole number >= 1, not '0'"),
        (["--port", "70000", "recv"], "argument --port: expected a port from 0"),
        (["--timeout", "0", "recv"], "argument --timeout: expected a number of seconds > 0"),
        (["--demo", "recv"], "--demo takes no STEP arguments"),
        (["reset", "send:x"], "step 1 (Send(b'x')) can never run: step 0 (Reset()) ends"),
        (["halfclose", "send:x"], "would write after HalfClose()"),
        (["recv", "next", "next", "send:x"], "script 2 is empty"),
        (["--nope", "recv"], "unrecognized arguments: --nope"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "usage: python -m embeddedserver" in err
    assert message in err


def test_busy_port_exits_2_naming_the_port(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert main(["--port", str(port), "recv"]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on '127.0.0.1' port {port}" in err


# ---------------------------------------------------------------------------
# serving, in-process
# ---------------------------------------------------------------------------


def test_serves_an_http_client_and_prints_the_port_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out, body = run_cli(
        main, monkeypatch, ["--count", "1", "headers", "http:200:hello"], http_get
    )
    assert body == b"hello"
    assert code == 0
    lines = out.splitlines()
    assert lines[0].isdigit()
    assert f"serving on 127.0.0.1:{lines[0]} until 1 connection served" in out
    assert "  0: ReadUntil(b'\\r\\n\\r\\n')" in out
    assert re.search(r"^#1 +[\d.]+s  connected from 127\.0\.0\.1:\d+$", out, re.M)
    assert re.search(r"^#1 .*<- client \d+ bytes  b'GET /hello HTTP/1\.1\\r\\n", out, re.M)
    assert re.search(r"^#1 .*-> server \d+ bytes  b'HTTP/1\.1 200 OK", out, re.M)
    assert lines[-1] == "served 1 connection: no failures"


def test_a_failed_expectation_exits_1_with_the_report(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, reply = run_cli(
        main, monkeypatch, ["--count", "1", r"expect:PING\r\n", r"send:PONG\r\n"],
        exchange(b"PONG\r\n"),
    )
    assert reply == b""  # the server hung up at the wrong byte
    assert code == 1
    assert "#1 FAILED step 0 of 2: Expect(b'PING\\r\\n'): wrong bytes at offset 1" in out
    assert "served 1 connection: 1 failure" in out
    assert "CommandServer on 127.0.0.1:" in out and "1 failure" in out
    assert "first difference at byte offset 1: expected b'I' (0x49), got b'O' (0x4f)" in out


def test_a_matching_client_passes_the_expectation(monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, reply = run_cli(
        main, monkeypatch, ["--count", "1", r"expect:PING\r\n", r"send:PONG\r\n"],
        exchange(b"PING\r\n"),
    )
    assert (code, reply) == (0, b"PONG\r\n")


def test_next_gives_each_connection_its_own_script(monkeypatch: pytest.MonkeyPatch) -> None:
    def retrying_client(port: int) -> list[str]:
        seen = []
        for _ in range(3):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
            try:
                conn.request("GET", "/")
                seen.append(conn.getresponse().read().decode())
                return seen
            except ConnectionResetError as exc:
                seen.append(type(exc).__name__)
            finally:
                conn.close()
        return seen

    code, out, seen = run_cli(
        main, monkeypatch,
        ["--count", "2", "headers", "reset", "next", "headers", "http:200:ok"],
        retrying_client,
    )
    assert (code, seen) == (0, ["ConnectionResetError", "ok"])
    assert "script for connection 1:" in out and "script for connection 2 and later:" in out
    assert "#1 " in out and "server reset" in out


def test_next_serves_later_connections_with_the_last_script(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def three(port: int) -> list[bytes]:
        return [exchange(b"x", shut=True)(port) for _ in range(3)]

    code, _, replies = run_cli(
        main, monkeypatch, ["--count", "3", "recv", "send:one", "next", "recv", "send:more"], three
    )
    assert (code, replies) == (0, [b"one", b"more", b"more"])


def test_quiet_prints_only_the_port_and_the_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run_cli(
        main, monkeypatch, ["--quiet", "--count", "1", "recv", "send:hi"], exchange(b"x")
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0].isdigit()
    assert lines[1:] == ["served 1 connection: no failures"]


def test_quiet_still_prints_the_failure_report(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run_cli(
        main, monkeypatch, ["--quiet", "--count", "1", "expect:A"], exchange(b"B")
    )
    assert code == 1
    assert "FAILED" not in out  # no live lines
    assert "served 1 connection: 1 failure" in out and "wrong bytes at offset 0" in out


# -- rules tables -----------------------------------------------------------------

_REDISH = ["rules:line", r"rule:PING\r\n", r"send:+PONG\r\n",
           "rule,regex:^GET ", r"send:$3\r\nbar\r\n",
           "unmatched", r"send:-ERR unknown\r\n", "end"]


def _line_client(requests: list[bytes]) -> Callable[[int], list[bytes]]:
    """Send each request, read one reply line (two for a bulk string), then close."""

    def client(port: int) -> list[bytes]:
        replies = []
        with connect(port) as sock, sock.makefile("rb") as reader:
            for request in requests:
                sock.sendall(request)
                reply = reader.readline()
                if reply.startswith(b"$"):
                    reply += reader.readline()
                replies.append(reply)
            sock.shutdown(socket.SHUT_WR)
            assert reader.read() == b""
        return replies

    return client


def test_a_rules_table_answers_requests_in_any_order(monkeypatch: pytest.MonkeyPatch) -> None:
    import random

    for seed in range(4):  # a different order each time, the same verdict
        requests = [b"PING\r\n", b"GET k\r\n", b"PING\r\n", b"GET other\r\n"]
        random.Random(seed).shuffle(requests)
        code, out, replies = run_cli(main, monkeypatch, ["--count", "1", *_REDISH],
                                     _line_client(requests))
        expected = [b"+PONG\r\n" if r.startswith(b"PING") else b"$3\r\nbar\r\n"
                    for r in requests]
        assert (code, replies) == (0, expected), out
        assert "served 1 connection: no failures" in out


def test_a_request_no_rule_takes_fails_with_the_closest_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out, replies = run_cli(main, monkeypatch, ["--count", "1", *_REDISH],
                                 _line_client([b"PING\r\n", b"PONK\r\n"]))
    assert replies == [b"+PONG\r\n", b"-ERR unknown\r\n"]  # unmatched answered it
    assert code == 1
    assert "no rule takes the request b'PONK\\r\\n'" in out
    assert "the closest rules:" in out
    assert "differs at byte 1: the rule has b'ING\\r\\n' there" in out


def test_a_rule_with_times_that_never_matched_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["--count", "1", "rules:line", "rule:a\\n", "send:A\\n",
            "rule,times=1:b\\n", "send:B\\n"]
    code, out, _ = run_cli(main, monkeypatch, args, _line_client([b"a\n", b"a\n"]))
    assert code == 1
    assert "Rule(b'b\\n'" in out and "0 times" in out
    code, out, replies = run_cli(main, monkeypatch, args, _line_client([b"b\n", b"a\n"]))
    assert (code, replies) == (0, [b"B\n", b"A\n"]), out


def test_steps_after_end_run_once_the_client_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    # The table ends at 'end'; 'next' gives the second connection a plain script.
    args = ["--count", "2", "rules:line", "rule:x\\n", "send:y\\n", "end", "send:bye",
            "next", "recv", "send:second"]

    def two(port: int) -> list[bytes]:
        with connect(port) as sock:
            sock.sendall(b"x\n")
            sock.shutdown(socket.SHUT_WR)
            first = read_to_eof(sock)
        return [first, exchange(b"hi")(port)]

    code, out, replies = run_cli(main, monkeypatch, args, two)
    assert (code, replies) == (0, [b"y\nbye", b"second"]), out


BAD_RULES = [
    (["rule:x"], "rule:MATCH belongs in a rules table: put rules:READ before it"),
    (["unmatched"], "unmatched belongs in a rules table"),
    (["rules:send:x", "rule:a"], "bad rules 'rules:send:x': 'send:x' is not a read step"),
    (["rules", "rule:a"], "rules needs the read step that frames a request"),
    (["rules,fast:line", "rule:a"], "rules takes only the flag ordered"),
    (["rules:line", "send:x"], "a rules table starts with a rule:MATCH argument, not Send"),
    (["rules:line"], "a rules table needs at least one rule:MATCH argument"),
    (["rules:line", "rule,times=3-1:a"], "times range '3-1' ends before it starts"),
    (["rules:line", "rule,times=many:a"], "times must be N (exactly), N-M or N- (at least N)"),
    (["rules:line", "rule,regex:("], "bad rule 'rule,regex:('"),
    (["rules:line", "rule:"], "rule needs the request it matches"),
    (["rules:line", "rule:a", "rules:line", "rule:b"], "a rules table inside a rules table"),
]


@pytest.mark.parametrize(("args", "message"), BAD_RULES, ids=[" ".join(a) for a, _ in BAD_RULES])
def test_bad_rules_tables_exit_2_naming_the_argument(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_concurrent_serves_a_second_client_while_the_first_is_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def two_at_once(port: int) -> tuple[bytes, bytes]:
        with connect(port) as first, connect(port) as second:
            second.sendall(b"2")  # answered although the first client has sent nothing
            second_reply = read_to_eof(second)
            first.sendall(b"1")
            return read_to_eof(first), second_reply

    code, out, replies = run_cli(
        main, monkeypatch, ["--concurrent", "--count", "2", "recv", "send:ok"], two_at_once
    )
    assert (code, replies) == (0, (b"ok", b"ok"))
    assert "concurrently" in out


def test_timeout_option_fails_a_silent_client(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, reply = run_cli(
        main, monkeypatch, ["--count", "1", "--timeout", "0.2", "recv", "send:late"],
        exchange(b""),
    )
    assert reply == b""
    assert code == 1
    assert "timed out after 0.2 s waiting for any bytes (the client sent nothing)" in out


def test_step_timeout_option_overrides_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run_cli(
        main, monkeypatch, ["--count", "1", "line,timeout=0.2"],
        exchange(b""),
    )
    assert code == 1
    assert "timed out after 0.2 s waiting for a line" in out


@pytest.mark.parametrize(
    ("steps", "send", "shut", "expected"),
    [
        (["send:hello"], b"", False, b"hello"),
        (["garbage:10"], b"", False, Garbage(10).data),
        (["drip,chunk=2,interval=0:abcd"], b"", False, b"abcd"),
        (["sendframe:hi"], b"", False, b"\x00\x00\x00\x02hi"),
        (["frame", "send:ok"], struct.pack(">I", 3) + b"abc", False, b"ok"),
        (["frame,prefix=>H", "send:ok"], struct.pack(">H", 1) + b"a", False, b"ok"),
        (["expectframe:hi", "send:ok"], b"\x00\x00\x00\x02hi", False, b"ok"),
        (["line", "line", "send:2"], b"a\nb\n", False, b"2"),
        (["untilclose", "send:bye"], b"all of it", True, b"bye"),
        (["recv:6", "send:six"], b"123456", False, b"six"),
        (["halfclose", "untilclose"], b"late", True, b""),
        (["send:a", "delay:0", "send:b"], b"", False, b"ab"),
        (["expectclose"], b"", True, b""),
        (["hang:0"], b"", False, b""),
        (["acceptclose"], b"", False, b""),
        (["regex:END", "send:ok"], b"the END", False, b"ok"),
    ],
)
def test_steps_behave_on_a_real_connection(
    steps: list[str], send: bytes, shut: bool, expected: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out, reply = run_cli(main, monkeypatch, ["--count", "1", *steps], exchange(send, shut))
    assert reply == expected
    assert code == 0, out


def test_reset_step_gives_the_client_connection_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    def client(port: int) -> str:
        with connect(port) as sock:
            sock.sendall(b"x")
            try:
                sock.recv(10)
            except ConnectionResetError as exc:
                return type(exc).__name__
            return "no reset"

    code, out, seen = run_cli(main, monkeypatch, ["--count", "1", "recv", "reset"], client)
    assert (code, seen) == (0, "ConnectionResetError")
    assert "server reset" in out


# ---------------------------------------------------------------------------
# the real entry point: python -m embeddedserver
# ---------------------------------------------------------------------------


def test_module_entry_point_serves_count_connections(child: Any) -> None:
    proc = child("--count", "1", "headers", "http:200:hello from the shell")
    port = port_line(proc)
    assert http_get(port) == b"hello from the shell"
    out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, err
    assert "<- client" in out and "served 1 connection: no failures" in out
    assert err == ""


def test_ctrl_c_stops_cleanly_with_a_summary(child: Any) -> None:
    proc = child("recv", "send:hi")
    port = port_line(proc)
    assert exchange(b"x")(port) == b"hi"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0
    assert "stopped by Ctrl-C after 1 connection: no failures" in out
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


def test_ctrl_c_during_a_hang_stops_the_connection(child: Any) -> None:
    proc = child("recv", "hang")
    port = port_line(proc)
    assert proc.stdout is not None
    with connect(port) as sock:
        sock.sendall(b"x")
        for line in proc.stdout:  # wait until the server is hanging
            if "hanging" in line:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=WAIT)
        assert sock.recv(10) == b""  # the server closed on the way out
    assert proc.returncode == 0
    assert re.search(r"^#1 .*stopped$", out, re.M)
    assert "stopped by Ctrl-C after 1 connection: no failures" in out
    assert "Traceback" not in err


def test_ctrl_c_works_when_started_with_sigint_ignored() -> None:
    # A shell script's background job starts with SIGINT ignored; kill -INT still works.
    command = f"trap '' INT; exec '{sys.executable}' -m embeddedserver recv"
    with subprocess.Popen(
        ["sh", "-c", command], cwd=ROOT, env=CHILD_ENV, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ) as proc:
        try:
            port_line(proc)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=WAIT)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    assert "stopped by Ctrl-C after 0 connections: no failures" in out


def test_sigterm_stops_like_ctrl_c(child: Any) -> None:
    proc = child("recv")
    port_line(proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0
    assert "stopped by SIGTERM after 0 connections: no failures" in out
    assert "Traceback" not in err


def test_ctrl_c_after_a_failure_exits_1_with_the_report(child: Any) -> None:
    proc = child("expect:A")
    port = port_line(proc)
    assert proc.stdout is not None
    exchange(b"B")(port)
    for line in proc.stdout:  # the live failure line: the server has recorded it
        if "FAILED" in line:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 1
    assert "stopped by Ctrl-C after 1 connection: 1 failure" in out
    assert "wrong bytes at offset 0" in out
    assert "Traceback" not in err


def test_module_entry_point_rejects_bad_steps_with_exit_2(child: Any) -> None:
    proc = child("recv", "snd:hello")
    out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 2
    assert out == ""
    assert "usage: python -m embeddedserver" in err
    assert "argument STEP: unknown step 'snd' in 'snd:hello'; steps are:" in err


# ---------------------------------------------------------------------------
# the demo, from the command line
# ---------------------------------------------------------------------------

DEMO_LINES = [
    "[1/7] The server resets the connection",
    "client saw: ConnectionResetError:",
    "client saw: read() returned b'this body arrived a few bytes at a time'",
    "client saw: TimeoutError: timed out",
    "client saw: http.client.BadStatusLine:",
    "attempt 1: HTTPError 503 Service Unavailable; retrying",
    "attempt 2: 200 OK b'second time lucky'",
    "client saw: sendmail() returned {} (no recipient refused), QUIT answered 221",
    "first difference at byte offset 3: expected b'L' (0x4c), got b'O' (0x4f)",
    "All 7 scenarios behaved as designed.",
]


def test_demo_runs_in_process_and_leaves_nothing_behind(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--demo"]) == 0
    out = capsys.readouterr().out
    for line in DEMO_LINES:
        assert line in out
    assert out.count("-> as designed:") == 7
    assert "NOT AS DESIGNED" not in out


def test_demo_as_a_module_exits_0(child: Any) -> None:
    proc = child("--demo")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    for line in DEMO_LINES:
        assert line in out
    assert err == ""


# ---------------------------------------------------------------------------
# docs/reference/cli.md (its python examples run in tests/test_docs.py)
# ---------------------------------------------------------------------------

_DOC_PAGE = "docs/reference/cli.md"


def test_docs_show_every_step() -> None:
    text = section(_DOC_PAGE, "## Steps")
    for spec in embeddedserver.cli._SPECS:
        assert f"`{spec.usage}`" in text, spec.usage


def test_docs_show_every_option() -> None:
    text = section(_DOC_PAGE, "## Options")
    for action in embeddedserver.cli._parser()._actions:
        for option in action.option_strings:
            if option not in ("-h", "--help"):
                shown = option if action.metavar is None and action.nargs == 0 else (
                    f"{option} {action.metavar or action.dest.upper()}"
                )
                assert f"`{shown}`" in text, shown


def test_docs_show_the_help_as_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    """The reference's copy of --help is the program's, word for word (argparse wraps
    to the terminal's width, so line breaks may differ)."""
    text = section(_DOC_PAGE, "## `--help`")
    shown = text.split("$ python -m embeddedserver --help\n", 1)[1].split("```", 1)[0]
    assert main(["--help"]) == 0
    printed = capsys.readouterr().out
    assert shown.split() == printed.split(), (
        f"{_DOC_PAGE} shows another --help: paste the output of "
        "python -m embeddedserver --help there"
    )


# --script FILE: serve a recorded or hand-written script file -----------------------

_SCRIPT_FILE = """\
# embeddedserver script
connection 1
client: "PING\\r\\n"
server: "PONG\\r\\n"
"""


def test_script_file_is_served_to_a_client(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    script = tmp_path / "ping.script"
    script.write_text(_SCRIPT_FILE, encoding="utf-8")
    code, out, reply = run_cli(
        main, monkeypatch, ["--count", "1", "--script", str(script)], exchange(b"PING\r\n")
    )
    assert (code, reply) == (0, b"PONG\r\n")
    assert "served 1 connection: no failures" in out


def test_script_file_with_exact_fails_a_different_client(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    script = tmp_path / "ping.script"
    script.write_text(_SCRIPT_FILE, encoding="utf-8")
    code, out, reply = run_cli(
        main, monkeypatch, ["--count", "1", "--exact", "--script", str(script)],
        exchange(b"PONG\r\n"),
    )
    assert (code, reply) == (1, b"")
    assert "first difference at byte offset 1" in out


def test_script_file_with_bad_syntax_exits_2_naming_the_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    script = tmp_path / "bad.script"
    script.write_text(_SCRIPT_FILE + "sever: oops\n", encoding="utf-8")
    assert main(["--script", str(script)]) == 2
    assert "line 5" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--script", "x.script", "recv"], "not both"),
        (["--exact", "recv"], "apply to --script"),
        (["--demo", "--script", "x.script"], "no --script"),
    ],
)
def test_script_option_conflicts_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    assert message in capsys.readouterr().err
