"""A fake Redis: RESP2 and RESP3 replies to send, commands to read and check. No I/O.

Model
-----
A Redis client sends each command as a RESP array of bulk strings
(``*3\\r\\n$3\\r\\nSET\\r\\n$1\\r\\nk\\r\\n$1\\r\\nv\\r\\n``), or, typed by hand, as an
*inline* command (``PING\\r\\n``); the server answers with one RESP value. This module
gives the three things a fake Redis is made of:

* **replies**: ``simple("OK")``, ``error("ERR no such key")``, ``moved(3999, "127.0.0.1",
  6381)``, ``ask(...)``, ``loading()``, ``integer(1)``, ``bulk("v")``, ``null()``,
  ``array([...])`` (nested), and RESP3's ``map``, ``set``, ``double``, ``boolean``,
  ``big_number``, ``verbatim``, ``push``; ``encode(value, protocol=2|3)`` maps Python
  values (str/bytes, int, None, bool, float, list, dict, set) to RESP. Each returns
  ``Encoded`` bytes: a send step as it is, a ``Rule``'s reply, and an element
  ``array()`` and ``encode()`` pass through unchanged.
* **reading**: ``ReadCommand()`` is a read step that frames ONE command (its chunk is the
  command's bytes); a malformed one fails in RESP terms ("bulk length '$x' is not a
  number", "not a RESP array: b'+PING\\r\\n'"). It is the read step of a fake Redis
  made as a rules table: ``Rules(ReadCommand(), Rule(matches("GET", "k"), bulk("v")))``.
  ``parse_command(chunk)`` gives a command's arguments back (from ``server.received``).
* **checking**: ``ExpectCommand("SET", "k", "v")`` reads one command and fails "expected
  command SET k v, got GET k" or "argument 2: expected 'v', got 'w'"; ``matches(...)``
  is the same test as a ``Rule`` predicate. An argument is a str, bytes or int (the
  command name, argument 0, ignores case as Redis does), ``ANY`` (any one argument), a
  compiled regex (the whole argument must match), and a last ``...`` takes any further
  arguments: ``matches("CLIENT", "SETINFO", ...)``.

``handshake_rules(protocol)`` answers what a client library sends on connect (redis-py:
``HELLO 3`` with ``protocol=3``, ``CLIENT SETINFO LIB-NAME``/``LIB-VER``, ``SELECT``,
``AUTH``, ``PING``)::

    >>> import socket
    >>> from embeddedserver import CommandServer, Rule, Rules
    >>> fake = Rules(ReadCommand(), *handshake_rules(),
    ...              Rule(matches("GET", "k"), bulk("v")), unmatched=error("ERR unknown"))
    >>> with CommandServer([fake], verbose=False) as server:
    ...     with socket.create_connection(server.address, timeout=10) as client:
    ...         client.sendall(command("GET", "k"))
    ...         client.recv(100)
    b'$1\\r\\nv\\r\\n'

Sections: replies - commands (parsing) - the steps and the predicate.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from types import EllipsisType
from typing import Final, Literal, TypeAlias

from . import _args, _respparse
from ._match import Matcher, Mismatch
from ._text import plural
from .record import show_bytes
from .rules import Rule
from .steps import ReadStep

__all__ = [
    "ANY",
    "Arg",
    "CommandPattern",
    "Encoded",
    "ExpectCommand",
    "ProtocolError",
    "ReadCommand",
    "Value",
    "array",
    "ask",
    "big_number",
    "boolean",
    "bulk",
    "command",
    "double",
    "encode",
    "error",
    "handshake_rules",
    "hello_reply",
    "integer",
    "loading",
    "map",
    "matches",
    "moved",
    "null",
    "parse_command",
    "push",
    "set",
    "simple",
    "verbatim",
]

_Text: TypeAlias = "bytes | bytearray | memoryview | str"
#: A Python value ``encode`` maps to RESP (``Encoded`` bytes pass through as they are).
Value: TypeAlias = (
    "Encoded | bytes | bytearray | memoryview | str | int | float"
    " | Sequence[Value] | Mapping[Value, Value] | AbstractSet[Value] | None"
)
#: What ``encode``, ``array``... take for the protocol: RESP2 or RESP3.
Protocol: TypeAlias = Literal[2, 3]

_CRLF = b"\r\n"

# ---------------------------------------------------------------------------
# replies
# ---------------------------------------------------------------------------


class Encoded(bytes):
    """Bytes that are RESP already: what every encoder of this module returns. A send
    step and a ``Rule`` reply as they are; ``array()``, ``map()``... and ``encode()`` put
    them in as they are (a plain ``bytes`` there is a bulk string)."""

    __slots__ = ()

    def __repr__(self) -> str:  # a long reply cut short: a Rule's repr shows its reply
        return show_bytes(self, 60)


def _text(value: _Text, what: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be str or bytes, not {value!r}")


def _line(kind: bytes, value: _Text, what: str, instead: str) -> Encoded:
    data = _text(value, what)
    if b"\r" in data or b"\n" in data:
        raise ValueError(f"{what} cannot hold \\r or \\n: {data!r}; {instead}")
    return Encoded(kind + data + _CRLF)


def _check_protocol(protocol: object) -> Protocol:
    if protocol == 2 and not isinstance(protocol, bool):
        return 2
    if protocol == 3 and not isinstance(protocol, bool):
        return 3
    raise ValueError(f"protocol must be 2 (RESP2) or 3 (RESP3), not {protocol!r}")


def simple(text: _Text) -> Encoded:
    """A simple string: ``simple("OK")`` is ``+OK\\r\\n``. ValueError for a CR or LF."""
    return _line(b"+", text, "a simple string", "use bulk() for binary-safe data")


def error(text: _Text) -> Encoded:
    """An error reply: ``error("ERR unknown command 'FOO'")`` is ``-ERR unknown ...\\r\\n``.
    The first word is its code, which clients map to their exceptions (redis-py:
    ``LOADING`` to BusyLoadingError, ``MOVED`` to MovedError...)."""
    data = _text(text, "an error")
    if not data:
        raise ValueError("an error needs its text, e.g. error('ERR unknown command')")
    return _line(b"-", data, "an error", "an error is one line")


def _slot(slot: int, host: str, port: int, what: str) -> str:
    if isinstance(slot, bool) or not isinstance(slot, int) or not 0 <= slot < 16384:
        raise ValueError(f"{what}: the hash slot must be an int from 0 to 16383, not {slot!r}")
    if not isinstance(host, str) or not host:
        raise TypeError(f"{what}: host must be a non-empty str, not {host!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"{what}: port must be an int from 1 to 65535, not {port!r}")
    return f"{slot} {host}:{port}"


def moved(slot: int, host: str, port: int) -> Encoded:
    """A cluster redirection: ``-MOVED 3999 127.0.0.1:6381`` (the slot lives elsewhere)."""
    return error("MOVED " + _slot(slot, host, port, "moved()"))


def ask(slot: int, host: str, port: int) -> Encoded:
    """A cluster redirection for one command: ``-ASK 3999 127.0.0.1:6381``."""
    return error("ASK " + _slot(slot, host, port, "ask()"))


def loading(message: str = "Redis is loading the dataset in memory") -> Encoded:
    """``-LOADING ...``: what Redis answers while it loads its data, for retry tests."""
    return error("LOADING " + message)


def integer(n: int) -> Encoded:
    """An integer: ``integer(1)`` is ``:1\\r\\n``."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"integer() takes an int, not {n!r} (boolean() is RESP3's true/false)")
    if not -(2**63) <= n < 2**63:
        raise ValueError(f"integer() takes a signed 64-bit int, not {n!r}; use big_number()")
    return Encoded(b":%d\r\n" % n)


def bulk(data: _Text) -> Encoded:
    """A bulk string (binary-safe; a str is UTF-8): ``bulk("v")`` is ``$1\\r\\nv\\r\\n``."""
    payload = _text(data, "a bulk string")
    return Encoded(b"$%d\r\n%b\r\n" % (len(payload), payload))


def null(protocol: Protocol = 2) -> Encoded:
    """Nothing there: RESP2's null bulk string ``$-1\\r\\n``, RESP3's ``_\\r\\n``."""
    return Encoded(b"$-1\r\n" if _check_protocol(protocol) == 2 else b"_\r\n")


def _aggregate(kind: bytes, items: Iterable[Value], protocol: Protocol) -> Encoded:
    parts = [encode(item, protocol) for item in items]
    return Encoded(b"%b%d\r\n%b" % (kind, len(parts), b"".join(parts)))


def array(items: Iterable[Value] | None, protocol: Protocol = 2) -> Encoded:
    """An array of *items*, each put through ``encode()`` (so they nest: ``array(["a",
    1, ["b"]])``); ``array(None)`` is the null array (RESP2 ``*-1``, RESP3 ``_``)."""
    protocol = _check_protocol(protocol)
    if items is None:
        return Encoded(b"*-1\r\n" if protocol == 2 else b"_\r\n")
    _check_items(items, "array()")
    return _aggregate(b"*", items, protocol)


def map(pairs: Mapping[Value, Value] | Iterable[tuple[Value, Value]]) -> Encoded:
    """RESP3's map: ``map({"proto": 3})`` is ``%1\\r\\n$5\\r\\nproto\\r\\n:3\\r\\n`` (a dict,
    or (key, value) pairs to repeat a key or keep an order of your own)."""
    items = list(pairs.items()) if isinstance(pairs, Mapping) else list(pairs)
    flat: list[Value] = []
    for pair in items:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise TypeError(f"map() takes a dict or (key, value) pairs, not {pair!r}")
        flat.extend(pair)
    return Encoded(b"%%%d\r\n%b" % (len(items), b"".join(encode(v, 3) for v in flat)))


def set(items: Iterable[Value]) -> Encoded:
    """RESP3's set: ``set(["a", "b"])`` is ``~2\\r\\n...``, in the order given."""
    _check_items(items, "set()")
    return _aggregate(b"~", items, 3)


def push(items: Iterable[Value]) -> Encoded:
    """RESP3's out-of-band push: ``push(["message", "news", "hello"])`` (pub/sub, client
    tracking invalidations)."""
    _check_items(items, "push()")
    return _aggregate(b">", items, 3)


def _check_items(items: object, what: str) -> None:
    if isinstance(items, (str, bytes, bytearray, memoryview)) or not isinstance(items, Iterable):
        raise TypeError(f"{what} takes an iterable of values such as a list, not {items!r}")


def _float_text(x: float) -> bytes:
    if math.isnan(x):
        return b"nan"
    if math.isinf(x):
        return b"inf" if x > 0 else b"-inf"
    return repr(x).encode("ascii")


def double(x: float) -> Encoded:
    """RESP3's double: ``double(1.5)`` is ``,1.5\\r\\n`` (``inf``, ``-inf``, ``nan`` too)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"double() takes a float, not {x!r}")
    return Encoded(b"," + _float_text(float(x)) + _CRLF)


def boolean(value: bool) -> Encoded:
    """RESP3's boolean: ``#t\\r\\n`` or ``#f\\r\\n``."""
    if not isinstance(value, bool):
        raise TypeError(f"boolean() takes True or False, not {value!r}")
    return Encoded(b"#t\r\n" if value else b"#f\r\n")


def big_number(n: int) -> Encoded:
    """RESP3's big number: ``big_number(2**100)`` is ``(1267650600228229401496703205376``."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"big_number() takes an int, not {n!r}")
    return Encoded(b"(%d\r\n" % n)


def verbatim(text: _Text, format: str = "txt") -> Encoded:
    """RESP3's verbatim string: ``=15\\r\\ntxt:Some string\\r\\n``; *format* is three
    characters, ``"txt"`` or ``"mkd"``."""
    if not isinstance(format, str) or len(format.encode("utf-8")) != 3:
        raise ValueError(f"format must be three characters such as 'txt' or 'mkd', not {format!r}")
    payload = format.encode("utf-8") + b":" + _text(text, "a verbatim string")
    return Encoded(b"=%d\r\n%b\r\n" % (len(payload), payload))


def encode(value: Value, protocol: Protocol = 2) -> Encoded:
    """*value* as RESP: ``Encoded`` as it is; str and bytes a bulk string; int an integer;
    None null; a list or tuple an array; RESP3 (``protocol=3``): bool a boolean, float a
    double, dict a map, set a set. RESP2 has none of those: bool is ``:1``/``:0``, float a
    bulk string (as Redis sends a score), dict a flat array of keys and values, set an
    array. TypeError for anything else.

    >>> encode(["OK", 1, None])
    b'*3\\r\\n$2\\r\\nOK\\r\\n:1\\r\\n$-1\\r\\n'
    >>> encode({"a": True}, protocol=3)
    b'%1\\r\\n$1\\r\\na\\r\\n#t\\r\\n'
    """
    protocol = _check_protocol(protocol)
    if isinstance(value, Encoded):
        return value
    if value is None:
        return null(protocol)
    if isinstance(value, bool):
        return boolean(value) if protocol == 3 else integer(int(value))
    if isinstance(value, int):
        return integer(value) if -(2**63) <= value < 2**63 or protocol == 2 else (
            big_number(value))
    if isinstance(value, float):
        return double(value) if protocol == 3 else bulk(_float_text(value))
    if isinstance(value, (bytes, bytearray, memoryview, str)):
        return bulk(value)
    if isinstance(value, Mapping):
        if protocol == 3:
            return map(value)
        return array([part for pair in value.items() for part in pair], 2)
    if isinstance(value, AbstractSet):
        return set(value) if protocol == 3 else array(value, 2)
    if isinstance(value, (list, tuple)):
        return array(value, protocol)
    raise TypeError(
        f"encode() takes str, bytes, int, float, bool, None, a list, tuple, dict or set "
        f"(or Encoded bytes), not {value!r}"
    )


def hello_reply(protocol: Protocol = 3, version: str = "7.4.0", *, client_id: int = 1,
                mode: str = "standalone", role: str = "master") -> Encoded:
    """What Redis answers ``HELLO <protocol>``: a map (RESP3) or a flat array (RESP2) of
    server, version, proto, id, mode, role and modules. redis-py checks ``proto``."""
    fields: dict[Value, Value] = {
        "server": "redis", "version": version, "proto": _check_protocol(protocol),
        "id": client_id, "mode": mode, "role": role, "modules": [],
    }
    return encode(fields, protocol)


def command(*args: _Text | int | float) -> Encoded:
    """A command as a client sends it, an array of bulk strings: for a hand-written
    client, or an exact ``Rule``/``Expect``. ``command("GET", "k")`` is
    ``*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n``."""
    if not args:
        raise ValueError("command() needs at least the command's name")
    parts = []
    for arg in args:
        if isinstance(arg, bool):
            raise TypeError(f"a command argument is str, bytes, int or float, not {arg!r}")
        if isinstance(arg, int):
            arg = str(arg)
        elif isinstance(arg, float):
            arg = _float_text(arg).decode("ascii")
        parts.append(bulk(arg))
    return Encoded(b"*%d\r\n%b" % (len(parts), b"".join(parts)))


# ---------------------------------------------------------------------------
# commands: parsed (by embeddedserver._respparse)
# ---------------------------------------------------------------------------


#: What a client sent is not a RESP command (a ValueError): its message says why, in RESP
#: terms. ``parse_command`` raises it.
ProtocolError = _respparse.ProtocolError


def parse_command(data: bytes | bytearray | memoryview, *, inline: bool = True) -> list[bytes]:
    """The arguments of the one command *data* holds (a ``ReadCommand`` chunk, say from
    ``server.received``): ``[b"SET", b"k", b"v"]``. Raises ``ProtocolError`` (a
    ValueError) saying in RESP terms what is wrong, or that *data* holds more or less.

    >>> parse_command(b"*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n")
    [b'GET', b'k']
    >>> parse_command(b"PING\\r\\n")
    [b'PING']
    """
    buffer = bytearray(data)
    parser = _respparse.CommandParser(inline)
    end = parser.feed(buffer, eof=True)
    if end is None:
        raise ProtocolError("no command: the data is empty")
    if end < len(buffer):
        raise ProtocolError(f"{len(buffer) - end} bytes follow the command: "
                            f"{show_bytes(bytes(buffer[end:]), 40)}")
    return parser.args


# ---------------------------------------------------------------------------
# the steps and the predicate
# ---------------------------------------------------------------------------


class _AnyArg:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ANY"


#: Any one argument: ``matches("CLIENT", "SETINFO", "LIB-VER", ANY)``.
ANY: Final = _AnyArg()

#: One expected argument: exact text (str is UTF-8, int its decimal digits), ``ANY``, or a
#: compiled regex the whole argument must match. A last ``...`` takes any further ones.
Arg: TypeAlias = "str | bytes | int | re.Pattern[bytes] | re.Pattern[str] | _AnyArg"

_PLAIN = re.compile(rb"[!-~]+")


def _show_arg(arg: bytes) -> str:
    if _PLAIN.fullmatch(arg) and b"'" not in arg and b'"' not in arg:
        return arg.decode("ascii") if len(arg) <= 40 else arg[:37].decode("ascii") + "..."
    return _quote(arg)


def _quote(arg: bytes) -> str:
    try:
        text = arg.decode("utf-8")
    except UnicodeDecodeError:
        return show_bytes(arg, 40)
    shown = repr(text)
    return shown if len(shown) <= 42 else shown[:39] + "...'"


def _show_command(args: Sequence[bytes]) -> str:
    return " ".join(_show_arg(a) for a in args) if args else "(nothing)"


class CommandPattern:
    """The arguments a command must have (see the module): what ``matches()`` returns and
    ``ExpectCommand`` checks. Calling it with a command's bytes answers True or False,
    so it is a ``Rule`` predicate, whose ``difference(request)`` and ``similarity(request)``
    explain an unmatched request; ``mismatch(args)`` says how parsed *args* differ, or None.
    """

    __slots__ = ("_name", "args", "rest")

    def __init__(self, args: tuple[Arg | EllipsisType, ...], what: str) -> None:
        if not args or args[0] is Ellipsis:
            raise ValueError(
                f"{what} needs at least the command's name, e.g. {what[:-2]}('GET', ...)")
        rest = args[-1] is Ellipsis
        checked: list[bytes | re.Pattern[bytes] | _AnyArg] = []
        for i, arg in enumerate(args[:-1] if rest else args):
            checked.append(_pattern_arg(arg, i, what))
        self.args: tuple[bytes | re.Pattern[bytes] | _AnyArg, ...] = tuple(checked)
        self.rest = rest
        name = checked[0]  # Redis reads a command's name in any case
        self._name = name.upper() if isinstance(name, bytes) else (
            re.compile(name.pattern, name.flags | re.IGNORECASE)
            if isinstance(name, re.Pattern) else name)

    def mismatch(self, args: Sequence[bytes]) -> str | None:
        """How *args* differ from the pattern, in RESP terms; None when they match."""
        want = (self._name, *self.args[1:])
        got = list(args)
        if got:
            got[0] = got[0].upper()
        name_differs = not _arg_matches(want[0], got[0]) if got else True
        count_differs = len(got) < len(want) if self.rest else len(got) != len(want)
        if name_differs or count_differs:
            summary = f"expected command {self}, got {_show_command(args)}"
            if not name_differs:
                summary += (f" ({plural(len(args), 'argument')}, expected "
                            f"{'at least ' if self.rest else ''}{len(want)})")
            return summary
        for i, (expected, arg) in enumerate(zip(want, got, strict=False)):
            if not _arg_matches(expected, arg):
                return (f"argument {i}: expected {_show_expected(expected, quote=True)}, got "
                        f"{_quote(arg)} (expected command {self}, got {_show_command(args)})")
        return None

    def __call__(self, request: bytes) -> bool:
        try:
            args = parse_command(request)
        except ProtocolError:
            return False
        return self.mismatch(args) is None

    def difference(self, request: bytes) -> str:
        """How the command in *request* differs (a ``Rules`` failure shows it for the
        closest rules)."""
        try:
            why = self.mismatch(parse_command(request))
        except ProtocolError as exc:
            return f"not a command: {exc}"
        return why or "matches"

    def similarity(self, request: bytes) -> float:
        """How close *request* is to the pattern, from 0 to 1 (ranks the closest rules)."""
        try:
            shown = _show_command(parse_command(request))
        except ProtocolError:
            return 0.0
        return difflib.SequenceMatcher(None, shown, str(self), autojunk=False).ratio()

    def __str__(self) -> str:
        shown = [_show_expected(a) for a in self.args]
        return " ".join([*shown, "..."] if self.rest else shown)

    def repr_args(self) -> list[str]:
        """The arguments as ``matches()`` was given them, for reprs."""
        shown = [_repr_expected(a) for a in self.args]
        return [*shown, "..."] if self.rest else shown

    def __repr__(self) -> str:
        return f"matches({', '.join(self.repr_args())})"


def _pattern_arg(arg: object, index: int, what: str) -> bytes | re.Pattern[bytes] | _AnyArg:
    if isinstance(arg, _AnyArg):
        return arg
    if isinstance(arg, bool):
        raise TypeError(
            f"{what}: argument {index} is {arg!r}; give str, bytes, int, ANY or a regex")
    if isinstance(arg, int):
        return b"%d" % arg
    if isinstance(arg, str):
        return arg.encode("utf-8")
    if isinstance(arg, (bytes, bytearray, memoryview)):
        return bytes(arg)
    if isinstance(arg, re.Pattern):
        source = arg.pattern
        if isinstance(source, str):
            return re.compile(source.encode("utf-8"), arg.flags & ~re.UNICODE)
        return arg
    if arg is Ellipsis:
        raise ValueError(f"{what}: ... (any further arguments) may only come last")
    raise TypeError(f"{what}: argument {index} is {arg!r}; give str, bytes, int, ANY, a "
                    "compiled regex, or a last ... for any further arguments")


def _arg_matches(expected: bytes | re.Pattern[bytes] | _AnyArg, arg: bytes) -> bool:
    if isinstance(expected, bytes):
        return expected == arg
    if isinstance(expected, re.Pattern):
        return expected.fullmatch(arg) is not None
    return True


def _show_expected(expected: bytes | re.Pattern[bytes] | _AnyArg, quote: bool = False) -> str:
    if isinstance(expected, bytes):
        return _quote(expected) if quote else _show_arg(expected)
    if isinstance(expected, re.Pattern):
        return f"an argument matching re.compile({expected.pattern!r})"
    return "<any>"


def _repr_expected(expected: bytes | re.Pattern[bytes] | _AnyArg) -> str:
    if isinstance(expected, bytes):
        return _quote(expected)
    if isinstance(expected, re.Pattern):
        return f"re.compile({expected.pattern!r})"
    return "ANY"


def matches(*args: Arg | EllipsisType) -> CommandPattern:
    """A ``Rule`` predicate: True for a command with these arguments (see the module).

    >>> pattern = matches("SET", "k", ANY)
    >>> pattern(command("set", "k", "v")), pattern(command("SET", "x", "v"))
    (True, False)
    """
    return CommandPattern(args, "matches()")


class _CommandMatcher(Matcher):
    """Frames one command with a ``_Parser``; with a pattern, checks its arguments."""

    __slots__ = ("parser", "pattern", "step")

    def __init__(self, step: ReadStep, inline: bool, pattern: CommandPattern | None) -> None:
        self.step = step
        self.parser = _respparse.CommandParser(inline)
        self.pattern = pattern

    def check(self, buffer: bytearray, eof: bool) -> int | None:
        try:
            end = self.parser.feed(buffer, eof)
        except ProtocolError as exc:
            closed = eof and str(exc).startswith("the client closed")
            raise Mismatch(str(exc), self.step.describe(), bytes(buffer),
                           len(buffer) if closed else None) from None
        if end is None or self.pattern is None:
            return end
        why = self.pattern.mismatch(self.parser.args)
        if why is not None:
            raise Mismatch(why, self.step.describe(), bytes(buffer[:end]), None)
        return end


def _flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {value!r}")
    return value


class ReadCommand(ReadStep):
    """Read ONE command: a RESP array of bulk strings or, with *inline* (the default, as
    Redis does), an inline command line (``PING\\r\\n``). Its chunk is the command's
    bytes (``parse_command`` gives the arguments). What is not a command fails the step
    in RESP terms. The read step of a fake Redis made as ``Rules``.

    >>> ReadCommand()
    ReadCommand()
    """

    def __init__(self, *, inline: bool = True, timeout: float | None = None) -> None:
        self.inline = _flag(inline, "inline")
        self.timeout = _args.optional_timeout(timeout)

    def _repr_args(self) -> list[str]:
        return ([] if self.inline else ["inline=False"]) + self._timeout_arg()

    def describe(self) -> str:
        return "a RESP command" + ("" if self.inline else " (an array of bulk strings)")

    def matcher(self) -> Matcher:
        return _CommandMatcher(self, self.inline, None)


class ExpectCommand(ReadCommand):
    """Expect ONE command with these arguments (see the module: str, bytes, int, ``ANY``,
    a regex, a last ``...``); fail in RESP terms: ``expected command SET k v, got GET k``,
    ``argument 2: expected 'v', got 'w'``.

    >>> ExpectCommand("SET", "k", "v")
    ExpectCommand('SET', 'k', 'v')
    """

    expects_exactly = True

    def __init__(self, *args: Arg | EllipsisType, inline: bool = True,
                 timeout: float | None = None) -> None:
        super().__init__(inline=inline, timeout=timeout)
        self.pattern = CommandPattern(args, "ExpectCommand()")

    def _repr_args(self) -> list[str]:
        return [*self.pattern.repr_args(), *super()._repr_args()]

    def describe(self) -> str:
        return f"the command {self.pattern}"

    def matcher(self) -> Matcher:
        return _CommandMatcher(self, self.inline, self.pattern)


def handshake_rules(protocol: Protocol = 2, version: str = "7.4.0") -> list[Rule]:
    """Rules that answer what client libraries send on connect, for ``Rules``: ``HELLO 3``
    and ``HELLO 2`` (``hello_reply()`` in the protocol asked for; a bare ``HELLO`` in
    *protocol*, the one a connection starts in); ``CLIENT SETINFO``/``SETNAME``,
    ``SELECT``, ``AUTH`` (``+OK``) and ``PING`` (``+PONG``); ``CLIENT MAINT_NOTIFICATIONS``
    (redis-py >= 7 with RESP3) gets the error a Redis 7 gives. Each answers any number of
    times. Put them before your own rules: ``Rules(ReadCommand(), *handshake_rules(),
    Rule(...))``. (redis-py 8 speaks RESP3 unless given ``protocol=2``.)"""
    ok = simple("OK")
    return [
        Rule(matches("HELLO", "3", ...), hello_reply(3, version)),
        Rule(matches("HELLO", "2", ...), hello_reply(2, version)),
        Rule(matches("HELLO"), hello_reply(protocol, version)),
        Rule(matches("CLIENT", re.compile(rb"(?i)SETINFO|SETNAME"), ...), ok),
        Rule(matches("CLIENT", re.compile(rb"(?i)MAINT_NOTIFICATIONS"), ...),
             error("ERR unknown subcommand 'MAINT_NOTIFICATIONS'")),
        Rule(matches("SELECT", ANY), ok),
        Rule(matches("AUTH", ...), ok),
        Rule(matches("PING"), simple("PONG")),
    ]
