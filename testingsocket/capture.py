"""Capturing the sockets that code you do not own creates: ``capture_sockets`` and its patch.

The model
---------
Code you do not own creates its own sockets; :func:`capture_sockets` swaps ``socket.socket``
for a stand-in while a ``with`` block runs, so that every new socket made by
``socket.socket(...)`` or ``socket.create_connection(...)`` anywhere in the process is a
``testingsocket.TestingSocket``, collected in a :class:`SocketCapture`. That patch is the one
piece of shared state of ``testingsocket`` and this module; it is reference-counted,
thread-safe and always undone. Sockets made from an existing descriptor (``accept()``,
``socketpair()``) stay plain.

The real ``socket.socket`` (the class ``TestingSocket`` builds on, the original even while a
capture is active) is named in ``_real``. This module logs under the name ``testingsocket``.

Sections: 1. SocketCapture and capture_sockets; 2. the patch of ``socket.socket``.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

from ._real import RealSocket
from .recording import TestingSocket

__all__ = ["SocketCapture", "capture_sockets"]

# A child of the "testingsocket" logger, as recording's is: that one name configures both.
logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# 1. SocketCapture and capture_sockets
# ---------------------------------------------------------------------------------------------


class SocketCapture(Sequence["TestingSocket"]):
    """The TestingSockets created while a :func:`capture_sockets` block runs, in order.

    A read-only, thread-safe sequence (``len``, indexing, iteration over a snapshot) that keeps
    its sockets after the block. ``setup``, if given, is called with each new socket before the
    code that created it gets it back, which is the moment to arm cues on a connection that a
    library opens and uses in one call. ``wait_for(n)`` waits until ``n`` sockets exist, for code
    that connects from another thread.

    A capture is entered once; nested captures each collect the sockets made while they are
    active (the outer one also sees those of the inner one). Captures are process-wide: a socket
    created by any thread during the block is collected.

    >>> with socket.create_server(("127.0.0.1", 0)) as listener:
    ...     with capture_sockets() as captured:
    ...         client = socket.create_connection(listener.getsockname())
    ...     client.sendall(b"hello")
    ...     client.close()
    >>> len(captured), captured[0].data_out
    (1, b'hello')
    """

    def __init__(self, setup: Callable[[TestingSocket], object] | None = None) -> None:
        self.setup = setup
        self._sockets: list[TestingSocket] = []
        self._changed = threading.Condition()
        self._entered = False

    def __enter__(self) -> SocketCapture:
        if self._entered:
            raise RuntimeError("a SocketCapture is entered once; make a new one for another block")
        self._entered = True
        _PATCH.add(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        _PATCH.remove(self)

    @overload
    def __getitem__(self, index: int) -> TestingSocket: ...

    @overload
    def __getitem__(self, index: slice) -> list[TestingSocket]: ...

    def __getitem__(self, index: int | slice) -> TestingSocket | list[TestingSocket]:
        with self._changed:
            return self._sockets[index]

    def __len__(self) -> int:
        with self._changed:
            return len(self._sockets)

    def __iter__(self) -> Iterator[TestingSocket]:
        with self._changed:
            return iter(list(self._sockets))

    def __repr__(self) -> str:
        return f"<SocketCapture of {len(self)} socket(s): {list(self)!r}>"

    def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[TestingSocket]:
        """Wait until at least ``count`` sockets were captured; return them.

        Raises TimeoutError, naming what arrived, if that takes longer than ``timeout`` seconds.

        >>> with socket.create_server(("127.0.0.1", 0)) as listener:
        ...     with capture_sockets() as captured:
        ...         client = socket.create_connection(listener.getsockname())
        ...         [first] = captured.wait_for(1)
        ...     client.close()
        >>> first is client
        True
        """
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._sockets) >= count, timeout):
                raise TimeoutError(
                    f"waited {timeout} s for {count} captured socket(s), "
                    f"got {len(self._sockets)}: {self._sockets!r}"
                )
            return list(self._sockets)

    def _collect(self, sock: TestingSocket) -> None:
        with self._changed:
            self._sockets.append(sock)
            self._changed.notify_all()


def capture_sockets(setup: Callable[[TestingSocket], object] | None = None) -> SocketCapture:
    """Turn every socket created during a ``with`` block into a TestingSocket, and collect them.

    Under the block, ``socket.socket(...)`` and ``socket.create_connection(...)`` (and with
    them http.client, smtplib, urllib, asyncio and most client libraries) make TestingSockets
    anywhere in the process. Sockets made from an existing descriptor (``accept()``,
    ``socketpair()``, ``fromfd()``) stay plain, so a server in the same process is left alone.
    Code that bound ``from socket import socket`` before the block is not affected.
    ``socket.socket`` is restored on exit, also when the block raises; nesting and threads are
    safe. ``setup(sock)`` runs on each new socket before it is handed out; see
    :class:`SocketCapture`.

    >>> import errno, http.client
    >>> with socket.create_server(("127.0.0.1", 0)) as listener:
    ...     host, port = listener.getsockname()
    ...     fail = OSError(errno.EPIPE, "gotcha")
    ...     with capture_sockets(setup=lambda s: s.break_on("X-Token:", fail)) as captured:
    ...         conn = http.client.HTTPConnection(host, port, timeout=10)
    ...         try:
    ...             conn.request("GET", "/", headers={"X-Token": "secret"})
    ...         except BrokenPipeError as exc:
    ...             print(exc)
    ...         conn.close()
    [Errno 32] gotcha
    >>> captured[0].sendall_calls, captured[0].data_out
    (1, b'')
    """
    return SocketCapture(setup)


# ---------------------------------------------------------------------------------------------
# 2. The patch of socket.socket: a stand-in, installed while captures are active
# ---------------------------------------------------------------------------------------------


def _make_socket(
    family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None
) -> Any:
    """What ``socket.socket(...)`` does while the patch is installed."""
    captures, original = _PATCH.snapshot()
    if fileno is not None or not captures:
        return original(family, type, proto, fileno)
    sock = TestingSocket(family, type, proto)
    try:
        for capture in captures:
            if capture.setup is not None:
                capture.setup(sock)
    except BaseException:
        sock.close()
        raise
    for capture in captures:
        capture._collect(sock)
    logger.debug("captured %r", sock)
    return sock


class _StandInMeta(type):
    """Metaclass of the stand-in: calling it makes sockets, and any real socket is an instance.

    The stand-in replaces ``socket.socket`` while captures are active; ``isinstance(s,
    socket.socket)`` must stay true for sockets made before, and ``socket.socket(...)`` must
    return TestingSockets (which ``type.__call__`` could not do).
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is _StandInSocket:
            return _make_socket(*args, **kwargs)
        return super().__call__(*args, **kwargs)  # a subclass defined while patched

    def __instancecheck__(cls, instance: object) -> bool:
        if cls is _StandInSocket:
            return isinstance(instance, RealSocket)
        return super().__instancecheck__(instance)

    def __subclasscheck__(cls, subclass: type) -> bool:
        if cls is _StandInSocket:
            return issubclass(subclass, RealSocket)
        return super().__subclasscheck__(subclass)


class _StandInSocket(RealSocket, metaclass=_StandInMeta):
    """Installed as ``socket.socket`` while a capture is active; see :func:`capture_sockets`."""

    _testingsocket_original = RealSocket


class _SocketPatch:
    """The process-wide patch of ``socket.socket``, counted by the captures that need it.

    It is installed when the first capture enters and undone when the last one leaves, in any
    order and from any thread. If someone else replaced ``socket.socket`` meanwhile, their
    object is left in place (with a warning) and the stand-in, should it come back, only
    delegates to the original while no capture is active.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: list[SocketCapture] = []
        self._original: type[socket.socket] = RealSocket

    def snapshot(self) -> tuple[list[SocketCapture], type[socket.socket]]:
        with self._lock:
            return list(self._active), self._original

    def add(self, capture: SocketCapture) -> None:
        with self._lock:
            if not self._active and socket.socket is not _StandInSocket:
                self._original = socket.socket
                socket.socket = _StandInSocket  # type: ignore[misc]
                logger.debug("socket.socket patched to capture TestingSockets")
            self._active.append(capture)

    def remove(self, capture: SocketCapture) -> None:
        with self._lock:
            if capture not in self._active:
                return  # exiting twice is harmless
            self._active.remove(capture)
            if self._active:
                return
            if socket.socket is _StandInSocket:
                socket.socket = self._original  # type: ignore[misc]
                logger.debug("socket.socket restored")
            else:
                logger.warning(
                    "socket.socket was replaced by %r while sockets were captured; leaving it",
                    socket.socket,
                )


_PATCH = _SocketPatch()
