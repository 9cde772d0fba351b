"""The command line: ``python -m embeddedserver [options] STEP...`` and ``--demo``.

Model
-----
The command line is one more thin shell around the engine. Each ``STEP`` argument is
parsed into the same step objects a Python script uses (``recv:20`` is ``Receive(20)``,
``http:200:hello`` is ``http_response("hello", 200)``), the steps become a
``CommandServer``, and the server's ``on_event`` hook prints the transcript live. The
main thread only waits for connections to finish, so Ctrl-C (or SIGTERM) stops the
server and prints a summary; the server threads block those signals so that the main
thread is always the one that receives them.

A step argument reads ``NAME``, ``NAME:ARG`` or ``NAME,OPTION=VALUE,...:ARG``; the
table in ``_SPECS`` is the single source of the syntax, of ``--help`` and of the error
messages. ``--demo`` runs a handful of misbehaving servers against real
standard-library clients and checks that each behaved as designed, so it is also a
smoke test.

    >>> main(["--help"])  # doctest: +ELLIPSIS
    usage: python -m embeddedserver ...
    0

Exit codes: 0 served without failures (or demo as designed), 1 failures recorded (or a
demo scenario misbehaved), 2 bad arguments, 130 interrupted during the demo.

Sections: step syntax - serving from the shell - the demo - entry point.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import math
import signal
import smtplib
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from embeddedrecord import ConnectionRecord, Event, show_bytes
from embeddedscript import (
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
    PerConnection,
    ReadFrame,
    ReadLine,
    ReadUntil,
    ReadUntilClose,
    Receive,
    Reset,
    Send,
    SendFrame,
    Step,
    compile_script,
    describe_steps,
    http_response,
)
from embeddedserver import CommandServer

__all__ = ["main", "parse_step", "run_demo", "unescape"]

PROG = "python -m embeddedserver"

#: The CLI's default read timeout: longer than the library's, for clients typed by hand.
CLI_TIMEOUT = 30.0

# The main thread waits for connections in slices this long; a slice that ends is
# simply renewed. It only bounds each wait (Ctrl-C interrupts any wait at once).
_WAIT_SLICE = 3600.0

# ---------------------------------------------------------------------------
# step syntax
# ---------------------------------------------------------------------------


class _BadStep(ValueError):
    """A step argument that cannot be parsed; the message says why."""


#: Separates per-connection scripts: ``reset next recv http:200:ok``.
NEXT = "next"

_ESCAPES = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\"}


def unescape(text: str) -> bytes:
    """Decode the CLI's backslash escapes: ``\\r \\n \\t \\0 \\\\`` and ``\\xNN`` (one raw
    byte). Other characters are UTF-8 encoded. Raises ValueError on any other escape.

    >>> unescape(r"GET / HTTP/1.1\\r\\n\\x00é")
    b'GET / HTTP/1.1\\r\\n\\x00\\xc3\\xa9'
    """
    out = bytearray()
    i = 0
    while i < len(text):
        at = text.find("\\", i)
        if at < 0:
            at = len(text)
        out += text[i:at].encode("utf-8", "surrogateescape")
        if at == len(text):
            break
        code = text[at + 1 : at + 2]
        if code in _ESCAPES:
            out += _ESCAPES[code]
            i = at + 2
        elif code == "x" and len(text) >= at + 4 and _is_hex(text[at + 2 : at + 4]):
            out.append(int(text[at + 2 : at + 4], 16))
            i = at + 4
        elif not code:
            raise ValueError("a lone backslash at the end: write \\\\ for a backslash")
        else:
            bad = text[at : at + 4] if code == "x" else text[at : at + 2]
            raise ValueError(
                f"unknown escape {bad!r}: use \\r \\n \\t \\0 \\\\ or \\xNN (two hex digits)"
            )
    return bytes(out)


def _is_hex(text: str) -> bool:
    return len(text) == 2 and all(c in "0123456789abcdefABCDEF" for c in text)


def _number(value: str, what: str, minimum: int = 0) -> int:
    try:
        number = int(value)
    except ValueError:
        raise _BadStep(f"{what} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise _BadStep(f"{what} must be >= {minimum}, not {number}")
    return number


def _seconds(value: str, what: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise _BadStep(f"{what} must be a number of seconds, not {value!r}") from None
    if not seconds >= 0 or math.isinf(seconds):
        raise _BadStep(f"{what} must be a finite number of seconds >= 0, not {value!r}")
    return seconds


def _bytes(value: str, what: str) -> bytes:
    try:
        return unescape(value)
    except ValueError as exc:
        raise _BadStep(f"{what}: {exc}") from None


def _timeout(options: dict[str, str]) -> float | None:
    if "timeout" not in options:
        return None
    seconds = _seconds(options["timeout"], "timeout")
    if seconds == 0:
        raise _BadStep("timeout must be > 0 seconds")
    return seconds


def _prefix(options: dict[str, str]) -> str:
    return options.get("prefix", ">I")


def _http(arg: str, options: dict[str, str]) -> Step:
    status_text, _, body = arg.partition(":")
    status = _number(status_text, "the HTTP status", 100)
    if status > 999:
        raise _BadStep(f"the HTTP status must be 100 to 999, not {status}")
    headers = {"Content-Type": options["type"]} if "type" in options else None
    return Send(http_response(_bytes(body, "the body"), status, headers=headers))


def _drip(arg: str, options: dict[str, str]) -> Step:
    chunk = _number(options.get("chunk", "1"), "chunk", 1)
    interval = _seconds(options.get("interval", "0.05"), "interval")
    return Drip(_bytes(arg, "the data"), chunk=chunk, interval=interval)


Builder = Callable[[Any, dict[str, str]], Step]


@dataclass(frozen=True)
class _Spec:
    """One step name of the CLI syntax: how it reads, what it does, how it is built."""

    usage: str  # e.g. "recv[:N]"; the part before ":" / "[" is the name
    help: str
    arg: str  # "none", "optional" or "required"
    build: Builder
    options: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.usage.split(":")[0].split("[")[0]


_READ = ("timeout",)
_SPECS = [
    _Spec("recv[:N]", "read what one read returns; with N, at least N bytes", "optional",
          lambda a, o: Receive(None if a is None else _number(a, "N"), timeout=_timeout(o)),
          _READ, ("receive",)),
    _Spec("headers", "read up to the blank line ending HTTP headers (until:\\r\\n\\r\\n)",
          "none", lambda a, o: ReadUntil(b"\r\n\r\n", timeout=_timeout(o)), _READ),
    _Spec("until:DELIM", "read up to and including DELIM", "required",
          lambda a, o: ReadUntil(_bytes(a, "DELIM"), timeout=_timeout(o)), _READ,
          ("readuntil",)),
    _Spec("line", "read one line (up to and including \\n)", "none",
          lambda a, o: ReadLine(timeout=_timeout(o)), _READ, ("readline",)),
    _Spec("frame", "read one length-prefixed frame (4-byte big-endian length)", "none",
          lambda a, o: ReadFrame(_prefix(o), timeout=_timeout(o)), (*_READ, "prefix"),
          ("readframe",)),
    _Spec("untilclose", "read everything until the client closes", "none",
          lambda a, o: ReadUntilClose(timeout=_timeout(o)), _READ, ("readuntilclose",)),
    _Spec("expect:BYTES", "the client must send exactly BYTES (fails at the first wrong byte)",
          "required", lambda a, o: Expect(_bytes(a, "BYTES"), timeout=_timeout(o)), _READ),
    _Spec("regex:PATTERN", "read until the Python regex PATTERN matches (no unescaping)",
          "required", lambda a, o: ExpectRegex(a, timeout=_timeout(o)), _READ,
          ("expectregex",)),
    _Spec("expectframe:PAYLOAD", "the client must send one frame holding PAYLOAD", "required",
          lambda a, o: ExpectFrame(_bytes(a, "PAYLOAD"), _prefix(o), timeout=_timeout(o)),
          (*_READ, "prefix")),
    _Spec("expectclose", "the client must close its side now", "none",
          lambda a, o: ExpectClose(timeout=_timeout(o)), _READ),
    _Spec("send:TEXT", "send TEXT", "required", lambda a, o: Send(_bytes(a, "TEXT"))),
    _Spec("http:STATUS[:BODY]", "send a whole HTTP/1.1 response, e.g. http:404:not here",
          "required", _http, ("type",)),
    _Spec("sendframe:PAYLOAD", "send PAYLOAD behind a 4-byte big-endian length", "required",
          lambda a, o: SendFrame(_bytes(a, "PAYLOAD"), _prefix(o)), ("prefix",)),
    _Spec("garbage:N", "send N pseudo-random bytes (seeded, reproducible)", "required",
          lambda a, o: Garbage(_number(a, "N", 1), _number(o.get("seed", "0"), "seed")),
          ("seed",)),
    _Spec("drip:TEXT", "send TEXT slowly: 1 byte every 0.05 s unless told otherwise",
          "required", _drip, ("chunk", "interval")),
    _Spec("delay:SECONDS", "pause", "required", lambda a, o: Delay(_seconds(a, "SECONDS")),
          (), ("pause", "sleep")),
    _Spec("close", "close the connection gracefully (FIN)", "none", lambda a, o: Close()),
    _Spec("reset", "abort the connection (RST): the client gets ECONNRESET", "none",
          lambda a, o: Reset()),
    _Spec("halfclose", "shut the server's write side (the client reads EOF), keep reading",
          "none", lambda a, o: HalfClose()),
    _Spec("hang[:SECONDS]", "stay silent until the client gives up (or SECONDS pass)",
          "optional", lambda a, o: Hang(None if a is None else _seconds(a, "SECONDS"))),
    _Spec("acceptclose", "accept, then close at once (use it as the whole script)",
          "none", lambda a, o: AcceptAndClose(), (), ("acceptandclose",)),
]

_OPTION_HELP = [
    "timeout=SECONDS   read steps: how long this step waits (default: --timeout)",
    "prefix=FMT        frame, expectframe, sendframe: the length prefix as a struct "
    "format (>H, <I, !Q...)",
    "type=MEDIA-TYPE   http: add a Content-Type header, e.g. type=application/json",
    "seed=N            garbage: the generator's seed (default 0)",
    "chunk=N           drip: bytes per chunk (default 1)",
    "interval=SECONDS  drip: pause between chunks (default 0.05)",
]


def _key(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


_BY_NAME: dict[str, _Spec] = {}
for _spec in _SPECS:
    for _name in (_spec.name, *_spec.aliases):
        _BY_NAME[_key(_name)] = _spec
del _spec, _name


def _accepted() -> str:
    return ", ".join(s.usage for s in _SPECS) + f", {NEXT}"


def parse_step(text: str) -> Step:
    """Parse one STEP argument (``recv:20``, ``'until:\\r\\n\\r\\n'``, ``http:200:hi``,
    ``drip,chunk=4,interval=0.2:hello``) into a step object.

    Raises ValueError naming the argument and what is accepted.

    >>> parse_step("recv:20")
    Receive(20)
    >>> parse_step(r"until:\\r\\n")
    ReadUntil(b'\\r\\n')
    """
    head, colon, arg = text.partition(":")
    name, *option_texts = head.split(",")
    spec = _BY_NAME.get(_key(name))
    if spec is None:
        raise ValueError(f"unknown step {name!r} in {text!r}; steps are: {_accepted()}")
    try:
        options = _options(option_texts, spec)
        if spec.arg == "none" and colon:
            raise _BadStep(f"{spec.name} takes no argument after ':'")
        if spec.arg == "required" and not colon:
            raise _BadStep(f"{spec.name} needs an argument")
        return spec.build(arg if colon else None, options)
    except (_BadStep, TypeError, ValueError) as exc:
        raise ValueError(f"bad step {text!r}: {exc} (use {_usage(spec)})") from None


def _usage(spec: _Spec) -> str:
    if not spec.options:
        return spec.usage
    head, colon, tail = spec.usage.partition(":")
    name, bracket, rest = head.partition("[")
    opts = "".join(f"[,{o}=...]" for o in spec.options)
    return f"{name}{opts}{bracket}{rest}{colon}{tail}"


def _options(texts: list[str], spec: _Spec) -> dict[str, str]:
    options: dict[str, str] = {}
    for text in texts:
        key, eq, value = text.partition("=")
        key = key.strip().lower()
        if key not in spec.options:
            allowed = ", ".join(spec.options) if spec.options else "none"
            raise _BadStep(f"unknown option {text!r} for {spec.name} (options: {allowed})")
        if not eq or not value:
            raise _BadStep(f"option {key} needs a value: {key}=VALUE")
        if key in options:
            raise _BadStep(f"option {key} given twice")
        options[key] = value
    return options


def _step_arg(text: str) -> Step | str:
    """argparse ``type=`` for STEP: a step, or NEXT."""
    if _key(text) == NEXT:
        return NEXT
    try:
        return parse_step(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _build_plan(items: Sequence[Step | str]) -> tuple[Any, list[tuple[Step, ...]]]:
    """Split STEP arguments at NEXT into per-connection scripts and compile them."""
    groups: list[list[Step]] = [[]]
    for item in items:
        if isinstance(item, str):
            groups.append([])
        else:
            groups[-1].append(item)
    for n, group in enumerate(groups, 1):
        if not group:
            raise ValueError(f"script {n} is empty: put steps on both sides of {NEXT!r}")
    scripts = []
    for n, group in enumerate(groups, 1):
        try:
            scripts.append(compile_script(group))
        except (TypeError, ValueError) as exc:
            where = f"script {n}: " if len(groups) > 1 else ""
            raise ValueError(f"{where}{exc}".replace("command ", "step ")) from None
    if len(scripts) == 1:
        return list(scripts[0]), scripts
    return PerConnection(*scripts, then=scripts[-1]), scripts


# ---------------------------------------------------------------------------
# serving from the shell
# ---------------------------------------------------------------------------


def _emit(text: str = "") -> None:
    """Print one block of output at once; a closed stdout (a pipe) is not an error."""
    try:
        print(text, flush=True)
    except (BrokenPipeError, ValueError):
        pass


class _LiveTranscript:
    """Prints each recorded event as it happens (``CommandServer.on_event``)."""

    def __init__(self, width: int = 200) -> None:
        self.width = width
        self._lock = threading.Lock()

    def __call__(self, record: ConnectionRecord, event: Event) -> None:
        self.print(_event_line(record, event, self.width))

    def print(self, text: str) -> None:
        with self._lock:
            _emit(text)


def _event_line(record: ConnectionRecord, event: Event, width: int) -> str:
    head = f"#{record.number} {event.at:8.3f}s  "
    if event.kind == "note":
        text = event.text
        if text == "connected":
            text += f" from {_peer(record.peer)}"
        return head + text
    arrow = "<- client" if event.kind == "recv" else "-> server"
    note = f"  {event.text}" if event.text else ""
    return f"{head}{arrow} {len(event.data)} bytes  {show_bytes(event.data, width)}{note}"


def _peer(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = f"[{peer[0]}]" if ":" in str(peer[0]) else str(peer[0])
        return f"{host}:{peer[1]}"
    return str(peer)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class _Interrupted(KeyboardInterrupt):
    """SIGTERM, raised in the main thread and handled like Ctrl-C."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Interrupted()


def _start_server(
    plan: Any, args: argparse.Namespace, live: _LiveTranscript
) -> CommandServer:
    """Start the server with SIGINT/SIGTERM blocked, so its threads inherit the mask
    and those signals always reach the main thread (and interrupt its wait)."""
    blocked = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        return CommandServer(
            plan, args.host, args.port, verbose=False, timeout=args.timeout,
            concurrent=args.concurrent, max_connections=args.count,
            on_event=None if args.quiet else live,
        )
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _load_plan(args: argparse.Namespace) -> tuple[Any, list[tuple[Step, ...]]]:
    """The plan and the per-connection listing, from STEP arguments or --script FILE."""
    if args.script is None:
        return _build_plan(args.steps)
    from embeddedreplay import load_script

    plan = load_script(args.script, exact=args.exact, keep_timing=args.keep_timing)
    if isinstance(plan, PerConnection):
        return plan, list(plan.scripts)
    return plan, [tuple(plan)]


def _serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        plan, scripts = _load_plan(args)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    live = _LiveTranscript()
    try:
        server = _start_server(plan, args, live)
    except (OSError, TypeError, ValueError) as exc:
        parser.error(str(exc))
    # Ctrl-C and SIGTERM stop the server with a summary, even when this process was
    # started with SIGINT ignored (as a shell script's background job is).
    old: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        old[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
        old[signal.SIGTERM] = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _serve_until_done(server, scripts, args, live)
    finally:
        server.stop()
        for signum, handler in old.items():
            if handler is not None:
                signal.signal(signum, handler)


def _serve_until_done(
    server: CommandServer, scripts: list[tuple[Step, ...]], args: argparse.Namespace,
    live: _LiveTranscript,
) -> int:
    how = f"served {_plural(args.count or 0, 'connection')}"
    try:
        live.print(str(server.port))  # first line, alone, for scripts to read
        if not args.quiet:
            live.print(_banner(server, scripts, args))
        done = shown = 0
        while args.count is None or done < args.count:
            try:
                server.wait_for_connections(done + 1, timeout=_WAIT_SLICE)
            except TimeoutError:
                continue
            done += 1
            shown = _show_new_failures(server, shown, live, args.quiet)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (_Interrupted)
        server.stop()
        name = "SIGTERM" if isinstance(exc, _Interrupted) else "Ctrl-C"
        how = f"stopped by {name} after {_plural(len(server.connections), 'connection')}"
    server.stop()
    failures = list(server.errors)
    summary = f"{how}: " + (_plural(len(failures), "failure") if failures else "no failures")
    live.print(summary if not failures else f"{summary}\n\n{server.failure_report()}")
    return 1 if failures else 0


def _banner(server: CommandServer, scripts: list[tuple[Step, ...]],
            args: argparse.Namespace) -> str:
    where = " and ".join(_peer(a) for a in server.addresses)
    until = f"until {_plural(args.count, 'connection')} served" if args.count else "until Ctrl-C"
    mode = ", concurrently" if args.concurrent else ""
    lines = [f"serving on {where} {until}{mode}"]
    for n, script in enumerate(scripts, 1):
        if len(scripts) == 1:
            lines.append("script:")
        elif n < len(scripts):
            lines.append(f"script for connection {n}:")
        else:
            lines.append(f"script for connection {n} and later:")
        lines.append(describe_steps(script))
    return "\n".join(lines)


def _show_new_failures(
    server: CommandServer, shown: int, live: _LiveTranscript, quiet: bool
) -> int:
    failures = list(server.errors)
    if not quiet:
        for failure in failures[shown:]:
            short = dataclasses.replace(failure, connection=None, transcript="", traceback="")
            first = short.message().splitlines()[0]
            live.print(f"#{failure.connection or '?'} FAILED {first}")
    return len(failures)


# ---------------------------------------------------------------------------
# the demo
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
            f"the server recorded {_plural(len(failures), 'failure')}, "
            f"expected {scenario.server_failures}"
        )
    if problem is None:
        out.append(f"  -> as designed: {scenario.lesson}")
    else:
        out.append(f"  -> NOT AS DESIGNED: {problem}")
    _emit("\n".join(out) + "\n")
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
    _emit(
        f"embeddedserver demo: {len(scenarios)} scenarios. Each starts a scripted server on "
        "127.0.0.1\nand points a real standard-library client at it.\n"
    )
    problems = []
    for number, scenario in enumerate(scenarios, 1):
        problem = _run_scenario(number, len(scenarios), scenario)
        if problem is not None:
            problems.append(f"  [{number}] {scenario.title}: {problem}")
    if problems:
        _emit(
            f"{len(problems)} of {len(scenarios)} scenarios did NOT behave as designed:\n"
            + "\n".join(problems)
        )
        return 1
    _emit(
        f"All {len(scenarios)} scenarios behaved as designed.\n"
        f"Next: script such servers in your tests (see the README), or serve one from the "
        f"shell:\n  {PROG} headers http:200:hello"
    )
    return 0


# ---------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, not {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"expected a port from 0 (any free port) to 65535, not {text!r}")
    return value


def _timeout_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, not {text!r}")
    return value


def _epilog() -> str:
    width = max(len(s.usage) for s in _SPECS) + 2
    lines = ["steps, run in order on each connection:"]
    for spec in _SPECS:
        lines.append(f"  {spec.usage:<{width}}{spec.help}")
    lines += [
        f"  {NEXT:<{width}}start the script of the next connection; the last script",
        f"  {'':<{width}}serves every later connection",
        "",
        "options go between the name and the colon, e.g. drip,chunk=4,interval=0.2:hello",
        *(f"  {text}" for text in _OPTION_HELP),
        "",
        "TEXT, BYTES, DELIM, PAYLOAD and BODY understand \\r \\n \\t \\0 \\\\ and \\xNN",
        "(a raw byte); quote them for the shell: 'until:\\r\\n\\r\\n'. Hyphens in names",
        "are optional (half-close = halfclose).",
        "",
        "examples:",
        f"  {PROG} --count 1 headers http:200:hello",
        f"  {PROG} 'expect:PING\\r\\n' 'send:PONG\\r\\n'",
        f"  {PROG} headers reset {NEXT} headers http:200:ok",
        f"  {PROG} --demo",
        "",
        "The first line printed is the port. Exit status: 0 no failures, 1 the script",
        "recorded failures (a report is printed), 2 bad arguments.",
    ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        usage=f"{PROG} [options] STEP... | {PROG} --script FILE | {PROG} --demo",
        description="Serve a scripted fake TCP server for any client (curl, nc, a C "
        "program), printing its transcript live, until Ctrl-C or --count connections.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("steps", nargs="*", type=_step_arg, metavar="STEP",
                        help="the script; see the list of steps below")
    parser.add_argument("--demo", action="store_true",
                        help="run misbehaving servers against standard-library clients")
    parser.add_argument("--host", default="127.0.0.1",
                        help="where to listen (default 127.0.0.1; 'localhost' means "
                        "127.0.0.1 and ::1)")
    parser.add_argument("--port", type=_port, default=0,
                        help="port to listen on (default 0: any free port, printed first)")
    parser.add_argument("--count", type=_positive_int, metavar="N",
                        help="stop after N connections (default: serve until Ctrl-C)")
    parser.add_argument("--timeout", type=_timeout_arg, default=CLI_TIMEOUT,
                        metavar="SECONDS",
                        help=f"how long a read step waits (default {CLI_TIMEOUT:g})")
    parser.add_argument("--concurrent", action="store_true",
                        help="serve connections at once, one thread each")
    parser.add_argument("--quiet", action="store_true",
                        help="print only the port and the summary, no live transcript")
    parser.add_argument("--script", metavar="FILE",
                        help="serve a script file (as saved by a RecordingProxy) "
                        "instead of STEP arguments")
    parser.add_argument("--exact", action="store_true",
                        help="with --script: replayed client data must match exactly")
    parser.add_argument("--keep-timing", action="store_true",
                        help="with --script: keep the recorded delays")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line with *argv* (default ``sys.argv[1:]``); return the exit code.

    ``main(["--count", "1", "headers", "http:200:hello"])`` serves one HTTP client;
    ``main(["--demo"])`` runs the demo. Bad arguments print a message and return 2.
    """
    parser = _parser()
    try:
        args = parser.parse_intermixed_args(argv)
        if args.demo:
            if args.steps or args.script:
                parser.error("--demo takes no STEP arguments and no --script")
            return run_demo()
        if args.script is not None and args.steps:
            parser.error("give STEP arguments or --script FILE, not both")
        if (args.exact or args.keep_timing) and args.script is None:
            parser.error("--exact and --keep-timing apply to --script FILE")
        if not args.steps and args.script is None:
            parser.error("give at least one STEP (e.g. headers http:200:hello), or --demo")
        return _serve(args, parser)
    except SystemExit as exc:  # argparse's way of saying "bad arguments" (or --help)
        return exc.code if isinstance(exc.code, int) else 2
    except KeyboardInterrupt:  # Ctrl-C during the demo
        _emit("interrupted")
        return 130
