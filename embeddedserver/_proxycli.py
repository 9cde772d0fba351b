"""The command line's proxy form: ``python -m embeddedserver proxy --upstream ... --fault ...``.

Model
-----
The same ``FaultProxy`` a test builds in Python, for a client and a server that are not
Python (or not in the test process): each ``--fault`` argument is parsed into a fault
value and the ``add()`` arguments that go with it (direction, toxicity, connections),
the proxy forwards to ``--upstream`` through them, and its ``on_event`` hook prints the
traffic live. The main thread only waits, so Ctrl-C or SIGTERM stops the proxy with a
summary, as the server form does (the proxy's threads block those signals).

A fault argument reads ``NAME``, ``NAME:ARG`` or ``NAME,OPTION=VALUE,...:ARG``
(``latency,jitter=0.02:0.1``, ``resetpeer,bytes=100,direction=up``); ``_SPECS`` is the
single source of the syntax, of ``--help`` and of the error messages.

    >>> parse_fault("latency,jitter=0.01:0.2").fault
    Latency(delay=0.2, jitter=0.01)

Exit codes: 0 forwarded without failures, 1 failures recorded (an upstream that refused,
say; a report is printed), 2 bad arguments.

Sections: fault syntax - running the proxy.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass

from ._args import DEFAULT_TIMEOUT
from ._cliparse import (
    BadArgument,
    Spec,
    as_bytes,
    key,
    number,
    parse_item,
    port_arg,
    positive_int_arg,
    seconds,
    seconds_arg,
)
from ._console import (
    PROG,
    PROXY_ARROWS,
    Interrupted,
    emit,
    event_line,
    signals_blocked,
    signals_stop,
    wait_for_count,
)
from ._faultkinds import (
    Bandwidth,
    Blackhole,
    Fault,
    Latency,
    LimitData,
    OnPattern,
    ResetPeer,
    Slicer,
    SlowClose,
    Timeout,
)
from ._text import format_address, plural
from .faults import DOWNSTREAM, UPSTREAM, Direction, FaultProxy
from .record import ConnectionRecord, Event

__all__ = ["FaultArgument", "main", "parse_fault"]

# ---------------------------------------------------------------------------
# fault syntax
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultArgument:
    """One ``--fault`` argument: the fault and where ``FaultProxy.add`` puts it."""

    fault: Fault
    directions: tuple[Direction, ...]
    toxicity: float
    connections: int | frozenset[int] | None


def _optional_seconds(options: dict[str, str], name: str) -> float | None:
    return seconds(options[name], name) if name in options else None


def _rate(arg: str) -> float:
    try:
        rate = float(arg)
    except ValueError:
        rate = -1.0
    if not 0 < rate < float("inf"):
        raise BadArgument(f"RATE must be a number of bytes per second > 0, not {arg!r}")
    return rate


def _reset(arg: str | None, options: dict[str, str]) -> Fault:
    after_bytes = number(options["bytes"], "bytes") if "bytes" in options else None
    return ResetPeer(after_bytes=after_bytes, after=_optional_seconds(options, "after"))


def _slicer(arg: str | None, options: dict[str, str]) -> Fault:
    average = number(options.get("average", "8"), "average", 1)
    variation = number(options.get("variation", str(min(4, average - 1))), "variation")
    return Slicer(average, variation, seconds(options.get("delay", "0"), "delay"))


def _onpattern(arg: str | None, options: dict[str, str]) -> Fault:
    assert arg is not None
    pattern = as_bytes(arg, "PATTERN")
    if not pattern:
        raise BadArgument("PATTERN must not be empty")
    action = options.get("action", "reset").lower()
    if action not in ("reset", "close", "delay"):
        raise BadArgument(f"action must be reset, close or delay, not {action!r}")
    delay = seconds(options.get("delay", "0"), "delay")
    if "delay" in options and action != "delay":
        raise BadArgument("delay= goes with action=delay")
    return OnPattern(pattern, action, delay)  # type: ignore[arg-type]  # checked above


def _timeout(arg: str | None, options: dict[str, str]) -> Fault:
    return Timeout(None if arg is None else seconds(arg, "SECONDS"))


def _spec(usage: str, help: str, arg: str, options: tuple[str, ...],
          fault: Callable[[str | None, dict[str, str]], Fault]) -> Spec[FaultArgument]:
    """A fault's spec, whose build also reads the options every fault takes."""
    return Spec(usage, help, arg, lambda a, o: _argument(fault(a, o), o), options)


_SPECS: tuple[Spec[FaultArgument], ...] = (
    _spec("latency:SECONDS", "delay every byte; jitter=SECONDS: +- a draw per read",
          "nonempty", ("jitter",),
          lambda a, o: Latency(seconds(a or "", "SECONDS"),
                               seconds(o.get("jitter", "0"), "jitter"))),
    _spec("bandwidth:RATE", "pass at most RATE bytes per second", "nonempty", (),
          lambda a, o: Bandwidth(_rate(a or ""))),
    _spec("slicer", "split into writes of average=N (8) +- variation=N (4)\n"
          "bytes, up to delay=SECONDS (0) apart", "none",
          ("average", "variation", "delay"), _slicer),
    _spec("limitdata:BYTES", "close the connection once BYTES have passed", "nonempty", (),
          lambda a, o: LimitData(number(a or "", "BYTES"))),
    _spec("timeout[:SECONDS]", "stop forwarding, sockets kept open (closed after SECONDS)",
          "optional", (), _timeout),
    _spec("resetpeer", "reset both sides once bytes=N have passed, or\n"
          "after=SECONDS; with neither: at once", "none", ("bytes", "after"), _reset),
    _spec("slowclose:SECONDS", "pass the close (FIN) on SECONDS late", "nonempty", (),
          lambda a, o: SlowClose(seconds(a or "", "SECONDS"))),
    _spec("blackhole", "drop every byte and the close", "none", (),
          lambda a, o: Blackhole()),
    _spec("onpattern:PATTERN", "when PATTERN passes: action=reset (default) or\n"
          "close both sides, or action=delay,delay=SECONDS what follows", "nonempty",
          ("action", "delay"), _onpattern),
)

#: Options every fault takes, beside its own.
_COMMON = ("direction", "toxicity", "connections")
_COMMON_HELP = [
    "direction=up|down|both   client to server (up), server to client (down, the default)",
    "toxicity=P               the probability (0..1) that it applies to a connection",
    "connections=N|A-B|N+M    only the N-th connection (1 is the first), a range, a list",
]

_BY_NAME = {key(spec.name): spec for spec in _SPECS}
_DIRECTIONS: dict[str, tuple[Direction, ...]] = {
    "up": (UPSTREAM,), "upstream": (UPSTREAM,),
    "down": (DOWNSTREAM,), "downstream": (DOWNSTREAM,),
    "both": (UPSTREAM, DOWNSTREAM),
}


def _toxicity(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise BadArgument(f"toxicity must be a probability from 0 to 1, not {text!r}")
    return value


def _connections(text: str) -> int | frozenset[int]:
    if "-" in text:
        first, _, last = text.partition("-")
        low, high = number(first, "connections", 1), number(last, "connections", 1)
        if high < low:
            raise BadArgument(f"connections range {text!r} ends before it starts")
        return frozenset(range(low, high + 1))
    if "+" in text:
        return frozenset(number(part, "connections", 1) for part in text.split("+"))
    return number(text, "connections", 1)


def parse_fault(text: str) -> FaultArgument:
    """Parse one ``--fault`` argument (``latency:0.1``, ``resetpeer,bytes=100,direction=up``,
    ``'onpattern,action=close:QUIT\\r\\n'``, ``slicer,average=2,connections=1``).

    Raises ValueError naming the argument and what is accepted.

    >>> parse_fault("limitdata,direction=both,connections=2-3:100").connections
    frozenset({2, 3})
    """
    names = ", ".join(s.name for s in _SPECS)
    return parse_item(text, _BY_NAME, "fault", names, _COMMON)


def _argument(fault: Fault, options: dict[str, str]) -> FaultArgument:
    """*fault* and where the common options put it."""
    where = options.get("direction", "down").lower()
    if where not in _DIRECTIONS:
        raise BadArgument(f"direction must be up, down or both, not {where!r}")
    return FaultArgument(
        fault,
        _DIRECTIONS[where],
        _toxicity(options["toxicity"]) if "toxicity" in options else 1.0,
        _connections(options["connections"]) if "connections" in options else None,
    )


def _fault_arg(text: str) -> FaultArgument:
    try:
        return parse_fault(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_upstream(text: str) -> tuple[str, int] | str:
    """``HOST:PORT``, ``[IPV6]:PORT`` or a Unix socket path (it has a ``/``)."""
    if "/" in text:
        return text
    host, colon, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(
            f"expected HOST:PORT, [IPV6]:PORT or a Unix socket path, not {text!r}")
    return host, int(port)


# ---------------------------------------------------------------------------
# running the proxy
# ---------------------------------------------------------------------------


def _describe(item: FaultArgument) -> str:
    where = " and ".join(item.directions)
    scope = ""
    if isinstance(item.connections, int):
        scope = f", connection {item.connections}"
    elif item.connections is not None:
        scope = f", connections {', '.join(map(str, sorted(item.connections)))}"
    chance = f", toxicity {item.toxicity:g}" if item.toxicity != 1 else ""
    return f"{item.fault!r} {where}{scope}{chance}"


class _Live:
    """Prints each recorded event as it happens (``FaultProxy(on_event=...)``)."""

    def __init__(self, width: int = 200) -> None:
        self.width = width

    def __call__(self, record: ConnectionRecord, event: Event) -> None:
        emit(event_line(record, event, self.width, PROXY_ARROWS))


def _summary(record: ConnectionRecord) -> str:
    return (f"#{record.number} {record.ended or 'open'}: "
            f"{plural(len(record.received), 'byte')} client -> server, "
            f"{plural(len(record.sent), 'byte')} server -> client")


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    live = _Live()
    try:
        with signals_blocked():  # the proxy's threads inherit the mask
            proxy = FaultProxy(
                args.upstream, args.host, args.port, path=args.path, seed=args.seed,
                timeout=args.timeout, on_event=None if args.quiet else live,
            )
    except (OSError, TypeError, ValueError) as exc:
        parser.error(str(exc))
    try:
        for item in args.faults:
            for direction in item.directions:
                proxy.add(item.fault, direction, toxicity=item.toxicity,
                          connections=item.connections)
        with signals_stop():
            how = _forward_until_done(proxy, args)
    finally:
        proxy.stop()
    records = list(proxy.connections)
    failures = proxy.failures()
    lines = [f"{how}: " + (plural(len(failures), "failure") if failures else "no failures")]
    if not args.quiet:
        lines += [_summary(record) for record in records]
    if args.save is not None:
        try:
            proxy.save(args.save)
        except OSError as exc:
            emit("\n".join(lines))
            emit(f"cannot save the recording to {args.save!r}: {exc}")
            return 1
        lines.append(f"saved {plural(len(records), 'connection')} to {args.save}")
    if failures:
        lines += ["", proxy.failure_report(failures)]
    emit("\n".join(lines))
    return 1 if failures else 0


def _forward_until_done(proxy: FaultProxy, args: argparse.Namespace) -> str:
    try:
        emit(str(proxy.port) if args.path is None else str(proxy.path))  # first line
        if not args.quiet:
            emit(_banner(proxy, args))
        done = wait_for_count(proxy, args.count)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Interrupted)
        proxy.stop()
        name = "SIGTERM" if isinstance(exc, Interrupted) else "Ctrl-C"
        return f"stopped by {name} after {plural(len(proxy.connections), 'connection')}"
    return f"forwarded {plural(done, 'connection')}"


def _banner(proxy: FaultProxy, args: argparse.Namespace) -> str:
    where = " and ".join(format_address(a) for a in proxy.addresses)
    upstream = args.upstream if isinstance(args.upstream, str) else format_address(args.upstream)
    until = f"until {plural(args.count, 'connection')} ended" if args.count else "until Ctrl-C"
    lines = [f"forwarding {where} -> {upstream} {until}, seed {proxy.seed!r}"]
    if args.faults:
        lines.append("faults:")
        lines += [f"  {_describe(item)}" for item in args.faults]
    else:
        lines.append("no faults: forwarding and recording only")
    return "\n".join(lines)


def _epilog() -> str:
    width = max(len(s.usage) for s in _SPECS) + 2
    lines = ["faults (--fault, any number, applied in order):"]
    for spec in _SPECS:
        first, *more = spec.help.split("\n")
        lines.append(f"  {spec.usage:<{width}}{first}")
        lines += [f"  {'':<{width}}{text}" for text in more]
    lines += [
        "",
        "options go between the name and the colon, e.g. latency,jitter=0.02:0.1;",
        "every fault also takes:",
        *(f"  {text}" for text in _COMMON_HELP),
        "",
        "PATTERN understands \\r \\n \\t \\0 \\\\ and \\xNN; quote it for the shell.",
        "",
        "examples:",
        f"  {PROG} proxy --upstream 127.0.0.1:6379 --fault latency:0.2",
        f"  {PROG} proxy --upstream 127.0.0.1:5432 --fault resetpeer,connections=1",
        f"  {PROG} proxy --upstream localhost:8080 --fault 'onpattern,action=close:POST '",
        "",
        "The first line printed is the port (or the path). Exit status: 0 no failures,",
        "1 failures recorded (e.g. the upstream refused; a report is printed), 2 bad",
        "arguments. --save writes the recording as a script file, which",
        f"'{PROG} --script FILE' serves back as the real server's side.",
    ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} proxy",
        description="Forward connections to a real server through faults (latency, resets, "
        "cuts, ...), printing the traffic live, until Ctrl-C or --count connections.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--upstream", required=True, type=parse_upstream,
                        metavar="HOST:PORT|PATH", help="the real server")
    parser.add_argument("--fault", dest="faults", action="append", default=[],
                        type=_fault_arg, metavar="FAULT", help="a fault; see the list below")
    parser.add_argument("--host", default="127.0.0.1",
                        help="where to listen (default 127.0.0.1)")
    parser.add_argument("--port", type=port_arg, default=0,
                        help="port to listen on (default 0: any free port, printed first)")
    parser.add_argument("--path", metavar="PATH",
                        help="listen on this Unix socket path instead of a port")
    parser.add_argument("--seed", type=_seed_arg,
                        help="the seed of every random decision (default: a fresh one, "
                        "printed), to replay a run")
    parser.add_argument("--count", type=positive_int_arg, metavar="N",
                        help="stop after N connections ended (default: until Ctrl-C)")
    parser.add_argument("--timeout", type=seconds_arg, default=DEFAULT_TIMEOUT,
                        metavar="SECONDS",
                        help=f"how long to wait for the upstream to accept (default "
                        f"{DEFAULT_TIMEOUT:g})")
    parser.add_argument("--save", metavar="FILE",
                        help="write the recording to FILE as a script file at the end")
    parser.add_argument("--quiet", action="store_true",
                        help="print only the port and the summary, no live traffic")
    return parser


def _seed_arg(text: str) -> int | str:
    return int(text) if text.lstrip("-").isdigit() else text


def main(argv: list[str]) -> int:
    """Run ``proxy`` with *argv* (the arguments after ``proxy``); return the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        if args.path is not None and (args.port or args.host != "127.0.0.1"):
            parser.error("--path listens on a Unix socket: give it without --host/--port")
        if args.path is not None:
            args.path = os.fspath(args.path)
        return _run(args, parser)
    except SystemExit as exc:  # argparse's way of saying "bad arguments" (or --help)
        return exc.code if isinstance(exc.code, int) else 2
