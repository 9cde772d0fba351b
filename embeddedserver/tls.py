"""TLS for embeddedserver: throwaway certificates and TLS misbehaviour steps.

Model
-----
Every server class speaks TLS when given ``ssl_context=`` (a server-side
``ssl.SSLContext``): each accepted connection runs the server side of the handshake,
then the script, then a graceful close that sends a TLS close_notify. This module adds
the two things a test needs around that:

* ``LocalTLS``: a throwaway certificate authority and a server certificate for
  ``localhost``, ``127.0.0.1`` and ``::1``, with the server context and what a client
  needs to trust it (a client context, or a CA file for ``requests``/``curl``). It uses
  ``trustme`` (``pip install embeddedserver[tls]``). It is a context manager; ``close()``
  deletes the CA file (as does garbage collection, or the interpreter's exit, for one
  never closed).
* Steps for servers that get TLS wrong. ``AbortHandshake`` and ``PlaintextReply`` run
  *instead of* the handshake: their ``before_tls`` attribute tells the server to run them
  on the raw socket first (see ``Step.before_tls``); both end the connection, so no TLS
  follows. ``CloseWithoutNotify`` runs after the handshake and closes the TCP
  connection without the close_notify a graceful TLS close sends.

    >>> from embeddedserver import CommandServer, ReadUntil, http_response
    >>> import http.client
    >>> with LocalTLS() as tls, CommandServer(
    ...     [ReadUntil(b"\\r\\n\\r\\n"), http_response("secret")],
    ...     ssl_context=tls.server_context, verbose=False,
    ... ) as server:
    ...     client = http.client.HTTPSConnection(
    ...         "localhost", server.port, context=tls.client_context, timeout=10)
    ...     client.request("GET", "/")
    ...     client.getresponse().read()
    ...     client.close()
    b'secret'

Sections: certificates - misbehaviour steps.
"""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
import weakref
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .steps import Call, http_response

if TYPE_CHECKING:
    from ._connection import Connection

__all__ = [
    "PLAINTEXT_REPLY",
    "TLS_HOSTNAMES",
    "AbortHandshake",
    "CloseWithoutNotify",
    "LocalTLS",
    "PlaintextReply",
]

log = logging.getLogger(__name__)

#: The names a ``LocalTLS`` server certificate is valid for by default.
TLS_HOSTNAMES = ("localhost", "127.0.0.1", "::1")

_INSTALL_HINT = "pip install trustme (or pip install embeddedserver[tls])"

# ---------------------------------------------------------------------------
# certificates
# ---------------------------------------------------------------------------


def _import_trustme() -> Any:
    try:
        import trustme
    except ImportError as exc:
        raise ImportError(
            f"LocalTLS makes its throwaway certificates with trustme, which is not "
            f"installed: {_INSTALL_HINT}",
            name="trustme",
        ) from exc
    return trustme


def _remove_ca_file(path: str, pid: int) -> None:
    if os.getpid() != pid:  # in a forked child (its exit, close, gc) the file is still its parent's
        return
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class LocalTLS:
    """A throwaway CA and a server certificate for localhost, 127.0.0.1 and ::1.

    Attributes (all ready when the constructor returns):
        server_context: an ``ssl.SSLContext`` for ``ssl_context=`` of any server class.
        client_context: an ``ssl.SSLContext`` that trusts the CA (for ``http.client``,
            ``urllib``, ``asyncio.open_connection(ssl=...)``, ``smtplib``...).
        ca_file: path of a PEM file holding the CA certificate (for
            ``requests.get(url, verify=tls.ca_file)``, ``curl --cacert``,
            ``ssl.create_default_context(cafile=...)``).
        ca: the ``trustme.CA``, to issue more certificates (e.g. client certificates).

    Arguments:
        hostnames: the names and IP addresses the server certificate is valid for.

    Raises ImportError saying what to install when ``trustme`` is missing, TypeError or
    ValueError for bad *hostnames*. Use it as a context manager, or call ``close()``
    (idempotent), which deletes the CA file; the contexts stay usable. One never closed
    deletes its CA file when it is garbage collected or the interpreter exits.

    >>> with LocalTLS() as tls:
    ...     os.path.exists(tls.ca_file)
    True
    """

    def __init__(self, hostnames: tuple[str, ...] | list[str] = TLS_HOSTNAMES) -> None:
        if isinstance(hostnames, str) or not isinstance(hostnames, (tuple, list)):
            raise TypeError(
                f"hostnames must be a tuple or list of names/addresses such as "
                f"('localhost', '127.0.0.1'), not {hostnames!r}"
            )
        if not hostnames or not all(isinstance(h, str) and h for h in hostnames):
            raise ValueError(
                f"hostnames must hold at least one non-empty str, not {hostnames!r}"
            )
        trustme = _import_trustme()
        self.hostnames = tuple(hostnames)
        self.ca = trustme.CA()
        self._cert = self.ca.issue_cert(*self.hostnames)
        self.server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._cert.configure_cert(self.server_context)
        self.client_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(self.client_context)
        fd, self.ca_file = tempfile.mkstemp(prefix="embeddedserver-ca-", suffix=".pem")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(self.ca.cert_pem.bytes())
        except BaseException:
            os.unlink(self.ca_file)
            raise
        # Runs once: at close(), at garbage collection or at exit, whichever comes first.
        self._remove = weakref.finalize(self, _remove_ca_file, self.ca_file, os.getpid())
        self.closed = False
        log.debug("throwaway CA for %s written to %s", self.hostnames, self.ca_file)

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate in PEM form (for ``load_verify_locations(cadata=...)``)."""
        return bytes(self.ca.cert_pem.bytes())

    def close(self) -> None:
        """Delete the CA file. Idempotent; the contexts keep working."""
        self.closed = True
        self._remove()

    def __enter__(self) -> LocalTLS:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"ca_file={self.ca_file!r}"
        return f"<LocalTLS for {', '.join(self.hostnames)} {state}>"


# ---------------------------------------------------------------------------
# misbehaviour steps
# ---------------------------------------------------------------------------

_HANDSHAKE = 0x16  # TLS record content type of a ClientHello


def _read_client_hello(conn: Connection) -> bytes:
    """Read the client's first TLS record (its ClientHello) from the raw socket.

    Raises ValueError, recorded as the step's failure, when the client is not speaking
    TLS (it would be a plaintext client on a TLS port: a different test).
    """
    head = conn.recv_exactly(5)
    if head[0] != _HANDSHAKE:
        raise ValueError(
            f"expected a TLS ClientHello (a record starting with 0x16), the client sent "
            f"{head!r}: it does not speak TLS"
        )
    length = int.from_bytes(head[3:5], "big")
    return bytes(head + conn.recv_exactly(length))


class AbortHandshake(Call):
    """Abort the TLS handshake: read the ClientHello, then close (the client's handshake
    fails with ``ssl.SSLEOFError``) or, with ``reset=True``, reset the connection (the
    client gets ``ConnectionResetError``). Must be the whole script.

    >>> AbortHandshake(reset=True)
    AbortHandshake(reset=True)
    """

    ends_connection = True
    before_tls = True

    def __init__(self, reset: bool = False) -> None:
        if not isinstance(reset, bool):
            raise TypeError(f"reset must be True or False, not {reset!r}")
        self.reset = reset
        super().__init__(self._run)

    def _run(self, conn: Connection) -> None:
        _read_client_hello(conn)
        if self.reset:
            conn.reset()
        else:
            conn.close("server closed during the TLS handshake")

    def _repr_args(self) -> list[str]:
        return ["reset=True"] if self.reset else []


#: What ``PlaintextReply`` answers by default: what a plain HTTP server says to TLS.
PLAINTEXT_REPLY = http_response(
    "This port speaks plain HTTP, not TLS.\n", status=400
)


class PlaintextReply(Call):
    """Answer a TLS client in plaintext, as a server that does not speak TLS would: read
    the ClientHello, send *data* unencrypted, close. The client's handshake fails with an
    ``ssl.SSLError`` (OpenSSL says e.g. 'wrong version number'). Must be the whole
    script.

    >>> PlaintextReply(b"220 smtp.example ESMTP\\r\\n")
    PlaintextReply(b'220 smtp.example ESMTP\\r\\n')
    """

    ends_connection = True
    before_tls = True

    def __init__(self, data: bytes | str = PLAINTEXT_REPLY) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not isinstance(data, (bytes, bytearray)) or not data:
            raise TypeError(f"data must be non-empty bytes or str to send, not {data!r}")
        self.data = bytes(data)
        super().__init__(self._run)

    def _run(self, conn: Connection) -> None:
        _read_client_hello(conn)
        conn.send(self.data)
        conn.close("server answered in plaintext")

    def _repr_args(self) -> list[str]:
        return [] if self.data == PLAINTEXT_REPLY else [repr(self.data)]


class CloseWithoutNotify(Call):
    """Close the TCP connection without a TLS close_notify (a truncated TLS stream).

    A graceful close (``Close()`` or the end of the script) sends close_notify first. A
    client reading with ``suppress_ragged_eofs=False`` gets ``ssl.SSLEOFError``; most
    clients (http.client, urllib3) use the default True and see an ordinary EOF.
    Without TLS it is a plain ``Close()``. Nothing may follow it.

    >>> CloseWithoutNotify()
    CloseWithoutNotify()
    """

    ends_connection = True

    def __init__(self) -> None:
        super().__init__(self._run)

    def _run(self, conn: Connection) -> None:
        conn.close("server closed without TLS close_notify", tls_goodbye=False)

    def _repr_args(self) -> list[str]:
        return []  # Call's would show the bound method, whose repr shows this step
