"""``python -m embeddedserver proxy``: the fault syntax, and each fault seen by a real
client through the proxy, to a real server started here (in-process runs of ``main()``
with a client thread, and the module run as a child process for signals).

Timings are lower bounds with generous upper bounds; nothing sleeps to synchronise: the
client learns the port from the first line the proxy prints.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _cli import WAIT, children, connect, port_line, read_to_eof, run_cli

from embeddedserver import (
    Bandwidth,
    Blackhole,
    CommandServer,
    Expect,
    Latency,
    LimitData,
    OnPattern,
    ResetPeer,
    Send,
    Slicer,
    SlowClose,
    Timeout,
)
from embeddedserver._proxycli import parse_fault, parse_upstream
from embeddedserver.cli import main

# ---------------------------------------------------------------------------
# fault syntax
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("latency:0.1", Latency(0.1)),
        ("latency,jitter=0.02:0.1", Latency(0.1, 0.02)),
        ("bandwidth:1000", Bandwidth(1000.0)),
        ("slicer", Slicer()),
        ("slicer,average=2,variation=1,delay=0.01", Slicer(2, 1, 0.01)),
        ("slicer,average=1", Slicer(1, 0)),
        ("limitdata:100", LimitData(100)),
        ("limit-data:0", LimitData(0)),
        ("timeout", Timeout()),
        ("timeout:2.5", Timeout(2.5)),
        ("resetpeer", ResetPeer()),
        ("reset_peer,bytes=10", ResetPeer(after_bytes=10)),
        ("resetpeer,after=0.5", ResetPeer(after=0.5)),
        ("slowclose:1", SlowClose(1.0)),
        ("blackhole", Blackhole()),
        (r"onpattern:QUIT\r\n", OnPattern(b"QUIT\r\n")),
        ("onpattern,action=close:bye", OnPattern(b"bye", "close")),
        ("onpattern,action=delay,delay=0.2:x", OnPattern(b"x", "delay", 0.2)),
    ],
)
def test_parse_fault_builds_the_same_fault_as_python(text: str, fault: object) -> None:
    parsed = parse_fault(text)
    assert parsed.fault == fault
    assert parsed.directions == ("downstream",)
    assert parsed.toxicity == 1.0
    assert parsed.connections is None


@pytest.mark.parametrize(
    ("text", "directions", "toxicity", "connections"),
    [
        ("blackhole,direction=up", ("upstream",), 1.0, None),
        ("blackhole,direction=Downstream", ("downstream",), 1.0, None),
        ("blackhole,direction=both", ("upstream", "downstream"), 1.0, None),
        ("blackhole,toxicity=0.25", ("downstream",), 0.25, None),
        ("blackhole,connections=2", ("downstream",), 1.0, 2),
        ("blackhole,connections=2-4", ("downstream",), 1.0, frozenset({2, 3, 4})),
        ("blackhole,connections=1+3", ("downstream",), 1.0, frozenset({1, 3})),
    ],
)
def test_the_common_options(
    text: str, directions: tuple[str, ...], toxicity: float, connections: object
) -> None:
    parsed = parse_fault(text)
    assert (parsed.directions, parsed.toxicity, parsed.connections) == (
        directions, toxicity, connections)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("nope", "unknown fault 'nope' in 'nope'; faults are: latency, bandwidth"),
        ("latency", "latency needs an argument (use latency[,jitter=...]:SECONDS)"),
        ("latency:soon", "SECONDS must be a number of seconds, not 'soon'"),
        ("latency:-1", "SECONDS must be a finite number of seconds >= 0, not '-1'"),
        ("latency,jiter=1:1", "unknown option 'jiter=1' for latency (options: jitter, direction"),
        ("bandwidth:0", "RATE must be a number of bytes per second > 0, not '0'"),
        ("slicer:4", "slicer takes no argument after ':'"),
        ("slicer,average=2,variation=2", "Slicer variation must be less than average (2), not 2"),
        ("limitdata:lots", "BYTES must be a whole number, not 'lots'"),
        ("resetpeer,bytes=-1", "bytes must be >= 0, not -1"),
        ("resetpeer,bytes", "option bytes needs a value: bytes=VALUE"),
        ("resetpeer,bytes=1,bytes=2", "option bytes given twice"),
        ("onpattern:", "onpattern needs an argument"),
        (r"onpattern:\q", r"PATTERN: "),
        ("onpattern,action=explode:x", "action must be reset, close or delay, not 'explode'"),
        ("onpattern,delay=1:x", "delay= goes with action=delay"),
        ("blackhole,direction=sideways", "direction must be up, down or both, not 'sideways'"),
        ("blackhole,toxicity=2", "toxicity must be a probability from 0 to 1, not '2'"),
        ("blackhole,connections=0", "connections must be >= 1, not 0"),
        ("blackhole,connections=4-2", "connections range '4-2' ends before it starts"),
    ],
)
def test_parse_fault_rejects_bad_faults_naming_them(text: str, words: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_fault(text)
    assert words in str(info.value)
    if not text.startswith("nope"):
        assert f"bad fault {text!r}" in str(info.value)


def test_parse_upstream() -> None:
    assert parse_upstream("127.0.0.1:6379") == ("127.0.0.1", 6379)
    assert parse_upstream("localhost:80") == ("localhost", 80)
    assert parse_upstream("[::1]:8080") == ("::1", 8080)
    assert parse_upstream("/tmp/x.sock") == "/tmp/x.sock"
    assert parse_upstream("./x.sock") == "./x.sock"
    for bad in ("6379", "host:", ":80", "host:http", "host:0", "host:70000"):
        with pytest.raises(Exception, match="expected HOST:PORT, \\[IPV6\\]:PORT or a Unix"):
            parse_upstream(bad)


def test_every_fault_is_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    from embeddedserver._proxycli import _SPECS

    assert main(["proxy", "--help"]) == 0
    out = capsys.readouterr().out
    for spec in _SPECS:
        assert f"  {spec.usage} " in out
    for option in ("direction=up|down|both", "toxicity=P", "connections=N"):
        assert option in out
    assert main(["--help"]) == 0
    assert "proxy --help" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], "the following arguments are required: --upstream"),
        (["--upstream", "nowhere"], "expected HOST:PORT"),
        (["--upstream", "127.0.0.1:1", "--fault", "latency:x"], "bad fault 'latency:x'"),
        (["--upstream", "127.0.0.1:1", "--count", "0"], "expected a whole number >= 1, not '0'"),
        (["--upstream", "127.0.0.1:1", "--port", "99999"], "to 65535, not '99999'"),
        (["--upstream", "127.0.0.1:1", "--timeout", "0"], "seconds > 0, not '0'"),
        (["--upstream", "127.0.0.1:1", "--path", "/tmp/p.sock", "--port", "5"],
         "--path listens on a Unix socket: give it without --host/--port"),
        (["--upstream", "127.0.0.1:1", "--host", "192.0.2.1"], "192.0.2.1"),
    ],
)
def test_bad_arguments_exit_2_naming_the_value(
    capsys: pytest.CaptureFixture[str], args: list[str], words: str
) -> None:
    assert main(["proxy", *args]) == 2
    assert words in capsys.readouterr().err


# ---------------------------------------------------------------------------
# forwarding through faults
# ---------------------------------------------------------------------------


@pytest.fixture
def upstream() -> Iterator[CommandServer]:
    """A real server for the proxy: answers ``ping`` with ``pong``, any number of times,
    one connection after another; its verdict is not this module's business."""
    server = CommandServer([Expect(b"ping"), Send(b"pong")], verbose=False,
                           concurrent=True, allow_unfinished=True)
    yield server
    server.stop()


def _proxy(monkeypatch: pytest.MonkeyPatch, upstream: CommandServer, *args: str,
           client: Callable[[int], Any]) -> tuple[int, str, Any]:
    host, port = upstream.address
    return run_cli(main, monkeypatch, ["proxy", "--upstream", f"{host}:{port}", *args], client)


def _ping(port: int) -> tuple[bytes, float]:
    with connect(port) as sock:
        start = time.monotonic()
        sock.sendall(b"ping")
        reply = read_to_eof(sock)
        return reply, time.monotonic() - start


def test_without_faults_it_forwards_and_prints_the_traffic(
    monkeypatch: pytest.MonkeyPatch, upstream: CommandServer
) -> None:
    for _ in range(3):  # the twin of every fault below: a correct path passes, each time
        code, out, (reply, _) = _proxy(monkeypatch, upstream, "--count", "1", "--seed", "5",
                                       client=_ping)
        assert (code, reply) == (0, b"pong")
        assert out.splitlines()[0].isdigit()
        assert "seed 5" in out
        assert "no faults: forwarding and recording only" in out
        assert "client -> server 4 bytes  b'ping'" in out
        assert "server -> client 4 bytes  b'pong'" in out
        assert "forwarded 1 connection: no failures" in out
        assert "#1 server closed: 4 bytes client -> server, 4 bytes server -> client" in out


def test_latency_delays_the_reply(monkeypatch: pytest.MonkeyPatch,
                                  upstream: CommandServer) -> None:
    code, out, (reply, took) = _proxy(monkeypatch, upstream, "--count", "1",
                                      "--fault", "latency:0.3", client=_ping)
    assert (code, reply) == (0, b"pong")
    assert 0.3 <= took < 0.3 + WAIT
    assert "Latency(delay=0.3, jitter=0.0) downstream" in out


def test_onpattern_upstream_resets_the_client(monkeypatch: pytest.MonkeyPatch,
                                              upstream: CommandServer) -> None:
    def reset_seen(port: int) -> str:
        with connect(port) as sock:
            sock.sendall(b"ping")
            try:
                data = read_to_eof(sock)
            except ConnectionResetError:
                return "ECONNRESET"
            return f"no reset, read {data!r}"

    code, out, seen = _proxy(monkeypatch, upstream, "--count", "1",
                             "--fault", "onpattern,direction=up:pi", client=reset_seen)
    assert seen == "ECONNRESET"
    assert code == 0  # a fault the user asked for is not a failure of the proxy
    assert "the pattern passed upstream" in out


def test_limitdata_cuts_the_reply(monkeypatch: pytest.MonkeyPatch,
                                  upstream: CommandServer) -> None:
    code, _, (reply, _) = _proxy(monkeypatch, upstream, "--count", "1",
                                 "--fault", "limitdata:3", client=_ping)
    assert (code, reply) == (0, b"pon")


def test_slicer_both_ways_keeps_the_bytes(monkeypatch: pytest.MonkeyPatch,
                                          upstream: CommandServer) -> None:
    code, out, (reply, _) = _proxy(monkeypatch, upstream, "--count", "1", "--fault",
                                   "slicer,average=1,direction=both", client=_ping)
    assert (code, reply) == (0, b"pong")
    # One --fault with direction=both is one fault on each direction (how the slices
    # arrive is test_faults.py's business: the proxy records what it read).
    assert "Slicer(average=1, variation=0, delay=0.0) upstream and downstream" in out


def test_the_first_connection_is_reset_and_the_second_works(
    monkeypatch: pytest.MonkeyPatch, upstream: CommandServer
) -> None:
    def two(port: int) -> list[str]:
        seen = []
        for _ in range(2):
            try:
                seen.append(_ping(port)[0].decode())
            except ConnectionResetError:
                seen.append("reset")
        return seen

    code, out, seen = _proxy(monkeypatch, upstream, "--count", "2",
                             "--fault", "resetpeer,connections=1", client=two)
    assert (code, seen) == (0, ["reset", "pong"])
    assert "ResetPeer(after_bytes=None, after=None) downstream, connection 1" in out
    assert "forwarded 2 connections: no failures" in out


def test_an_upstream_that_refuses_exits_1_with_the_report(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]

        def refused(proxy_port: int) -> str:
            try:  # the reset can come so soon that connect() itself reports it
                with connect(proxy_port) as sock:
                    return repr(read_to_eof(sock))
            except ConnectionResetError:
                return "reset"

        code, out, seen = run_cli(main, monkeypatch, [
            "proxy", "--upstream", f"127.0.0.1:{port}", "--count", "1", "--quiet"], refused)
    assert code == 1
    assert seen in ("reset", "b''")
    assert "forwarded 1 connection: 1 failure" in out
    assert f"127.0.0.1:{port}" in out
    assert "refused" in out.lower()


def test_quiet_prints_only_the_port_and_the_summary(
    monkeypatch: pytest.MonkeyPatch, upstream: CommandServer
) -> None:
    code, out, _ = _proxy(monkeypatch, upstream, "--quiet", "--count", "1", client=_ping)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].isdigit()
    assert lines[1:] == ["forwarded 1 connection: no failures"]


def test_save_writes_a_script_that_serves_the_real_side_back(
    monkeypatch: pytest.MonkeyPatch, upstream: CommandServer, tmp_path: Path
) -> None:
    saved = tmp_path / "pingpong.script"
    code, out, _ = _proxy(monkeypatch, upstream, "--count", "1", "--save", str(saved),
                          client=_ping)
    assert code == 0
    assert f"saved 1 connection to {saved}" in out
    code, out, (reply, _) = run_cli(main, monkeypatch, ["--count", "1", "--script", str(saved)],
                                    _ping)
    assert (code, reply) == (0, b"pong")


def test_save_to_a_missing_folder_exits_1_saying_so(
    monkeypatch: pytest.MonkeyPatch, upstream: CommandServer, tmp_path: Path
) -> None:
    where = tmp_path / "no" / "such" / "dir.script"
    code, out, _ = _proxy(monkeypatch, upstream, "--count", "1", "--save", str(where),
                          client=_ping)
    assert code == 1
    assert f"cannot save the recording to {str(where)!r}" in out


def test_unix_sockets_on_both_sides(tmp_path: Path) -> None:
    """A path listener prints its path first (in place of the port)."""
    real = str(tmp_path / "real.sock")
    front = str(tmp_path / "front.sock")
    with CommandServer([Expect(b"ping"), Send(b"pong")], path=real, verbose=False), \
            children() as start:
        proc = start("proxy", "--upstream", real, "--path", front, "--count", "1")
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == front
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(WAIT)
            sock.connect(front)
            sock.sendall(b"ping")
            assert read_to_eof(sock) == b"pong"
        out, err = proc.communicate(timeout=WAIT)
        assert proc.returncode == 0, err
        assert "forwarded 1 connection: no failures" in out


# ---------------------------------------------------------------------------
# the module as a child process
# ---------------------------------------------------------------------------


@pytest.fixture
def child() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    with children() as start:
        yield start


def test_sigterm_stops_with_a_summary(child: Any, upstream: CommandServer) -> None:
    host, port = upstream.address
    proc = child("proxy", "--upstream", f"{host}:{port}", "--fault", "blackhole")
    proxy_port = port_line(proc)
    with connect(proxy_port) as sock:  # an open connection, its reply held by the fault
        sock.sendall(b"ping")
        assert proc.stdout is not None
        for line in proc.stdout:  # the proxy has forwarded the request
            if "client -> server 4 bytes" in line:
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, err
    assert "stopped by SIGTERM after 1 connection: no failures" in out
    # The record holds what each side sent the proxy (the reply may have reached it,
    # to be dropped by the blackhole, before the signal did).
    assert re.search(r"#1 (stopped|server closed): 4 bytes client -> server, "
                     r"[04] bytes server -> client", out)
    assert "Traceback" not in err


def test_ctrl_c_stops_with_a_summary(child: Any, upstream: CommandServer) -> None:
    host, port = upstream.address
    proc = child("proxy", "--upstream", f"{host}:{port}")
    port_line(proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, err
    assert "stopped by Ctrl-C after 0 connections: no failures" in out
