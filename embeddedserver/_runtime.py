"""The one runtime every server runs on: listening, the accept loop, threads, the lifecycle.

Model
-----
``BaseServer`` binds and listens in its constructor (so ``.port`` is known and a client can
connect at once, CPython's ``socketserver`` shape), then starts one accept thread. The
thread waits in ``poll`` on the listeners and a wake-up pipe (``_connection.Waker``); each
connection it accepts is counted and handed to the subclass's ``_serve(sock, peer,
number)``: on the accept thread itself, one connection at a time, or on a worker thread
of its own with ``concurrent=True``. Every wait any server thread makes also watches the
wake-up pipe, so ``stop()`` wakes them all at once, and joins them, with a named bound
(``JOIN_TIMEOUT``). Nothing sleeps and nothing polls a flag.

What a client does wrong is recorded as a ``Failure`` in ``errors`` (``_record``); an
exception on a server thread is recorded the same way, never lost. ``check()``,
``__exit__`` and the fixtures raise them all, in one report.

Subclasses (``servers.CommandServer`` and its kin, ``replay.RecordingProxy``) provide
``_serve`` and ``__repr__``, and may override the wording hooks ``_report_head`` and
``_still_busy``, ``_on_stopped`` (called after a stop from outside the server's threads),
and the class attributes below. Callers use ``port``, ``address``, ``addresses``, ``url``,
``connections``, ``errors``, ``transcript()``, ``check()``, ``failure_report()``,
``wait_for_connections()``, ``wait_idle()``, ``stop()`` and the context manager.
"""

from __future__ import annotations

import logging
import os
import re
import select
import socket
import threading
import traceback
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, TypeVar

from . import _args
from ._acceptor import Ticket, acceptor
from ._args import DEFAULT_TIMEOUT, JOIN_TIMEOUT
from ._connection import Waker
from ._listen import check_unix_path, open_listeners
from ._text import format_address, plural
from .record import ConnectionRecord, Failure, render_transcript

__all__ = ["BaseServer"]

# The package's logger gets its NullHandler here (every server is one of these); each part
# logs to a child named after its module.
logging.getLogger("embeddedserver").addHandler(logging.NullHandler())
log = logging.getLogger(__name__)

_ServerT = TypeVar("_ServerT", bound="BaseServer")



#: How ``url`` names a host a client cannot connect to as it is: the wildcards.
_WILDCARD_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def _url(address: tuple[str, int] | str, scheme: str) -> str:
    """``scheme://host:port`` for a TCP address, ``http+unix://PATH`` (percent-encoded)
    for a Unix socket's."""
    if isinstance(address, str):
        return f"{scheme}+unix://{urllib.parse.quote(address, safe='')}"
    host, port = address
    host = _WILDCARD_LOOPBACK.get(host, host)
    if ":" in host:  # IPv6: bracketed, and a zone's % written as %25 (RFC 6874)
        host = "[" + host.replace("%", "%25") + "]"
    return f"{scheme}://{host}:{port}"


def _compile_match(match: str) -> re.Pattern[str]:
    if not isinstance(match, str):
        raise TypeError(f"match must be a regex (str) for the failure message, not {match!r}")
    try:
        return re.compile(match)
    except (re.error, OverflowError, RecursionError) as exc:
        raise ValueError(f"match {match!r} is not a valid regex: {exc}") from None


class BaseServer:
    """A listening server with one accept thread: the runtime of every server class.

    Arguments (checked by the subclass, which calls this constructor last, once its own
    state is ready: the accept thread starts here):
        host, port, path: where to listen (see ``_listen``); *path* wins when given.
        backlog: the listen queue length.
        concurrent: serve each connection on a worker thread of its own.
        max_connections: stop listening after this many connections (None: no limit).
        thread_name: the accept thread's name, before the address.
        start: start accepting now; else the subclass calls ``_start()`` when it is ready
            (to make state that needs ``_lock`` first).
    """

    #: The word for a connection served to its end, in ``wait_for_connections()`` messages.
    _finished_word = "finished"
    _log = log
    #: True for a subclass whose accept loop also watches a second pipe: ``_kick()`` makes
    #: the loop call ``_on_kick()`` (news for the subclass); a server that never asks
    #: pays for no second pipe.
    _uses_kick = False

    def __init__(
        self,
        *,
        host: str,
        port: int,
        path: str | os.PathLike[str] | None,
        backlog: int,
        concurrent: bool,
        max_connections: int | None,
        thread_name: str = "embeddedserver",
        start: bool = True,
    ) -> None:
        self.errors: list[Failure] = []
        self.connections: list[ConnectionRecord] = []
        self.STOPPED = False
        self.concurrent = concurrent
        self.max_connections = max_connections
        self._lock = threading.Lock()
        # The condition waiters wait on is made by the first of them (making one costs
        # a measurable part of a server's start-up, and most servers have no waiter).
        self._changed: threading.Condition | None = None
        # The count lets the threads that count connections skip notify_all() (a
        # measurable cost per connection) when nobody waits.
        self._waiting = 0  # threads in wait_for_connections()/wait_idle()
        self._accepted = 0
        self._finished = 0
        self._workers: list[threading.Thread] = []
        self._prune_at = 64  # drop finished workers from the list when it is this long
        self._stop_lock = threading.Lock()
        self._accepting = threading.Lock()  # held from accept() until the admission
        self._stopped_inside = False  # stop() was called by a server thread
        unix_path = check_unix_path(path, host, port)
        #: The Unix socket path (None for TCP); ``address`` is where clients connect.
        self.path = unix_path
        self.host: str | None = host if unix_path is None else None
        self._listeners, addresses = open_listeners(host, port, unix_path, backlog)
        #: Every address the server listens on: ``(host, port)`` pairs (two for
        #: ``host="localhost"``: 127.0.0.1 and ::1), or ``[path]`` for a Unix socket.
        self.addresses: list[tuple[str, int] | str] = addresses
        # What accept() would look up on each listener for every connection, as plain
        # ints: its family and type properties convert them to enums each time.
        self._kinds = {lst: (lst.family.value, lst.type.value, lst.proto)
                       for lst in self._listeners}
        self._admits_all = type(self)._admit is BaseServer._admit  # no call to make
        first = addresses[0]
        self._port: int | None = first[1] if isinstance(first, tuple) else None
        self._where = format_address(unix_path if unix_path is not None else self.addresses[0])
        self._waker = Waker()
        self._kicker = Waker() if self._uses_kick else None
        self._thread_name = thread_name
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"{thread_name}:{self._where}", daemon=True
        )
        #: The listeners as the process's acceptor watches them until a client comes
        #: (then it starts the accept thread); None once the thread runs.
        self._ticket: Ticket | None = None
        if start:
            self._start()

    def _start(self) -> None:
        """Start accepting (for a subclass that passed ``start=False``): the accept thread
        starts when the first client connects (``_acceptor``), or now where the platform
        has no acceptor."""
        watcher = acceptor()
        if watcher is None:
            self._thread.start()
        else:
            fds = [listener.fileno() for listener in self._listeners]
            self._ticket = watcher.watch(fds, self._client_came)

    def _client_came(self) -> None:
        """On the acceptor's thread: a client waits on a listener; start the accept thread."""
        try:
            self._thread.start()
        except Exception:  # no thread to be had (RuntimeError: can't start new thread)
            self._record(Failure("error", "the server's thread could not start",
                                 traceback=traceback.format_exc()))

    def _never_started(self) -> bool:
        """True if no client came before this call, and none will start the accept thread
        (the listeners are no longer watched); False once the thread was started."""
        ticket, self._ticket = self._ticket, None
        if ticket is None:
            return not self._thread.ident  # never started: no acceptor, start=False
        watcher = acceptor()
        assert watcher is not None
        return watcher.forget(ticket)

    # -- where -------------------------------------------------------------------

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
        first listener for TCP (``("127.0.0.1", 40123)``, ``("::1", 40123)`` for
        ``host="::1"``), the path (str) for a Unix socket."""
        return self.addresses[0]

    @property
    def url(self) -> str:
        """The server's address as a URL, for HTTP clients: ``http://127.0.0.1:40123``,
        ``http://[::1]:40123`` for an IPv6 server, ``https://`` for one that speaks TLS
        (an ``ssl_context``); no path and no trailing slash, so ``f"{server.url}/hello"``.
        A wildcard host (``"0.0.0.0"``, ``"::"``) is given as its loopback address.

        For a Unix-socket server, ``http+unix://`` and the path percent-encoded
        (``/tmp/s.sock`` is ``http+unix://%2Ftmp%2Fs.sock``; an abstract name's NUL is
        ``%00``; ``https+unix://`` with TLS): the form ``requests-unixsocket`` (and
        httpie, and others) take.
        """
        return _url(self.address, "https" if self._speaks_tls() else "http")

    def _speaks_tls(self) -> bool:
        """True if a client must speak TLS to this server: the scheme of ``url``."""
        return getattr(self, "ssl_context", None) is not None

    # -- context manager -----------------------------------------------------------

    def __enter__(self: _ServerT) -> _ServerT:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        if exc_type is None:
            self.verdict()
            return
        self.stop()
        if exc is not None and self.errors and hasattr(exc, "add_note"):  # 3.11+
            # The block's own error wins, but the recorded failures often explain it
            # (a client error caused by a step that failed): keep them in view.
            exc.add_note(self.failure_report())

    # -- lifecycle -------------------------------------------------------------------

    def verdict(self) -> None:
        """The end of a test: let the server finish what the client already sent, stop,
        and ``check()``. The end of a ``with`` block, the fixtures' teardown and
        ``server_for_test``'s cleanup call this; ``stop()`` alone judges nothing."""
        __tracebackhide__ = True
        self._settle()
        self.stop()
        self.check()

    def _settle(self) -> None:
        """Before the verdict: wait (bounded) until the server has run its scripts on
        everything the clients already sent. A subclass's own; nothing by default."""

    def stop(self) -> None:
        """Stop serving: wake every thread, close every socket, join every thread.

        Idempotent and prompt (a wake-up, not a timeout). Silent: failures stay in
        ``errors`` for ``check()``.
        """
        if self._on_server_thread():
            # A step stopping its own server: a server thread cannot join itself, nor the
            # accept loop that joins it. Wake everyone; the accept loop closes the pipe.
            self._stopped_inside = True
            self._wake_all()
            return
        with self._stop_lock:
            if self._waker.closed:  # stopped before, or from inside: just join
                if self._thread.ident:
                    self._thread.join(JOIN_TIMEOUT)
            elif self._never_started():  # no client ever came: no thread to wake or join
                self._wake_all()  # a subclass's hook may record what the stop cut short
                self._close_listeners()
                self._waker.close()
                if self._kicker is not None:
                    self._kicker.close()
            else:
                self._wake_all()
                # The accept loop first: once it has ended, no new worker can start.
                self._thread.join(JOIN_TIMEOUT)
                with self._lock:
                    threads = [self._thread, *self._workers]
                stuck = []
                for thread in threads:
                    thread.join(0 if thread is self._thread else JOIN_TIMEOUT)
                    if thread.is_alive():
                        stuck.append(thread.name)
                if stuck:  # the pipe stays open for the stragglers to notice
                    self._record(Failure("error", f"server threads did not stop within "
                                         f"{JOIN_TIMEOUT} s: {', '.join(stuck)} (a Call step "
                                         "that ignores conn.stopping?)"))
                else:
                    self._waker.close()
                    if self._kicker is not None:
                        self._kicker.close()
        self._on_stopped()

    def _on_stopped(self) -> None:
        """Called after ``stop()`` from outside the server's threads has joined them."""

    def _wake_all(self) -> None:
        """Tell every server thread to stop: set STOPPED and wake the waits on the pipe."""
        self.STOPPED = True
        self._waker.wake()

    def _on_server_thread(self) -> bool:
        """True when called by this server's accept loop or one of its workers."""
        current = threading.current_thread()
        with self._lock:
            return current is self._thread or current in self._workers

    # -- the accept thread -----------------------------------------------------------

    def _accept_loop(self) -> None:
        try:
            self._accept_until_stopped()
            if not self.STOPPED:  # the last connection allowed was taken: see it served
                self._join_workers()
        except Exception:
            self._record(Failure("error", "the accept loop crashed",
                                 traceback=traceback.format_exc()))
        finally:
            self._accept_loop_ended()

    def _accept_until_stopped(self) -> None:
        for listener in self._ready_listeners():
            if self._take_all(listener, every=self.concurrent):
                return

    def _ready_listeners(self) -> Iterator[socket.socket]:
        """The listeners as connections wait on them, until ``stop()``: the ones ``poll()``
        finds ready with the wake-up pipe (and the kick pipe, whose news go to
        ``_on_kick()``). The wait is never a blocking ``accept()`` (one system call fewer a
        connection): the verdict needs accept() done under ``_accepting``, which a blocked
        accept() would hold for as long as no client comes."""
        poller = select.poll()
        by_fd = {s.fileno(): s for s in self._listeners}
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        wake_fd = self._waker.rfd
        poller.register(wake_fd, select.POLLIN)
        kicker = self._kicker
        if kicker is not None:
            poller.register(kicker.rfd, select.POLLIN)
        while True:
            ready = poller.poll()
            for fd, _ in ready:
                if fd == wake_fd:
                    return
            for fd, _ in ready:
                if kicker is not None and fd == kicker.rfd:
                    kicker.clear()
                    if self._on_kick():
                        return
                elif fd in by_fd:
                    yield by_fd[fd]

    def _take_all(self, listener: socket.socket, every: bool) -> bool:
        """Accept from *listener*: every connection waiting in its backlog (a crowd
        arrives at once), or one (a server serving one at a time takes one per wake-up).
        True when the accept loop ends: the last connection ``max_connections`` allows
        was taken."""
        while not self.STOPPED:
            # Accepting, counting and admitting happen under _accepting, so that a look
            # at the backlog under that lock sees every client either waiting or counted.
            with self._accepting:
                taken = self._accept_one(listener)
            if taken is None:
                return False
            sock, peer, number, last = taken
            if sock is None:
                pass  # refused by _admit()
            elif self.concurrent:
                self._start_worker(sock, peer, number)
            else:
                self._run_connection(sock, peer, number)
            if last:
                return True
            if not every:
                return False
        return False

    def _admit_backlog(self) -> None:
        """Accept, count and ``_admit()`` every connection waiting in the backlog, serving
        none: on the accept thread while it serves a connection itself, or on any thread
        that must see every client that connected (the subclass serves what it admitted,
        and counts each one finished)."""
        with self._accepting:
            # One poll(0) finds the listeners with a client waiting: an accept() on one with
            # none would cost a system call and an exception (a teardown looks every time).
            poller = select.poll()
            by_fd = {}
            for listener in self._listeners:
                fd = listener.fileno()
                if fd >= 0:  # closed: the last connection max_connections allows was taken
                    by_fd[fd] = listener
                    poller.register(fd, select.POLLIN)
            for fd, _ in poller.poll(0):
                while self._accept_one(by_fd[fd]) is not None:
                    pass

    def _accept_one(
        self, listener: socket.socket
    ) -> tuple[socket.socket | None, Any, int, bool] | None:
        """Accept one connection from *listener*, count it and ``_admit()`` it (hold
        ``_accepting``): None if none was waiting, else the socket (None if it was refused,
        and counted finished), the peer, its number and whether it was the last one
        ``max_connections`` allows."""
        try:
            # socket.accept() without its per-call enum conversions (see _kinds).
            fd, peer = listener._accept()  # type: ignore[attr-defined]
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return None
        family, kind, proto = self._kinds[listener]
        sock = socket.socket(family, kind, proto, fileno=fd)
        if socket.getdefaulttimeout() is None and listener.gettimeout():
            sock.setblocking(True)  # as accept() does (a blocking listener: never here)
        number, last = self._count()
        if self._admits_all or self._admit(sock, peer, number):
            return sock, peer, number, last
        self._finished_one()  # refused: it ended here
        return None, peer, number, last

    def _kick(self) -> None:
        """Wake the accept loop to call ``_on_kick()`` (with ``_uses_kick``)."""
        assert self._kicker is not None, "set _uses_kick on the class"
        self._kicker.wake()

    def _on_kick(self) -> bool:
        """Called on the accept thread after a ``_kick()``; True to end the accept loop."""
        return False


    def _count(self) -> tuple[int, bool]:
        """Count one more connection accepted (holding ``_accepting``): its number, and
        whether it is the last one ``max_connections`` allows. The listeners are then
        closed, before the waiters hear of it, so that after
        ``wait_for_connections(finished=False)`` a connect is refused."""
        number = self._accepted + 1
        last = self.max_connections is not None and number >= self.max_connections
        if last:
            with self._lock:
                for listener in self._listeners:
                    listener.close()
        self._accepted_one(number)
        return number, last

    def _start_worker(self, sock: socket.socket, peer: Any, number: int) -> None:
        """Serve an admitted connection on a worker thread of its own (``concurrent``)."""
        worker = threading.Thread(
            target=self._run_connection, args=(sock, peer, number),
            name=f"{self._thread_name}:{self._where}#{number}", daemon=True,
        )
        with self._lock:
            if len(self._workers) >= self._prune_at:  # amortised: not a scan per accept
                self._workers = [w for w in self._workers if w.is_alive()]
                self._prune_at = max(64, 2 * len(self._workers))
            self._workers.append(worker)
        worker.start()

    def _run_connection(self, sock: socket.socket, peer: Any, number: int) -> None:
        try:
            self._serve(sock, peer, number)
        except Exception:  # _serve records what it expects; this is a bug, still reported
            self._record(Failure("error", f"serving connection #{number} crashed",
                                 connection=number, peer=peer,
                                 traceback=traceback.format_exc()))
            sock.close()
        finally:
            self._finished_one()

    def _admit(self, sock: socket.socket, peer: Any, number: int) -> bool:
        """Called on the accept thread before connection *number* is served: False (having
        closed *sock*) to serve it not at all. Every connection is admitted by default."""
        return True

    def _serve(self, sock: socket.socket, peer: Any, number: int) -> None:
        """Serve connection *number* on *sock* to its end, and close *sock*; a subclass's
        own. Runs on the accept thread, or on a worker with ``concurrent``."""
        raise NotImplementedError

    def _close_listeners(self) -> None:
        with self._lock:
            for lst in self._listeners:
                lst.close()

    def _accept_loop_ended(self) -> None:
        self._close_listeners()
        if self.max_connections is not None:
            self.STOPPED = True
        if self._stopped_inside:
            # stop() came from a server thread and joined nobody: once the workers are
            # done, close the pipe here, unless an outside stop() (holding the lock
            # while it joins this thread) is about to.
            self._join_workers()
            if self._stop_lock.acquire(blocking=False):
                try:
                    self._waker.close()
                finally:
                    self._stop_lock.release()

    def _join_workers(self) -> None:
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join()  # bounded: every worker wait has a deadline or a wake-up

    # -- results ---------------------------------------------------------------------

    def check(self) -> None:
        """Raise AssertionError describing every failure recorded so far, if any; once the
        server has stopped, also a count of connections the test did not expect."""
        __tracebackhide__ = True
        errors = self.failures()
        if errors:
            raise AssertionError(self.failure_report(errors))

    def failures(self) -> list[Failure]:
        """What ``check()`` would raise for, as a list: ``errors`` and, once the server
        has stopped, the counts the verdict judges (connections, rules' ``times``)."""
        with self._lock:
            errors = list(self.errors)
            if self.STOPPED:
                errors += self._count_failures()
        return errors

    def _count_failures(self) -> list[Failure]:
        """At the verdict: the connections counted against what the test expects (lock
        held). None expected of anything by default."""
        return []

    def failure_report(self, errors: Sequence[Failure] | None = None) -> str:
        """The text ``check()`` raises with."""
        if errors is None:
            with self._lock:
                errors = list(self.errors)
        body = [f"{n}) {f.message()}" for n, f in enumerate(errors, 1)]
        return "\n\n".join([self._report_head(len(errors)), *body])

    def _report_head(self, count: int) -> str:
        return f"{type(self).__name__} on {self._where}: {plural(count, 'failure')}"

    def transcript(self) -> str:
        """Every connection so far, as readable text (see ``ConnectionRecord.render``)."""
        return render_transcript(self._records())

    def _records(self) -> list[ConnectionRecord]:
        with self._lock:
            return list(self.connections)

    def _record(self, failure: Failure) -> None:
        with self._lock:
            self._add_error_locked(failure)
        self._log.warning("%r: %s", self, failure.summary)

    def _add_error_locked(self, failure: Failure) -> None:
        """Add *failure* to ``errors`` and wake whoever waits for one; lock held."""
        self.errors.append(failure)
        if self._waiting:
            assert self._changed is not None
            self._changed.notify_all()

    def assert_failed(
        self,
        kind: str | None = None,
        *,
        step: int | None = None,
        match: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Failure:
        """Assert that the client failed the script, for tests of clients that must make
        a server fail (reject a bad certificate, refuse a malformed reply): wait up to
        *timeout* seconds for a recorded failure of *kind* ('mismatch', 'timeout',
        'closed', 'reset', 'error', ...), in step *step*, whose message matches the regex
        *match* (each None: any). Return it and take it out of ``errors``, so that
        ``check()`` and the end of the ``with`` block pass; raise AssertionError saying
        what was expected and every failure that was recorded, if none matches.

            with CommandServer([Expect(b"HELLO")], verbose=False) as server:
                send_garbage_to(server.port)
                server.assert_failed("mismatch", step=0, match="offset 0")
        """
        __tracebackhide__ = True
        if kind is not None and not isinstance(kind, str):
            raise TypeError(f"kind must be a failure kind such as 'mismatch', not {kind!r}")
        if step is not None:
            _args.count(step, "step", 0)
        pattern = None if match is None else _compile_match(match)
        _args.timeout(timeout)

        def matching() -> Failure | None:
            for failure in self.errors:
                if kind is not None and failure.kind != kind:
                    continue
                if step is not None and failure.step_index != step:
                    continue
                if pattern is not None and not pattern.search(failure.message()):
                    continue
                return failure
            return None

        with self._lock:
            self._wait_for(lambda: matching() is not None, timeout)
            found = matching()
            if found is not None:
                self.errors.remove(found)
                self._failure_taken(found)
                return found
            recorded = list(self.errors)
        wanted = ", ".join(
            part for part in (
                f"kind {kind!r}" if kind is not None else "",
                f"step {step}" if step is not None else "",
                f"a message matching {match!r}" if match is not None else "",
            ) if part
        ) or "any failure"
        seen = "\n\n".join(f"{n}) {f.message()}" for n, f in enumerate(recorded, 1))
        raise AssertionError(
            f"{self!r}: expected a failure ({wanted}) within {timeout:g} s; "
            + (f"{plural(len(recorded), 'other failure')} recorded:\n\n{seen}" if recorded
               else "the client made the server fail in no way (no failure recorded)")
        )

    def _failure_taken(self, failure: Failure) -> None:
        """``assert_failed()`` took *failure* out of ``errors``; lock held."""

    # -- counting and waiting ----------------------------------------------------------

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
            self._finished_locked()

    def _finished_locked(self) -> None:
        """``_finished_one()`` with the lock held."""
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
