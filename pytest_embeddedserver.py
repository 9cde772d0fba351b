"""pytest plugin: the ``tcpserver``, ``tcpserver_factory`` and ``command_server`` fixtures.

Installed with the package (``pytest11`` entry point), so a test just asks for a fixture::

    @pytest.mark.asyncio()
    async def test_hello(tcpserver):
        tcpserver.expect_connect()
        tcpserver.expect_bytes(b"Hello, server!")
        tcpserver.send_bytes(b"Hello, client!")
        tcpserver.expect_disconnect()
        reader, writer = await asyncio.open_connection(None, tcpserver.service_port)
        ...
        await tcpserver.join()     # failures, if any, are reported here

Model
-----
A ``TcpServer`` is a fake server whose script grows while the test runs: each call such as
``expect_bytes()`` appends one step, at any time, before or after the client acts. It
listens on 127.0.0.1 and ::1 (one port) and is served by two threads. The *acceptor*
accepts every client at once, so a second client is noticed while the first is still being
served. The *runner* executes the steps in order; every step but ``expect_connect`` is an
engine step (``Expect``, ``ExpectFrame``, ``ExpectClose``, ``Send``, ``SendFrame``,
``Close``) run by the engine's ``Connection.run_step``, the same interpreter as
``CommandServer``. This module adds the growing step list, the acceptor and the wording.

The first failure stops the server and is reported once: by ``join()`` or, if the test never
joins, at teardown, where every server that has not failed gets ``expect_disconnect()`` (if
a client is still connected in its script) and is joined. A script that cannot make sense
(a first step other than ``expect_connect()``, ``expect_disconnect()`` with no client
connected) fails at once, at the line that added the step.

``join()`` blocks in a plain function. Called where an event loop is running (an async
test) it cannot block, since the client runs on that loop: it returns an awaitable, and
``await tcpserver.join()`` waits without blocking the loop. Both cases return a ``Join``
(always awaitable), so ``await`` type-checks; a ``Join`` created in a coroutine and never
awaited is reported at teardown.

Unread data: a client that closes while bytes the server sent are still unread has a bug.
For asyncio stream clients the plugin counts what each ``StreamReader`` handed to the
application (only readers connected to this test's servers are instrumented, through
pytest's ``monkeypatch``), which also tells a ``writer.close()`` never followed by ``await
writer.wait_closed()``. For other clients it is seen at the transport level: such a close
reaches the server as a reset.

When a test fails, its servers are stopped (so their transcripts are final) and each
transcript is attached to the report as a section. Step timeouts default to 1 s: the
``embeddedserver_timeout`` ini setting or fixture changes that for the fixtures.

Sections: helpers - planned steps and their messages - TcpServer - join - asyncio stream
watch - factories - pytest hooks and fixtures.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import select
import socket
import struct
import sys
import threading
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass, replace
from typing import Any, NoReturn, Protocol

import pytest

from embeddedconn import Connection, ServerStopped, StepFailed, Waker
from embeddedrecord import ConnectionRecord, Failure, render_transcript, show_bytes
from embeddedscript import (
    DEFAULT_TIMEOUT,
    Close,
    Expect,
    ExpectClose,
    ExpectFrame,
    ReadStep,
    Send,
    SendFrame,
    Step,
)
from embeddedserver import JOIN_TIMEOUT, CommandServer, _listen

__all__ = [
    "TCPSERVER_TIMEOUT",
    "CommandServerFactory",
    "Join",
    "TcpServer",
    "TcpServerFactory",
    "read_frame",
    "write_frame",
]

log = logging.getLogger("embeddedserver.pytest")

#: Seconds a tcpserver step waits when neither the step, the server nor the
#: ``embeddedserver_timeout`` ini setting says otherwise.
TCPSERVER_TIMEOUT = 1.0

_FRAME = struct.Struct(">I")
_RDHUP = getattr(select, "POLLRDHUP", 0)
_LOOPBACK = ("127.0.0.1", "::1")
# True inside an instrumented read of the current task: readline() calls readuntil(),
# and only the outermost call counts what the application got.
_IN_READ = contextvars.ContextVar("embeddedserver_in_read", default=False)

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{what} must be a number of seconds > 0, not {value!r}")
    return float(value)


def _raise_assertion(message: str) -> NoReturn:
    __tracebackhide__ = True
    raise AssertionError(message)


def _address(peer: Any) -> str:
    host = str(peer[0])
    return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"


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


def _sent_since_client_spoke(record: ConnectionRecord) -> bytes:
    chunks = []
    for event in reversed(record.events):
        if event.kind == "recv":
            break
        if event.kind == "send":
            chunks.append(event.data)
    return b"".join(reversed(chunks))


def write_frame(writer: asyncio.StreamWriter, payload: bytes | bytearray | memoryview) -> None:
    """Write *payload* behind a 4-byte big-endian length prefix (what ``expect_frame``
    reads). Like ``writer.write`` it only buffers; ``await writer.drain()`` to flush."""
    data = bytes(payload)
    writer.write(_FRAME.pack(len(data)) + data)


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """Read one frame as sent by ``send_frame`` and return its payload; b"" on a clean
    EOF (before any byte of a frame). EOF inside a frame raises IncompleteReadError."""
    try:
        head = await reader.readexactly(_FRAME.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return b""
        raise
    (length,) = _FRAME.unpack(head)
    return await reader.readexactly(length)


# ---------------------------------------------------------------------------
# planned steps and their messages
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Planned:
    """One step of a TcpServer script: what the user wrote, and the engine step."""

    label: str  # as the user wrote it, e.g. "expect_bytes(b'hi')"
    kind: str  # connect, bytes, frame, send, close, disconnect
    timeout: float
    step: Step | None = None

    def __repr__(self) -> str:
        return self.label

    def expected_bytes(self) -> bytes | None:  # used by Failure for the difference line
        return self.step.expected_bytes() if isinstance(self.step, ReadStep) else None


def _explain(
    planned: _Planned, failure: Failure, unread: tuple[bytes, bool], steps: int
) -> Failure:
    """Reword an engine failure in terms of the tcpserver call that added the step;
    *unread* is (bytes the client did not read, whether that is exact) after a reset."""
    kind, got, t = failure.kind, failure.received or b"", planned.timeout
    want = planned.expected_bytes() or b""
    if planned.kind == "disconnect" and kind == "reset":
        if unread[0]:
            return _unread_failure(
                replace(failure, step=planned, script_length=steps), *unread, reset=True
            )
        summary = "the client reset the connection (ECONNRESET) instead of closing it"
    elif kind == "timeout" and planned.kind == "disconnect":
        summary = (
            f"the client did not close the connection within {t:g} s: did the client close? "
            "(asyncio: writer.close(); await writer.wait_closed(). socket: sock.close())"
        )
    elif kind == "timeout" and planned.kind in ("bytes", "frame"):
        what = f"{len(want)} bytes" if planned.kind == "bytes" else "a frame"
        arrived = f"only {len(got)} bytes arrived" if got else "nothing arrived"
        summary = f"timed out after {t:g} s waiting for the client to send {what}: {arrived}"
    elif kind == "mismatch" and planned.kind == "disconnect":
        summary = (
            f"unexpected data while waiting for the client to disconnect: "
            f"it sent {len(got)} more bytes instead of closing"
        )
    elif kind == "mismatch" and planned.kind == "frame":
        summary = f"wrong frame from the client: {failure.summary}"
    elif kind == "mismatch":
        summary = f"wrong bytes from the client: first difference at byte offset {failure.offset}"
    elif kind == "closed" and planned.kind == "bytes":
        summary = (
            f"the client closed the connection after sending only {len(got)} of the "
            f"{len(want)} expected bytes"
        )
    elif kind == "closed" and planned.kind == "frame":
        summary = (
            f"the client closed the connection before the frame was complete "
            f"({len(got)} bytes of it arrived)"
        )
    elif kind == "closed":
        summary = "the client had already closed the connection (EPIPE)"
    elif kind == "reset":
        doing = "sending" if planned.kind == "send" else "waiting for data"
        summary = f"the client reset the connection (ECONNRESET) while the server was {doing}"
    else:
        summary = failure.summary
    return replace(failure, summary=summary, step=planned, script_length=steps)


def _unread_failure(failure: Failure, unread: bytes, exact: bool, reset: bool) -> Failure:
    how = " (its close arrived as a reset, ECONNRESET)" if reset else ""
    if exact:
        summary = (
            f"the client closed the connection with {len(unread)} bytes the server sent "
            f"still unread{how}: {show_bytes(unread)}"
        )
    else:
        summary = (
            f"the client closed the connection while data the server sent was still "
            f"unread{how}; the bytes sent since the client last sent anything: "
            f"{show_bytes(unread)} ({len(unread)} bytes)"
        )
    return replace(
        failure, kind="unread", summary=summary, received=None, offset=None,
        expected="the client to read everything the server sent, then close",
    )


# ---------------------------------------------------------------------------
# TcpServer
# ---------------------------------------------------------------------------


@dataclass
class _Accepted:
    """A connection as the acceptor took it. Only this module closes ``sock`` (under the
    server lock); the engine's Connection works on a duplicate descriptor."""

    sock: socket.socket
    record: ConnectionRecord


@dataclass
class _StreamClient:
    """What an instrumented asyncio stream client did with its connection."""

    address: tuple[Any, ...]  # the client's (host, port): the server sees it as the peer
    consumed: int = 0  # bytes its StreamReader handed to the application
    closed: bool = False  # writer.close() was called
    wait_closed_awaited: bool = False


class TcpServer:
    """A fake TCP server driven by a script the test appends to while it runs.

    Callers use ``service_port`` and the step methods ``expect_connect``, ``expect_bytes``,
    ``send_bytes``, ``expect_frame``, ``send_frame``, ``expect_disconnect``,
    ``disconnect``, then ``join()``; ``transcript()``, ``failure`` and ``close()``/``stop()``.
    Each ``timeout`` argument defaults to the server's *timeout* (seconds).

    *fail(message)* reports a failure; the fixtures pass ``pytest.fail``, the default
    raises AssertionError. Works without pytest, as a context manager::

    >>> import socket
    >>> with TcpServer() as server:
    ...     server.expect_connect(); server.expect_bytes(b"ping"); server.send_bytes(b"pong")
    ...     with socket.create_connection(("127.0.0.1", server.service_port)) as sock:
    ...         sock.sendall(b"ping")
    ...         sock.makefile("rb").read(4)
    b'pong'
    """

    def __init__(
        self,
        *,
        timeout: float = TCPSERVER_TIMEOUT,
        name: str = "tcpserver",
        fail: Callable[[str], NoReturn] | None = None,
    ) -> None:
        self.timeout = _seconds(timeout, "timeout")
        self.name = name
        self._fail_test = fail or _raise_assertion
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._steps: list[_Planned] = []
        self._done = 0  # steps completed
        self._failure: Failure | None = None
        self._reported = False
        self._halted = False  # stopped or failed: no more accepting, no more steps
        self._runner_done = False
        self._connected_by: int | None = None  # script state: step that opened the client
        self._ended_by: int | None = None  # script state: step that ended the last client
        self._pending: deque[_Accepted] = deque()
        self._open: list[_Accepted] = []
        self._records: list[ConnectionRecord] = []
        self._streams: dict[tuple[Any, ...], _StreamClient] = {}
        self._unawaited: list[Join] = []
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._listeners = _listen("localhost", 0, 16)
        self.service_port: int = self._listeners[0].getsockname()[1]
        self.addresses = [s.getsockname()[:2] for s in self._listeners]
        self._waker = Waker()
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._accept_loop, name=f"{name}:{self.service_port}:accept",
                             daemon=True),
            threading.Thread(target=self._run, name=f"{name}:{self.service_port}:steps",
                             daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def __repr__(self) -> str:
        return f"<TcpServer {self.name!r} port {self.service_port}>"

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
    def port(self) -> int:
        """The same as ``service_port``."""
        return self.service_port

    @property
    def failure(self) -> Failure | None:
        """The first failure, or None."""
        with self._lock:
            return self._failure

    # -- steps -------------------------------------------------------------

    def expect_connect(self, timeout: float | None = None) -> None:
        """A client connects within *timeout* (it may have connected already)."""
        __tracebackhide__ = True
        self._add(_Planned("expect_connect()", "connect", self._timeout(timeout)))

    def expect_bytes(self, data: bytes, timeout: float | None = None) -> None:
        """The client sends exactly *data* within *timeout*; a wrong byte fails at once."""
        __tracebackhide__ = True
        t = self._timeout(timeout)
        step = Expect(data, timeout=t)
        self._add(_Planned(f"expect_bytes({show_bytes(step.exact or b'')})", "bytes", t, step))

    def send_bytes(self, data: bytes) -> None:
        """Send *data* to the client."""
        __tracebackhide__ = True
        step = Send(data)
        self._add(_Planned(f"send_bytes({show_bytes(step.data)})", "send", self.timeout, step))

    def expect_frame(self, payload: bytes, timeout: float | None = None) -> None:
        """The client sends one frame (4-byte big-endian length, then) exactly *payload*."""
        __tracebackhide__ = True
        t = self._timeout(timeout)
        step = ExpectFrame(payload, timeout=t)
        self._add(_Planned(f"expect_frame({show_bytes(step.payload)})", "frame", t, step))

    def send_frame(self, payload: bytes) -> None:
        """Send *payload* behind a 4-byte big-endian length prefix."""
        __tracebackhide__ = True
        step = SendFrame(payload)
        self._add(_Planned(f"send_frame({show_bytes(step.payload)})", "send", self.timeout, step))

    def expect_disconnect(self, timeout: float | None = None) -> None:
        """The client closes the connection within *timeout*, having read all it was sent."""
        __tracebackhide__ = True
        t = self._timeout(timeout)
        self._add(_Planned("expect_disconnect()", "disconnect", t, ExpectClose(timeout=t)))

    def disconnect(self) -> None:
        """The server closes the connection."""
        __tracebackhide__ = True
        self._add(_Planned("disconnect()", "close", self.timeout, Close()))

    def _timeout(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else _seconds(timeout, "timeout")

    def _add(self, planned: _Planned) -> None:
        __tracebackhide__ = True
        with self._changed:
            index = len(self._steps)
            problem = None if self._failure else self._misuse(index, planned)
            if problem is None:
                self._steps.append(planned)
                if planned.kind == "connect":
                    self._connected_by = index
                elif planned.kind in ("close", "disconnect"):
                    self._connected_by, self._ended_by = None, index
                self._changed.notify_all()
                return
            failure = Failure("misuse", problem)
            self._record_failure(failure, reported=True)
        self._fail_test(self._report(failure))

    def _misuse(self, index: int, planned: _Planned) -> str | None:
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

    def transcript(self) -> str:
        """Every connection so far, as readable text."""
        with self._lock:
            records = list(self._records)
        return render_transcript(records)

    def _report(self, failure: Failure) -> str:
        return f"{self.name} on port {self.service_port}: {failure.message()}"

    def _abort(self, failure: Failure) -> None:
        """Record the first failure and stop serving (the waker interrupts any step)."""
        with self._changed:
            self._record_failure(failure, reported=False)

    def _record_failure(self, failure: Failure, reported: bool) -> None:
        """``_abort`` with the lock held; a failure after the first is ignored."""
        if self._failure is not None:
            return
        self._failure, self._reported, self._halted = failure, reported, True
        self._notify()
        if not self._stopped:  # after stop() the pipe is closed
            self._waker.wake()
        log.warning("%s: %s", self, failure.summary)

    def _notify(self) -> None:
        """Wake every waiter, threads and coroutines; call with the lock held."""
        self._changed.notify_all()
        for loop, future in self._async_waiters:
            try:
                loop.call_soon_threadsafe(_settle, future)
            except RuntimeError:  # that loop is closed: nobody waits there any more
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
            message = self._final_report() if check else None
        finally:
            self.stop()
        if message:
            self._fail_test(message)

    def stop(self) -> None:
        """Stop at once: wake and join both threads, close every socket. Idempotent."""
        with self._changed:
            if self._stopped:
                return
            self._stopped = self._halted = True
            self._notify()
        self._waker.wake()
        stuck = []
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(JOIN_TIMEOUT)
                if thread.is_alive():
                    stuck.append(thread.name)
        with self._lock:
            self._close_all()
        if stuck:
            log.error("%s: threads did not stop within %s s: %s", self, JOIN_TIMEOUT, stuck)
        else:
            self._waker.close()

    def _final_report(self) -> str | None:
        """Teardown: finish the script, then the client-side checks. A report, or None."""
        with self._lock:
            if self._stopped:
                return None
            ok = self._failure is None
            connected = self._connected_by is not None
        if ok and connected:
            self.expect_disconnect()
        with self._lock:
            target = len(self._steps)
        self._wait_blocking(target)
        self._waker.wake()  # the script is over: the acceptor takes what is queued and ends
        self._threads[0].join(JOIN_TIMEOUT)
        with self._lock:
            if self._failure is not None:
                failure = None if self._reported else self._failure
                self._reported = True
                return self._report(failure) if failure else None
            problems = self._client_problems()
            self._reported = bool(problems)
        if problems:
            return f"{self.name} on port {self.service_port}: " + "\n".join(problems)
        return None

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
                    f"the client from {_address(client.address)} called writer.close() but "
                    "never awaited writer.wait_closed(): add `await writer.wait_closed()`"
                )
        for entry in self._pending:
            problems.append(
                f"connection #{entry.record.number} from {_address(entry.record.peer)} was "
                "accepted but no expect_connect() step took it"
            )
        return problems

    def _close_all(self) -> None:
        """Close every accepted socket; call with the lock held."""
        for entry in self._open:
            entry.record.ended = entry.record.ended or "stopped"
            entry.sock.close()
        self._open.clear()
        self._pending.clear()

    def _end(self, entry: _Accepted) -> None:
        with self._lock:
            if entry in self._open:
                self._open.remove(entry)
            entry.sock.close()

    # -- acceptor thread ---------------------------------------------------

    def _accept_loop(self) -> None:
        poller = select.poll()
        by_fd = {s.fileno(): s for s in self._listeners}
        for fd in (*by_fd, self._waker.rfd):
            poller.register(fd, select.POLLIN)
        try:
            while True:
                ready = [fd for fd, _ in poller.poll()]
                if self._waker.rfd in ready:
                    break
                for fd in ready:
                    self._accept_one(by_fd[fd])
            for listener in self._listeners:  # clients that connected before the wake-up
                while self._accept_one(listener):
                    pass
        except Exception as exc:
            self._abort(Failure("error", f"the accept loop crashed: {exc!r}",
                                traceback=traceback.format_exc()))
        finally:
            for listener in self._listeners:
                listener.close()

    def _accept_one(self, listener: socket.socket) -> bool:
        try:
            sock, peer = listener.accept()
        except (BlockingIOError, InterruptedError):
            return False
        except ConnectionAbortedError:
            return True
        self._accepted(sock, peer)
        return True

    def _accepted(self, sock: socket.socket, peer: Any) -> None:
        with self._changed:
            if self._halted:
                sock.close()
                return
            record = ConnectionRecord(len(self._records) + 1, peer)
            record.add("note", text="connected")
            self._records.append(record)
            busy = next((e for e in self._open if not _client_gone(e.sock)), None)
            if busy is None:
                entry = _Accepted(sock, record)
                self._pending.append(entry)
                self._open.append(entry)
                self._notify()
                return
            record.ended = "refused: second connection"
        sock.close()
        self._abort(Failure(
            "second connection",
            f"a second connection arrived while connection #{busy.record.number} from "
            f"{_address(busy.record.peer)} was still being served; a tcpserver serves one "
            "client at a time (close the first connection first, or use tcpserver_factory() "
            "for a server per client)",
            connection=record.number, peer=peer,
        ))

    # -- runner thread -----------------------------------------------------

    def _run(self) -> None:
        current: tuple[_Accepted, Connection] | None = None
        try:
            while True:
                with self._changed:
                    self._changed.wait_for(lambda: self._halted or self._done < len(self._steps))
                    if self._halted:
                        return
                    index, planned = self._done, self._steps[self._done]
                try:
                    current = self._execute(index, planned, current)
                except ServerStopped:
                    return
                except StepFailed as exc:
                    self._abort(exc.failure)
                    return
                with self._changed:
                    self._done += 1
                    self._notify()
        except Exception as exc:
            self._abort(Failure("error", f"{self.name} crashed: {exc!r}",
                                traceback=traceback.format_exc()))
        finally:
            if current is not None:
                current[1].close("failed" if self._failure else "stopped")
            with self._changed:
                self._close_all()
                self._runner_done = True
                self._notify()

    def _execute(
        self, index: int, planned: _Planned, current: tuple[_Accepted, Connection] | None
    ) -> tuple[_Accepted, Connection] | None:
        """Run one step; return the connection being served afterwards."""
        if planned.kind == "connect":
            entry = self._take_connection(index, planned)
            conn = Connection(entry.sock.dup(), entry.record.peer, entry.record, self._waker,
                              self.timeout, self._emit)
            self._emit(entry.record, "taken by expect_connect()")
            return entry, conn
        assert current is not None and planned.step is not None, "the script checks forbid it"
        entry, conn = current
        try:
            conn.run_step(index, planned.step, len(self._steps))
        except StepFailed as exc:
            # The failure has recorded the bytes that arrived for the step: drop them so
            # that closing the connection does not record them again as left unread.
            conn.inbox.take(len(conn.inbox.buffer))
            reset = exc.failure.kind == "reset"
            left = self._unread(entry, reset) if reset else (b"", False)
            raise StepFailed(_explain(planned, exc.failure, left, len(self._steps))) from None
        if planned.kind == "disconnect":
            conn.close("client closed")
            unread, exact = self._unread(entry, reset=False)
            if unread:
                failure = Failure("unread", "", connection=entry.record.number,
                                  peer=entry.record.peer, step_index=index, step=planned,
                                  script_length=len(self._steps),
                                  transcript=entry.record.render(tail=8))
                raise StepFailed(_unread_failure(failure, unread, exact, reset=False))
        if conn.open:
            return current
        self._end(entry)
        return None

    def _take_connection(self, index: int, planned: _Planned) -> _Accepted:
        with self._changed:
            self._changed.wait_for(lambda: self._pending or self._halted, planned.timeout)
            if self._halted:
                raise ServerStopped()
            if self._pending:
                return self._pending.popleft()
            hosts = " and ".join(a[0] for a in self.addresses)
            raise StepFailed(Failure(
                "timeout",
                f"no client connected within {planned.timeout:g} s (the server listens on "
                f"{hosts}, port {self.service_port}: does the client use "
                "tcpserver.service_port?)",
                step_index=index, step=planned, script_length=len(self._steps),
            ))

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
        log.info("[%s :%s] #%s %s", self.name, self.service_port, record.number, text)

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
        try:
            asyncio.get_running_loop()
            in_coroutine = True
        except RuntimeError:
            in_coroutine = False
        if not in_coroutine:  # (outside the except block: no chained RuntimeError shown)
            self._wait_blocking(target)
            self._raise_if_failed()
            return Join(self, target, awaited=True)
        pending = Join(self, target, awaited=False)
        with self._lock:
            self._unawaited.append(pending)
        return pending

    def _reached(self, target: int) -> bool:
        return self._done >= target or self._failure is not None or self._runner_done

    def _wait_blocking(self, target: int) -> None:
        # Bounded without a timeout of its own: every step has one.
        with self._changed:
            self._changed.wait_for(lambda: self._reached(target))

    async def _wait_async(self, target: int) -> None:
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                if self._reached(target):
                    return
                future: asyncio.Future[None] = loop.create_future()
                self._async_waiters.append((loop, future))
            await future

    def _add_stream_client(self, client: _StreamClient) -> None:
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


# ---------------------------------------------------------------------------
# asyncio stream watch
# ---------------------------------------------------------------------------


class _StreamWatch:
    """Instruments the asyncio streams connected to the watched servers, and only those:
    ``StreamWriter.__init__`` is patched to spot them by peer address, then that writer's
    ``close``/``wait_closed`` and its reader's read methods are wrapped, all through
    *monkeypatch*, so everything is undone at teardown."""

    _READS = ("read", "readexactly", "readline", "readuntil")

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self._servers: dict[int, TcpServer] = {}

    def watch(self, server: TcpServer) -> None:
        if not self._servers:
            self._install()
        self._servers[server.service_port] = server

    def _install(self) -> None:
        original = asyncio.StreamWriter.__init__
        signature = inspect.signature(original)

        @functools.wraps(original)
        def __init__(writer: asyncio.StreamWriter, *args: Any, **kwargs: Any) -> None:
            original(writer, *args, **kwargs)
            try:
                reader = signature.bind(writer, *args, **kwargs).arguments.get("reader")
                self._adopt(writer, reader)
            except Exception:
                log.warning("cannot watch asyncio stream %r", writer, exc_info=True)

        self._monkeypatch.setattr(asyncio.StreamWriter, "__init__", __init__)

    def _adopt(self, writer: asyncio.StreamWriter, reader: Any) -> None:
        peer, local = writer.get_extra_info("peername"), writer.get_extra_info("sockname")
        if not (isinstance(peer, tuple) and isinstance(local, tuple)) or peer[0] not in _LOOPBACK:
            return
        server = self._servers.get(peer[1])
        if server is None:
            return
        client = _StreamClient(tuple(local[:2]))
        if isinstance(reader, asyncio.StreamReader):
            for name in self._READS:
                self._monkeypatch.setattr(reader, name, _counting(client, getattr(reader, name)))
        self._monkeypatch.setattr(writer, "close", _noting_close(client, writer.close))
        self._monkeypatch.setattr(
            writer, "wait_closed", _noting_wait_closed(client, writer.wait_closed)
        )
        server._add_stream_client(client)


def _counting(
    client: _StreamClient, read: Callable[..., Awaitable[bytes]]
) -> Callable[..., Awaitable[bytes]]:
    @functools.wraps(read)
    async def counted(*args: Any, **kwargs: Any) -> bytes:
        if _IN_READ.get():
            return await read(*args, **kwargs)
        token = _IN_READ.set(True)
        try:
            data = await read(*args, **kwargs)
        except asyncio.IncompleteReadError as exc:
            client.consumed += len(exc.partial)
            raise
        finally:
            _IN_READ.reset(token)
        client.consumed += len(data)
        return data

    return counted


def _noting_close(client: _StreamClient, close: Callable[[], None]) -> Callable[[], None]:
    @functools.wraps(close)
    def noted() -> None:
        if sys._getframe(1).f_code.co_name != "__del__":  # the garbage collector's close
            client.closed = True
        close()

    return noted


def _noting_wait_closed(
    client: _StreamClient, wait_closed: Callable[[], Awaitable[None]]
) -> Callable[[], Awaitable[None]]:
    @functools.wraps(wait_closed)
    async def noted() -> None:
        client.wait_closed_awaited = True
        await wait_closed()

    return noted


# ---------------------------------------------------------------------------
# factories
# ---------------------------------------------------------------------------


class TcpServerFactory:
    """The ``tcpserver_factory`` fixture: each call (``tcpserver_factory()`` or
    ``await tcpserver_factory()``) returns a new, independent ``TcpServer``.

    *timeout* is the default for the servers' steps; ``close()`` runs the teardown
    checks of every server and returns one report of the failures, or None.
    """

    def __init__(
        self,
        *,
        timeout: float = TCPSERVER_TIMEOUT,
        fail: Callable[[str], NoReturn] | None = None,
        monkeypatch: pytest.MonkeyPatch | None = None,
    ) -> None:
        self.timeout = _seconds(timeout, "timeout")
        self.servers: list[TcpServer] = []
        self._fail = fail
        self._watch = None if monkeypatch is None else _StreamWatch(monkeypatch)

    def __call__(self, *, timeout: float | None = None, name: str | None = None) -> TcpServer:
        """A new server; *timeout* (seconds) overrides the default for its steps."""
        server = TcpServer(
            timeout=self.timeout if timeout is None else timeout,
            name=name or f"tcpserver_factory() server #{len(self.servers) + 1}",
            fail=self._fail,
        )
        self.servers.append(server)
        if self._watch is not None:
            self._watch.watch(server)
        return server

    def close(self, check: bool = True) -> str | None:
        """Check (unless not *check*) and stop every server; the failures, or None."""
        reports: list[str] = []
        try:
            for server in self.servers:
                report = server._final_report() if check else None
                if report:
                    reports.append(report)
        finally:
            for server in self.servers:
                server.stop()
        return "\n\n".join(reports) or None

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def report_sections(self) -> list[tuple[str, str]]:
        return [
            (f"embeddedserver: {s.name} on port {s.service_port}", _section_text(s, s.failure))
            for s in self.servers
        ]


def _section_text(server: TcpServer, failure: Failure | None) -> str:
    text = server.transcript()
    if failure is None:
        return text
    return f"{text}\nfirst failure: {replace(failure, transcript='').message()}"


class CommandServerFactory:
    """The ``command_server`` fixture: ``command_server(commands, server_class=
    CommandServer, **kwargs)`` starts a ``CommandServer``-family server (``verbose=False``
    and the ini timeout unless given); at teardown each is stopped and ``check()``ed."""

    def __init__(self, timeout: float | None = None) -> None:
        self.timeout = timeout
        self.servers: list[CommandServer] = []

    def __call__(
        self, commands: Any, server_class: type[CommandServer] = CommandServer, **kwargs: Any
    ) -> CommandServer:
        if not (isinstance(server_class, type) and issubclass(server_class, CommandServer)):
            raise TypeError(f"server_class must be CommandServer or a subclass, not "
                            f"{server_class!r}")
        kwargs.setdefault("verbose", False)
        if self.timeout is not None:
            kwargs.setdefault("timeout", self.timeout)
        server = server_class(commands, **kwargs)
        self.servers.append(server)
        return server

    def close(self, check: bool = True) -> str | None:
        """Stop every server, then (with *check*) ``check()`` each: the failures, or None."""
        for server in self.servers:
            server.stop()
        reports = []
        for server in self.servers if check else ():
            try:
                server.check()
            except AssertionError as exc:
                reports.append(str(exc))
        return "\n\n".join(reports) or None

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def report_sections(self) -> list[tuple[str, str]]:
        return [
            (f"embeddedserver: {type(s).__name__} on port {s.port}",
             s.transcript() + ("\n" + s.failure_report() if s.errors else ""))
            for s in self.servers
        ]


# ---------------------------------------------------------------------------
# pytest hooks and fixtures
# ---------------------------------------------------------------------------


class _Reporter(Protocol):
    def stop(self) -> None: ...

    def report_sections(self) -> list[tuple[str, str]]: ...


_REPORTERS = pytest.StashKey[list[_Reporter]]()
_CALL_PASSED = pytest.StashKey[bool]()
_SECTIONS_ADDED = pytest.StashKey[bool]()
_TIMEOUT = pytest.StashKey[float | None]()
_INI = "embeddedserver_timeout"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        _INI,
        "default seconds each step of the embeddedserver fixtures waits (tcpserver: "
        f"{TCPSERVER_TIMEOUT:g}, command_server: {DEFAULT_TIMEOUT:g} when unset)",
        default="",
    )


def pytest_configure(config: pytest.Config) -> None:
    raw = str(config.getini(_INI)).strip()
    value: float | None = None
    if raw:
        try:
            value = _seconds(float(raw), _INI)
        except ValueError:
            raise pytest.UsageError(
                f"{_INI} must be a number of seconds > 0, not {raw!r}"
            ) from None
    config.stash[_TIMEOUT] = value


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_CALL_PASSED] = report.passed
    if report.failed and not item.stash.get(_SECTIONS_ADDED, False):
        reporters = item.stash.get(_REPORTERS, [])
        for reporter in reporters:  # a stopped server's transcript is complete and final
            reporter.stop()
        sections = [s for r in reporters for s in r.report_sections()]
        if sections:
            item.stash[_SECTIONS_ADDED] = True
            report.sections.extend(sections)
    return report


def _pytest_fail(message: str) -> NoReturn:
    __tracebackhide__ = True
    pytest.fail(message)


def _register(request: pytest.FixtureRequest, reporter: _Reporter) -> None:
    request.node.stash.setdefault(_REPORTERS, []).append(reporter)


def _should_check(request: pytest.FixtureRequest) -> bool:
    """Teardown checks only after a passing test: a failed one has said what went wrong
    (the servers' transcripts are in its report) and may have left its client open."""
    return request.node.stash.get(_CALL_PASSED, False)


@pytest.fixture
def embeddedserver_timeout(pytestconfig: pytest.Config) -> float | None:
    """Default step timeout of this module's fixtures: the ``embeddedserver_timeout`` ini
    setting, or None for the built-in defaults. Override this fixture to change it for a
    module, class or test."""
    return pytestconfig.stash.get(_TIMEOUT, None)


@pytest.fixture
def tcpserver_factory(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    embeddedserver_timeout: float | None,
) -> Iterator[TcpServerFactory]:
    """Make independent ``TcpServer``s: ``server = await tcpserver_factory()`` (or
    without await in a sync test); ``tcpserver_factory(timeout=0.5, name="db")``. At
    teardown each server is checked (``expect_disconnect()`` if a client is connected in
    its script, then join) and stopped."""
    factory = TcpServerFactory(
        timeout=TCPSERVER_TIMEOUT if embeddedserver_timeout is None else embeddedserver_timeout,
        fail=_pytest_fail,
        monkeypatch=monkeypatch,
    )
    _register(request, factory)
    yield factory
    report = factory.close(check=_should_check(request))
    if report:
        pytest.fail(report, pytrace=False)


@pytest.fixture
def tcpserver(tcpserver_factory: TcpServerFactory) -> TcpServer:
    """One ``TcpServer`` from ``tcpserver_factory``, named "tcpserver"."""
    return tcpserver_factory(name="tcpserver")


@pytest.fixture
def command_server(
    request: pytest.FixtureRequest, embeddedserver_timeout: float | None
) -> Iterator[CommandServerFactory]:
    """Start ``CommandServer``-family servers: ``command_server([RECEIVE, "pong"])``,
    ``command_server(commands, OneShotServer, timeout=2)``. At teardown they are stopped
    and ``check()``ed."""
    factory = CommandServerFactory(embeddedserver_timeout)
    _register(request, factory)
    yield factory
    report = factory.close(check=_should_check(request))
    if report:
        pytest.fail(report, pytrace=False)
