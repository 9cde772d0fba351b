"""Where the servers listen: TCP on loopback (one or both families) and Unix-domain sockets.

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

``_runtime.BaseServer`` opens its listeners with ``open_listeners``; ``embeddedserver``
exports ``listen_tcp`` for a server of the user's own.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import socket
from typing import Any

from . import _args

__all__ = ["check_unix_path", "listen_tcp", "open_listeners"]

# The package's logger gets its NullHandler here (every module that serves imports this
# one); each part logs to a child named after its module.
logging.getLogger("embeddedserver").addHandler(logging.NullHandler())
log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# listeners
# ---------------------------------------------------------------------------


def _bind(family: int, address: tuple[Any, ...], backlog: int, reuse: bool) -> socket.socket:
    """A listening socket on *address*; port 0 picks a free port, past TIME_WAIT too."""
    try:
        return _bind_once(family, address, backlog, reuse)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE or address[1] != 0:
            raise
        # The kernel found no port free of every socket. A suite that runs thousands of
        # servers a minute, each closing its connections first, fills the ephemeral range
        # with connections in TIME_WAIT (60 s on Linux) on the listeners' old ports; such
        # a port can still be bound, with SO_REUSEADDR, once its listener is gone.
        found = _bind_past_time_wait(family, address, backlog, _spare_ports())
        if found is None:
            raise
        return found


#: How many ports of the ephemeral range one listener tries after bind(port 0) failed.
_PORT_TRIES = 512


def _spare_ports() -> list[int]:
    """Up to ``_PORT_TRIES`` ports of the ephemeral range, in random order."""
    low, high = 32768, 60999  # Linux's default range
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as source:
            low, high = map(int, source.read().split())
    except (OSError, ValueError):
        pass
    span = range(low, high + 1)
    return random.sample(span, min(_PORT_TRIES, len(span)))


def _bind_past_time_wait(
    family: int, address: tuple[Any, ...], backlog: int, ports: list[int]
) -> socket.socket | None:
    """A listener on the first of *ports* that SO_REUSEADDR lets it bind (a port held only
    by connections in TIME_WAIT; never one a live socket has), or None."""
    for port in ports:
        try:
            return _bind_once(family, (address[0], port, *address[2:]), backlog, True)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    return None


def _bind_once(
    family: int, address: tuple[Any, ...], backlog: int, reuse: bool
) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if reuse:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
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


def _listen_tcp(host: str, port: int, backlog: int) -> list[socket.socket]:
    """``listen_tcp`` for checked arguments."""
    # SO_REUSEADDR on every listener (on POSIX it never lets two listen on one port): a
    # given port is bound while old connections on it wait in TIME_WAIT, and so is a port
    # that _bind() picks past them once the kernel finds none free.
    reuse = port != 0 or os.name == "posix"
    try:
        if host != "localhost":
            family, address = _numeric_address(host, port) or _resolve(host, port)
            return [_bind(family, address, backlog, reuse)]
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


def check_unix_path(path: Any, host: Any, port: Any) -> str | None:
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


def open_listeners(
    host: str, port: int, path: str | None, backlog: int
) -> tuple[list[socket.socket], list[tuple[str, int] | str]]:
    """The listeners for a server, non-blocking, and the addresses they listen on: the Unix
    socket *path* if it is given, else *host*/*port* (arguments already checked), as
    ``(host, port)`` pairs (an IPv6 one without its flow info and scope id)."""
    if path is not None:
        return [_listen_unix(path, backlog)], [path]
    listeners = _listen_tcp(host, port, backlog)
    return listeners, [s.getsockname()[:2] for s in listeners]
