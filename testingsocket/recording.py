"""TestingSocket: a real socket that records what a client sends, counts calls, breaks on cue.

The model
---------
A :class:`TestingSocket` *is* a :class:`socket.socket` (a subclass, on a real descriptor), so
``select``, ``selectors``, asyncio, ``makefile()`` and ``ssl`` treat it like any other socket.
Only its Python-level I/O methods are wrapped. Every wrapped call:

1. is counted (``send_calls``, ``sendall_calls``, ``recv_calls``), also when it then raises;
2. meets the faults armed on the socket: a cue, a receive limit, a delay, a short write;
3. on success, appends the bytes that really moved to ``data_out`` or ``data_in``.

A *cue* fires when its bytes appear in the stream: for a send, in the tail of everything sent so
far followed by the data of the call in progress (so a cue may straddle two calls); the call then
raises and sends nothing. A receive cue is checked against what was received, after the read.

Code you do not own creates its own sockets; :func:`capture_sockets` swaps ``socket.socket``
for a stand-in while a ``with`` block runs, so that every new socket made by
``socket.socket(...)`` or ``socket.create_connection(...)`` anywhere in the process is a
TestingSocket, collected in a :class:`SocketCapture`. Both live in ``testingsocket.capture``,
with that patch (the one piece of shared state, reference-counted, thread-safe and always
undone).

What is not seen: I/O the operating system does on the descriptor directly (``os.sendfile`` in
``loop.sock_sendfile``, ``os.write(sock.fileno())``), and everything after ``ssl`` wrapping,
because ``SSLContext.wrap_socket`` moves the descriptor to a new ``ssl.SSLSocket`` and detaches
the original (see :class:`TestingSocket`).

Sections: 1. argument checks; 2. cues; 3. TestingSocket.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, TypedDict, TypeVar, overload

from ._real import RealSocket

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

    #: A socket address as ``socket.socket`` takes it (typeshed's ``_socket._Address``).
    _Address: TypeAlias = tuple[Any, ...] | str | ReadableBuffer

__all__ = ["Cue", "TestingSocket"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T", bound="TestingSocket")

_ExcArg = BaseException | type[BaseException]

_DEFAULTS = (socket.AF_INET, socket.SOCK_STREAM, 0)


class _Records(TypedDict):
    """The seed-compatible ``TestingSocket._data``: the records, and the latest send cue."""

    data_out: bytearray
    send_calls: int
    sendall_calls: int
    cue: bytes | None
    throw: _ExcArg | None
    data_in: bytearray
    recv_calls: int


class _SendableFile(Protocol):
    """What ``sendfile`` reads from: a file opened in binary mode."""

    def read(self, size: int, /) -> bytes: ...

    def seek(self, offset: int, /) -> object: ...


# ---------------------------------------------------------------------------------------------
# 1. Argument checks: "you misused the API" is a TypeError/ValueError raised at once
# ---------------------------------------------------------------------------------------------


def _as_pattern(cue: object, method: str) -> bytes:
    if isinstance(cue, str):
        pattern = cue.encode("utf-8")
    elif isinstance(cue, bytes | bytearray | memoryview):
        pattern = bytes(cue)
    else:
        raise TypeError(
            f"{method}() cue must be a str (sent as UTF-8) or bytes, not {cue!r} "
            f"of type {type(cue).__name__}"
        )
    if not pattern:
        raise ValueError(f"{method}() cue must not be empty: an empty cue would match every call")
    return pattern


def _as_exception(exc: object, method: str) -> _ExcArg:
    if isinstance(exc, BaseException):
        return exc
    if isinstance(exc, type) and issubclass(exc, BaseException):
        return exc
    raise TypeError(
        f"{method}() exc must be an exception instance or class such as "
        f"OSError(errno.EPIPE, 'gotcha') or ConnectionResetError, not {exc!r}"
    )


def _as_count(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, not {value!r}")
    return value


def _as_delay(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {value!r}")
    if not value >= 0:  # also rejects NaN
        raise ValueError(f"{name} must be >= 0 seconds, not {value!r}")
    return float(value)


def _byte_view(data: ReadableBuffer) -> memoryview:
    view = memoryview(data)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def _trim(views: list[memoryview], limit: int) -> list[memoryview]:
    """The leading ``limit`` bytes of a scatter/gather list, as views."""
    trimmed = []
    for view in views:
        if limit <= 0:
            break
        trimmed.append(view[:limit])
        limit -= len(trimmed[-1])
    return trimmed


# ---------------------------------------------------------------------------------------------
# 2. Cues
# ---------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Cue:
    """A fault armed on a :class:`TestingSocket`, as returned by ``break_on``/``break_on_receive``.

    ``pattern`` is the cue as bytes, ``exc`` what is raised, ``once`` whether the cue is removed
    after firing, ``direction`` ``"send"`` or ``"receive"``, and ``fired`` counts how often it
    fired, so a test can assert that its fault was really hit.

    >>> sock, peer = TestingSocket.pair()
    >>> cue = sock.break_on(b"QUIT", ConnectionResetError, once=True)
    >>> cue.fired, cue in sock.cues
    (0, True)
    >>> sock.close(); peer.close()
    """

    pattern: bytes
    exc: _ExcArg
    once: bool = False
    direction: Literal["send", "receive"] = "send"
    fired: int = 0


def _earliest_match(cues: list[Cue], history: bytearray, data: bytes) -> Cue | None:
    """The cue whose first occurrence touching ``data`` ends earliest in the stream.

    Only the last ``len(pattern) - 1`` bytes of ``history`` are searched with ``data``: any match
    found there involves ``data``, and a cue seen whole in older data already had its chance.
    """
    best: Cue | None = None
    best_end = 0
    for cue in cues:
        keep = min(len(cue.pattern) - 1, len(history))
        tail = bytes(history[len(history) - keep :])
        index = (tail + data).find(cue.pattern)
        if index >= 0 and (best is None or index + len(cue.pattern) - keep < best_end):
            best, best_end = cue, index + len(cue.pattern) - keep
    return best


# A fault armed with an OSError class raises what the kernel would: cls(code, os.strerror(code))
# with the errno below, so a client that reads e.errno or e.args[0] (redis-py does) sees a real
# failure, not an OSError with no args. A plain OSError gets EIO, the generic I/O error. A
# TimeoutError (socket.timeout) is raised as a socket's own timeout is: TimeoutError("timed
# out"), no errno. Other classes (ssl.SSLError, socket.gaierror, user subclasses) are made
# without arguments, as before: their args mean something else, or their __init__ is theirs.
_KERNEL_ERRNO: dict[type[BaseException], int] = {
    ConnectionResetError: errno.ECONNRESET,
    BrokenPipeError: errno.EPIPE,
    ConnectionAbortedError: errno.ECONNABORTED,
    ConnectionRefusedError: errno.ECONNREFUSED,
    BlockingIOError: errno.EAGAIN,
    InterruptedError: errno.EINTR,
    OSError: errno.EIO,
}


def _to_raise(exc: _ExcArg) -> BaseException:
    """The exception a fault raises: an instance as it is, a class as a new instance."""
    if not isinstance(exc, type):
        # Drop the traceback of an earlier firing, or a repeated cue grows it every time.
        return exc.with_traceback(None)
    if exc is TimeoutError:
        return TimeoutError("timed out")
    code = _KERNEL_ERRNO.get(exc)
    return exc() if code is None else exc(code, os.strerror(code))


# ---------------------------------------------------------------------------------------------
# 3. TestingSocket
# ---------------------------------------------------------------------------------------------


class TestingSocket(RealSocket):
    """A real socket that records what goes through it, counts calls and raises on cue.

    Make one with ``TestingSocket.pair()`` (a socketpair: the testing socket and its peer), with
    ``TestingSocket(sock=connected)`` to take over an existing socket (its descriptor and
    timeout; ``connected`` is detached and must not be used again), with ``host=``/``port=`` to
    connect at once, or like ``socket.socket(family, type, proto, fileno)``. With a ``fileno``
    and the default family/type/proto, those are read from the descriptor.

    What callers read (also after close): ``data_out``/``data_in`` (bytes that really moved),
    ``send_calls`` (send, sendto, sendmsg, sendfile), ``sendall_calls``, ``recv_calls`` (recv,
    recv_into, recvfrom, recvfrom_into, recvmsg, recvmsg_into), ``cues``. A call is counted even
    when it raises. ``MSG_PEEK`` reads are counted but not recorded. The seed-compatible
    ``_data`` dict holds the same records under ``data_out``, ``send_calls``, ``sendall_calls``,
    ``data_in``, ``recv_calls``, plus ``cue``/``throw``: the latest send cue (bytes) and its
    exception, or ``None`` (a mirror; arm cues with ``breakOn``, not by writing the dict).

    What callers arm (changeable mid-test): ``break_on``/``breakOn`` and ``break_on_receive``
    (cues), ``break_receive_after``/``eof_after`` (a receive limit), ``clear_breaks``, and the
    attributes ``max_send`` (short writes), ``send_delay``/``recv_delay`` (slow peer; a blocking
    ``time.sleep`` before the call, which also stalls an asyncio loop).

    ``sendall`` is a loop of real ``send`` calls, so ``data_out`` holds exactly what was sent
    even when it fails midway; with a timeout each ``send`` of the loop gets the full timeout.

    ssl: ``SSLContext.wrap_socket(testing_socket)`` works; like every wrapped socket, this one is
    detached and the new ``ssl.SSLSocket`` owns the descriptor, so the records stop at the
    wrap (a STARTTLS prelude is recorded, the TLS traffic is not; OpenSSL writes to the
    descriptor directly, so it could only ever be ciphertext).

    >>> sock, peer = TestingSocket.pair()
    >>> sock.sendall(b"GET / HTTP/1.1\\r\\n\\r\\n")
    >>> peer.recv(100)
    b'GET / HTTP/1.1\\r\\n\\r\\n'
    >>> b"GET" in sock._data["data_out"], sock.sendall_calls
    (True, 1)
    >>> sock.close(); peer.close()
    """

    __test__ = False  # its name starts with "Test": tell pytest it is not a test class

    def __init__(
        self,
        family: int = socket.AF_INET,
        type: int = socket.SOCK_STREAM,
        proto: int = 0,
        fileno: int | None = None,
        sock: socket.socket | None = None,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        if (host is None) != (port is None):
            raise TypeError(f"TestingSocket() needs both host and port, got {host=!r}, {port=!r}")
        timeout: float | None = None
        if sock is not None:
            if fileno is not None:
                raise TypeError("TestingSocket() takes sock= or fileno=, not both")
            if isinstance(sock, ssl.SSLSocket) or not isinstance(sock, RealSocket):
                raise TypeError(
                    f"TestingSocket(sock=...) takes a plain socket.socket, not {sock!r}; "
                    "wrap the TestingSocket in ssl instead"
                )
            family, type, proto = sock.family, sock.type, sock.proto
            timeout = sock.gettimeout()
            fileno = sock.detach()
        elif fileno is not None and (family, type, proto) == _DEFAULTS:
            family = type = proto = -1  # read them from the descriptor
        super().__init__(family, type, proto, fileno)
        self._lock = threading.Lock()
        self._data: _Records = {
            "data_out": bytearray(),
            "send_calls": 0,
            "sendall_calls": 0,
            "cue": None,
            "throw": None,
            "data_in": bytearray(),
            "recv_calls": 0,
        }
        self._send_cues: list[Cue] = []
        self._recv_cues: list[Cue] = []
        self._recv_limit: tuple[int, _ExcArg | None] | None = None
        self._max_send: int | None = None
        self._send_delay = 0.0
        self._recv_delay = 0.0
        if sock is not None:
            self.settimeout(timeout)
        if host is not None and port is not None:
            try:
                self.connect((host, port))
            except BaseException:
                self.close()
                raise

    @classmethod
    def pair(cls: type[_T]) -> tuple[_T, socket.socket]:
        """Return ``(testing_socket, peer)``, connected through ``socket.socketpair()``.

        The peer is a plain socket: what the testing socket sends, the peer receives. Close both.

        >>> sock, peer = TestingSocket.pair()
        >>> peer.sendall(b"220 ready\\r\\n")
        >>> sock.recv(100), sock.recv_calls
        (b'220 ready\\r\\n', 1)
        >>> sock.close(); peer.close()
        """
        left, right = socket.socketpair()
        try:
            return cls(sock=left), right
        except BaseException:
            left.close()
            right.close()
            raise

    # -- the records ---------------------------------------------------------------------------

    @property
    def data_out(self) -> bytes:
        """All bytes sent so far, by every send method (a copy)."""
        return bytes(self._data["data_out"])

    @property
    def data_in(self) -> bytes:
        """All bytes received so far, by every receive method except MSG_PEEK (a copy)."""
        return bytes(self._data["data_in"])

    @property
    def send_calls(self) -> int:
        """Calls of send, sendto, sendmsg (and the sends of sendfile); not sendall."""
        return int(self._data["send_calls"])

    @property
    def sendall_calls(self) -> int:
        """Calls of sendall."""
        return int(self._data["sendall_calls"])

    @property
    def recv_calls(self) -> int:
        """Calls of recv, recv_into, recvfrom, recvfrom_into, recvmsg and recvmsg_into."""
        return int(self._data["recv_calls"])

    @property
    def cues(self) -> tuple[Cue, ...]:
        """The armed cues, send cues first, each in the order it was armed."""
        with self._lock:
            return (*self._send_cues, *self._recv_cues)

    # -- arming faults ---------------------------------------------------------------------------

    def break_on(self, cue: str | bytes, exc: _ExcArg, *, once: bool = False) -> Cue:
        """Make the send call that completes ``cue`` in the sent stream raise ``exc``.

        The stream is everything sent so far followed by the data of the call in progress, so
        the cue may straddle calls. The failing call sends nothing. ``cue`` is bytes or a str
        (UTF-8 encoded). ``exc`` is an exception instance (raised as is) or class, raised as a
        new instance each time; a socket error class gets the errno and message the kernel
        gives (``ConnectionResetError`` is ``ConnectionResetError(errno.ECONNRESET, 'Connection
        reset by peer')``; ``BrokenPipeError`` EPIPE, ``ConnectionAbortedError`` ECONNABORTED,
        ``ConnectionRefusedError`` ECONNREFUSED, ``BlockingIOError`` EAGAIN,
        ``InterruptedError`` EINTR, ``OSError`` EIO), and ``TimeoutError`` (``socket.timeout``)
        is ``TimeoutError('timed out')``, as a socket timeout is; other classes are made
        without arguments. With ``once=True`` the cue is removed after firing; otherwise it
        fires every time a call completes it again. Several cues may be armed; when one call
        completes several, the one that ends first in the stream fires.

        Raises TypeError for a cue that is not str/bytes or an ``exc`` that is not an exception,
        ValueError for an empty cue.

        >>> import errno
        >>> sock, peer = TestingSocket.pair()
        >>> _ = sock.break_on("byte-me", OSError(errno.EPIPE, "gotcha"))
        >>> sock.sendall(b"byte")
        >>> sock.sendall(b"-me!")
        Traceback (most recent call last):
        BrokenPipeError: [Errno 32] gotcha
        >>> sock.data_out
        b'byte'
        >>> sock.close(); peer.close()
        """
        armed = Cue(_as_pattern(cue, "break_on"), _as_exception(exc, "break_on"), once, "send")
        with self._lock:
            self._send_cues.append(armed)
            self._mirror_legacy_cue()
        return armed

    def breakOn(self, cue: str | bytes, exc: _ExcArg, *, once: bool = False) -> Cue:
        """Seed-compatible name of :meth:`break_on`.

        >>> import errno
        >>> sock, peer = TestingSocket.pair()
        >>> _ = sock.breakOn("byte-me", OSError(errno.EPIPE, "gotcha"))
        >>> sock._data["cue"], sock._data["throw"]
        (b'byte-me', BrokenPipeError(32, 'gotcha'))
        >>> sock.close(); peer.close()
        """
        return self.break_on(cue, exc, once=once)

    def break_on_receive(self, cue: str | bytes, exc: _ExcArg, *, once: bool = False) -> Cue:
        """Make the receive call that brings ``cue`` into the received stream raise ``exc``.

        The bytes that call read are recorded in ``data_in`` (they left the kernel) but not
        returned; a ``recv_into`` has already written them into its buffer. Arguments, ``once``
        and errors as for :meth:`break_on`.

        >>> sock, peer = TestingSocket.pair()
        >>> _ = sock.break_on_receive(b"RST", ConnectionResetError)
        >>> peer.sendall(b"+OK RST")
        >>> sock.recv(100)
        Traceback (most recent call last):
        ConnectionResetError: [Errno ...] Connection reset by peer
        >>> sock.close(); peer.close()
        """
        method = "break_on_receive"
        armed = Cue(_as_pattern(cue, method), _as_exception(exc, method), once, "receive")
        with self._lock:
            self._recv_cues.append(armed)
        return armed

    def break_receive_after(self, nbytes: int, exc: _ExcArg) -> None:
        """Deliver at most ``nbytes`` received bytes in total; then every receive raises ``exc``.

        Reads are shortened so that nothing beyond the limit leaves the kernel. Replaces any
        earlier receive limit. ``exc`` is raised as for :meth:`break_on`. Raises
        TypeError/ValueError for a bad ``nbytes`` or ``exc``.

        >>> sock, peer = TestingSocket.pair()
        >>> sock.break_receive_after(3, ConnectionResetError)
        >>> peer.sendall(b"abcdef")
        >>> sock.recv(100)
        b'abc'
        >>> sock.recv(100)
        Traceback (most recent call last):
        ConnectionResetError: [Errno ...] Connection reset by peer
        >>> sock.close(); peer.close()
        """
        limit = _as_count(nbytes, "break_receive_after() nbytes", 0)
        failure = _as_exception(exc, "break_receive_after")
        with self._lock:
            self._recv_limit = (limit, failure)

    def eof_after(self, nbytes: int) -> None:
        """Deliver at most ``nbytes`` received bytes in total; then every receive returns EOF.

        EOF is what a closed peer gives: ``b""`` from recv, 0 from recv_into, ``(b"", None)``
        from recvfrom. Replaces any earlier receive limit.

        >>> sock, peer = TestingSocket.pair()
        >>> sock.eof_after(2)
        >>> peer.sendall(b"abc")
        >>> sock.recv(100), sock.recv(100)
        (b'ab', b'')
        >>> sock.close(); peer.close()
        """
        limit = _as_count(nbytes, "eof_after() nbytes", 0)
        with self._lock:
            self._recv_limit = (limit, None)

    def clear_breaks(self) -> None:
        """Disarm every cue (send and receive) and the receive limit. Records are kept.

        >>> sock, peer = TestingSocket.pair()
        >>> _ = sock.break_on(b"x", OSError)
        >>> sock.clear_breaks()
        >>> sock.send(b"x"), sock.cues
        (1, ())
        >>> sock.close(); peer.close()
        """
        with self._lock:
            self._send_cues.clear()
            self._recv_cues.clear()
            self._recv_limit = None
            self._mirror_legacy_cue()

    @property
    def max_send(self) -> int | None:
        """At most this many bytes per ``send``/``sendto``/``sendmsg`` on a stream (None: no cap).

        Short writes let a test check a client's partial-write handling. ``sendall`` still sends
        everything, in real sends of at most ``max_send`` bytes.

        >>> sock, peer = TestingSocket.pair()
        >>> sock.max_send = 2
        >>> sock.send(b"hello")
        2
        >>> sock.close(); peer.close()
        """
        return self._max_send

    @max_send.setter
    def max_send(self, value: int | None) -> None:
        self._max_send = None if value is None else _as_count(value, "max_send", 1)

    @property
    def send_delay(self) -> float:
        """Seconds every send call sleeps before sending (0: none)."""
        return self._send_delay

    @send_delay.setter
    def send_delay(self, value: float) -> None:
        self._send_delay = _as_delay(value, "send_delay")

    @property
    def recv_delay(self) -> float:
        """Seconds every receive call sleeps before receiving (0: none)."""
        return self._recv_delay

    @recv_delay.setter
    def recv_delay(self, value: float) -> None:
        self._recv_delay = _as_delay(value, "recv_delay")

    # -- the send side ---------------------------------------------------------------------------

    def send(self, data: ReadableBuffer, flags: int = 0) -> int:
        view = self._before_send(_byte_view(data), "send_calls")
        sent = super().send(self._cap(view), flags)
        self._record_out(view[:sent])
        return sent

    def sendall(self, data: ReadableBuffer, flags: int = 0) -> None:
        view = self._before_send(_byte_view(data), "sendall_calls")
        chunk = self._max_send if self.type == socket.SOCK_STREAM else None
        while view:
            sent = super().send(view[:chunk] if chunk else view, flags)
            self._record_out(view[:sent])
            view = view[sent:]

    @overload
    def sendto(self, data: ReadableBuffer, address: _Address, /) -> int: ...

    @overload
    def sendto(self, data: ReadableBuffer, flags: int, address: _Address, /) -> int: ...

    def sendto(self, data: ReadableBuffer, *flags_address: Any) -> int:
        # The overloads above are the signature; the arguments go on as they came.
        view = self._before_send(_byte_view(data), "send_calls")
        sent = super().sendto(self._cap(view), *flags_address)
        self._record_out(view[:sent])
        return sent

    def sendmsg(
        self,
        buffers: Iterable[ReadableBuffer],
        ancdata: Iterable[tuple[int, int, ReadableBuffer]] = (),
        flags: int = 0,
        address: _Address | None = None,
        /,
    ) -> int:
        views = [_byte_view(buffer) for buffer in buffers]
        whole = memoryview(b"".join(views))
        self._before_send(whole, "send_calls")
        if self._max_send is not None and self.type == socket.SOCK_STREAM:
            views = _trim(views, self._max_send)
        sent = super().sendmsg(views, ancdata, flags, address)
        self._record_out(whole[:sent])
        return sent

    def sendfile(self, file: _SendableFile, offset: int = 0, count: int | None = None) -> int:
        # The base class hands the descriptor to os.sendfile, which this class cannot see; the
        # send-based fallback goes through self.send and is recorded.
        return int(self._sendfile_use_send(file, offset, count))  # type: ignore[attr-defined]

    def _cap(self, view: memoryview) -> memoryview:
        limit = self._max_send
        return view[:limit] if limit is not None and self.type == socket.SOCK_STREAM else view

    def _before_send(
        self, view: memoryview, counter: Literal["send_calls", "sendall_calls"]
    ) -> memoryview:
        with self._lock:
            self._data[counter] += 1
            cue = (
                _earliest_match(self._send_cues, self._data["data_out"], view.tobytes())
                if self._send_cues
                else None
            )
            if cue is not None:
                self._spend(cue, self._send_cues)
                self._mirror_legacy_cue()
        if cue is not None:
            self._raise(cue)
        if self._send_delay:
            time.sleep(self._send_delay)
        return view

    def _record_out(self, sent: memoryview) -> None:
        with self._lock:
            self._data["data_out"] += sent

    def _mirror_legacy_cue(self) -> None:
        latest = self._send_cues[-1] if self._send_cues else None
        self._data["cue"] = None if latest is None else latest.pattern
        self._data["throw"] = None if latest is None else latest.exc

    # -- the receive side ------------------------------------------------------------------------

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        allowed = self._before_receive(bufsize)
        if allowed is None:
            return b""
        data = super().recv(allowed, flags)
        self._record_in(memoryview(data), flags)
        return data

    def recv_into(self, buffer: WriteableBuffer, nbytes: int = 0, flags: int = 0) -> int:
        view = _byte_view(buffer)
        allowed = self._before_receive(nbytes or len(view))
        if allowed is None:
            return 0
        received = super().recv_into(view, allowed, flags) if allowed else 0
        self._record_in(view[:received], flags)
        return received

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        allowed = self._before_receive(bufsize)
        if allowed is None:
            return b"", None
        data, address = super().recvfrom(allowed, flags)
        self._record_in(memoryview(data), flags)
        return data, address

    def recvfrom_into(
        self, buffer: WriteableBuffer, nbytes: int = 0, flags: int = 0
    ) -> tuple[int, Any]:
        view = _byte_view(buffer)
        allowed = self._before_receive(nbytes or len(view))
        if allowed is None:
            return 0, None
        received, address = super().recvfrom_into(view, allowed, flags)
        self._record_in(view[:received], flags)
        return received, address

    def recvmsg(
        self, bufsize: int, ancbufsize: int = 0, flags: int = 0, /
    ) -> tuple[bytes, list[tuple[int, int, bytes]], int, Any]:
        allowed = self._before_receive(bufsize)
        if allowed is None:
            return b"", [], 0, None
        data, ancdata, msg_flags, address = super().recvmsg(allowed, ancbufsize, flags)
        self._record_in(memoryview(data), flags)
        return data, ancdata, msg_flags, address

    def recvmsg_into(
        self, buffers: Iterable[WriteableBuffer], ancbufsize: int = 0, flags: int = 0, /
    ) -> tuple[int, list[tuple[int, int, bytes]], int, Any]:
        views = [_byte_view(buffer) for buffer in buffers]
        allowed = self._before_receive(sum(len(view) for view in views))
        if allowed is None:
            return 0, [], 0, None
        views = _trim(views, allowed)
        received, ancdata, msg_flags, address = super().recvmsg_into(views, ancbufsize, flags)
        self._record_in(memoryview(b"".join(views))[:received], flags)
        return received, ancdata, msg_flags, address

    def _before_receive(self, requested: int) -> int | None:
        """Count the call; return how many bytes it may read, or None to give EOF."""
        with self._lock:
            self._data["recv_calls"] += 1
            limit = self._recv_limit
            received = len(self._data["data_in"])
        if self._recv_delay:
            time.sleep(self._recv_delay)
        if limit is None:
            return requested
        nbytes, exc = limit
        if received < nbytes:
            return min(requested, nbytes - received)
        if exc is None:
            return None
        logger.debug("receive limit of %d bytes reached on %r: raising %r", nbytes, self, exc)
        raise _to_raise(exc)

    def _record_in(self, received: memoryview, flags: int) -> None:
        if flags & socket.MSG_PEEK:
            return
        with self._lock:
            data_in = self._data["data_in"]
            cue = (
                _earliest_match(self._recv_cues, data_in, received.tobytes())
                if self._recv_cues
                else None
            )
            data_in += received
            if cue is not None:
                self._spend(cue, self._recv_cues)
        if cue is not None:
            self._raise(cue)

    # -- firing ----------------------------------------------------------------------------------

    @staticmethod
    def _spend(cue: Cue, armed: list[Cue]) -> None:
        cue.fired += 1
        if cue.once:
            armed.remove(cue)

    def _raise(self, cue: Cue) -> None:
        logger.debug("%s cue %r fired on %r: raising %r", cue.direction, cue.pattern, self, cue.exc)
        raise _to_raise(cue.exc)
