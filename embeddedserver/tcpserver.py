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
client acts. The server listens on 127.0.0.1 and ::1 (one port) and is served by one
thread, started with the first step, which runs the steps in order; every step but
``expect_connect`` is an engine step (``Expect``, ``ExpectFrame``, ``ExpectClose``,
``Send``, ``SendFrame``, ``Close``) run by the engine's ``Connection.run_step``, the same
interpreter as ``CommandServer``. Whenever that thread waits (for a step to be added, for
a client, or inside a step for the client) it also watches the listeners and accepts, so
a second client is noticed at once, while the first is still being served. This module
adds the growing step list and the accepting; ``embeddedserver._tcpmessages`` words the failures
in terms of the call that added the step.

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
import select
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, NoReturn

from . import _args
from ._args import JOIN_TIMEOUT, TCPSERVER_TIMEOUT
from ._connection import Connection, ServerStopped, StepFailed, Waker, _poll_ms
from ._listen import listen_tcp
from ._tcpmessages import _explain, _Planned, _unread_failure
from .record import ConnectionRecord, Failure, render_transcript, show_bytes
from .steps import Close, Expect, ExpectClose, ExpectFrame, Send, SendFrame

__all__ = ["Join", "TcpServer"]

# The logger keeps the name it had when this code lived in the pytest plugin.
log = logging.getLogger("embeddedserver.pytest")

_RDHUP = getattr(select, "POLLRDHUP", 0)

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


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
        self.timeout = _args.timeout(timeout)
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
        self._listeners = listen_tcp("localhost", 0, 16)
        self.service_port: int = self._listeners[0].getsockname()[1]
        self.addresses: list[tuple[str, int]] = [s.getsockname()[:2] for s in self._listeners]
        self._waker = Waker()  # stop(), or the first failure: every wait ends
        self._kick = Waker()  # a step was added while the server thread was idle
        self._idle = False  # the server thread waits for steps (it must be kicked)
        self._closing = False  # teardown: take the clients queued, then end
        self._stopped = False
        # A thread runs while there are steps to run or a client in the script: the first
        # step starts it, and it ends when it runs out of steps with no client connected
        # (the next step starts another). Meanwhile the listeners' backlog holds a client.
        self._thread = self._new_thread()
        self._thread_running = False

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
        return self.timeout if timeout is None else _args.timeout(timeout)

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
                if self._idle:
                    self._idle = False
                    self._kick.wake()
                if not (self._thread_running or self._stopped):
                    self._start_thread()
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
        """Stop at once: wake and join the server thread, close every socket. Idempotent."""
        with self._changed:
            if self._stopped:
                return
            self._stopped = self._halted = True
            self._notify()
        self._waker.wake()
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join(JOIN_TIMEOUT)
        with self._lock:
            self._close_all()
        for listener in self._listeners:  # (the thread closes them, if it ever ran)
            listener.close()
        if self._thread.is_alive():
            log.error("%s: thread %s did not stop within %s s", self, self._thread.name,
                      JOIN_TIMEOUT)
        else:
            self._waker.close()
            self._kick.close()

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
        with self._lock:  # the script is over: the thread takes the clients queued and ends
            self._closing = True
            running = self._thread_running
            if running:
                self._kick.wake()
        if self._thread.ident is not None:
            self._thread.join(JOIN_TIMEOUT)
        if not running:  # no thread (no step, or it ended idle): take the clients queued
            self._take_queued()
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

    # -- server thread -----------------------------------------------------
    #
    # One thread runs the steps and accepts clients: whenever it waits (for a step to be
    # added, for a client to connect, or inside a step for the client) it also watches
    # the listeners, so a second client is noticed at once, mid-step.

    def _new_thread(self) -> threading.Thread:
        return threading.Thread(
            target=self._serve, name=f"{self.name}:{self.service_port}", daemon=True
        )

    def _start_thread(self) -> None:
        """Start a server thread; call with the lock held, so that stop() sees a thread
        it can join (the thread waits for the lock before it does anything). A thread
        that ended idle let go of the lock for good: joining it here cannot deadlock."""
        if self._thread.ident is not None:
            self._thread.join()
            self._thread = self._new_thread()
        self._thread_running = True
        self._thread.start()

    def _serve(self) -> None:
        listeners = {s.fileno(): s for s in self._listeners}
        current: tuple[_Accepted, Connection] | None = None
        closed = ended_idle = False
        try:
            while True:
                with self._changed:
                    if self._halted:
                        return
                    if self._done < len(self._steps):
                        index, planned = self._done, self._steps[self._done]
                    elif self._closing:
                        break
                    elif current is None:  # out of steps, no client: the next step restarts
                        self._thread_running = False
                        ended_idle = True
                        return
                    else:
                        self._idle = True
                        planned = None
                if planned is None:
                    self._wait_for_work(listeners)
                    continue
                try:
                    current = self._execute(index, planned, current, listeners)
                except ServerStopped:
                    return
                except StepFailed as exc:
                    self._abort(exc.failure)
                    return
                with self._changed:
                    self._done += 1
                    self._notify()
            self._take_queued()  # clients that connected before the end
            closed = True  # the queued clients stay for the teardown report; stop() closes
        except ServerStopped:
            pass
        except Exception as exc:
            self._abort(Failure("error", f"{self.name} crashed: {exc!r}",
                                traceback=traceback.format_exc()))
        finally:
            if not ended_idle:
                self._end_serving(current, closed)

    def _end_serving(self, current: tuple[_Accepted, Connection] | None, closed: bool) -> None:
        """The thread's last act when the server stops, fails or closes."""
        for listener in self._listeners:
            listener.close()
        if current is not None:  # ended as the failure report's transcript says
            failure = self._failure
            conn = current[1]
            conn.close(conn._ending_after(failure.kind) if failure else "stopped")
        with self._changed:
            if not closed:
                self._close_all()
            self._runner_done = True
            self._notify()

    def _wait_for_work(self, listeners: dict[int, socket.socket]) -> None:
        """Idle until a step is added (a kick) or stop; accept the clients meanwhile."""
        ready = self._poll(listeners, self._kick.rfd, None)
        if self._kick.rfd in ready:
            with self._lock:
                self._kick.clear()

    def _poll(
        self, listeners: dict[int, socket.socket], extra: int | None, ms: int | None
    ) -> list[int]:
        """One wait on the listeners, the waker and *extra*; accepts the clients that
        arrived. Raises ServerStopped on the waker."""
        poller = select.poll()
        for fd in (*listeners, self._waker.rfd, *(() if extra is None else (extra,))):
            poller.register(fd, select.POLLIN)
        ready = [fd for fd, _ in poller.poll(ms)]
        if self._waker.rfd in ready:
            raise ServerStopped()
        for fd in ready:
            if fd in listeners:
                self._accept_one(listeners[fd])
        return ready

    def _take_queued(self) -> None:
        """Accept every client waiting in the listeners' backlog."""
        for listener in self._listeners:
            while self._accept_one(listener):
                pass

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

    def _execute(
        self, index: int, planned: _Planned, current: tuple[_Accepted, Connection] | None,
        listeners: dict[int, socket.socket],
    ) -> tuple[_Accepted, Connection] | None:
        """Run one step; return the connection being served afterwards."""
        if planned.kind == "connect":
            entry = self._take_connection(index, planned, listeners)
            emit = self._emit if log.isEnabledFor(logging.INFO) else None
            conn = Connection(entry.sock.dup(), entry.record.peer, entry.record, self._waker,
                              self.timeout, emit)
            conn.also_watch = {
                fd: functools.partial(self._accept_one, listener)
                for fd, listener in listeners.items()
            }
            if emit is not None:
                emit(entry.record, "taken by expect_connect()")
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

    def _take_connection(
        self, index: int, planned: _Planned, listeners: dict[int, socket.socket]
    ) -> _Accepted:
        deadline = time.monotonic() + planned.timeout
        while True:
            with self._lock:
                if self._halted:
                    raise ServerStopped()
                if self._pending:
                    return self._pending.popleft()
            ms = _poll_ms(deadline)
            if ms == 0:
                break
            self._poll(listeners, None, ms)
        with self._lock:
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

