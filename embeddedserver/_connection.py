"""One fake-server connection: the I/O shell that does what the script runner asks.

``Connection`` owns the socket; the pure ``_runner.ScriptRunner`` owns the script. ``run()``
asks the runner for the next action (read until a deadline, send, pause, close, reset,
half-close, call the user's step, start TLS) and does it, feeding back what one read
returned and the errors it met; a failure the runner reports is raised as ``StepFailed``
carrying the ``Failure``. Every wait is a ``poll`` on the socket plus the server's wake-up
pipe (``Waker``), with a deadline, so ``stop()`` interrupts any step at once
(``ServerStopped``). A plain socket stays blocking and every read and send passes
``MSG_DONTWAIT`` (one system call fewer than ``setblocking(False)``); TLS, and a ``Call``
step, get a non-blocking socket.

The servers create connections; a ``Call`` step receives one as its handle (``recv``,
``peek``, ``send``, ``close``, ``reset``, ``half_close``, ``pause``, the raw ``sock``, the
``record``).
"""

from __future__ import annotations

import os
import select
import socket
import ssl
import struct
import time
from collections.abc import Callable
from typing import Any

from ._runner import Action, ScriptRunner
from ._text import SERVER_EOF_NOTE
from .record import Failure, show_bytes

__all__ = ["RECV_SIZE", "Connection", "ServerStopped", "StepFailed", "Waker", "poll_ms"]

# The runner's answers, bound once: Connection.run compares every action against them.
_READ, _SEND, _PAUSE, _CALL = Action.READ, Action.SEND, Action.PAUSE, Action.CALL
_HALF_CLOSE, _START_TLS, _DONE = Action.HALF_CLOSE, Action.START_TLS, Action.DONE
_CLOSE, _RESET, _FAILED = Action.CLOSE, Action.RESET, Action.FAILED

#: Bytes asked for by one read: large, so that a big upload takes few system calls.
RECV_SIZE = 256 * 1024
_FIRST_RECV_SIZE = 16 * 1024
#: Where the system has it, reads and sends pass MSG_DONTWAIT and the socket itself stays
#: blocking: one system call fewer per connection than setblocking(False).
_DONTWAIT: int = getattr(socket, "MSG_DONTWAIT", 0)



# ---------------------------------------------------------------------------
# stopping and waking
# ---------------------------------------------------------------------------


class ServerStopped(Exception):
    """Raised inside a server thread when ``stop()`` interrupts a wait."""


class StepFailed(Exception):
    """A step could not complete; carries the ``Failure`` to record."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.summary)
        self.failure = failure


class Waker:
    """A pipe that becomes (and stays) readable once ``wake()`` is called."""

    def __init__(self) -> None:
        pipe2 = getattr(os, "pipe2", None)
        if pipe2 is not None:  # one system call instead of three
            self.rfd, self.wfd = pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        else:
            self.rfd, self.wfd = os.pipe()
            os.set_blocking(self.wfd, False)
        self.closed = False

    def wake(self) -> None:
        if self.closed:  # the descriptor numbers may already belong to someone else
            return
        try:
            os.write(self.wfd, b"!")
        except (BlockingIOError, OSError):
            pass  # already readable, or closing: either way the waiters wake

    def clear(self) -> None:
        """Make the pipe unreadable again, for a waker used more than once. Call it only
        when the pipe is readable (it reads once; wake() was called at most a few times)."""
        if not self.closed:
            os.read(self.rfd, 4096)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.rfd)
            os.close(self.wfd)


# ---------------------------------------------------------------------------
# the connection handle and step runner
# ---------------------------------------------------------------------------

_IN = select.POLLIN | select.POLLPRI
_OUT = select.POLLOUT
_ERR = select.POLLERR | select.POLLHUP | select.POLLNVAL
#: poll() takes a C int of milliseconds: a longer (or infinite) wait is several polls.
_MAX_POLL_MS = 2**31 - 1


def poll_ms(deadline: float) -> int:
    """Milliseconds left until *deadline* (monotonic), rounded up, as poll() takes them."""
    left = (deadline - time.monotonic()) * 1000 + 0.999
    return max(0, int(left)) if left < _MAX_POLL_MS else _MAX_POLL_MS


class Connection:
    """One client connection: wake-aware, recorded I/O, and the step runner.

    A ``Call`` step receives this handle. Use ``recv``/``recv_exactly``/``peek``/``send``/
    ``close``/``reset``/``half_close``/``pause``; the raw socket is ``sock`` (made
    non-blocking before the step runs), what happened so far is ``record``. Reads
    return bytes a previous step already buffered before reading the socket; what they
    return is recorded and reaches the server's ``received`` as a read step's chunk does.
    All waits end early with ``ServerStopped`` on ``stop()``.
    """

    def __init__(
        self,
        sock: socket.socket,
        peer: Any,
        runner: ScriptRunner,
        waker: Waker,
        *,
        ssl_context: ssl.SSLContext | None = None,
        rbuf: bytearray | None = None,
        poll_first: bool = True,
    ) -> None:
        self.sock = sock
        self.peer = peer
        self.runner = runner
        self.record = runner.record
        self.number = runner.record.number
        self.timeout = runner.timeout
        self.inbox = runner.inbox
        self.open = True
        #: True once bytes no step read were recorded at the close ("(left unread)",
        #: "(after the script)").
        self.unread = False
        self.ssl_context = ssl_context
        self._waker = waker
        #: While the connection waits for its client: POLLIN (for bytes or EOF) or POLLOUT
        #: (for room to send: the client does not read); else 0.
        self.waiting_for = 0
        #: Called when the connection starts waiting for the client, or None.
        self.on_idle: Callable[[], None] | None = None
        #: None when nobody listens: then the texts are not even formatted.
        self._emit = runner.emit
        self._on_chunk = runner.on_chunk
        # The poll objects are made on first use: most steps of most connections find
        # their bytes already there and never wait.
        self._poll: select.poll | None = None
        self._mask = 0
        self._wake_poll: select.poll | None = None
        #: Other descriptors to watch while this connection waits: ``{fd: handler}``;
        #: ``handler()`` runs on this thread when *fd* is readable (a server with one
        #: thread accepts a second client so, mid-step). Set before the first wait.
        self.also_watch: dict[int, Callable[[], object]] = {}
        # The read buffer: a server serving one connection at a time lends its own. Else
        # it starts small (a crowd of connections each with 256 KiB costs page faults)
        # and grows to RECV_SIZE the first time a read fills it.
        self._rbuf = rbuf if rbuf is not None else bytearray(_FIRST_RECV_SIZE)
        #: Flags for every recv/send: MSG_DONTWAIT on a blocking plain socket, else 0 on
        #: a non-blocking one (TLS takes no flags).
        self._flags = 0
        #: True when the next read of a plain socket most likely finds nothing yet (just
        #: after a send; on a new connection, as *poll_first* guesses): poll first
        #: instead of a read that fails with EAGAIN. Not for TLS, whose buffered records
        #: poll() cannot see.
        plain = not isinstance(sock, ssl.SSLSocket)
        self._wait_first = plain and poll_first
        #: Whether the first read found nothing yet (it met EAGAIN, or polled first): the
        #: owner's guess of *poll_first* for its next connection.
        self.first_read_waited = self._wait_first
        self._first_read = plain and not poll_first
        if _DONTWAIT and plain and sock.gettimeout() is None:
            self._flags = _DONTWAIT
        else:
            sock.setblocking(False)

    def _nonblocking(self) -> None:
        """Make the socket itself non-blocking: for TLS, and for a Call step that uses
        ``sock`` directly."""
        if self._flags:
            self.sock.setblocking(False)
            self._flags = 0

    # -- waiting ---------------------------------------------------------

    def _wait(self, mask: int, deadline: float | None) -> bool:
        """Wait until the socket is ready for *mask*; False at the deadline."""
        if mask & _IN and isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        poller = self._poll
        if poller is None:
            poller = self._poll = select.poll()
            poller.register(self._waker.rfd, _IN)
            for fd in self.also_watch:
                poller.register(fd, _IN)
        if mask != self._mask:
            if self._mask:
                poller.modify(self.sock, mask)
            else:
                poller.register(self.sock, mask)
            self._mask = mask
        # Waiting for the client (to send, or to read what was sent): the server is settled
        # here, unless bytes wait on the socket while it waits to read (a verdict looks at
        # both: see servers.CommandServer._settle).
        self.waiting_for = mask
        if self.on_idle is not None:
            self.on_idle()
        try:
            return self._poll_until(poller, deadline)
        finally:
            self.waiting_for = 0

    def _poll_until(self, poller: select.poll, deadline: float | None) -> bool:
        while True:
            if deadline is None:
                ms = None
            else:
                ms = poll_ms(deadline)
            ready = poller.poll(ms)
            if not ready:
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                continue
            mine = False
            for fd, _ in ready:
                if fd == self._waker.rfd:
                    raise ServerStopped()
                handler = self.also_watch.get(fd) if self.also_watch else None
                if handler is None:
                    mine = True
                else:
                    handler()
            if mine:
                return True

    def pause(self, seconds: float) -> None:
        """Wait *seconds* (ends early, with ServerStopped, if the server stops)."""
        self._sleep_until(time.monotonic() + seconds)

    def _sleep_until(self, deadline: float) -> None:
        if self.on_idle is not None:  # the server makes the client wait: settled too
            self.on_idle()
        poller = self._wake_poller()
        while True:
            if poller.poll(poll_ms(deadline)):
                raise ServerStopped()
            if time.monotonic() >= deadline:
                return

    @property
    def stopping(self) -> bool:
        """True once the server has been asked to stop."""
        return bool(self._wake_poller().poll(0))

    def _wake_poller(self) -> select.poll:
        if self._wake_poll is None:
            self._wake_poll = select.poll()
            self._wake_poll.register(self._waker.rfd, _IN)
        return self._wake_poll

    @property
    def settled(self) -> bool:
        """True while the connection waits for its client and the client has not done it:
        waiting to send, or waiting to read with nothing on the socket. Any thread may ask."""
        mask = self.waiting_for
        return bool(mask & _OUT) or (bool(mask & _IN) and not self.readable_now())

    def readable_now(self) -> bool:
        """True if bytes (or EOF, or an error) wait on the socket now: the client said
        something the script has not read yet. Any thread may ask."""
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        poller = select.poll()
        try:
            poller.register(self.sock, _IN)
        except (ValueError, OSError):  # closed meanwhile
            return False
        return bool(poller.poll(0))

    # -- raw reads and writes ----------------------------------------------

    def _fill(self, deadline: float | None) -> bool:
        """Read once from the socket into the inbox; False at the deadline."""
        if self._wait_first:
            self._wait_first = False
            if not self._wait(_IN, deadline):
                return False
        inbox = self.inbox
        room = inbox.space()  # a long chunk under way: read straight into it
        while True:
            try:
                n = self.sock.recv_into(self._rbuf if room is None else room, 0, self._flags)
            except (BlockingIOError, ssl.SSLWantReadError):
                if self._first_read:  # the client had not sent yet: poll first next time
                    self.first_read_waited = True
                if not self._wait(_IN, deadline):
                    return False
                continue
            except ssl.SSLWantWriteError:
                if not self._wait(_OUT, deadline):
                    return False
                continue
            except ssl.SSLZeroReturnError:
                n = 0
            self._first_read = False
            if room is not None:
                room.release()  # the inbox hands the sink over as bytes only unexported
                inbox.commit(n)
                return True
            inbox.feed(memoryview(self._rbuf)[:n])
            if n == len(self._rbuf) < RECV_SIZE:  # more is coming: read more at a time
                self._rbuf = bytearray(RECV_SIZE)
            return True

    def recv(self, n: int = 65536, timeout: float | None = None) -> bytes:
        """Return up to *n* bytes: buffered ones first, else one read. b"" means EOF.

        Raises TimeoutError after *timeout* (default: the server's) with nothing read.
        """
        if not self.inbox.buffer and not self.inbox.eof:
            deadline = time.monotonic() + (timeout or self.timeout)
            if not self._fill(deadline):
                raise TimeoutError(f"no data from the client within {timeout or self.timeout} s")
        data = self.inbox.take(n)
        if data:
            self._took(data)
        return data

    def recv_exactly(self, n: int, timeout: float | None = None) -> bytes:
        """Return exactly *n* bytes; EOFError if the client closes first."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.inbox.buffer) < n:
            if self.inbox.eof:
                raise EOFError(f"the client closed after {len(self.inbox.buffer)} of {n} bytes")
            if not self._fill(deadline):
                raise TimeoutError(f"{n} bytes not received within {timeout or self.timeout} s")
        data = self.inbox.take(n)
        self._took(data)
        return data

    def peek(self, n: int, timeout: float | None = None) -> bytes:
        """Return the next *n* bytes the client sent without consuming them (fewer if it
        closes first): the next read step, or the TLS handshake, still reads them. Before
        TLS (a ``before_tls`` step) they stay in the socket, where the handshake reads
        them; a ``ClientHello`` can be looked at so. TimeoutError after *timeout* (default:
        the server's) with fewer than *n* bytes there."""
        deadline = time.monotonic() + (timeout or self.timeout)
        inbox = self.inbox
        if inbox.buffer or isinstance(self.sock, ssl.SSLSocket):
            while len(inbox.buffer) < n and not inbox.eof:  # the script's own buffer
                if not self._fill(deadline):
                    raise TimeoutError(f"{n} bytes not received within "
                                       f"{timeout or self.timeout} s")
            return bytes(inbox.buffer[:n])
        sock = self.sock
        # poll() says readable once n bytes are queued (or at EOF), not at the first byte:
        # a peek that finds fewer after that has met the client's close.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, max(1, n))
        try:
            waited = False
            while True:
                try:
                    data = sock.recv(n, socket.MSG_PEEK | self._flags)
                except (BlockingIOError, InterruptedError):
                    data = None
                if data is not None and (len(data) >= n or not data or waited):
                    return data
                if not self._wait(_IN, deadline):
                    raise TimeoutError(f"{n} bytes not received within "
                                       f"{timeout or self.timeout} s")
                waited = True
        finally:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
            except OSError:
                pass

    def _took(self, data: bytes) -> None:
        """Record bytes a Call step read and hand them on as a read step's chunk is (to
        the server's ``received``, an asyncio server's reader)."""
        self.record.add("recv", data, "(custom step)")
        if data and self._on_chunk is not None:
            self._on_chunk(data)

    def send(self, data: bytes | bytearray | memoryview | str) -> None:
        """Send all of *data*; TimeoutError if the client reads nothing for a timeout."""
        if type(data) is not bytes:
            data = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        payload: bytes = data
        try:
            sent = self._send_all(payload)
        except (OSError, ServerStopped) as exc:  # record the part that went out
            done = getattr(exc, "sent_before_error", 0)
            if done:
                why = "the server stopped" if isinstance(exc, ServerStopped) else "the send failed"
                self.record.add("send", payload[:done], f"(partial, {why})")
            raise
        self.record.add("send", payload if sent == len(payload) else payload[:sent])
        if not isinstance(self.sock, ssl.SSLSocket):  # the client has yet to read this:
            self._wait_first = True  # its reply cannot be here yet
        if self._emit is not None:
            self._emit(self.record, f"sent {len(payload)} bytes: {show_bytes(payload)}")

    def _send_all(self, payload: bytes) -> int:
        try:  # most sends go out whole at once: no deadline, no view needed
            total = self.sock.send(payload, self._flags)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            total = 0
        except OSError as exc:
            exc.sent_before_error = 0  # type: ignore[attr-defined]
            raise
        if total == len(payload):
            return total
        view = memoryview(payload)
        deadline = time.monotonic() + self.timeout
        while total < len(payload):
            try:
                n = self.sock.send(view[total:], self._flags)
            except (BlockingIOError, ssl.SSLWantWriteError):
                try:
                    ready = self._wait(_OUT, deadline)
                except ServerStopped as stopped:
                    stopped.sent_before_error = total  # type: ignore[attr-defined]
                    raise
                if not ready:
                    stalled = TimeoutError(
                        f"the client read nothing for {self.timeout} s "
                        f"({total} of {len(payload)} bytes sent)"
                    )
                    stalled.sent_before_error = total  # type: ignore[attr-defined]
                    raise stalled from None
                continue
            except ssl.SSLWantReadError:
                if not self._wait(_IN, deadline):
                    raise TimeoutError("TLS renegotiation stalled") from None
                continue
            except OSError as exc:
                exc.sent_before_error = total  # type: ignore[attr-defined]
                raise
            total += n
            deadline = time.monotonic() + self.timeout  # progress: the timeout restarts
        return total

    # -- closing -----------------------------------------------------------

    def _drain(self) -> None:
        """Record bytes the client sent that no step consumed (without waiting)."""
        if self.inbox.buffer:
            self.record.add("recv", self.inbox.take(len(self.inbox.buffer)), "(left unread)")
            self.unread = True
        if self.inbox.eof:  # nothing comes after the client's FIN
            return
        # No poll() first: a read that finds nothing (EAGAIN) costs the same one system
        # call, and one that finds the client's EOF (the usual case) saves one.
        for _ in range(64):
            try:
                n = self.sock.recv_into(self._rbuf, 0, self._flags)
            except (BlockingIOError, ssl.SSLError, OSError):
                return
            if not n:
                return
            self.record.add("recv", bytes(self._rbuf[:n]), "(after the script)")
            self.unread = True

    def close(self, how: str = "server closed", *, tls_goodbye: bool = True) -> None:
        """Close gracefully (FIN), first reading what the client already sent. On TLS,
        a TLS close_notify is sent first unless *tls_goodbye* is False."""
        if not self.open:
            return
        self._drain()
        self.finish(how, tls_goodbye)

    def reset(self) -> None:
        """Abortive close: SO_LINGER 0, so the client gets ECONNRESET."""
        if not self.open:
            return
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.finish("server reset", tls_goodbye=False)

    def half_close(self) -> None:
        """Shut the write side: the client reads EOF, the server can still read. On TLS
        this is a TLS close_notify; the TLS session stays open for reading."""
        self._shut_write()
        self.record.add("note", text=f"{SERVER_EOF_NOTE} (half-close)")

    def _shut_write(self) -> None:
        if isinstance(self.sock, ssl.SSLSocket):
            # SSLSocket.shutdown() would drop the TLS layer (later reads would return
            # ciphertext). unwrap() sends close_notify, then wants the peer's: on this
            # non-blocking socket it raises SSLWantReadError and keeps the session.
            try:
                self.sock.unwrap()
            except ssl.SSLWantReadError:
                pass
        else:
            self.sock.shutdown(socket.SHUT_WR)

    def finish(self, how: str, tls_goodbye: bool = True) -> None:
        if not self.open:
            return
        self.open = False
        if self.record.ended is None:
            self.record.ended = how
        self.record.add("note", text=how)
        if self._emit is not None:
            self._emit(self.record, how)
        if tls_goodbye and isinstance(self.sock, ssl.SSLSocket):
            try:
                self.sock.unwrap()  # sends close_notify; the peer's reply is not awaited
            except (ssl.SSLError, OSError, ValueError):
                pass
        try:
            self.sock.close()
        except OSError:
            pass

    # -- running the script ------------------------------------------------------

    def run(self) -> None:
        """Do what the runner asks until its script ends (the connection is then closed),
        it fails (``StepFailed``), or a growing script runs out of steps (IDLE: the
        connection stays open). Raises ServerStopped when the server stops."""
        runner = self.runner
        while self.open:
            action = runner.next_action(time.monotonic())
            if action is _READ:
                try:
                    self._fill(runner.deadline)
                except (ServerStopped, StepFailed):
                    raise
                except Exception as exc:
                    runner.io_error(exc)
            elif action is _SEND:
                if self._send(runner):
                    runner.done()
            elif action is _PAUSE:
                assert runner.deadline is not None
                self._sleep_until(runner.deadline)
            elif action is _CALL:
                assert runner.call is not None
                if self.on_idle is not None:  # the user's step judges for itself
                    self.on_idle()
                self._nonblocking()
                try:
                    runner.call(self)
                except (ServerStopped, StepFailed):
                    raise
                except Exception as exc:
                    runner.io_error(exc)
                    continue
                runner.done()
            elif action is _HALF_CLOSE:
                try:
                    self._shut_write()
                except Exception as exc:
                    runner.io_error(exc)
                    continue
                runner.done()
            elif action is _START_TLS:
                assert self.ssl_context is not None
                if not isinstance(self.sock, ssl.SSLSocket):  # a before_tls step may have
                    self.start_tls(self.ssl_context)  # started it (alpn.ExpectALPN)
                runner.done()
            elif action is _DONE:
                self.close(runner.ending)
            elif action is _CLOSE:
                # A client that gave up a Hang with a reset gets no TLS goodbye.
                if runner.ending == "client reset":
                    self.finish(runner.ending, tls_goodbye=False)
                else:
                    self.close(runner.ending)
            elif action is _RESET:
                self.reset()
            elif action is _FAILED:
                assert runner.failure is not None
                raise StepFailed(runner.failure)
            else:  # IDLE: the owner of a growing script adds steps and runs again
                return

    def _send(self, runner: ScriptRunner) -> bool:
        """Send the runner's outgoing bytes; False if that failed (the runner was told)."""
        payload = runner.outgoing
        try:
            self._send_all(payload)
        except ServerStopped as exc:
            runner.partly_sent(getattr(exc, "sent_before_error", 0), "the server stopped")
            raise
        except Exception as exc:
            runner.partly_sent(getattr(exc, "sent_before_error", 0), "the send failed")
            runner.io_error(exc)
            return False
        if not isinstance(self.sock, ssl.SSLSocket):  # the client has yet to read this:
            self._wait_first = True  # its reply cannot be here yet
        return True

    def start_tls(self, context: ssl.SSLContext, timeout: float | None = None) -> None:
        """Run the server side of a TLS handshake on this connection."""
        self._nonblocking()
        self._wait_first = self._first_read = False
        self.sock = context.wrap_socket(
            self.sock, server_side=True, do_handshake_on_connect=False
        )
        self._mask = 0
        self._poll = None  # a new socket object: register it afresh
        limit = timeout or self.timeout
        deadline = time.monotonic() + limit
        while True:
            try:
                self.sock.do_handshake()
                break
            except ssl.SSLWantReadError:
                ready = self._wait(_IN, deadline)
            except ssl.SSLWantWriteError:
                ready = self._wait(_OUT, deadline)
            except OSError as exc:  # ssl.SSLError included: the client broke the handshake
                raise StepFailed(self._tls_failure(_handshake_error(exc))) from None
            if not ready:
                raise StepFailed(self._tls_failure(
                    f"the TLS handshake did not complete within {limit:g} s", "timeout"
                ))
        self.record.add("note", text=f"TLS established ({self.sock.version()})")

    def _tls_failure(self, summary: str, kind: str = "tls") -> Failure:
        self.record.add("note", text=summary)
        return Failure(
            kind, summary, connection=self.number, peer=self.peer,
            transcript=self.record.render(tail=8, ending=self.runner.ending_after(kind)),
        )


def _handshake_error(exc: OSError) -> str:
    """Say in words how a client broke the server side of a TLS handshake."""
    if isinstance(exc, (ssl.SSLEOFError, BrokenPipeError)):
        return "the client closed the connection during the TLS handshake"
    if isinstance(exc, ConnectionResetError):
        return "the client reset the connection during the TLS handshake"
    reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
    text = f"the TLS handshake failed: {reason} ({type(exc).__name__})"
    if str(reason).upper() in ("HTTP_REQUEST", "WRONG_VERSION_NUMBER", "HTTPS_PROXY_REQUEST"):
        text += "; the client does not seem to speak TLS"
    return text
