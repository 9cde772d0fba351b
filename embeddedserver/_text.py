"""How the package writes addresses and counts, and reads backslash escapes: one of each.

Every message, transcript and repr shows an address with ``format_address``; the command
line and the script files read escaped bytes with ``unescape``; the transcript notes that
say a side shut its write half are written and read back with the same words.

    >>> format_address(("::1", 8080))
    '[::1]:8080'
    >>> unescape(r"PING\\r\\n\\x00")
    b'PING\\r\\n\\x00'
"""

from __future__ import annotations

import functools
import os
import re
import reprlib
from collections.abc import Callable
from typing import Any

__all__ = [
    "BAD_REGEX",
    "CLIENT_EOF_NOTE",
    "ESCAPES_ACCEPTED",
    "SERVER_EOF_NOTE",
    "BadEscape",
    "bytes_pattern",
    "callable_name",
    "format_address",
    "match_repr",
    "plural",
    "regex_problem",
    "short_repr",
    "unescape",
]

#: The start of the transcript note written when the client shuts its write side; the
#: script-file writer turns it into ``expect close``.
CLIENT_EOF_NOTE = "client closed its side"
#: The start of the note written when the server shuts its write side (``half-close``).
SERVER_EOF_NOTE = "server shut its write side"


def format_address(address: Any) -> str:
    """An address as messages show it: ``127.0.0.1:8080``, ``[::1]:8080``,
    ``unix:/tmp/s.sock``, ``unix:@name`` (a Linux abstract socket), or ``(unnamed peer)``
    for the empty name a Unix-socket client has."""
    if isinstance(address, tuple) and len(address) >= 2:
        host = str(address[0])
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    if isinstance(address, (str, os.PathLike)):
        path = os.fspath(address)
        if path:
            return "unix:" + ("@" + path[1:] if path.startswith("\0") else path)
    if isinstance(address, bytes) and address:
        return "unix:@" + address[1:].decode("utf-8", "backslashreplace")
    return "(unnamed peer)" if not address else repr(address)


def plural(n: int, word: str) -> str:
    """``1 failure``, ``2 failures``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


_ESCAPES = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\", '"': b'"'}
#: The escapes ``unescape`` reads, as its error messages list them.
ESCAPES_ACCEPTED = '\\r \\n \\t \\0 \\\\ \\" or \\xHH (two hex digits)'


class BadEscape(ValueError):
    """An escape ``unescape`` does not know; ``escape`` is its text (``'\\q'``)."""

    def __init__(self, escape: str) -> None:
        super().__init__(f"unknown escape {escape!r}: use {ESCAPES_ACCEPTED}")
        self.escape = escape


def unescape(text: str) -> bytes:
    """Decode backslash escapes: ``\\r \\n \\t \\0 \\\\ \\"`` and ``\\xHH`` (one raw byte);
    every other character is UTF-8 encoded. Raises ``BadEscape`` (a ValueError) naming an
    unknown escape, ValueError for a lone backslash at the end."""
    out = bytearray()
    i = 0
    while True:
        at = text.find("\\", i)
        if at < 0:
            out += text[i:].encode("utf-8", "surrogateescape")
            return bytes(out)
        out += text[i:at].encode("utf-8", "surrogateescape")
        code = text[at + 1 : at + 2]
        if code in _ESCAPES and code:
            out += _ESCAPES[code]
            i = at + 2
        elif code == "x" and _is_hex(text[at + 2 : at + 4]):
            out.append(int(text[at + 2 : at + 4], 16))
            i = at + 4
        elif not code:
            raise ValueError("a lone backslash at the end: write \\\\ for a backslash")
        else:
            raise BadEscape(text[at : at + 4] if code == "x" else text[at : at + 2])


def _is_hex(text: str) -> bool:
    return len(text) == 2 and all(c in "0123456789abcdefABCDEF" for c in text)


# -- how steps and rules show what they match -------------------------------------


def callable_name(func: Callable[..., object]) -> str:
    """How a step's or a rule's repr shows *func*: its ``__qualname__`` (a function, a method),
    ``partial(name, ...)`` for a ``functools.partial``, else the object's repr, cut short.
    The object's repr is called only when there is no name: it may be slow, raise, or
    lead back here (an object whose repr shows the step that calls it)."""
    name = getattr(func, "__qualname__", None)
    if isinstance(name, str):
        return name
    if isinstance(func, functools.partial):
        more = ", ..." if func.args or func.keywords else ""
        return f"partial({callable_name(func.func)}{more})"
    return short_repr(func)


@reprlib.recursive_repr()  # a repr that comes back to the same object shows "..."
def short_repr(obj: object, limit: int = 60) -> str:
    try:
        text = repr(obj)
    except Exception as exc:  # a message must not fail because of a user's __repr__
        return f"<{type(obj).__qualname__} object (repr failed: {type(exc).__name__})>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: What re.compile raises for a pattern it cannot take (a repeat count too large, groups
#: nested too deeply), besides re.error.
BAD_REGEX = (re.error, OverflowError, RecursionError)
_MAX_REPEAT = 0xFFFFFFFE  # the largest count re accepts in {m,n} (its MAXREPEAT, less one)


def regex_problem(exc: BaseException) -> str:
    if isinstance(exc, OverflowError):
        return f"{exc} (a repeat count is at most {_MAX_REPEAT})"
    if isinstance(exc, RecursionError):
        return "groups nested too deeply for the re module"
    return str(exc)


def bytes_pattern(pattern: re.Pattern[str] | re.Pattern[bytes]) -> re.Pattern[bytes]:
    if isinstance(pattern.pattern, bytes):
        return pattern
    try:
        return re.compile(pattern.pattern.encode("utf-8"), pattern.flags & ~re.UNICODE)
    except BAD_REGEX as exc:
        raise ValueError(
            f"regex {pattern.pattern!r} cannot be used on bytes: {regex_problem(exc)}"
        ) from None


def match_repr(
    exact: bytes | None, pattern: re.Pattern[bytes] | None,
    predicate: Callable[..., object] | None,
) -> str:
    """The first argument of an ``Expect``'s or a ``Rule``'s repr: what it matches."""
    if exact is not None:
        return repr(exact)
    if pattern is not None:
        return f"re.compile({pattern.pattern!r})"
    assert predicate is not None
    return callable_name(predicate)
