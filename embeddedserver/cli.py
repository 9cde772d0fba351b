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
messages. ``--demo`` runs ``embeddedserver.demo.run_demo``: a handful of misbehaving servers
against real standard-library clients, each checked to behave as designed, so it is
also a smoke test (``embeddedserver.cli.run_demo`` is the same function).

    >>> main(["--help"])  # doctest: +ELLIPSIS
    usage: python -m embeddedserver ...
    0

``--version`` prints the version. Exit codes: 0 served without failures (or demo as
designed), 1 failures recorded (or a demo scenario misbehaved), 2 bad arguments, 130
interrupted during the demo.

Sections: step syntax - serving from the shell - entry point.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# The console helpers live with the demo, which must not import this module.
from ._cliparse import BadArgument as _BadStep
from ._cliparse import Spec, parse_item
from ._cliparse import as_bytes as _bytes
from ._cliparse import key as _key
from ._cliparse import number as _number
from ._cliparse import port_arg as _port
from ._cliparse import positive_int_arg as _positive_int
from ._cliparse import seconds as _seconds
from ._cliparse import seconds_arg as _timeout_arg
from ._console import (
    PROG,
    Interrupted,
    emit,
    event_line,
    signals_blocked,
    signals_stop,
    wait_for_count,
)
from ._text import format_address, plural
from ._version import __version__
from .demo import run_demo
from .record import ConnectionRecord, Event
from .rules import Rule, Rules
from .scriptfile import load_script
from .servers import CommandServer, at_least
from .steps import (
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
    ReadStep,
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

__all__ = ["main", "parse_mark", "parse_step"]

#: The CLI's default read timeout: longer than the library's, for clients typed by hand.
CLI_TIMEOUT = 30.0


# ---------------------------------------------------------------------------
# step syntax
# ---------------------------------------------------------------------------


#: Separates per-connection scripts: ``reset next recv http:200:ok``.
NEXT = "next"

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


#: One step name of the CLI syntax: how it reads, what it does, how it is built.
_Spec = Spec[Step]


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
    "format (>H, <I, !Q...) or varint (protobuf's LEB128)",
    "type=MEDIA-TYPE   http: add a Content-Type header, e.g. type=application/json",
    "seed=N            garbage: the generator's seed (default 0)",
    "chunk=N           drip: bytes per chunk (default 1)",
    "interval=SECONDS  drip: pause between chunks (default 0.05)",
]


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
    return parse_item(text, _BY_NAME, "step", _accepted())


@dataclass(frozen=True)
class _Mark:
    """A STEP argument that is not a step: ``next``, or a part of a rules table
    (``rules:READ``, ``rule:MATCH``, ``unmatched``, ``end``)."""

    kind: str  # NEXT, "rules", "rule", "unmatched" or "end"
    read: Step | None = None  # rules: the read step that frames a request
    ordered: bool = False  # rules
    match: bytes | re.Pattern[bytes] | None = None  # rule
    times: int | range | None = None  # rule


_TIMES = re.compile(r"(\d+)(?:(-)(\d*))?")  # times=N, N-M, N-


def _times(text: str) -> int | range:
    match = _TIMES.fullmatch(text)
    if match is None:
        raise _BadStep(f"times must be N (exactly), N-M or N- (at least N), not {text!r}")
    low, dash, high = match.groups()
    if not dash:
        return int(low)
    if high and int(high) < int(low):
        raise _BadStep(f"times range {text!r} ends before it starts")
    return range(int(low), int(high) + 1) if high else at_least(int(low))


def parse_mark(text: str) -> _Mark | None:
    """The ``next``/rules-table argument *text* is, or None if it is a step.
    Raises ValueError for a rules-table argument that is wrong."""
    head, colon, arg = text.partition(":")
    name, *option_texts = head.split(",")
    kind = _key(name)
    if kind == NEXT and not colon and not option_texts:
        return _Mark(NEXT)
    if kind in ("unmatched", "end") and not colon and not option_texts:
        return _Mark(kind)
    if kind not in ("rules", "rule"):
        return None
    flags = {o.strip().lower() for o in option_texts if "=" not in o}
    values = dict(o.split("=", 1) for o in option_texts if "=" in o)
    try:
        if kind == "rules":
            if set(values) or flags - {"ordered"}:
                raise _BadStep(f"rules takes only the flag ordered, not {option_texts!r}")
            if not arg:
                raise _BadStep("rules needs the read step that frames a request after ':', "
                               "e.g. rules:line, rules:headers, 'rules:until:\\r\\n'")
            read = parse_step(arg)
            if not isinstance(read, ReadStep) or isinstance(read, ExpectClose):
                raise _BadStep(f"{arg!r} is not a read step that frames a request")
            return _Mark("rules", read=read, ordered="ordered" in flags)
        if set(values) - {"times"} or flags - {"regex"}:
            raise _BadStep(f"rule takes times=T and the flag regex, not {option_texts!r}")
        if not arg:
            raise _BadStep("rule needs the request it matches after ':'")
        match: bytes | re.Pattern[bytes] = (
            re.compile(arg.encode("utf-8")) if "regex" in flags else _bytes(arg, "MATCH"))
        times = _times(values["times"]) if "times" in values else None
        return _Mark("rule", match=match, times=times)
    except (_BadStep, re.error, ValueError) as exc:
        usage = ("rules[,ordered]:READ" if kind == "rules"
                 else "rule[,times=T][,regex]:MATCH")
        raise ValueError(f"bad {kind} {text!r}: {exc} (use {usage})") from None


def _step_arg(text: str) -> Step | _Mark:
    """argparse ``type=`` for STEP: a step, NEXT, or a part of a rules table."""
    try:
        return parse_mark(text) or parse_step(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _rules_step(items: Sequence[Step | _Mark], start: int) -> tuple[Rules, int]:
    """The Rules step of the table that starts at ``items[start]`` (a ``rules`` mark),
    and the index after it: the table ends at ``end``, ``next`` or the last argument."""
    head = items[start]
    assert isinstance(head, _Mark) and isinstance(head.read, ReadStep)
    rules: list[Rule] = []
    unmatched: list[Step] | None = None
    owner: _Mark | None = None
    reply: list[Step] = []

    def finish() -> None:
        nonlocal unmatched
        if owner is not None and owner.kind == "unmatched":
            unmatched = reply[:]
        elif owner is not None:
            assert owner.match is not None
            rules.append(Rule(owner.match, reply[:], times=owner.times))

    index = start + 1
    while index < len(items):
        item = items[index]
        if isinstance(item, _Mark) and item.kind in (NEXT, "end"):
            break
        if isinstance(item, _Mark) and item.kind == "rules":
            raise ValueError("a rules table inside a rules table: end the first with 'end'")
        if isinstance(item, _Mark):
            finish()
            owner, reply = item, []
        elif owner is None:
            raise ValueError(f"a rules table starts with a rule:MATCH argument, not {item!r}")
        else:
            reply.append(item)
        index += 1
    finish()
    if index < len(items) and isinstance(items[index], _Mark) and items[index].kind == "end":
        index += 1
    if not rules:
        raise ValueError("a rules table needs at least one rule:MATCH argument")
    step = Rules(head.read, *rules, unmatched=Close() if unmatched is None else unmatched,
                 ordered=head.ordered)
    return step, index


def _build_plan(items: Sequence[Step | _Mark]) -> tuple[Any, list[tuple[Step, ...]]]:
    """Split STEP arguments at NEXT into per-connection scripts, make each rules table
    one Rules step, and compile the scripts."""
    groups: list[list[Step]] = [[]]
    index = 0
    while index < len(items):
        item = items[index]
        if isinstance(item, _Mark) and item.kind == NEXT:
            groups.append([])
        elif isinstance(item, _Mark) and item.kind == "rules":
            step, index = _rules_step(items, index)
            groups[-1].append(step)
            continue
        elif isinstance(item, _Mark):
            word = "rule:MATCH" if item.kind == "rule" else item.kind
            raise ValueError(f"{word} belongs in a rules table: put rules:READ before it")
        else:
            groups[-1].append(item)
        index += 1
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


class _LiveTranscript:
    """Prints each recorded event as it happens (``CommandServer.on_event``)."""

    def __init__(self, width: int = 200) -> None:
        self.width = width
        self._lock = threading.Lock()

    def __call__(self, record: ConnectionRecord, event: Event) -> None:
        self.print(event_line(record, event, self.width))

    def print(self, text: str) -> None:
        with self._lock:
            emit(text)


def _start_server(
    plan: Any, args: argparse.Namespace, live: _LiveTranscript
) -> CommandServer:
    with signals_blocked():  # the server threads inherit the mask
        return CommandServer(
            plan, args.host, args.port, verbose=False, timeout=args.timeout,
            concurrent=args.concurrent, max_connections=args.count,
            on_event=None if args.quiet else live,
            expect_connections=None,  # served until --count or Ctrl-C: any number is right
        )


def _load_plan(args: argparse.Namespace) -> tuple[Any, list[tuple[Step, ...]]]:
    """The plan and the per-connection listing, from STEP arguments or --script FILE."""
    if args.script is None:
        return _build_plan(args.steps)
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
    # Ctrl-C and SIGTERM stop the server with a summary.
    try:
        with signals_stop():
            return _serve_until_done(server, scripts, args, live)
    finally:
        server.stop()


def _serve_until_done(
    server: CommandServer, scripts: list[tuple[Step, ...]], args: argparse.Namespace,
    live: _LiveTranscript,
) -> int:
    how = f"served {plural(args.count or 0, 'connection')}"
    try:
        live.print(str(server.port))  # first line, alone, for scripts to read
        if not args.quiet:
            live.print(_banner(server, scripts, args))
        shown = 0

        def show_failures() -> None:
            nonlocal shown
            shown = _show_new_failures(server, shown, live, args.quiet)

        wait_for_count(server, args.count, show_failures)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Interrupted)
        server.stop()
        name = "SIGTERM" if isinstance(exc, Interrupted) else "Ctrl-C"
        how = f"stopped by {name} after {plural(len(server.connections), 'connection')}"
    server.stop()
    failures = server.failures()
    summary = f"{how}: " + (plural(len(failures), "failure") if failures else "no failures")
    live.print(summary if not failures else f"{summary}\n\n{server.failure_report(failures)}")
    return 1 if failures else 0


def _banner(server: CommandServer, scripts: list[tuple[Step, ...]],
            args: argparse.Namespace) -> str:
    where = " and ".join(format_address(a) for a in server.addresses)
    until = f"until {plural(args.count, 'connection')} served" if args.count else "until Ctrl-C"
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
# entry point
# ---------------------------------------------------------------------------


def _epilog() -> str:
    width = max(len(s.usage) for s in _SPECS) + 2
    lines = ["steps, run in order on each connection:"]
    for spec in _SPECS:
        lines.append(f"  {spec.usage:<{width}}{spec.help}")
    lines += [
        f"  {NEXT:<{width}}start the script of the next connection; the last script",
        f"  {'':<{width}}serves every later connection",
        "",
        "a rules table answers each request by what it is (any order, any number):",
        "  rules[,ordered]:READ        READ frames a request (line, headers, until:DELIM,",
        "                              recv:N, frame); the table runs to 'end' or 'next'",
        "  rule[,times=T][,regex]:MATCH  a request that is MATCH (or matches the regex);",
        "                              the steps after it are its reply; T is N, N-M, N-",
        "  unmatched                   the steps after it answer a request no rule takes",
        "                              (default: close)",
        "  end                         ends the table; later steps run after the client's",
        "                              last request",
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
        f"  {PROG} rules:line 'rule:PING\\r\\n' 'send:+PONG\\r\\n' "
        "'rule,regex:^GET ' 'send:$3\\r\\nbar\\r\\n'",
        f"  {PROG} --demo",
        f"  {PROG} proxy --upstream 127.0.0.1:6379 --fault latency:0.2",
        "",
        f"'{PROG} proxy --help' tells how to put faults between a client and a real",
        "server.",
        "",
        "The first line printed is the port. Exit status: 0 no failures, 1 the script",
        "recorded failures (a report is printed), 2 bad arguments.",
    ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        usage=f"{PROG} [options] STEP... | {PROG} --script FILE | {PROG} --demo\n"
        f"       {PROG} proxy --upstream HOST:PORT [--fault FAULT...]",
        description="Serve a scripted fake TCP server for any client (curl, nc, a C "
        "program), printing its transcript live, until Ctrl-C or --count connections.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("steps", nargs="*", type=_step_arg, metavar="STEP",
                        help="the script; see the list of steps below")
    parser.add_argument("--demo", action="store_true",
                        help="run misbehaving servers against standard-library clients")
    parser.add_argument("--version", action="version", version=f"embeddedserver {__version__}",
                        help="print the version of embeddedserver and exit")
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
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["proxy"]:
        from . import _proxycli  # the proxy form, its own parser and --help

        return _proxycli.main(argv[1:])
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
        emit("interrupted")
        return 130
