"""Where the servers listen, and the bookkeeping every listening server shares.

    >>> from embeddedserver._listen import listen_tcp
    >>> [listener] = listen_tcp("127.0.0.1", 0, 16)
    >>> listener.getsockname()[1] > 0
    True
    >>> listener.close()

Model
-----
A server binds and listens in its constructor, before its thread starts, so its address
(port 0 resolved) is known and a client can connect at once. ``listen_tcp`` opens the
TCP listeners (two for ``"localhost"``: 127.0.0.1 and ::1 on the same port), with no
getaddrinfo() for an IP literal; ``_listen_unix`` opens a Unix-domain socket, whose file
the listener removes when it closes (only if the file is still the one it made).

``_ServingBase`` is what ``embeddedserver.CommandServer`` and
``embeddedserver.replay.RecordingProxy`` have in common once they listen: their address, the
connections and failures they record, the report ``check()`` raises, the context
manager, and the waits on the counts of accepted and finished connections. Serving
itself (threads, scripts, forwarding) is theirs. ``embeddedserver`` re-exports
``listen_tcp``.

Sections: listeners - shared bookkeeping.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

from . import _args
from ._args import DEFAULT_TIMEOUT
from .record import ConnectionRecord, Failure, render_transcript

__all__ = ["listen_tcp"]

# The servers' logger (every module that serves imports this one, which gives it its
# NullHandler); subclasses of _ServingBase may log to a child of it.
log = logging.getLogger("embeddedserver")
log.addHandler(logging.NullHandler())


# ---------------------------------------------------------------------------
# listeners
# ---------------------------------------------------------------------------


def _bind(
    family: int, address: tuple[Any, ...], backlog: int, reuse: bool, blocking: bool = False
) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if reuse:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
        if not blocking:
            sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _numeric_address(host: str, port: int) -> tuple[int, tuple[Any, ...]] | None:
    """An IP literal's family and address without getaddrinfo() (a measurable part of a
    server's start-up); None for anything else."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return family, ((host, port) if family == socket.AF_INET else (host, port, 0, 0))
    return None


def _resolve(host: str, port: int) -> tuple[int, tuple[Any, ...]]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    return family, address


def listen_tcp(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Bind and listen on *host*/*port* as the servers here do, for a server of your own.

    Returns the listening sockets, non-blocking: one, or two for ``"localhost"``
    (127.0.0.1 and ::1 on the same port; only 127.0.0.1 where there is no IPv6
    loopback). *port* 0 picks a free port; a given port is bound with SO_REUSEADDR.
    An IPv6 listener is IPv6-only. *backlog* is the listen queue length (>= 1).

    Raises TypeError/ValueError for a bad argument, OSError saying which host and port
    could not be listened on (and, for a busy port, to use port=0).

        >>> [listener] = listen_tcp("127.0.0.1", 0, 16)
        >>> listener.getsockname()[1] > 0
        True
        >>> listener.close()
    """
    return _listen_tcp(_args.host(host), _args.port(port), _args.backlog(backlog))


def _listen_tcp(host: str, port: int, backlog: int, blocking: bool = False) -> list[socket.socket]:
    """``listen_tcp`` for checked arguments; *blocking* leaves a single listener (not
    "localhost") in blocking mode."""
    reuse = port != 0
    try:
        if host != "localhost":
            family, address = _numeric_address(host, port) or _resolve(host, port)
            return [_bind(family, address, backlog, reuse, blocking)]
        for _ in range(20):  # port 0: retry if ::1 has our v4 port taken
            v4 = _bind(socket.AF_INET, ("127.0.0.1", port), backlog, reuse)
            if not socket.has_ipv6:
                return [v4]
            try:
                v6 = _bind(socket.AF_INET6, ("::1", v4.getsockname()[1]), backlog, reuse)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE and port == 0:
                    v4.close()
                    continue
                if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                    return [v4]  # no IPv6 loopback on this machine
                v4.close()
                raise
            return [v4, v6]
        raise OSError(errno.EADDRINUSE, "no port free on both 127.0.0.1 and ::1")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        hint = " (use port=0 for a free port)" if exc.errno == errno.EADDRINUSE else ""
        raise OSError(exc.errno, f"cannot listen on {host!r} port {port}: {reason}{hint}") from exc


class _UnixListener(socket.socket):
    """A listening AF_UNIX socket that removes its socket file when it is closed, if the
    file at its path is still the one its bind made (never someone else's)."""

    made: tuple[int, int] | None = None  # (st_dev, st_ino) of the file bind created

    def close(self) -> None:
        made, self.made = self.made, None
        path = self.getsockname() if made is not None and self.fileno() >= 0 else None
        super().close()
        if made is None or not path:
            return
        try:
            st = os.stat(path)
            if (st.st_dev, st.st_ino) == made:
                os.unlink(path)
        except OSError as exc:  # already gone, or not ours to remove
            log.debug("socket file %r not removed: %s", path, exc)


def _unix_path(path: Any, host: Any, port: Any) -> str | None:
    """Check ``path=``: a filesystem path, or a Linux abstract name starting with NUL."""
    if path is None:
        return None
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError(
            f"path must be a str or os.PathLike naming a Unix socket file (or '\\0name' for "
            f"a Linux abstract socket), not {path!r}"
        )
    if not path or path == "\0":
        raise ValueError(f"path must name a Unix socket file or an abstract name, not {path!r}")
    if host != "127.0.0.1" or port != 0:
        raise ValueError(
            f"give either path= (a Unix socket) or host/port, not both: path={path!r}, "
            f"host={host!r}, port={port!r}"
        )
    return path


def _listen_unix(path: str, backlog: int) -> socket.socket:
    """Bind and listen on a Unix socket *path* (abstract if it starts with NUL)."""
    family = getattr(socket, "AF_UNIX", None)
    if family is None:
        raise OSError(errno.EAFNOSUPPORT, "Unix-domain sockets are not available here")
    sock = _UnixListener(family, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        if not path.startswith("\0"):
            st = os.stat(path)
            sock.made = (st.st_dev, st.st_ino)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        if exc.errno == errno.EADDRINUSE:
            hint = (" (another socket has this abstract name)" if path.startswith("\0")
                    else " (a file exists there: remove it or choose another path)")
        elif "too long" in reason:
            hint = f" ({len(os.fsencode(path))} bytes; Linux allows 107: use a shorter path)"
        else:
            hint = ""
        message = f"cannot listen on Unix socket {path!r}: {reason}{hint}"
        raise (OSError(exc.errno, message) if exc.errno else OSError(message)) from exc
    return sock


def _describe_address(host: str | None, port: int | None, path: str | None) -> str:
    """'127.0.0.1:8080', 'unix:/tmp/s.sock', or 'unix:@name' for an abstract socket."""
    if path is None:
        return f"[{host}]:{port}" if host and ":" in host else f"{host}:{port}"
    return "unix:" + ("@" + path[1:] if path.startswith("\0") else path)


# ---------------------------------------------------------------------------
# shared bookkeeping
# ---------------------------------------------------------------------------

_ServingT = TypeVar("_ServingT", bound="_ServingBase")


class _ServingBase:
    """The bookkeeping a fake server and the recording proxy (``embeddedserver.replay``) share:
    where they listen, the connections and failures recorded, the report ``check()``
    raises, the context manager, and the waits on the counts of accepted and finished
    connections.

    A subclass calls ``super().__init__()`` and ``_open_listeners()`` in its constructor,
    counts connections with ``_accepted_one()``/``_finished_one()``, records failures with
    ``_record()``, and provides ``stop()`` and ``__repr__``. It may override the wording
    hooks ``_report_head()`` and ``_still_busy()`` and the class attributes below.
    """

    #: The word for a connection served to its end, in ``wait_for_connections()`` messages.
    _finished_word = "finished"
    _log = log

    path: str | None
    host: str | None
    #: Where the server listens: ``(host, port)`` of each TCP listener, or the Unix path.
    addresses: list[tuple[str, int] | str]
    _port: int | None
    _listeners: list[socket.socket]
    _where: str

    def __init__(self) -> None:
        self.errors: list[Failure] = []
        self.connections: list[ConnectionRecord] = []
        self._lock = threading.Lock()
        # The condition waiters wait on is made by the first of them (making one costs
        # a measurable part of a server's start-up, and most servers have no waiter).
        self._changed: threading.Condition | None = None
        # The count lets the threads that count connections skip notify_all() (a
        # measurable cost per connection) when nobody waits.
        self._waiting = 0  # threads in wait_for_connections()/wait_idle()
        self._accepted = 0
        self._finished = 0

    def _open_listeners(
        self, host: str, port: int, path: str | None, backlog: int, blocking: bool = False
    ) -> None:
        """Listen on the Unix socket *path* if it is given, else on *host*/*port* (one
        listener left blocking with *blocking*, unless *host* is "localhost")."""
        self.path = path
        if path is None:
            self.host = host
            self._listeners = _listen_tcp(host, port, backlog, blocking)
            tcp: list[tuple[str, int]] = [s.getsockname()[:2] for s in self._listeners]
            self.addresses = list(tcp)
            self._port = tcp[0][1]
        else:
            self._listeners = [_listen_unix(path, backlog)]
            self.host = self._port = None
            self.addresses = [path]
        self._where = _describe_address(self.host, self._port, path)

    @property
    def port(self) -> int:
        """The TCP port clients connect to (port 0 given: the free port picked).

        Raises AttributeError for a Unix-socket server (``path=``), which has no port
        (``getattr(server, "port", None)`` is then None); use ``path`` or ``address``.
        """
        port = self._port
        if port is None:
            raise AttributeError(
                f"{self!r} listens on the Unix socket {self.path!r}: it has no port; "
                "use .path or .address"
            )
        return port

    @property
    def address(self) -> tuple[str, int] | str:
        """Where clients connect, as ``socket.connect`` takes it: ``(host, port)`` of the
        first listener for TCP, the path (str) for a Unix socket."""
        return self.addresses[0]

    def stop(self) -> None:
        raise NotImplementedError

    # -- context manager -----------------------------------------------------

    def __enter__(self: _ServingT) -> _ServingT:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        self.stop()
        if exc_type is None:
            self.check()
        elif exc is not None and self.errors and hasattr(exc, "add_note"):  # 3.11+
            # The block's own error wins, but the recorded failures often explain it
            # (a client error caused by a step that failed): keep them in view.
            exc.add_note(self.failure_report())

    # -- results -------------------------------------------------------------

    def check(self) -> None:
        """Raise AssertionError describing every failure recorded so far, if any."""
        __tracebackhide__ = True
        with self._lock:
            errors = list(self.errors)
        if errors:
            raise AssertionError(self.failure_report(errors))

    def failure_report(self, errors: Sequence[Failure] | None = None) -> str:
        """The text ``check()`` raises with."""
        if errors is None:
            with self._lock:
                errors = list(self.errors)
        body = [f"{n}) {f.message()}" for n, f in enumerate(errors, 1)]
        return "\n\n".join([self._report_head(len(errors)), *body])

    def _report_head(self, count: int) -> str:
        return f"{type(self).__name__} on {self._where}: {count} failure{'s' if count != 1 else ''}"

    def transcript(self) -> str:
        """Every connection so far, as readable text (see ``ConnectionRecord.render``)."""
        return render_transcript(self._records())

    def _records(self) -> list[ConnectionRecord]:
        with self._lock:
            return list(self.connections)

    def _record(self, failure: Failure) -> None:
        with self._lock:
            self.errors.append(failure)
        self._log.warning("%r: %s", self, failure.summary)

    # -- counting and waiting -------------------------------------------------

    def _accepted_one(self, number: int) -> None:
        """Count connection *number* as accepted (called by the one accepting thread)."""
        with self._lock:
            self._accepted = number
            if self._waiting:
                assert self._changed is not None
                self._changed.notify_all()

    def _finished_one(self) -> None:
        """Count one more connection as finished."""
        with self._lock:
            self._finished += 1
            if self._waiting:
                assert self._changed is not None
                self._changed.notify_all()

    def wait_for_connections(
        self, n: int = 1, timeout: float = DEFAULT_TIMEOUT, *, finished: bool = True
    ) -> None:
        """Wait until *n* connections have ended (or, with ``finished=False``, been
        accepted). Raises TimeoutError saying how many there were."""
        __tracebackhide__ = True
        with self._lock:
            done = self._wait_for(
                lambda: (self._finished if finished else self._accepted) >= n, timeout
            )
            count = self._finished if finished else self._accepted
        if not done:
            what = self._finished_word if finished else "accepted"
            raise TimeoutError(
                f"{count} of {n} connections {what} within {timeout} s on {self!r}"
            )

    def wait_idle(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until every connection accepted so far has ended. TimeoutError if not."""
        __tracebackhide__ = True
        with self._lock:
            done = self._wait_for(lambda: self._finished >= self._accepted, timeout)
            open_now = self._accepted - self._finished
        if not done:
            raise TimeoutError(f"{self!r} {self._still_busy(open_now)} after {timeout} s")

    def _still_busy(self, open_now: int) -> str:
        return "still serving a connection"

    def _wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        # Called holding the lock.
        self._waiting += 1
        try:
            if self._changed is None:
                self._changed = threading.Condition(self._lock)
            return self._changed.wait_for(predicate, timeout)
        finally:
            self._waiting -= 1
