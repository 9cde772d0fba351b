"""The command language of embeddedserver, and its pure interpreter.

Model
-----
A *script* is a list of *steps* that a fake server runs, in order, against one
client connection. Steps come in three families:

* **read steps** (``RECEIVE``, an int, ``ReadUntil``, ``ReadLine``, ``ReadFrame``,
  ``ReadUntilClose``, ``Expect``, ``ExpectRegex``, ``ExpectFrame``, ``ExpectClose``)
  consume bytes the client sent. Each produces one *chunk*.
* **send steps** (bytes or str, ``Send``, ``Drip``, ``Garbage``, ``SendFrame``) write bytes.
* **action steps** (``Delay``, ``Close``, ``Reset``, ``HalfClose``, ``Hang``, ``Call``)
  do something to the connection.

``embeddedserver.rules`` adds ``Rules``, a step that reads requests and answers each by
the rule that matches it, for clients whose order of requests the test does not fix.

Nothing in this module touches a socket. A read step is matched by an ``Inbox``:
the I/O shell (``embeddedserver._connection``) feeds it the bytes it receives and asks whether the
step is complete, incomplete, or can never match (``Mismatch``, raised at the first
differing byte, so a wrong client fails at once rather than at a timeout). Each read
step's ``matcher()`` makes the object that does that matching; the matchers, ``Inbox``
and ``Mismatch`` live in ``embeddedserver._match`` (re-exported here).

Errors split as in h11: a script that is wrong raises ``TypeError``/``ValueError`` when it
is built (``compile_script``); a client that misbehaves produces a ``Failure`` record,
rendered with the step, what was expected, what arrived and where the two parted.

Sections: helpers - read steps - send and action steps - script compilation. Records
and failure reports live in ``embeddedserver.record``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar, TypeAlias

from . import _args
from ._match import (
    AtLeast,
    Checked,
    Closed,
    Exact,
    Frame,
    Matcher,
    ToEof,
    Until,
)
from ._prefix import length_prefix
from ._text import BAD_REGEX, bytes_pattern, callable_name, match_repr, regex_problem
from .record import show_bytes

if TYPE_CHECKING:  # _connection imports this module: the handle's class is for the types only
    from ._connection import Connection

__all__ = [
    "RECEIVE",
    "AcceptAndClose",
    "Call",
    "Close",
    "Command",
    "Delay",
    "Drip",
    "Expect",
    "ExpectClose",
    "ExpectFrame",
    "ExpectRegex",
    "Garbage",
    "HalfClose",
    "Hang",
    "PerConnection",
    "ReadFrame",
    "ReadLine",
    "ReadStep",
    "ReadUntil",
    "ReadUntilClose",
    "Receive",
    "Reset",
    "Script",
    "Send",
    "SendFrame",
    "Step",
    "compile_script",
    "describe_steps",
    "http_response",
]

Bytesish: TypeAlias = bytes | bytearray | memoryview | str

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _to_bytes(value: Bytesish, what: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be bytes, bytearray, memoryview or str, not {value!r}")


def http_response(
    body: Bytesish = b"",
    status: int = 200,
    reason: str = "",
    headers: dict[str, str] | None = None,
    *,
    keep_alive: bool = False,
) -> bytes:
    """Build a complete HTTP/1.1 response, with ``Content-Length``, to use as a send step.

    *reason* is the status line's phrase ("" or omitted: the standard one for *status*,
    "Unknown" for a status HTTP does not name). *headers* follow ``Content-Length`` and
    ``Connection: close``, and one of the same name (same case) replaces them.
    ``keep_alive=True`` leaves out ``Connection: close``, for a client that sends another
    request on the connection. ``embeddedserver.http.response`` builds the steps of
    responses that stream or misbehave.

    >>> http_response("hello world")[:17]
    b'HTTP/1.1 200 OK\\r\\n'
    >>> b"Connection" in http_response("hi", keep_alive=True)
    False
    """
    from http import HTTPStatus

    payload = _to_bytes(body, "body")
    if not reason:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
    all_headers = {"Content-Length": str(len(payload))}
    if not _args.flag(keep_alive, "keep_alive"):
        all_headers["Connection"] = "close"
    all_headers.update(headers or {})
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in all_headers.items()
    )
    return head.encode("latin-1") + b"\r\n" + payload


# ---------------------------------------------------------------------------
# read steps (and the base classes of every step)
# ---------------------------------------------------------------------------


class Step:
    """Base class of every step. Subclasses are plain, immutable value objects."""

    timeout: float | None = None
    #: True for a step after which the connection is gone (no later step may follow).
    ends_connection = False
    #: True for a step that runs on the raw TCP socket before the TLS handshake: a server
    #: with ``ssl_context`` runs the script's leading ``before_tls`` steps first and starts
    #: TLS only if the connection is still open (see ``embeddedserver.tls``). Without TLS it runs
    #: in order like any other step.
    before_tls = False
    #: What the runner does with the step: "read", "send", "drip", "delay", "close",
    #: "reset", "half-close", "hang", "call" or "rules" (``embeddedserver.rules``; a
    #: subclass inherits its base's).
    kind: ClassVar[str] = "unknown"

    def __repr__(self) -> str:
        fields = ", ".join(self._repr_args())
        return f"{type(self).__name__}({fields})"

    def _repr_args(self) -> list[str]:
        return []


class ReadStep(Step):
    """A step that consumes bytes from the client; subclasses implement ``matcher``
    (a fresh matcher from ``embeddedserver._match`` each time the step runs)."""

    kind = "read"
    #: True for an expectation: the step says exactly what the client sends, so in a
    #: script whose every read step is one, bytes past the script are a failure
    #: (``allow_extra_bytes``). A read step that takes whatever comes leaves it False.
    expects_exactly: ClassVar[bool] = False

    def matcher(self) -> Matcher:
        raise NotImplementedError

    def describe(self) -> str:
        """What the step waits for, in words (used in failure messages)."""
        return repr(self)

    def expected_bytes(self) -> bytes | None:
        """The exact bytes the step expects, if it expects exact bytes (for messages)."""
        return None

    def _timeout_arg(self) -> list[str]:
        return [] if self.timeout is None else [f"timeout={self.timeout!r}"]


class Receive(ReadStep):
    """Read from the client: ``Receive()`` (``RECEIVE``) takes what one read returns (at
    least one byte); ``Receive(n)`` (or a bare int n in a script) takes at least n bytes,
    n >= 1 (``Receive(0)`` would read nothing: a ValueError).

    >>> Receive(20)
    Receive(20)
    """

    def __init__(self, n: int | None = None, *, timeout: float | None = None) -> None:
        if isinstance(n, int) and not isinstance(n, bool) and n == 0:
            raise ValueError(
                "Receive(0) would read nothing: give a byte count n >= 1 (read at least n "
                "bytes), or Receive() / RECEIVE to read what one read returns"
            )
        self.n = None if n is None else _args.count(n, "byte count", 1)
        self.timeout = _args.optional_timeout(timeout)

    def _repr_args(self) -> list[str]:
        return ([] if self.n is None else [repr(self.n)]) + self._timeout_arg()

    def describe(self) -> str:
        return "any bytes" if self.n is None else f"at least {self.n} bytes"

    def matcher(self) -> Matcher:
        return AtLeast(self.n or 1)


#: Read some bytes: whatever one read returns. The classic first step of a script.
RECEIVE = Receive()


class ReadUntil(ReadStep):
    """Read up to and including *delimiter* (``b"\\r\\n\\r\\n"`` ends HTTP headers).

    >>> ReadUntil(b"\\r\\n\\r\\n")
    ReadUntil(b'\\r\\n\\r\\n')
    """

    def __init__(self, delimiter: Bytesish, *, timeout: float | None = None) -> None:
        self.delimiter = _to_bytes(delimiter, "delimiter")
        if not self.delimiter:
            raise ValueError("delimiter must not be empty: give the bytes that end a message")
        self.timeout = _args.optional_timeout(timeout)

    def _repr_args(self) -> list[str]:
        return [repr(self.delimiter), *self._timeout_arg()]

    def describe(self) -> str:
        return f"bytes up to {self.delimiter!r}"

    def matcher(self) -> Matcher:
        return Until(self.delimiter)


class ReadLine(ReadUntil):
    """Read one line, up to and including ``b"\\n"`` (so ``\\r\\n`` lines work too)."""

    def __init__(self, *, timeout: float | None = None) -> None:
        super().__init__(b"\n", timeout=timeout)

    def _repr_args(self) -> list[str]:
        return self._timeout_arg()

    def describe(self) -> str:
        return "a line ending in b'\\n'"


class ReadFrame(ReadStep):
    """Read one length-prefixed frame (prefix included in the chunk). *prefix* is a struct
    format for one unsigned length: ``'>I'`` (4-byte big-endian, the default), ``'>H'``...;
    or ``'varint'``: protobuf's unsigned LEB128 (gRPC-style length-delimited messages).
    A varint longer than 10 bytes, or cut short by the client's close, fails the step.

    >>> ReadFrame("varint")
    ReadFrame('varint')
    """

    def __init__(self, prefix: str = ">I", *, timeout: float | None = None) -> None:
        self.prefix = prefix
        self._prefix = length_prefix(prefix)
        self.timeout = _args.optional_timeout(timeout)

    def _repr_args(self) -> list[str]:
        return ([] if self.prefix == ">I" else [repr(self.prefix)]) + self._timeout_arg()

    def describe(self) -> str:
        return f"a frame with {self._prefix.describe()}"

    def matcher(self) -> Matcher:
        return Frame(self._prefix, None, self)


class ReadUntilClose(ReadStep):
    """Read everything until the client closes its side (EOF)."""

    def __init__(self, *, timeout: float | None = None) -> None:
        self.timeout = _args.optional_timeout(timeout)

    def _repr_args(self) -> list[str]:
        return self._timeout_arg()

    def describe(self) -> str:
        return "bytes until the client closes"

    def matcher(self) -> Matcher:
        return ToEof()


class Expect(ReadStep):
    """Expect the client to send something; fail at once when it cannot match.

    * bytes or str: exactly these bytes (a str is UTF-8). A wrong byte fails the step
      at that byte, without waiting for the rest.
    * a compiled regex (``re.compile(rb"GET /\\S+")``): bytes arriving are searched
      until the pattern matches; the step consumes up to the end of the match.
    * a callable ``predicate(chunk) -> bool``: applied to the unit read by *within*
      (default ``RECEIVE``: one read). False fails the step.

    *within* (a read step, e.g. ``ReadLine()``) makes a regex or predicate apply to one
    whole unit: the regex must match the whole unit (``fullmatch``).

    >>> Expect(b"PING\\r\\n")
    Expect(b'PING\\r\\n')
    """

    expects_exactly = True

    def __init__(
        self,
        what: Bytesish | re.Pattern[str] | re.Pattern[bytes] | Callable[[bytes], object],
        *,
        within: ReadStep | None = None,
        timeout: float | None = None,
    ) -> None:
        self.timeout = _args.optional_timeout(timeout)
        if within is not None and not isinstance(within, ReadStep):
            raise TypeError(f"within must be a read step such as ReadLine(), not {within!r}")
        self.within = within
        self.exact: bytes | None = None
        self.pattern: re.Pattern[bytes] | None = None
        self.predicate: Callable[[bytes], object] | None = None
        if isinstance(what, (bytes, bytearray, memoryview, str)):
            if within is not None:
                raise TypeError("within= applies to a regex or a predicate, not to exact bytes")
            self.exact = _to_bytes(what, "expected data")
            if not self.exact:
                raise ValueError("Expect(b'') would match nothing: expect at least one byte")
        elif isinstance(what, re.Pattern):
            self.pattern = bytes_pattern(what)
        elif callable(what):
            self.predicate = what
            if self.within is None:
                self.within = RECEIVE
        else:
            raise TypeError(
                f"Expect takes bytes, str, a compiled regex or a predicate, not {what!r}"
            )

    def _repr_args(self) -> list[str]:
        head = match_repr(self.exact, self.pattern, self.predicate)
        default = self.within is None or (self.predicate is not None and self.within is RECEIVE)
        within = [] if default else [f"within={self.within!r}"]
        return [head, *within, *self._timeout_arg()]

    def describe(self) -> str:
        if self.exact is not None:
            return show_bytes(self.exact)
        if self.pattern is not None:
            where = f" ({self.within.describe()})" if self.within else ""
            return f"data matching re.compile({self.pattern.pattern!r}){where}"
        assert self.within is not None
        return f"{self.within.describe()} accepted by {self._repr_args()[0]}"

    def expected_bytes(self) -> bytes | None:
        return self.exact

    def matcher(self) -> Matcher:
        if self.exact is not None:
            return Exact(self.exact, self)
        assert self.within is not None or self.pattern is not None
        return Checked(self)


# re rejects most bad patterns with re.error, but a repeat count above its 32-bit limit
# (a{99999999999}) with OverflowError, and groups nested past the recursion limit with
# RecursionError, both from deep inside its parser.
class ExpectRegex(Expect):
    """``Expect`` with a regex given as text or bytes; an invalid regex is a ValueError.

    >>> ExpectRegex(rb"GET /\\S+ HTTP/1\\.[01]\\r\\n")
    Expect(re.compile(b'GET /\\\\S+ HTTP/1\\\\.[01]\\\\r\\\\n'))
    """

    def __init__(
        self,
        pattern: str | bytes | re.Pattern[str] | re.Pattern[bytes],
        *,
        within: ReadStep | None = None,
        timeout: float | None = None,
    ) -> None:
        if not isinstance(pattern, re.Pattern):
            if not isinstance(pattern, (str, bytes)):
                raise TypeError(f"pattern must be str, bytes or re.Pattern, not {pattern!r}")
            raw = pattern.encode("utf-8") if isinstance(pattern, str) else pattern
            try:
                pattern = re.compile(raw)
            except BAD_REGEX as exc:
                raise ValueError(f"invalid regex {raw!r}: {regex_problem(exc)}") from None
        super().__init__(pattern, within=within, timeout=timeout)

    def __repr__(self) -> str:
        return "Expect(" + ", ".join(self._repr_args()) + ")"


class ExpectFrame(ReadStep):
    """Expect one length-prefixed frame whose payload is exactly *payload*; *prefix* as
    for ``ReadFrame`` (a struct format, or ``'varint'``)."""

    expects_exactly = True

    def __init__(
        self, payload: Bytesish, prefix: str = ">I", *, timeout: float | None = None
    ) -> None:
        self.payload = _to_bytes(payload, "payload")
        self.prefix = prefix
        self._prefix = length_prefix(prefix)
        self.timeout = _args.optional_timeout(timeout)

    def _repr_args(self) -> list[str]:
        pre = [] if self.prefix == ">I" else [repr(self.prefix)]
        return [repr(self.payload), *pre, *self._timeout_arg()]

    def describe(self) -> str:
        return f"frame with payload {show_bytes(self.payload)}"

    def expected_bytes(self) -> bytes | None:
        return self.payload

    def matcher(self) -> Matcher:
        return Frame(self._prefix, self.payload, self)


class ExpectClose(ReadStep):
    """Expect the client to close its side; any data arriving instead fails the step."""

    expects_exactly = True

    def __init__(self, *, timeout: float | None = None) -> None:
        self.timeout = _args.optional_timeout(timeout)

    def _repr_args(self) -> list[str]:
        return self._timeout_arg()

    def describe(self) -> str:
        return "the client to close the connection"

    def matcher(self) -> Matcher:
        return Closed()


# ---------------------------------------------------------------------------
# send and action steps
# ---------------------------------------------------------------------------


class Send(Step):
    """Send bytes (a str is sent UTF-8 encoded). A bare bytes/str in a script is a Send."""

    kind = "send"

    def __init__(self, data: Bytesish) -> None:
        self.data = _to_bytes(data, "data to send")

    def _repr_args(self) -> list[str]:
        return [show_bytes(self.data)]


class SendFrame(Send):
    """Send *payload* behind a length prefix (a struct format, default ``'>I'``, or
    ``'varint'``).

    >>> SendFrame(b"x" * 300, "varint").data[:3]
    b'\\xac\\x02x'
    """

    def __init__(self, payload: Bytesish, prefix: str = ">I") -> None:
        body = _to_bytes(payload, "payload")
        head = length_prefix(prefix).encode(len(body))
        self.payload = body
        self.prefix = prefix
        super().__init__(head + body)

    def _repr_args(self) -> list[str]:
        return [show_bytes(self.payload)] + ([] if self.prefix == ">I" else [repr(self.prefix)])


_GARBAGE_MAX = 64 << 20


class Garbage(Send):
    """Send *n* pseudo-random bytes from a generator seeded with *seed* (reproducible)."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n = _args.count(n, "garbage byte count", 1)
        if n > _GARBAGE_MAX:
            raise ValueError(
                f"garbage byte count must be <= {_GARBAGE_MAX} (64 MiB: the bytes are made "
                f"up front), not {n!r}; use several Garbage steps for more"
            )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, not {seed!r}")
        self.seed = seed
        rng = random.Random(seed)
        block = 1 << 20  # randbytes(n) overflows for n >= 2**28: draw in blocks
        super().__init__(b"".join(rng.randbytes(min(block, n - i)) for i in range(0, n, block)))

    def _repr_args(self) -> list[str]:
        return [repr(self.n)] + ([f"seed={self.seed!r}"] if self.seed else [])


class Drip(Send):
    """Send slowly: *chunk* bytes at a time with *interval* seconds between chunks."""

    kind = "drip"

    def __init__(self, data: Bytesish, chunk: int = 1, interval: float = 0.05) -> None:
        super().__init__(data)
        self.chunk = _args.count(chunk, "chunk size", 1)
        self.interval = _args.duration(interval, "interval")

    def _repr_args(self) -> list[str]:
        return [show_bytes(self.data), f"chunk={self.chunk}", f"interval={self.interval}"]


class Delay(Step):
    """Pause for *seconds* (interrupted at once by ``stop()``)."""

    kind = "delay"

    def __init__(self, seconds: float) -> None:
        self.seconds = _args.duration(seconds, "delay")

    def _repr_args(self) -> list[str]:
        return [repr(self.seconds)]


class Close(Step):
    """Close the connection gracefully (FIN). Nothing may follow it in a script."""

    kind = "close"

    ends_connection = True


class AcceptAndClose(Close):
    """Accept the connection and close it at once: the whole script ``[AcceptAndClose()]``."""


class Reset(Step):
    """Abortive close (SO_LINGER 0): the client sees ECONNRESET. Nothing may follow it."""

    kind = "reset"

    ends_connection = True


class HalfClose(Step):
    """Shut the server's write side (the client reads EOF) and keep reading."""

    kind = "half-close"


class Hang(Step):
    """Keep the connection open and silent until the client closes, the server stops, or
    *seconds* pass (None: no limit of its own). Bytes that arrive are recorded."""

    kind = "hang"

    def __init__(self, seconds: float | None = None) -> None:
        self.seconds = None if seconds is None else _args.duration(seconds, "hang time")

    def _repr_args(self) -> list[str]:
        return [] if self.seconds is None else [repr(self.seconds)]


class Call(Step):
    """Run ``func(conn)`` with the connection handle, for what the language cannot say.

    The handle (``embeddedserver.Connection``) has ``recv``, ``send``, ``close``,
    ``reset``, the raw ``sock`` and the ``record``. An exception fails the step.
    """

    kind = "call"

    def __init__(self, func: Callable[[Connection], object]) -> None:
        if not callable(func):
            raise TypeError(f"Call needs a callable taking the connection, not {func!r}")
        self.func = func

    def _repr_args(self) -> list[str]:
        return [callable_name(self.func)]


# ---------------------------------------------------------------------------
# script compilation
# ---------------------------------------------------------------------------

#: One command of a script, as ``compile_script`` takes it: a ``Step`` (``RECEIVE``,
#: ``ReadLine()``, ``Reset()``...); an int N >= 1, read at least N bytes (``Receive(N)``);
#: bytes, bytearray, memoryview or str, send them (``Send``; a str is UTF-8); or a
#: callable ``func(conn)`` taking the ``embeddedserver.Connection`` handle, a custom step
#: (``Call(func)``). A step class (``Reset`` for ``Reset()``) is not a command.
Command: TypeAlias = Step | int | Bytesish | Callable[["Connection"], object]

#: A script, as every server, ``compile_script`` and ``PerConnection`` take it: a list or
#: tuple of commands (the type says ``Sequence`` so that a ``list[Step]`` fits; another
#: kind of sequence is refused when the script is compiled); a lone str or bytes (or
#: bytearray, memoryview), meaning ``[RECEIVE, it]``; or a lone step, meaning ``[it]``.
Script: TypeAlias = Sequence[Command] | Bytesish | Step

_ACCEPTED = (
    "RECEIVE or another step object, an int (read at least that many bytes), "
    "bytes/bytearray/memoryview/str (send), or a callable (custom step)"
)


def _compile_one(index: int, command: object) -> Step:
    if isinstance(command, Step):
        return command
    if isinstance(command, bool):
        raise TypeError(f"command {index} ({command!r}) is not supported; use {_ACCEPTED}")
    if isinstance(command, int):
        if command < 1:
            raise ValueError(
                f"command {index} ({command!r}): a byte count must be >= 1 (an int N "
                "means: read at least N bytes; RECEIVE reads what one read returns)"
            )
        return Receive(command)
    if isinstance(command, (bytes, bytearray, memoryview, str)):
        return Send(command)
    if isinstance(command, type) and issubclass(command, Step):
        raise TypeError(
            f"command {index} ({command.__name__}) is a step class; "
            f"write {command.__name__}() to use it"
        )
    if callable(command):
        return Call(command)
    raise TypeError(f"command {index} ({command!r}) is not supported; use {_ACCEPTED}")


def compile_script(commands: Script) -> tuple[Step, ...]:
    """Turn a script (see ``Script``) into a validated tuple of steps.

    A lone str or bytes means ``[RECEIVE, it]``. Raises TypeError/ValueError naming the
    index and the value of the first bad command.

    >>> compile_script("hi")
    (Receive(), Send(b'hi'))
    """
    items: object = commands
    if isinstance(commands, (str, bytes, bytearray, memoryview)):
        items = [RECEIVE, commands]
    elif isinstance(commands, Step):
        items = [commands]
    if not isinstance(items, (list, tuple)):
        raise TypeError(
            f"commands must be a list of steps (or a single str/bytes), not {commands!r}"
        )
    steps = tuple(_compile_one(i, c) for i, c in enumerate(items))
    for i, step in enumerate(steps):
        if step.ends_connection and i + 1 < len(steps):
            raise ValueError(
                f"command {i + 1} ({steps[i + 1]!r}) can never run: "
                f"command {i} ({step!r}) ends the connection"
            )
    half = next((i for i, s in enumerate(steps) if isinstance(s, HalfClose)), None)
    if half is not None:
        for i in range(half + 1, len(steps)):
            # A Rules step (embeddedserver.rules) answers requests: it writes too.
            if isinstance(steps[i], (Send, HalfClose)) or steps[i].kind == "rules":
                raise ValueError(
                    f"command {i} ({steps[i]!r}) would write after HalfClose() at "
                    f"command {half}, which shut the write side"
                )
    return steps


class PerConnection:
    """A different script per connection: the first connection gets the first script,
    and so on. After the list, *then* serves every further connection; with *then* None
    an extra connection is a failure (recorded, connection closed).

    >>> plan = PerConnection([Reset()], [RECEIVE, "ok"])
    >>> plan.script_for(2)
    (Receive(), Send(b'ok'))
    """

    def __init__(self, *scripts: Script, then: Script | None = None) -> None:
        if not scripts:
            raise ValueError("PerConnection needs at least one script")
        compiled = []
        for n, script in enumerate(scripts, 1):
            try:
                compiled.append(compile_script(script))
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"script for connection {n}: {exc}") from None
        self.scripts: tuple[tuple[Step, ...], ...] = tuple(compiled)
        self.then = None if then is None else compile_script(then)

    def script_for(self, number: int) -> tuple[Step, ...] | None:
        """The script for connection *number* (1-based), or None if there is none."""
        if number <= len(self.scripts):
            return self.scripts[number - 1]
        return self.then

    def __repr__(self) -> str:
        return f"PerConnection({len(self.scripts)} scripts, then={self.then!r})"


def describe_steps(steps: Sequence[Step]) -> str:
    """A numbered listing of a script, for messages and the CLI."""
    return "\n".join(f"  {i}: {s!r}" for i, s in enumerate(steps))
