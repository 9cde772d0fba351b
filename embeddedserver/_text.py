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

import os
from typing import Any

__all__ = [
    "CLIENT_EOF_NOTE",
    "ESCAPES_ACCEPTED",
    "SERVER_EOF_NOTE",
    "BadEscape",
    "format_address",
    "plural",
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
