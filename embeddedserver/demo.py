"""The demo: ``python -m embeddedserver --demo``.

Model
-----
Each scenario pairs a scripted ``CommandServer`` (one that resets, drips, hangs, sends
garbage, or expects a command the client gets wrong) with a real standard-library
client (``http.client``, ``urllib.request``, ``smtplib``, a raw socket) on loopback.
The demo prints the script, what the client saw and the server's transcript, then
checks the outcome against what the scenario says should happen: the exception the
client gets, the connections served, the failures the server records. So the demo
shows what each misbehaviour looks like from the client's side and is also a smoke
test of the whole library.

    $ python -m embeddedserver --demo
    embeddedserver demo: 7 scenarios. Each starts a scripted server on 127.0.0.1
    ...
    All 7 scenarios behaved as designed.

``run_demo`` returns 0 when every scenario behaved as designed, 1 otherwise. The
console helpers at the top are shared with ``embeddedserver.cli``, which runs the demo for
``--demo`` (so this module must not import it).

Sections: console output - the clients - the scenarios - running the demo.
"""

from __future__ import annotations

import dataclasses
import http.client
import smtplib
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._console import PROG, emit
from ._text import plural
from .servers import CommandServer
from .steps import (
    Drip,
    Expect,
    ExpectRegex,
    Garbage,
    Hang,
    PerConnection,
    ReadLine,
    ReadUntil,
    Reset,
    compile_script,
    describe_steps,
    http_response,
)

__all__ = ["run_demo"]

# ---------------------------------------------------------------------------
# console output
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# the clients
# ---------------------------------------------------------------------------


def _http_get(port: int, timeout: float = 5.0) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        return f"{response.status} {response.reason} {response.read()!r}"
    finally:
        conn.close()


def _urlopen(port: int, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout) as response:
        body: bytes = response.read()
        return body


_DRIP_TIMEOUT = 0.5
_DRIP_BODY = "this body arrived a few bytes at a time"
# 97 bytes in 8-byte chunks: 12 pauses of 0.05 s, so the response takes at least 0.6 s,
# longer than the client's timeout by construction (each pause is far below it).
_DRIP = Drip(http_response(_DRIP_BODY), chunk=8, interval=0.05)


def _drip_client(port: int) -> str:
    started = time.monotonic()
    body = _urlopen(port, timeout=_DRIP_TIMEOUT)
    took = time.monotonic() - started
    return f"read() returned {body!r} after {took:.1f} s"


def _retrying_client(port: int) -> str:
    lines = []
    for attempt in (1, 2, 3):
        try:
            body = _urlopen(port)
        except urllib.error.HTTPError as exc:
            exc.close()
            lines.append(f"attempt {attempt}: HTTPError {exc.code} {exc.reason}; retrying")
            continue
        lines.append(f"attempt {attempt}: 200 OK {body!r}")
        return "\n".join(lines)
    raise AssertionError("no attempt succeeded:\n" + "\n".join(lines))


def _smtp_client(port: int) -> str:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="demo-client", timeout=5) as smtp:
        refused = smtp.sendmail(
            "alice@example.com", ["bob@example.com"], "Subject: hello\r\n\r\nHi Bob!\r\n"
        )
    return f"sendmail() returned {refused!r} (no recipient refused), QUIT answered 221"


def _wrong_command_client(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"HELO\r\n")
        try:
            reply = sock.recv(1024)
        except ConnectionResetError:
            return "sent b'HELO\\r\\n'; the server reset the connection"
    return f"sent b'HELO\\r\\n'; recv() returned {reply!r}: the server hung up without a word"


# ---------------------------------------------------------------------------
# the scenarios
# ---------------------------------------------------------------------------


@dataclass
class _Scenario:
    """One demo scenario: a scripted server, a real client, and what should happen."""

    title: str
    told: str  # what the server was told to do, in words
    script: Any
    client: str  # what the client does, in words
    run: Callable[[int], str]  # drives the client against the port; returns what it got
    expect_error: type[BaseException] | None = None
    connections: int = 1
    server_failures: int = 0
    lesson: str = ""


_SMTP_SCRIPT = [
    "220 demo.example ESMTP ready\r\n",
    ExpectRegex(rb"(?i)EHLO \S+\r\n", within=ReadLine()),
    "250 demo.example\r\n",
    ExpectRegex(rb"(?i)MAIL FROM:<alice@example\.com>\r\n", within=ReadLine()),
    "250 OK\r\n",
    ExpectRegex(rb"(?i)RCPT TO:<bob@example\.com>\r\n", within=ReadLine()),
    "250 OK\r\n",
    ExpectRegex(rb"(?i)DATA\r\n", within=ReadLine()),
    "354 End data with <CR><LF>.<CR><LF>\r\n",
    ReadUntil(b"\r\n.\r\n"),
    "250 OK: queued\r\n",
    ExpectRegex(rb"(?i)QUIT\r\n", within=ReadLine()),
    "221 Bye\r\n",
]


def _scenarios() -> list[_Scenario]:
    return [
        _Scenario(
            "The server resets the connection",
            "read the request, then abort the connection (RST) instead of answering",
            [ReadUntil(b"\r\n\r\n"), Reset()],
            "http.client: GET /", lambda port: _http_get(port), ConnectionResetError,
            lesson="a reset reaches the client as ConnectionResetError",
        ),
        _Scenario(
            "The server drips its response slowly",
            f"send a complete response {_DRIP.chunk} bytes at a time, "
            f"{_DRIP.interval} s apart",
            [ReadUntil(b"\r\n\r\n"), _DRIP],
            f"urllib.request.urlopen(url, timeout={_DRIP_TIMEOUT})", _drip_client,
            lesson=f"the response took longer than timeout={_DRIP_TIMEOUT}, yet no timeout: "
            "it limits each read, not the whole response",
        ),
        _Scenario(
            "The server hangs past the client's timeout",
            "read the request, then stay silent and keep the connection open",
            [ReadUntil(b"\r\n\r\n"), Hang()],
            "http.client: GET / with timeout=0.3", lambda port: _http_get(port, 0.3),
            TimeoutError,
            lesson="a silent server reaches the client as TimeoutError after its timeout",
        ),
        _Scenario(
            "The server sends garbage instead of a status line",
            "read the request, then send 48 pseudo-random bytes and close",
            [ReadUntil(b"\r\n\r\n"), Garbage(48, seed=7)],
            "http.client: GET /", lambda port: _http_get(port), http.client.BadStatusLine,
            lesson="http.client rejects a response that does not start with HTTP/",
        ),
        _Scenario(
            "The first connection fails, the retry succeeds",
            "answer connection 1 with 503 Service Unavailable, connection 2 with 200 OK "
            "(PerConnection)",
            PerConnection(
                [ReadUntil(b"\r\n\r\n"), http_response("busy", 503, headers={"Retry-After": "0"})],
                [ReadUntil(b"\r\n\r\n"), http_response("second time lucky")],
            ),
            "urllib.request.urlopen in a loop that retries on HTTPError 503",
            _retrying_client, connections=2,
            lesson="per-connection scripts test retry logic",
        ),
        _Scenario(
            "A good SMTP dialogue",
            "greet, then expect EHLO, MAIL FROM, RCPT TO, DATA, the message and QUIT, "
            "answering each",
            _SMTP_SCRIPT,
            "smtplib.SMTP(...).sendmail('alice@example.com', ['bob@example.com'], ...)",
            _smtp_client,
            lesson="every command the client sent matched what the script expected",
        ),
        _Scenario(
            "The client sends the wrong command",
            "expect exactly b'HELLO\\r\\n', then answer b'WELCOME\\r\\n'",
            [Expect(b"HELLO\r\n"), "WELCOME\r\n"],
            "a raw socket client that sends b'HELO\\r\\n' (a typo)",
            _wrong_command_client, server_failures=1,
            lesson="the server failed the step at the first wrong byte (offset 3) and hung "
            "up; in a test, server.check() raises this message",
        ),
    ]


# ---------------------------------------------------------------------------
# running the demo
# ---------------------------------------------------------------------------


def _describe_error(exc: BaseException) -> str:
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else (
        f"{kind.__module__}.{kind.__qualname__}")
    text = str(exc)
    if not text.isprintable():
        text = repr(text)
    if len(text) > 60:
        text = text[:60] + "..."
    return f"{name}: {text}" if text else name


def _indent(text: str, by: str = "  ") -> str:
    return "\n".join(by + line for line in text.splitlines())


def _run_scenario(number: int, total: int, scenario: _Scenario) -> str | None:
    """Run one scenario, printing it; return None if it behaved as designed, else why not."""
    out = [f"[{number}/{total}] {scenario.title}", f"  server told to: {scenario.told}"]
    if isinstance(scenario.script, PerConnection):
        for n, script in enumerate(scenario.script.scripts, 1):
            out += [f"  script for connection {n}:", _indent(describe_steps(script))]
    else:
        out += ["  script:", _indent(describe_steps(compile_script(scenario.script)))]
    out.append(f"  client: {scenario.client}")
    server = CommandServer(scenario.script, verbose=False)
    try:
        error: BaseException | None = None
        try:
            assert server.port is not None  # a TCP server (not a Unix socket)
            result = scenario.run(server.port)
            out.append("  client saw: " + result.replace("\n", "\n              "))
        except Exception as exc:  # what the client experienced is the point of the demo
            error = exc
            out.append(f"  client saw: {_describe_error(exc)}")
        problem = _verdict(scenario, error)
        try:
            server.wait_for_connections(scenario.connections, timeout=10.0)
        except TimeoutError as exc:
            problem = problem or str(exc)
    finally:
        server.stop()
    out += ["  server transcript:", _indent(server.transcript(), "    ")]
    failures = list(server.errors)
    if failures:
        out.append("  server recorded (server.check() raises AssertionError with this):")
        out += [_indent(dataclasses.replace(f, transcript="").message(), "    ")
                for f in failures]
    if len(failures) != scenario.server_failures:
        problem = problem or (
            f"the server recorded {plural(len(failures), 'failure')}, "
            f"expected {scenario.server_failures}"
        )
    if problem is None:
        out.append(f"  -> as designed: {scenario.lesson}")
    else:
        out.append(f"  -> NOT AS DESIGNED: {problem}")
    emit("\n".join(out) + "\n")
    return problem


def _verdict(scenario: _Scenario, error: BaseException | None) -> str | None:
    wanted = scenario.expect_error
    if wanted is None and error is not None:
        return f"the client failed with {_describe_error(error)}"
    if wanted is not None and not isinstance(error, wanted):
        got = "succeeded" if error is None else f"got {_describe_error(error)}"
        return f"expected the client to get {wanted.__name__}, but it {got}"
    return None


def run_demo() -> int:
    """Run every demo scenario against real standard-library clients on loopback,
    printing what each client saw and the server's transcript.

    Returns 0 when every scenario behaved as designed, 1 otherwise (with the reasons).
    Leaves no server, thread or socket behind.
    """
    scenarios = _scenarios()
    emit(
        f"embeddedserver demo: {len(scenarios)} scenarios. Each starts a scripted server on "
        "127.0.0.1\nand points a real standard-library client at it.\n"
    )
    problems = []
    for number, scenario in enumerate(scenarios, 1):
        problem = _run_scenario(number, len(scenarios), scenario)
        if problem is not None:
            problems.append(f"  [{number}] {scenario.title}: {problem}")
    if problems:
        emit(
            f"{len(problems)} of {len(scenarios)} scenarios did NOT behave as designed:\n"
            + "\n".join(problems)
        )
        return 1
    emit(
        f"All {len(scenarios)} scenarios behaved as designed.\n"
        f"Next: script such servers in your tests (see the README), or serve one from the "
        f"shell:\n  {PROG} headers http:200:hello"
    )
    return 0
