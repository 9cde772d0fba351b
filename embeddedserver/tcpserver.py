"""TcpServer: a fake TCP server whose script the test grows while it runs; no pytest needed.

The ``tcpserver`` fixture of the pytest plugin is one of these, but it works the same in
unittest, asyncio code or a plain ``with`` block::

    with TcpServer(timeout=5) as server:
        server.expect_connect()
        server.expect_bytes(b"ping")
        server.send_bytes(b"pong")
        ...                        # the client connects to server.service_port
        server.join()              # failures, if any, are raised here

Model
-----
Each call such as ``expect_bytes()`` appends one step, at any time, before or after the
client acts. ``TcpServer`` is a ``_runtime.BaseServer``: it listens on 127.0.0.1 and ::1
(one port), or on a Unix socket, and its one accept thread also serves, running the steps
in order. ``expect_connect()`` takes the next client admitted; every other step is an
engine step (``Expect``, ``ExpectFrame``, ``ExpectClose``, ``Send``, ``SendFrame``,
``Close``) appended to that client's growing ``ScriptRunner``, the same interpreter as
``CommandServer``'s. Whenever the thread waits (for a step to be added, for a client, or
inside a step for the client) it also watches the listeners and admits who connects, so a
second client is noticed at once, while the first is still being served. This module adds
the growing plan and the admission; ``_tcpmessages`` words the failures in terms of the
call that added the step.

The first failure stops the server and is reported once, through the *fail* callable
(default: raise AssertionError; the plugin passes ``pytest.fail``): by ``join()`` or by
``close()`` (the ``with`` exit), which first adds ``expect_disconnect()`` if a client is
still connected in the script. A script that cannot make sense (a first step other than
``expect_connect()``, ``expect_disconnect()`` with no client connected) fails at once, at
the line that added the step.

``join()`` blocks in a plain function. Called where an event loop is running it cannot
block, since the client runs on that loop: it returns an awaitable, and ``await
server.join()`` waits without blocking the loop. Both cases return a ``Join`` (always
awaitable); a ``Join`` created in a coroutine and never awaited is reported by ``close()``.
The loop may be asyncio's or trio's (anyio runs on either), told apart at run time with no
dependency on either (``_async_library``): the waiter registers a wake-up that the server
thread calls thread-safely (``call_soon_threadsafe`` / ``TrioToken.run_sync_soon``), and a
timer of that loop for ``expect_connect()``'s deadline. Under trio the wait is cancellable
like any other (``move_on_after``, a cancelled nursery).

Unread data: a client that closes while bytes the server sent are still unread has a bug.
Seen at the transport level, such a close reaches the server as a reset; for asyncio
stream clients watched by ``embeddedserver.factories`` the count of what each ``StreamReader``
handed to the application is exact.

Sections: helpers - TcpServer - join.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import select
import socket
import ssl
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, NoReturn

from . import _args
from ._args import TCPSERVER_TIMEOUT
from ._connection import Connection, ServerStopped, StepFailed
from ._runner import ScriptRunner
from ._runtime import BaseServer
from ._tcpmessages import Planned, StreamClient, explain, unread_failure
from ._text import format_address
from .record import ConnectionRecord, Failure, show_bytes
from .steps import Close, Expect, ExpectClose, ExpectFrame, Send, SendFrame

__all__ = ["Join", "TcpServer"]

log = logging.getLogger(__name__)

_RDHUP = getattr(select, "POLLRDHUP", 0)

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _raise_assertion(message: str) -> NoReturn:
    __tracebackhide__ = True
    raise AssertionError(message)


def _client_gone(sock: socket.socket) -> bool:
    """True if the client closed or reset *sock*, checked without reading from it."""
    if _RDHUP:
        poller = select.poll()
        poller.register(sock, _RDHUP | select.POLLHUP | select.POLLERR)
        return bool(poller.poll(0))
    try:  # no POLLRDHUP (not Linux): a peek sees EOF when no data is in the way
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _async_library() -> str | None:
    """``"asyncio"`` or ``"trio"``: the event loop running in this thread (anyio runs on
    one of them), or None in a plain function. Found without importing either: trio
    counts only if something imported it already, and only while a trio run is current."""
    try:
        asyncio.get_running_loop()
        return "asyncio"
    except RuntimeError:
        pass
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_trio_token()
            return "trio"
        except RuntimeError:  # no trio run in this thread
            pass
    return None


#: How long ``expect_disconnect()`` waits, at most, for the reset that answers bytes a
#: client closed without reading, once it has read the client's EOF with those bytes still
#: unacknowledged (the reset is on its way; a loaded machine can delay it by milliseconds).
_RESET_GRACE = 0.5
_RESET_SLICE = 0.005


def _unacknowledged(sock: socket.socket) -> int:
    """Bytes sent on *sock* that the peer's kernel has not acknowledged (Linux SIOCOUTQ);
    0 where the platform cannot tell."""
    try:
        import fcntl
        import termios

        out = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except (ImportError, AttributeError, OSError):
        return 0
    return int.from_bytes(out, sys.byteorder, signed=True)


def _pending_reset(sock: socket.socket) -> int:
    """The socket's error (ECONNRESET for a client that closed with data unread), once the
    peer has either acknowledged every byte sent (0: it read or buffered them) or reset.

    A closed client's kernel answers data with a reset, not an acknowledgement, so while
    bytes stay unacknowledged the verdict waits for the one or the other. A reset wakes
    the wait at once (POLLERR); an acknowledgement raises no event, so the wait is cut in
    short slices that re-read the count, bounded by ``_RESET_GRACE`` in all.
    """
    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if error or not _unacknowledged(sock):
        return error
    poller = select.poll()
    poller.register(sock, select.POLLERR | select.POLLHUP)
    deadline = time.monotonic() + _RESET_GRACE
    while (left := deadline - time.monotonic()) > 0:
        if poller.poll(int(min(left, _RESET_SLICE) * 1000) + 1) or not _unacknowledged(sock):
            break
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)


def _sent_since_client_spoke(record: ConnectionRecord) -> bytes:
    chunks = []
    for event in reversed(record.events):
        if event.kind == "recv" and event.data:  # an EOF (expect_disconnect's b"") says nothing
            break
        if event.kind == "send":
            chunks.append(event.data)
    return b"".join(reversed(chunks))


# ---------------------------------------------------------------------------
# TcpServer
# ---------------------------------------------------------------------------


@dataclass
class _Accepted:
    """A connection as the acceptor took it. Only this module closes ``sock`` (under the
    server lock); the engine's Connection works on a duplicate descriptor."""

    sock: socket.socket
    record: ConnectionRecord
    arrived: float  # monotonic time the accept loop took it


class TcpServer(BaseServer):
    """A fake TCP server driven by a script the test appends to while it runs.

    Callers use ``service_port`` (or ``address``, ``url``) and the step methods
    ``expect_connect``, ``expect_bytes``, ``send_bytes``, ``expect_frame``, ``send_frame``,
    ``expect_disconnect``, ``disconnect``, then ``join()``; ``transcript()``, ``failure``
    and ``close()``/``stop()``.
    Each ``timeout`` argument defaults to the server's *timeout* (seconds).

    *fail(message)* reports a failure; the fixtures pass ``pytest.fail``, the default
    raises AssertionError. It listens on 127.0.0.1 and ::1 (one port), or on the Unix
    socket *path*; with *ssl_context* (a server-side ``ssl.SSLContext``) every client
    speaks TLS, the handshake run when ``expect_connect()`` takes it. Works without
    pytest, as a context manager::

    >>> import socket
    >>> with TcpServer() as server:
    ...     server.expect_connect(); server.expect_bytes(b"ping"); server.send_bytes(b"pong")
    ...     with socket.create_connection(("127.0.0.1", server.service_port)) as sock:
    ...         sock.sendall(b"ping")
    ...         sock.makefile("rb").read(4)
    b'pong'
    """

    _uses_kick = True  # a step added while the server thread idles kicks it

    def __init__(
        self,
        *,
        timeout: float = TCPSERVER_TIMEOUT,
        name: str = "tcpserver",
        fail: Callable[[str], NoReturn] | None = None,
        path: str | os.PathLike[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.timeout = _args.timeout(timeout)
        self.name = name
        self._fail_test = fail or _raise_assertion
        self.ssl_context = _args.server_ssl_context(ssl_context)
        # One thread accepts and serves: the accept thread serves each client itself and,
        # whenever it waits (for a step, for a client, inside a step), it also watches the
        # listeners, so that a second client is seen at once (see _wait_for_plan).
        super().__init__(host="127.0.0.1" if path is not None else "localhost", port=0,
                         path=path, backlog=16, concurrent=False, max_connections=None,
                         thread_name=name, start=False)
        #: How messages name where the server listens: "port 40212" or "unix:/tmp/s".
        self.location = self._where if self.path is not None else f"port {self._port}"
        #: The plan's state changes under this condition (on the server's lock).
        self._plan = threading.Condition(self._lock)
        self._steps: list[Planned] = []
        self._done = 0  # steps completed
        self._since = time.monotonic()  # when the step at _done became the one to run
        self._failure: Failure | None = None
        self._reported = False
        self._halted = False  # stopped or failed: no more accepting, no more steps
        self._connected_by: int | None = None  # script state: step that opened the client
        self._ended_by: int | None = None  # script state: step that ended the last client
        self._pending: deque[_Accepted] = deque()  # accepted, no expect_connect() took them
        self._open: list[_Accepted] = []
        self._streams: dict[tuple[Any, ...], StreamClient] = {}
        self._unawaited: list[Join] = []
        #: Wake-ups of coroutines waiting in ``await join()``: each is called once (lock
        #: held, from any thread) when the plan changes, then dropped.
        self._async_waiters: list[Callable[[], object]] = []
        self._idle = False  # the server thread waits for the plan: a new step kicks it
        self._stopped = False
        self._start()

    def __repr__(self) -> str:
        return f"<TcpServer {self.name!r} {self.location}>"

    @property
    def service_port(self) -> int:
        """The TCP port clients connect to (AttributeError for a Unix socket: use
        ``address``)."""
        return self.port

    def __enter__(self) -> TcpServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        __tracebackhide__ = True
        self.close(check=exc_type is None)

    def __await__(self) -> Generator[Any, None, TcpServer]:
        """Awaiting a server returns it at once (it is listening already), so that
        ``await tcpserver_factory()`` works as well as ``tcpserver_factory()``."""
        return self
        yield  # pragma: no cover - makes this a generator

    @property
    def failure(self) -> Failure | None:
        """The first failure, or None."""
        with self._lock:
            return self._failure

    # -- steps -------------------------------------------------------------

    def expect_connect(self, timeout: float | None = None) -> None:
        """A client connects within *timeout* (it may have connected already)."""
        __tracebackhide__ = True
        self._add(Planned("expect_connect()", "connect", self._timeout(timeout)))

    def expect_bytes(self, data: bytes, timeout: float | None = None) -> None:
        """The client sends exactly *data* within *timeout*; a wrong byte fails at once."""
        __tracebackhide__ = True
        t = self._timeout(timeout)
        step = Expect(data, timeout=t)
        self._add(Planned(f"expect_bytes({show_bytes(step.exact or b'')})", "bytes", t, step))

    def send_bytes(self, data: bytes) -> None:
        """Send *data* to the client."""
        __tracebackhide__ = True
        step = Send(data)
        self._add(Planned(f"send_bytes({show_bytes(step.data)})", "send", self.timeout, step))

    def expect_frame(self, payload: bytes, timeout: float | None = None) -> None:
        """The client sends one frame (4-byte big-endian length, then) exactly *payload*."""
        __tracebackhide__ = True
        t = self._timeout(timeout)
        step = ExpectFrame(payload, timeout=t)
        self._add(Planned(f"expect_frame({show_bytes(step.payload)})", "frame", t, step))

    def send_frame(self, payload: bytes) -> None:
        """Send *payload* behind a 4-byte big-endian length prefix."""
        __tracebackhide__ = True
        step = SendFrame(payload)
        self._add(Planned(f"send_frame({show_bytes(step.payload)})", "send", self.timeout, step))

    def expect_disconnect(self, timeout: float | None = None) -> None:
        """The client closes the connection within *timeout*, having read all it was sent."""
        __tracebackhide__ = True
        t = self._timeout(timeout)
        self._add(Planned("expect_disconnect()", "disconnect", t, ExpectClose(timeout=t)))

    def disconnect(self) -> None:
        """The server closes the connection."""
        __tracebackhide__ = True
        self._add(Planned("disconnect()", "close", self.timeout, Close()))

    def _timeout(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else _args.timeout(timeout)

    def _add(self, planned: Planned) -> None:
        __tracebackhide__ = True
        with self._plan:
            index = len(self._steps)
            if self._stopped:
                problem: str | None = (
                    f"tcpserver.{planned.label} after stop(): the server no longer serves; "
                    "add every step before stop() or close()"
                )
            else:
                problem = None if self._failure else self._misuse(index, planned)
            if problem is None:
                self._steps.append(planned)
                if planned.kind == "connect":
                    self._connected_by = index
                elif planned.kind in ("close", "disconnect"):
                    self._connected_by, self._ended_by = None, index
                if index == self._done:
                    self._since = time.monotonic()
                if self._idle:
                    self._idle = False
                    self._kick()
                return
            failure = Failure("misuse", problem)
            if self._stopped:
                self._add_error_locked(failure)  # reported here, at the line that added it
            else:
                self._record_failure(failure, reported=True)
        self._fail_test(self._report(failure))

    def _misuse(self, index: int, planned: Planned) -> str | None:
        call = f"tcpserver.{planned.label}"
        if planned.kind == "connect":
            if self._connected_by is None:
                return None
            return (
                f"{call} while the client connected by step {self._connected_by} is still "
                "connected in the script: add expect_disconnect() or disconnect() first (a "
                "tcpserver serves one client at a time: use tcpserver_factory() for more)"
            )
        if self._connected_by is not None:
            return None
        if self._ended_by is not None:
            ended = f"step {self._ended_by} ({self._steps[self._ended_by]!r}) ended the connection"
        else:
            ended = "no expect_connect() step comes before it"
        fix = "add tcpserver.expect_connect() before it"
        if planned.kind == "disconnect":
            return f"{call} with no client connected: {ended}; {fix}"
        if index == 0:
            return f"{call} as the first step: the first step must be expect_connect(); {fix}"
        return f"{call} with no client connected at this point of the script: {ended}; {fix}"

    # -- results -----------------------------------------------------------

    def _report(self, failure: Failure) -> str:
        return f"{self.name} on {self.location}: {failure.message()}"

    def _abort(self, failure: Failure) -> None:
        """Record the first failure and stop serving (the waker interrupts any step)."""
        with self._plan:
            self._record_failure(failure, reported=False)

    def _record_failure(self, failure: Failure, reported: bool) -> None:
        """``_abort`` with the lock held; a failure after the first is ignored. The first
        failure stops the server: every wait ends, no client is accepted any more."""
        if self._failure is not None:
            return
        self._failure, self._reported, self._halted = failure, reported, True
        self._add_error_locked(failure)
        self._notify()
        if not self._stopped:  # after stop() the pipe is closed
            self._waker.wake()
        log.warning("%s: %s", self, failure.summary)

    def _notify(self) -> None:
        """Wake every waiter, threads and coroutines; call with the lock held."""
        self._plan.notify_all()
        for wake in self._async_waiters:
            try:
                wake()
            except RuntimeError:  # that loop is closed (trio: RunFinishedError): nobody waits
                pass
        self._async_waiters.clear()

    def _raise_if_failed(self) -> None:
        __tracebackhide__ = True
        with self._lock:
            failure = None if self._reported else self._failure
            if failure is not None:
                self._reported = True
        if failure is not None:
            self._fail_test(self._report(failure))

    # -- lifecycle ---------------------------------------------------------

    def close(self, check: bool = True) -> None:
        """With *check*, do what fixture teardown does (``expect_disconnect()`` if a
        client is connected in the script, join, client-side checks) and report the first
        failure not reported yet; then ``stop()``."""
        __tracebackhide__ = True
        try:
            message = self.teardown_report() if check else None
        finally:
            self.stop()
        if message:
            self._fail_test(message)

    def stop(self) -> None:
        """Stop at once: wake and join the server's threads, close every socket. Idempotent."""
        super().stop()

    def _wake_all(self) -> None:
        with self._plan:
            if not self._stopped and self._done < len(self._steps):
                self._record_failure(self._unfinished(), reported=False)
            self._stopped = self._halted = True
            self._notify()
        super()._wake_all()

    def _failure_taken(self, failure: Failure) -> None:
        if failure is self._failure:
            self._reported = True  # asserted: join() and close() do not report it again

    def _unfinished(self) -> Failure:
        """The failure of a plan stopped before its end: the step it stopped in and how
        many were left; call with the lock held."""
        index, total = self._done, len(self._steps)
        planned = self._steps[index]
        left = total - index
        return Failure(
            "unfinished",
            f"stopped with {left} step{'s' if left != 1 else ''} of the script not done, "
            f"the first being {planned.label} (stop() came before the client did it)",
            step_index=index, step=planned, script_length=total,
        )

    def _on_stopped(self) -> None:
        with self._lock:
            self._close_all()

    def teardown_report(self) -> str | None:
        """What ``close(check=True)`` reports, without raising or stopping: add
        ``expect_disconnect()`` if a client is connected in the script, wait for every
        step, take the clients in the backlog, then the client-side checks. The first
        failure not reported yet, or None. (The factories report several servers so.)"""
        with self._lock:
            if self._stopped:  # stop() came first: what it cut short, if not reported
                failure = None if self._reported else self._failure
                self._reported = True
                return self._report(failure) if failure else None
            ok = self._failure is None
            connected = self._connected_by is not None
        if ok and connected:
            self.expect_disconnect()
        with self._lock:
            target = len(self._steps)
        self._wait_blocking(target)
        self._take_backlog()  # clients that connected before the end are reported too
        with self._lock:
            if self._failure is not None:
                failure = None if self._reported else self._failure
                self._reported = True
                return self._report(failure) if failure else None
            problems = self._client_problems()
            self._reported = bool(problems)
        if problems:
            return f"{self.name} on {self.location}: " + "\n".join(problems)
        return None

    def _take_backlog(self) -> None:
        """Admit every client waiting in the listen backlog, from this thread: each is
        then reported as a client no expect_connect() took (one the server thread is
        accepting is admitted before this can look: see ``BaseServer._accepting``)."""
        if not self._halted:
            self._admit_backlog()

    def _client_problems(self) -> list[str]:
        problems = []
        if self._unawaited:
            problems.append(
                "tcpserver.join() was called in a coroutine but never awaited: "
                "write `await tcpserver.join()`"
            )
        for client in self._streams.values():
            if client.closed and not client.wait_closed_awaited:
                problems.append(
                    f"the client from {format_address(client.address)} called writer.close() but "
                    "never awaited writer.wait_closed(): add `await writer.wait_closed()`"
                )
        for entry in self._pending:
            problems.append(
                f"connection #{entry.record.number} from {format_address(entry.record.peer)} was "
                "accepted but no expect_connect() step took it"
            )
        return problems

    def _close_all(self) -> None:
        """Close every accepted socket; call with the lock held."""
        for entry in self._open:
            entry.record.ended = entry.record.ended or "stopped"
            entry.sock.close()
            self._finished_locked()
        self._open.clear()
        self._pending.clear()

    def _end(self, entry: _Accepted) -> None:
        """Close the accepted socket of *entry*, served to its end."""
        with self._lock:
            if entry in self._open:
                self._open.remove(entry)
                self._finished_locked()
            entry.sock.close()

    # -- the accept thread: admitting clients, timing expect_connect() ---------------

    def _admit(self, sock: socket.socket, peer: Any, number: int) -> bool:
        """A client connected: queue it for the next expect_connect(), unless another
        client is still being served (a failure: a tcpserver serves one at a time)."""
        with self._plan:
            if self._halted:
                sock.close()
                return False
            record = ConnectionRecord(number, peer)
            record.add("note", text="connected")
            self.connections.append(record)
            busy = next((e for e in self._open if not _client_gone(e.sock)), None)
            if busy is None:
                entry = _Accepted(sock, record, time.monotonic())
                self._pending.append(entry)
                self._open.append(entry)
                self._plan.notify_all()
                return True
            record.ended = "refused: second connection"
        sock.close()
        self._abort(Failure(
            "second connection",
            f"a second connection arrived while connection #{busy.record.number} from "
            f"{format_address(busy.record.peer)} was still being served; a tcpserver serves "
            "one client at a time (close the first connection first, or use "
            "tcpserver_factory() for a server per client)",
            connection=record.number, peer=peer,
        ))
        return False

    def _waiting_connect(self) -> Planned | None:
        """The expect_connect() step to run now with no client there for it, if any; call
        with the lock held."""
        if self._halted or self._done >= len(self._steps) or self._pending:
            return None
        planned = self._steps[self._done]
        return planned if planned.kind == "connect" else None

    def _connect_deadline(self) -> float | None:
        """When the expect_connect() step waiting for a client times out, if one does; call
        with the lock held. Whoever waits on the plan times it (join(), teardown), and a
        client that arrives late fails it when it is taken: no thread of its own."""
        planned = self._waiting_connect()
        return None if planned is None else self._since + planned.timeout

    def _connect_timed_out(self, planned: Planned) -> None:
        """No client came for *planned* (the step at _done) in time; call with the lock
        held."""
        if self.path is None:
            hosts = " and ".join(str(a[0]) for a in self.addresses)
            where = f"{hosts}, port {self._port}: does the client use tcpserver.service_port?"
        else:
            where = f"{self._where}: does the client connect to tcpserver.address?"
        self._record_failure(Failure(
            "timeout",
            f"no client connected within {planned.timeout:g} s (the server listens on {where})",
            step_index=self._done, step=planned, script_length=len(self._steps),
        ), reported=False)

    def _connect_deadline_ahead(self) -> float | None:
        """When the waiting expect_connect() times out, if that is still ahead; if it has
        passed, fail the step now and say None. Call with the lock held, before waiting on
        the plan: whoever waits times expect_connect(), no thread of its own does."""
        deadline = self._connect_deadline()
        if deadline is not None and time.monotonic() >= deadline:
            planned = self._waiting_connect()
            assert planned is not None
            self._connect_timed_out(planned)
            return None
        return deadline

    # -- a connection's thread: taken by expect_connect(), then its steps ---------------

    def _run_connection(self, sock: socket.socket, peer: Any, number: int) -> None:
        self._serve_pending()  # the client just admitted is the first queued, or served

    def _on_kick(self) -> bool:
        self._serve_pending()  # a step was added: an expect_connect() may take a client
        return False

    def _serve_pending(self) -> None:
        """Serve the clients queued, one at a time, the first when an expect_connect()
        takes it; each is counted finished when its socket is closed (``_end``,
        ``_close_all``)."""
        try:
            while True:
                with self._lock:
                    if self._halted or not self._pending:
                        return
                    entry = self._pending[0]
                self._claim_and_serve(entry)
        except ServerStopped:
            pass
        except Exception as exc:
            self._abort(Failure("error", f"{self.name} crashed: {exc!r}",
                                traceback=traceback.format_exc()))

    def _claim_and_serve(self, entry: _Accepted) -> None:
        """Wait until an expect_connect() takes *entry* (the first client queued), then run
        its steps until its connection ends."""
        while True:
            with self._plan:
                if self._halted:
                    raise ServerStopped()
                planned = self._steps[self._done] if self._done < len(self._steps) else None
                if planned is not None and planned.kind == "connect":
                    if entry.arrived > self._since + planned.timeout:  # came, but too late
                        self._connect_timed_out(planned)
                        raise ServerStopped()
                    self._pending.popleft()
                    first = self._done
                    self._step_done()
                    break
                self._idle = True
            self._wait_for_plan()
        self._run_steps(entry, first)

    def _wait_for_plan(self) -> None:
        """On the server thread: wait for a kick (a step added) while admitting the clients
        that connect; ServerStopped on stop()."""
        poller = select.poll()
        assert self._kicker is not None
        for fd in (self._kicker.rfd, self._waker.rfd, *(s.fileno() for s in self._listeners)):
            poller.register(fd, select.POLLIN)
        ready = [fd for fd, _ in poller.poll()]
        with self._lock:
            self._idle = False
        if self._waker.rfd in ready:
            raise ServerStopped()
        if self._kicker.rfd in ready:
            self._kicker.clear()
        self._admit_backlog()

    def _step_done(self) -> None:
        """The step at _done completed; call with the lock held."""
        self._done += 1
        self._since = time.monotonic()
        self._notify()

    def _run_steps(self, entry: _Accepted, connect_index: int) -> None:
        emit = self._emit if log.isEnabledFor(logging.INFO) else None
        # This connection's steps follow its expect_connect() in the plan: the runner gets
        # each as it is planned, and answers IDLE when it has run it. The Connection works
        # on a duplicate descriptor: stop() closes entry.sock under the lock meanwhile.
        runner = ScriptRunner([], entry.record, self.timeout, emit=emit, growing=True,
                              first_index=connect_index + 1)
        conn = Connection(entry.sock.dup(), entry.record.peer, runner, self._waker)
        # While a step waits for this client, a second one is admitted (and fails) at once.
        conn.also_watch = {s.fileno(): self._admit_backlog for s in self._listeners}
        if emit is not None:
            emit(entry.record, "taken by expect_connect()")
        try:
            if self.ssl_context is not None:
                conn.start_tls(self.ssl_context)
            while True:
                with self._plan:
                    if self._halted:
                        return
                    if self._done < len(self._steps):
                        index, planned = self._done, self._steps[self._done]
                    else:
                        planned = None
                        self._idle = True
                if planned is None:
                    self._wait_for_plan()
                    continue
                self._execute(index, planned, entry, conn)
                with self._plan:
                    self._step_done()
                if not conn.open:
                    return
        except ServerStopped:
            pass
        except StepFailed as exc:
            self._abort(exc.failure)
        finally:
            failure = self._failure
            # ended as the failure report's transcript says; the client sees the close
            # once the accepted descriptor is closed too
            conn.close(runner.ending_after(failure.kind) if failure else "stopped")
            self._end(entry)

    def _execute(self, index: int, planned: Planned, entry: _Accepted, conn: Connection) -> None:
        """Run one engine step on the connection *entry*; StepFailed in tcpserver words."""
        assert planned.step is not None, "the script checks forbid a second expect_connect()"
        conn.runner.append(planned.step)
        conn.runner.script_length = len(self._steps)
        try:
            conn.run()
        except StepFailed as exc:
            # The failure has recorded the bytes that arrived for the step: drop them so
            # that closing the connection does not record them again as left unread.
            conn.inbox.take(len(conn.inbox.buffer))
            reset = exc.failure.kind == "reset"
            left = self._unread(entry, reset) if reset else (b"", False)
            raise StepFailed(explain(planned, exc.failure, left, len(self._steps))) from None
        if planned.kind == "disconnect":
            # A client that closed its socket before (or without) reading what it was sent
            # answers the data with a reset: the error waits on the socket even when its EOF
            # came first. A client that only shut its write side and read reads on. (Not
            # under TLS: there a reset also answers TLS records no client has to read.)
            refused = 0 if self.ssl_context is not None else _pending_reset(entry.sock)
            conn.close("client closed")
            unread, exact = self._unread(entry, reset=bool(refused))
            if unread:
                failure = Failure("unread", "", connection=entry.record.number,
                                  peer=entry.record.peer, step_index=index, step=planned,
                                  script_length=len(self._steps),
                                  transcript=entry.record.render(tail=8))
                raise StepFailed(unread_failure(failure, unread, exact, reset=False))

    def _unread(self, entry: _Accepted, reset: bool) -> tuple[bytes, bool]:
        """Bytes sent on *entry* that the client never read, and whether that is exact:
        it is for an instrumented asyncio stream client. For another client a clean close
        says nothing was left; a reset blames what was sent since the client last spoke."""
        with self._lock:
            client = self._streams.get(tuple(entry.record.peer[:2]))
        if client is not None:
            return entry.record.sent[client.consumed:], True
        return (_sent_since_client_spoke(entry.record) if reset else b""), False

    def _emit(self, record: ConnectionRecord, text: str) -> None:
        log.info("[%s %s] #%s %s", self.name, self.location, record.number, text)

    # -- join --------------------------------------------------------------

    def join(self) -> Join:
        """Wait until every step added so far is done; fail at the first failure (once:
        a failure already reported is not reported again).

        In a plain function this blocks. In a coroutine (a running event loop) it returns
        at once and the waiting happens in ``await tcpserver.join()``. Either way it
        returns a ``Join``, which can always be awaited.
        """
        __tracebackhide__ = True
        with self._lock:
            target = len(self._steps)
        if _async_library() is None:
            self._wait_blocking(target)
            self._raise_if_failed()
            return Join(self, target, awaited=True)
        pending = Join(self, target, awaited=False)
        with self._lock:
            self._unawaited.append(pending)
        return pending

    def _reached(self, target: int) -> bool:
        return self._done >= target or self._failure is not None or self._halted

    def _wait_blocking(self, target: int) -> None:
        # Bounded without a timeout of its own: every step has one, expect_connect()'s
        # timed here.
        with self._plan:
            while not self._reached(target):
                deadline = self._connect_deadline_ahead()
                if not self._reached(target):
                    self._plan.wait(None if deadline is None else deadline - time.monotonic())

    async def _wait_async(self, target: int) -> None:
        """``_wait_blocking`` for a coroutine, on the loop it runs on (asyncio or trio)."""
        if _async_library() == "trio":
            await self._wait_trio(target)
            return
        loop = asyncio.get_running_loop()
        while True:
            with self._plan:
                deadline = self._connect_deadline_ahead()
                if self._reached(target):
                    return
                future: asyncio.Future[None] = loop.create_future()
                self._async_waiters.append(functools.partial(
                    loop.call_soon_threadsafe, _settle, future))
            timer = None if deadline is None else loop.call_at(
                loop.time() + max(0.0, deadline - time.monotonic()), _settle, future)
            try:
                await future
            finally:
                if timer is not None:
                    timer.cancel()

    async def _wait_trio(self, target: int) -> None:
        # trio is running (so imported); looked up, not imported, so that it stays optional.
        trio: Any = sys.modules["trio"]
        token = trio.lowlevel.current_trio_token()
        while True:
            with self._plan:
                deadline = self._connect_deadline_ahead()
                if self._reached(target):
                    return
                event = trio.Event()
                self._async_waiters.append(functools.partial(token.run_sync_soon, event.set))
            if deadline is None:
                await event.wait()
            else:  # trio's clock, which may not be time.monotonic: the time left on it
                with trio.move_on_after(max(0.0, deadline - time.monotonic())):
                    await event.wait()

    def note_stream_client(self, client: StreamClient) -> None:
        """Count what an asyncio stream client connected to this server reads (the stream
        watch of ``tcpserver_factory`` calls this), so that bytes it left unread are exact."""
        with self._lock:
            self._streams[client.address] = client


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


# ---------------------------------------------------------------------------
# join
# ---------------------------------------------------------------------------


class Join:
    """What ``TcpServer.join()`` returns: an awaitable that waits for the steps that
    existed when ``join()`` was called, then reports the first failure. When ``join()``
    was called outside a running loop the waiting is already done and awaiting it is a
    no-op."""

    def __init__(self, server: TcpServer, target: int, awaited: bool) -> None:
        self.server = server
        self.target = target
        self.awaited = awaited

    def __repr__(self) -> str:
        state = "awaited" if self.awaited else "not awaited"
        return f"<Join of {self.server.name!r}: {self.target} steps, {state}>"

    def __await__(self) -> Generator[Any, None, None]:
        return self._wait().__await__()

    async def _wait(self) -> None:
        __tracebackhide__ = True
        server = self.server
        if not self.awaited:
            self.awaited = True
            with server._lock:
                if self in server._unawaited:
                    server._unawaited.remove(self)
        await server._wait_async(self.target)
        server._raise_if_failed()

