"""ALPN: a TLS server that offers or refuses application protocols, and a step that checks
which one the client negotiated.

Model
-----
A TLS client names the protocols it speaks (``h2``, ``http/1.1``...) in its ClientHello;
the server picks one of its own, in its order of preference, or none. This module gives:

* ``alpn_context(tls, ["h2", "http/1.1"])``: a server context (from a
  ``embeddedserver.tls.LocalTLS``, or an ``ssl.SSLContext`` of your own, changed in place)
  that offers those protocols. A client offering none of them gets no protocol, and the
  handshake goes on (what OpenSSL servers do).
* ``ExpectALPN("h2")``: a step that checks the negotiated protocol and fails "the client
  negotiated 'http/1.1', expected 'h2'", or "the client offered no ALPN protocols,
  expected 'h2'". Put first, it looks at the ClientHello before the handshake (a peek: the
  handshake still reads it), so its failures and the transcript say what the client
  offered; it then runs the handshake itself. ``ExpectALPN(None)``: no protocol.
* ``RequireALPN("h2")``: a server that refuses, with TLS's fatal
  ``no_application_protocol`` alert, a client that does not offer one of the protocols
  (the client's handshake fails: OpenSSL says "tlsv1 alert no application protocol");
  ``RefuseALPN()`` refuses every client so.
* ``offered_protocols(client_hello)``: the protocols a ClientHello's bytes offer.

    >>> import socket, ssl
    >>> from embeddedserver import CommandServer, LocalTLS
    >>> with LocalTLS() as tls, CommandServer(
    ...         [ExpectALPN("h2"), "negotiated"], verbose=False,
    ...         ssl_context=alpn_context(tls, ["h2", "http/1.1"])) as server:
    ...     client_context = ssl.create_default_context(cafile=tls.ca_file)
    ...     client_context.set_alpn_protocols(["h2"])
    ...     raw = socket.create_connection(server.address, timeout=10)
    ...     with client_context.wrap_socket(raw, server_hostname="localhost") as client:
    ...         client.selected_alpn_protocol(), client.recv(100)
    ('h2', b'negotiated')

Sections: contexts - the ClientHello - steps.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._match import Mismatch
from .steps import Call
from .tls import LocalTLS

if TYPE_CHECKING:
    from ._connection import Connection

__all__ = [
    "NO_APPLICATION_PROTOCOL",
    "ExpectALPN",
    "RefuseALPN",
    "RequireALPN",
    "alpn_context",
    "offered_protocols",
]

#: TLS's fatal alert for "none of your protocols": level 2 (fatal), description 120, in a
#: plaintext alert record (content type 21), as a server sends it to a ClientHello.
NO_APPLICATION_PROTOCOL = b"\x15\x03\x03\x00\x02\x02\x78"

# ---------------------------------------------------------------------------
# contexts
# ---------------------------------------------------------------------------


def _protocols(protocols: Sequence[str], what: str) -> list[str]:
    if isinstance(protocols, str) or not isinstance(protocols, Sequence):
        raise TypeError(f"{what} takes a list of protocol names such as ['h2', 'http/1.1'], "
                        f"not {protocols!r}")
    for name in protocols:
        if not isinstance(name, str) or not 0 < len(name.encode("utf-8")) < 256:
            raise ValueError(f"{what}: a protocol name is a non-empty str of at most 255 "
                             f"bytes, not {name!r}")
    return list(protocols)


def alpn_context(tls: LocalTLS | ssl.SSLContext, protocols: Sequence[str]) -> ssl.SSLContext:
    """A server context that offers *protocols* (most preferred first). From a
    ``LocalTLS``: a new context with a new certificate from its CA (its
    ``server_context`` is left as it is); from an ``ssl.SSLContext``: that context, its
    protocols set. ``[]`` offers none. Raises TypeError/ValueError naming a bad argument.
    """
    names = _protocols(protocols, "alpn_context()")
    if isinstance(tls, LocalTLS):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.ca.issue_cert(*tls.hostnames).configure_cert(context)
    elif isinstance(tls, ssl.SSLContext):
        context = tls
    else:
        raise TypeError(f"alpn_context() takes a LocalTLS or a server ssl.SSLContext, not {tls!r}")
    context.set_alpn_protocols(names)
    return context


# ---------------------------------------------------------------------------
# the ClientHello
# ---------------------------------------------------------------------------

_HANDSHAKE = 0x16
_CLIENT_HELLO = 0x01
_ALPN_EXTENSION = 0x0010
_MAX_HELLO = 64 * 1024


class _Reader:
    """Reads a ClientHello's fields; IndexError/ValueError past its end."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise ValueError("a ClientHello cut short")
        part = self.data[self.at:self.at + n]
        self.at += n
        return part

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, size: int) -> bytes:
        return self.take(self.number(size))


def offered_protocols(client_hello: bytes) -> list[str] | None:
    """The ALPN protocols a ClientHello offers, in its order; ``[]`` when it offers none;
    None when *client_hello* is not one (the bytes of its TLS records, or the handshake
    message itself).

    >>> offered_protocols(b"not TLS") is None
    True
    """
    data = bytes(client_hello)
    if data[:1] == bytes([_HANDSHAKE]):  # records: join their payloads
        payload = bytearray()
        at = 0
        while at + 5 <= len(data) and data[at] == _HANDSHAKE:
            length = int.from_bytes(data[at + 3:at + 5], "big")
            payload += data[at + 5:at + 5 + length]
            at += 5 + length
        data = bytes(payload)
    try:
        reader = _Reader(data)
        if reader.number(1) != _CLIENT_HELLO:
            return None
        body = _Reader(reader.vector(3))
        body.take(2 + 32)  # legacy version, random
        body.vector(1)  # session id
        body.vector(2)  # cipher suites
        body.vector(1)  # compression methods
        if body.at == len(body.data):
            return []  # no extensions at all
        extensions = _Reader(body.vector(2))
        while extensions.at < len(extensions.data):
            kind, value = extensions.number(2), extensions.vector(2)
            if kind == _ALPN_EXTENSION:
                names = _Reader(_Reader(value).vector(2))
                offered = []
                while names.at < len(names.data):
                    offered.append(names.vector(1).decode("utf-8", "replace"))
                return offered
        return []
    except ValueError:
        return None


def _peek_client_hello(conn: Connection) -> bytes | None:
    """The client's ClientHello records, peeked (the handshake still reads them), or None
    if the client does not start with a TLS handshake record (its handshake will fail)."""
    head = conn.peek(5)
    if len(head) < 5 or head[0] != _HANDSHAKE:
        return None
    size = 5 + int.from_bytes(head[3:5], "big")
    while True:
        data = conn.peek(size)
        if len(data) < size:
            return data  # the client closed inside it: the handshake says so
        payload = b"".join(_record_payloads(data))
        if len(payload) >= 4 and len(payload) >= 4 + int.from_bytes(payload[1:4], "big"):
            return data
        if size > _MAX_HELLO:
            return data
        more = conn.peek(size + 5)  # the ClientHello goes on in the next record
        if len(more) < size + 5 or more[size] != _HANDSHAKE:
            return data
        size += 5 + int.from_bytes(more[size + 3:size + 5], "big")


def _record_payloads(data: bytes) -> list[bytes]:
    parts, at = [], 0
    while at + 5 <= len(data):
        length = int.from_bytes(data[at + 3:at + 5], "big")
        parts.append(data[at + 5:at + 5 + length])
        at += 5 + length
    return parts


def _show(protocols: Sequence[str]) -> str:
    return ", ".join(repr(p) for p in protocols)


def _offer_note(offered: Sequence[str]) -> str:
    return f"the client offers ALPN {_show(offered)}" if offered else (
        "the client offers no ALPN protocol")


# ---------------------------------------------------------------------------
# steps
# ---------------------------------------------------------------------------


class ExpectALPN(Call):
    """Expect the client to negotiate *protocol* by ALPN (None: no protocol at all).

    First in a TLS server's script it runs before the handshake: it peeks at the
    ClientHello (a transcript note says what the client offers), runs the handshake, then
    checks. Elsewhere it checks the handshake already done. A failure is a "mismatch":
    ``the client negotiated 'http/1.1', expected 'h2'``; ``the client offered no ALPN
    protocols, expected 'h2'``; ``the client offered 'spdy/3', none of which the server
    offers: no protocol was negotiated, expected 'h2'``. Without TLS (no ``ssl_context``)
    it fails saying so.

    >>> ExpectALPN("h2")
    ExpectALPN('h2')
    """

    before_tls = True

    def __init__(self, protocol: str | None) -> None:
        if protocol is not None:
            _protocols([protocol], "ExpectALPN()")
        self.protocol = protocol
        super().__init__(self._run)

    def _repr_args(self) -> list[str]:
        return [repr(self.protocol)]

    def _fail(self, why: str) -> Mismatch:
        wanted = "no ALPN protocol" if self.protocol is None else f"ALPN protocol {self.protocol!r}"
        return Mismatch(why, f"the client to negotiate {wanted}", b"", None)

    def _run(self, conn: Connection) -> None:
        offered: list[str] | None = None
        if not isinstance(conn.sock, ssl.SSLSocket):
            if conn.ssl_context is None:
                raise self._fail("the connection does not speak TLS: ALPN needs a server "
                                 "with ssl_context= (see alpn_context())")
            hello = _peek_client_hello(conn)
            offered = offered_protocols(hello) if hello is not None else None
            if offered is not None:
                conn.record.add("note", text=_offer_note(offered))
            conn.start_tls(conn.ssl_context)  # a handshake the client breaks fails here
        assert isinstance(conn.sock, ssl.SSLSocket)
        chosen = conn.sock.selected_alpn_protocol()
        conn.record.add("note", text=f"ALPN negotiated {chosen!r}")
        if chosen == self.protocol:
            return
        expected = "expected none" if self.protocol is None else f"expected {self.protocol!r}"
        if chosen is not None:
            raise self._fail(f"the client negotiated {chosen!r}, {expected}")
        if offered == []:
            raise self._fail(f"the client offered no ALPN protocols, {expected}")
        if offered:
            raise self._fail(f"the client offered {_show(offered)}, none of which the "
                             f"server offers: no protocol was negotiated, {expected}")
        raise self._fail(f"no ALPN protocol was negotiated, {expected}")


class RequireALPN(Call):
    """Refuse, with TLS's fatal ``no_application_protocol`` alert, a client that offers
    none of *protocols* (read its ClientHello, send the alert, close); let the handshake
    go on for one that offers one. No protocols: refuse every client (``RefuseALPN``).
    The client's handshake fails with ``ssl.SSLError`` (OpenSSL: "tlsv1 alert no
    application protocol"). Must come before any step that uses TLS; the refusal is
    the server's behaviour, not the client's failure (check that with ``ExpectALPN``).

    >>> RequireALPN("h2")
    RequireALPN('h2')
    """

    before_tls = True

    def __init__(self, *protocols: str) -> None:
        self.protocols = tuple(_protocols(list(protocols), type(self).__name__ + "()"))
        super().__init__(self._run)

    def _repr_args(self) -> list[str]:
        return [repr(p) for p in self.protocols]

    def _run(self, conn: Connection) -> None:
        if isinstance(conn.sock, ssl.SSLSocket):
            raise ValueError(f"{self!r} runs before the TLS handshake: put it first in the script")
        hello = _peek_client_hello(conn)
        offered = offered_protocols(hello) if hello is not None else None
        if hello is None or offered is None:
            return  # not TLS: the handshake fails and says so
        conn.record.add("note", text=_offer_note(offered))
        if any(p in self.protocols for p in offered):
            return
        conn.recv_exactly(len(hello))  # the ClientHello, answered
        conn.send(NO_APPLICATION_PROTOCOL)
        conn.close("server refused the client's ALPN protocols (no_application_protocol)")


class RefuseALPN(RequireALPN):
    """Refuse every client with TLS's fatal ``no_application_protocol`` alert, whatever
    it offers (see ``RequireALPN``). Must be the whole script.

    >>> RefuseALPN()
    RefuseALPN()
    """

    ends_connection = True

    def __init__(self) -> None:
        super().__init__()
