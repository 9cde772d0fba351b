"""Scripted fake TCP servers that live inside a test process.

    >>> from embeddedserver import CommandServer, RECEIVE, http_response
    >>> import urllib.request
    >>> with CommandServer([RECEIVE, http_response("hello world")], verbose=False) as srvr:
    ...     urllib.request.urlopen(f"http://127.0.0.1:{srvr.port}/hello").read()
    b'hello world'

Model
-----
The script servers are thin shells over the one runtime (``_runtime.BaseServer``: it
listens in the constructor, accepts on its own thread, owns the lifecycle and the failure
policy). Each accepted connection gets a ``ScriptRunner`` (``_runner``: the pure
interpreter of the script, compiled once per server by ``steps.compile_script``) and a
``Connection`` (``_connection``: the I/O shell that does what the runner asks), one
connection at a time, or one thread each with ``concurrent=True``.

What a client does wrong is recorded as a ``Failure`` in ``server.errors`` (the
connection is closed); ``check()`` raises ``AssertionError`` with all of them. An
exception on a server thread is recorded the same way, never lost.

The verdict (``verdict()``: the end of a ``with`` block, the fixtures, ``server_for_test``)
is earned: ``_settle`` first lets the server run its scripts on what the clients already
sent; then a script a client left waiting, bytes after a script of expectations and a
count of connections the test did not expect are failures too (each with its opt-out:
``allow_unfinished``, ``allow_extra_bytes``, ``expect_connections``).

Sections: options - servers (the verdict inside) - unittest helper.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import socket
import ssl
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypedDict, TypeVar, overload

from . import _args
from ._args import DEFAULT_TIMEOUT, JOIN_TIMEOUT
from ._connection import RECV_SIZE, Connection, ServerStopped, StepFailed
from ._runner import ScriptRunner
from ._runtime import BaseServer
from ._text import plural
from .record import ConnectionRecord, Event, Failure
from .rules import RuleBook, Rules, rules_in
from .steps import (
    PerConnection,
    ReadStep,
    Script,
    Step,
    compile_script,
)

if TYPE_CHECKING:
    import unittest

    from typing_extensions import Unpack  # typing.Unpack is 3.11+; only checkers read it

__all__ = [
    "AT_LEAST_ONE",
    "SETTLE",
    "AsyncioCommandServer",
    "AsyncioServerOptions",
    "CommandServer",
    "OneShotServer",
    "ServerOptions",
    "at_least",
    "server_for_test",
]

log = logging.getLogger(__name__)



# ---------------------------------------------------------------------------
# servers
# ---------------------------------------------------------------------------

_ServerT = TypeVar("_ServerT", bound="CommandServer")
_AsyncT = TypeVar("_AsyncT", bound="AsyncioCommandServer")
#: ``on_event(record, event)``: called with a connection's record and the event just added.
_OnEvent: TypeAlias = Callable[[ConnectionRecord, Event], object]


class _Options(TypedDict, total=False):
    """The keyword options of the script servers but ``path`` (see ``CommandServer``)."""

    host: str
    port: int
    verbose: bool
    timeout: float
    concurrent: bool
    max_connections: int | None
    ssl_context: ssl.SSLContext | None
    backlog: int
    on_event: _OnEvent | None
    settle: float
    allow_unfinished: bool
    expect_connections: int | range | None
    allow_extra_bytes: bool


class ServerOptions(_Options, total=False):
    """The keyword options of every script server (``CommandServer``'s constructor), for
    the functions that pass them on: ``server_for_test``, the ``command_server`` fixture.
    Those not given keep the server class's defaults."""

    path: str | os.PathLike[str] | None


class AsyncioServerOptions(ServerOptions, total=False):
    """``ServerOptions`` and ``AsyncioCommandServer``'s *loop* and *reader*."""

    loop: asyncio.AbstractEventLoop | None
    reader: asyncio.StreamReader | None


class _AsyncioFileOptions(_Options, total=False):
    loop: asyncio.AbstractEventLoop | None
    reader: asyncio.StreamReader | None


#: Seconds a verdict waits for a silent client whose script is not finished yet.
SETTLE = 0.5
_MANY = 2**62
#: ``expect_connections=`` by default: at least one client must connect.
AT_LEAST_ONE = range(1, _MANY)


def at_least(n: int) -> range:
    """``expect_connections=at_least(n)``: the verdict wants n or more clients.

    >>> 3 in at_least(2), 1 in at_least(2)
    (True, False)
    """
    return range(_args.count(n, "at_least()", 0), _MANY)


#: Steps that wait for the client to give up, or make it wait, and the user's own steps
#: (they judge for themselves): stopped there, a script is not unfinished.
_GIVING_UP = frozenset({"hang", "delay", "drip", "call"})


#: The texts of the transcript events that hold bytes no step read (see _connection).
_UNREAD_NOTES = frozenset({"(left unread)", "(after the script)"})


def _expects_exactly(script: Sequence[Step]) -> bool:
    """True when every read step of *script* is an expectation (and there is one): the
    script says exactly what the client sends, so bytes past it are wrong."""
    reads = [step for step in script if isinstance(step, ReadStep)]
    return bool(reads) and all(step.expects_exactly for step in reads)


def _gives_up(runner: ScriptRunner) -> bool:
    step = runner.step
    return step is None or step.kind in _GIVING_UP


class CommandServer(BaseServer):
    """A fake TCP server that runs a script against each client connection.

    ``CommandServer(commands)`` binds and listens before it returns, then serves on its
    own thread, one connection at a time, each with the complete script.

    Arguments:
        commands: a list of steps (see ``embeddedserver.steps``), a lone str/bytes (meaning
            ``[RECEIVE, it]``), or a ``PerConnection`` plan.
        host: where to listen; loopback by default. ``"localhost"`` listens on
            127.0.0.1 and ::1 on the same port.
        port: 0 (the default) picks a free port; see ``.port``.
        verbose: print what happens to stdout (always logged to ``embeddedserver``).
        timeout: seconds any read step waits, and any send waits for progress.
        concurrent: serve each connection on its own thread, all at once.
        max_connections: stop listening after this many connections.
        ssl_context: a server-side ``ssl.SSLContext``; connections then speak TLS.
        path: listen on this Unix-domain socket file instead of host/port (or, on
            Linux, on the abstract name after a leading NUL: ``"\\0name"``); the file
            is removed when the server stops listening. ``.host`` is then None and
            ``.port`` raises AttributeError: connect to ``.address`` (the path).
        on_event: ``on_event(record, event)`` is called on a server thread for each
            event recorded (the CLI prints its live transcript so); also an attribute.

    Raises TypeError/ValueError for a bad script or argument, OSError if it cannot
    listen (e.g. the port is busy).

    Callers use ``port`` (or ``address``, ``url``), ``received``, ``errors``,
    ``connections``, ``transcript()``, ``check()``, ``wait_for_connections()``,
    ``wait_idle()``, ``stop()``. Subclasses may override ``_on_chunk`` and
    ``_on_connection_end``.
    """

    _log = log

    def __init__(
        self,
        commands: Script | PerConnection,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        verbose: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        concurrent: bool = False,
        max_connections: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        backlog: int = 128,
        path: str | os.PathLike[str] | None = None,
        on_event: _OnEvent | None = None,
        settle: float = SETTLE,
        allow_unfinished: bool = False,
        expect_connections: int | range | None = AT_LEAST_ONE,
        allow_extra_bytes: bool = False,
    ) -> None:
        self.plan: PerConnection | None = None
        self.script: tuple[Step, ...] | None = None
        if isinstance(commands, PerConnection):
            self.plan = commands
        else:
            self.script = compile_script(commands)
        _check_args(
            host, port, verbose, timeout, max_connections, ssl_context, backlog, concurrent
        )
        self.verbose = verbose
        self.timeout = float(timeout)
        self.ssl_context = ssl_context
        self.received: list[bytes] = []
        #: ``on_event(record, event)`` is called on the server thread for every event of
        #: every connection started after it is set (see ``ConnectionRecord.listener``).
        if on_event is not None and not callable(on_event):
            raise TypeError(f"on_event must be a callable(record, event) or None, not {on_event!r}")
        self.on_event = on_event
        #: Seconds the verdict waits for a silent client whose script is not finished.
        self.settle = _args.duration(settle, "settle")
        #: A script a client left unfinished (stopped in a read step) is no failure.
        self.allow_unfinished = _args.flag(allow_unfinished, "allow_unfinished")
        #: How many connections the verdict expects: exactly an int, a range, or None for
        #: any number (none included). By default at least one.
        self.expect_connections = _args.expect_connections(expect_connections)
        #: Bytes a client sends after a script of expectations are no failure.
        self.allow_extra_bytes = _args.flag(allow_extra_bytes, "allow_extra_bytes")
        self._rbuf: bytearray | None = None  # the accept thread's read buffer
        #: Whether a new connection should poll before its first read: the last one's
        #: client had not sent yet when it first read (a read that meets EAGAIN is a
        #: system call and an exception wasted; a poll before bytes already there is one
        #: system call wasted). A guess, shared by the workers of a concurrent server;
        #: every 8th connection reads first anyway, to find out whether it still holds.
        self._poll_first = False
        self._exact: dict[int, bool] = {}  # id(script) -> _expects_exactly(script)
        self._live: dict[int, tuple[Connection, ScriptRunner]] = {}  # being served now
        #: The counts of the rules of the scripts' Rules steps, shared by the connections.
        self._rulebook = RuleBook()
        scripts = [self.script] if self.plan is None else [*self.plan.scripts, self.plan.then]
        self._rules = [step for script in scripts for step in rules_in(script)]
        self._settling = False  # a verdict waits for the connections to settle
        self._quiet = False  # ...and they did: the clients sent nothing more
        super().__init__(host=host, port=port, path=path, backlog=backlog,
                         concurrent=concurrent, max_connections=max_connections)

    @property
    def _tag(self) -> str:
        """How the live log and the printed failures name this server."""
        return self._where if self.path is not None else f":{self._port}"

    def __repr__(self) -> str:
        state = "stopped" if self.STOPPED else "serving"
        return f"<{type(self).__name__} {self._where} {state}>"

    @classmethod
    def from_file(
        cls: type[_ServerT],
        path: str | os.PathLike[str],
        *,
        exact: bool = False,
        keep_timing: bool = False,
        **options: Unpack[_Options],
    ) -> _ServerT:
        """Start a server running the script in a script file (``embeddedserver.scriptfile``
        describes the format; ``embeddedserver.replay.RecordingProxy`` records one).

        *exact*: recorded client data must arrive byte for byte (else it is only read);
        *keep_timing*: ``delay`` lines pause (else they are dropped). The other keyword
        arguments are the constructor's; those not given keep the constructor's default.
        Raises ``ScriptSyntaxError`` (a ValueError) naming the line of a mistake, OSError
        if the file cannot be read.

            server = CommandServer.from_file("conversation.script", verbose=False)
        """
        return cls._from_file(path, exact, keep_timing, dict(options))

    @classmethod
    def _from_file(
        cls: type[_ServerT],
        path: str | os.PathLike[str],
        exact: bool,
        keep_timing: bool,
        options: dict[str, Any],
    ) -> _ServerT:
        from .scriptfile import load_script  # on first use: few servers read a file

        return cls(load_script(path, exact=exact, keep_timing=keep_timing), **options)

    # -- serving a connection ------------------------------------------------

    def _serve(self, sock: socket.socket, peer: Any, number: int) -> None:
        script = self.plan.script_for(number) if self.plan is not None else self.script
        record = ConnectionRecord(
            number, peer, script_length=len(script or ()), listener=self.on_event
        )
        record.add("note", b"", "connected")
        emit = self._emit if self.verbose or log.isEnabledFor(logging.INFO) else None
        if emit is not None:
            emit(record, "connected")
        if self.concurrent:
            rbuf = None  # each worker thread reads into its own
        elif self._rbuf is None:
            rbuf = self._rbuf = bytearray(RECV_SIZE)
        else:
            rbuf = self._rbuf
        # Leading before_tls steps (TLS misbehaviour) run on the raw socket, then TLS starts.
        # Without a subclass's _on_chunk, a chunk goes straight into received.
        plain = type(self)._on_chunk is CommandServer._on_chunk
        runner = ScriptRunner(script or (), record, self.timeout, emit=emit,
                              on_chunk=self.received.append if plain else self._got_chunk,
                              tls=self.ssl_context is not None, rulebook=self._rulebook,
                              on_report=self._record)
        conn = Connection(sock, peer, runner, self._waker, ssl_context=self.ssl_context,
                          rbuf=rbuf, poll_first=self._poll_first and number & 7 != 0)
        conn.on_idle = self._connection_idle
        with self._lock:  # one lock round-trip: both seen at once
            self.connections.append(record)
            self._live[number] = (conn, runner)
        try:
            if script is None:
                raise StepFailed(Failure(
                    "unexpected connection",
                    f"connection #{number} was not expected: the PerConnection plan has "
                    f"{len(self.plan.scripts) if self.plan else 0} scripts and no then=",
                    connection=number, peer=peer,
                ))
            conn.run()
            extra = self._extra_bytes(script, record) if conn.unread else None
            if extra is not None:
                self._record(extra)
        except ServerStopped:
            record.ended = record.ended or "stopped"
            # A stop from the server's own thread (a Call step) was the script's will.
            if not (self.allow_unfinished or runner.finished or self._stopped_inside):
                unfinished = self._unfinished(runner, number, peer)
                if unfinished is not None:
                    self._record(unfinished)
        except StepFailed as exc:
            record.ended = runner.ending_after(exc.failure.kind)
            self._record(exc.failure)
        except Exception as exc:
            record.ended = record.ended or "error"
            self._record(Failure(
                "error", f"{type(exc).__name__}: {exc}", connection=number, peer=peer,
                traceback=traceback.format_exc(), transcript=record.render(tail=8),
            ))
        finally:
            self._poll_first = conn.first_read_waited
            conn.finish(record.ended or "server closed", tls_goodbye=False)
            # No lock: dict.pop is atomic, and a verdict that looks in between sees one
            # connection more arriving than counted, and waits for it, as it should.
            self._live.pop(number, None)
            if type(self)._on_connection_end is not CommandServer._on_connection_end:
                self._on_connection_end()

    # -- the verdict: what the clients already sent is judged first ----------------

    def _connection_idle(self) -> None:
        """A connection waits for its client: news for a verdict waiting to settle."""
        if self._settling:
            with self._lock:
                if self._changed is not None:
                    self._changed.notify_all()

    def _settle(self) -> None:
        """Wait until every connection being served has run its script on what its
        client sent: each is done, or waits for input that has not come (nothing on its
        socket) and, if its script is unfinished, has waited ``settle`` seconds more."""
        if self.STOPPED:
            return
        quiet_since: float | None = None
        give_up_at: float | None = None
        while True:
            # A look at the backlog and the count under _accepting sees every client
            # either waiting in the backlog or counted (the lock order: _accepting first).
            with self._accepting:
                backlog, accepted = self._backlog_waiting(), self._accepted
            with self._lock:
                live = list(self._live.values())
                # Counted and not yet being served, or still in the listen backlog with
                # the accept thread free to take it: soon to be served.
                arriving = accepted - self._finished > len(live) or (
                    (self.concurrent or not live) and backlog)
                if not live and not arriving:
                    return
                # A step that waits for the client to give up (or makes it wait) is
                # settled whatever arrives, and so is a finished script; any other waits
                # for what has not come.
                busy = arriving or not all(
                    _gives_up(runner) or conn.settled for conn, runner in live)
                if not busy and all(_gives_up(runner) for _, runner in live):
                    return  # nothing left to judge
                now = time.monotonic()
                if give_up_at is None:  # a client that never stops sending: bounded
                    give_up_at = now + self.settle + JOIN_TIMEOUT
                if busy:
                    quiet_since = None
                    if now >= give_up_at:
                        return
                    wait = min(give_up_at - now, max(self.settle, 0.05))
                else:
                    if quiet_since is None:
                        quiet_since = now
                    wait = quiet_since + self.settle - now
                    if wait <= 0:
                        self._quiet = True
                        return
                self._wait_for_news(wait)

    def _wait_for_news(self, timeout: float) -> None:
        """Wait (lock held) until a connection waits for its client, ends, or *timeout*."""
        self._settling = True
        self._waiting += 1  # connections that end notify the condition
        try:
            if self._changed is None:
                self._changed = threading.Condition(self._lock)
            self._changed.wait(timeout)
        finally:
            self._waiting -= 1
            self._settling = False

    def _extra_bytes(self, script: Sequence[Step], record: ConnectionRecord) -> Failure | None:
        """The failure of a client that sent bytes after the script's last read step, when
        the script says exactly what the client sends (every read step an expectation):
        None for a script that also just reads (``RECEIVE``, byte counts, lines), which a
        client may split or pad, or with ``allow_extra_bytes``."""
        if self.allow_extra_bytes:
            return None
        exact = self._exact.get(id(script))  # the scripts live as long as the server
        if exact is None:
            exact = self._exact[id(script)] = _expects_exactly(script)
        if not exact:
            return None
        extra = b"".join(e.data for e in record.events
                         if e.kind == "recv" and e.text in _UNREAD_NOTES)
        if not extra:
            return None
        return Failure(
            "extra bytes",
            f"the client sent {plural(len(extra), 'byte')} no step reads, after the last of "
            f"the script's {plural(len(script), 'step')} (allow_extra_bytes=True if it may)",
            connection=record.number, peer=record.peer, received=extra,
            transcript=record.render(tail=8),
        )

    def _count_failures(self) -> list[Failure]:
        rules = self._rulebook.failures(self._rules) if self._rules else []
        expected, count = self.expect_connections, self._accepted
        if expected is None or count in expected:
            return rules
        if count == 0:
            said = "no client connected"
        else:
            said = f"{plural(count, 'client')} connected"
        if expected.stop - expected.start == 1:
            wanted = f"exactly {expected.start}"
        elif expected.stop >= _MANY:
            wanted = f"at least {expected.start}"
        else:
            wanted = f"{expected.start} to {expected.stop - 1}"
        hint = ("expect_connections=0 says none should; None, any number"
                if count == 0 else "expect_connections= says how many should")
        return [Failure(
            "connections",
            f"{said} to the server, which expected {wanted} ({hint})",
        ), *rules]

    def _backlog_waiting(self) -> bool:
        """True if a client waits in a listener's backlog (``_accepting`` held)."""
        poller = select.poll()
        for listener in self._listeners:
            if listener.fileno() >= 0:  # the last one max_connections allows closes them
                poller.register(listener, select.POLLIN)
        return bool(poller.poll(0))

    def _unfinished(self, runner: ScriptRunner, number: int, peer: Any) -> Failure | None:
        """The failure of a script the server stopped in, or None for a step whose
        meaning is to wait for the client to give up (Hang) or to make it wait."""
        step = runner.step
        if step is None or _gives_up(runner) or runner.between_requests:
            return None  # a client may keep a connection to a Rules step open, idle
        if self._quiet:
            why = f"the client sent nothing more in {self.settle:g} s"
        else:
            why = "stop() came while it waited"
        if runner.tls_pending:
            what = "the client's side of the TLS handshake"
        elif isinstance(step, (ReadStep, Rules)):
            what = step.describe()
        else:  # a send the client did not read
            what = f"the client to read {step!r}"
        return Failure(
            "unfinished",
            f"the script was not finished: {why} for {what} (allow_unfinished=True if "
            "the client may leave it so)",
            connection=number, peer=peer, step_index=runner.index, step=step,
            script_length=len(runner.steps),
            transcript=runner.record.render(tail=8, ending="stopped"),
        )

    def _got_chunk(self, chunk: bytes) -> None:
        self.received.append(chunk)  # atomic: list.append needs no lock
        self._on_chunk(chunk)

    def _record(self, failure: Failure) -> None:
        super()._record(failure)
        if self.verbose:
            print(f"[embeddedserver {self._tag}] FAILED {failure.message()}", flush=True)

    def _emit(self, record: ConnectionRecord, text: str) -> None:
        if log.isEnabledFor(logging.INFO):
            log.info("[%s] #%s %s", self._tag, record.number, text)
        if self.verbose:
            print(f"[embeddedserver {self._tag}] #{record.number} {text}", flush=True)

    # -- hooks for subclasses --------------------------------------------------

    def _on_chunk(self, chunk: bytes) -> None:
        """Called on the server thread with each chunk a read step consumed."""

    def _on_connection_end(self) -> None:
        """Called on the server thread when a connection has ended."""


def _check_args(
    host: Any, port: Any, verbose: Any, timeout: Any, max_connections: Any,
    ssl_context: Any, backlog: Any, concurrent: Any = False,
) -> None:
    _args.host(host)
    _args.port(port)
    _args.flag(verbose, "verbose")
    _args.flag(concurrent, "concurrent")
    _args.timeout(timeout)
    if max_connections is not None:
        _args.integer(max_connections, "max_connections", 1, None, "an int >= 1 or None")
    _args.server_ssl_context(ssl_context)
    _args.backlog(backlog)


class OneShotServer(CommandServer):
    """A ``CommandServer`` that serves exactly one connection, then stops listening
    (a second connect is refused) and sets ``STOPPED``.

    >>> srvr = OneShotServer("pong", verbose=False)
    >>> srvr.stop()
    """

    def __init__(
        self,
        commands: Script | PerConnection,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        verbose: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        concurrent: bool = False,
        max_connections: Literal[1] = 1,
        ssl_context: ssl.SSLContext | None = None,
        backlog: int = 128,
        path: str | os.PathLike[str] | None = None,
        on_event: _OnEvent | None = None,
        settle: float = SETTLE,
        allow_unfinished: bool = False,
        expect_connections: int | range | None = AT_LEAST_ONE,
        allow_extra_bytes: bool = False,
    ) -> None:
        if max_connections != 1:
            raise ValueError("OneShotServer serves one connection; use CommandServer "
                             f"for max_connections={max_connections!r}")
        super().__init__(
            commands, host, port, verbose=verbose, timeout=timeout, concurrent=concurrent,
            max_connections=max_connections, ssl_context=ssl_context, backlog=backlog,
            path=path, on_event=on_event, settle=settle, allow_unfinished=allow_unfinished,
            expect_connections=expect_connections,
            allow_extra_bytes=allow_extra_bytes,
        )


class AsyncioCommandServer(CommandServer):
    """A ``CommandServer`` that also feeds every chunk it reads into an
    ``asyncio.StreamReader`` (on the loop, thread-safely) and feeds EOF when a
    connection ends, or at ``stop()`` if none has, so ``await server.reader.read()``
    returns what the client sent (b"" if no client came).

    With *loop* left out it uses the running loop; with *reader* left out it makes one
    (``.reader``). Outside a running loop, pass ``loop=`` or get a RuntimeError. The
    keyword arguments after *reader* are ``CommandServer``'s.
    """

    def __init__(
        self,
        commands: Script | PerConnection,
        loop: asyncio.AbstractEventLoop | None = None,
        reader: asyncio.StreamReader | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        verbose: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        concurrent: bool = False,
        max_connections: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        backlog: int = 128,
        path: str | os.PathLike[str] | None = None,
        on_event: _OnEvent | None = None,
        settle: float = SETTLE,
        allow_unfinished: bool = False,
        expect_connections: int | range | None = AT_LEAST_ONE,
        allow_extra_bytes: bool = False,
    ) -> None:
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = getattr(reader, "_loop", None)
                if loop is None:
                    raise RuntimeError(
                        "AsyncioCommandServer needs an event loop: create it inside a "
                        "coroutine (e.g. an async test) or pass loop=..."
                    ) from None
        if not isinstance(loop, asyncio.AbstractEventLoop):
            raise TypeError(f"loop must be an asyncio event loop, not {loop!r}")
        if reader is None:
            reader = asyncio.StreamReader(loop=loop)
        elif not isinstance(reader, asyncio.StreamReader):
            raise TypeError(f"reader must be an asyncio.StreamReader, not {reader!r}")
        self.loop = loop
        self.reader = reader
        super().__init__(
            commands, host, port, verbose=verbose, timeout=timeout, concurrent=concurrent,
            max_connections=max_connections, ssl_context=ssl_context, backlog=backlog,
            path=path, on_event=on_event, settle=settle, allow_unfinished=allow_unfinished,
            expect_connections=expect_connections,
            allow_extra_bytes=allow_extra_bytes,
        )

    @classmethod
    def from_file(
        cls: type[_AsyncT],
        path: str | os.PathLike[str],
        *,
        exact: bool = False,
        keep_timing: bool = False,
        **options: Unpack[_AsyncioFileOptions],
    ) -> _AsyncT:
        """``CommandServer.from_file``, with this class's *loop* and *reader* as well."""
        return cls._from_file(path, exact, keep_timing, dict(options))

    def _on_chunk(self, chunk: bytes) -> None:
        if chunk:  # ExpectClose/ReadUntilClose may complete with b"": that is not EOF yet
            self._to_loop(self._feed, chunk)

    def _on_stopped(self) -> None:
        """After a stop, feed EOF to ``reader`` if no connection has, so that a task
        awaiting ``reader.read()`` ends (a stop from a Call step: its connection's end
        feeds it)."""
        self._to_loop(self._feed, b"")

    def _on_connection_end(self) -> None:
        self._to_loop(self._feed, b"")

    def _feed(self, chunk: bytes) -> None:
        if getattr(self.reader, "_eof", False):
            if not chunk:
                return  # a later connection ended too: EOF was fed once, that is enough
            log.warning("%s: the reader is already at EOF; %d bytes not fed", self, len(chunk))
        elif chunk:
            self.reader.feed_data(chunk)
        else:
            self.reader.feed_eof()

    def _to_loop(self, func: Callable[..., object], *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(func, *args)
        except RuntimeError:  # the loop is closed: nobody is reading any more
            log.debug("%s: event loop closed, %s not fed", self,
                      f"{len(args[0])} bytes" if args and args[0] else "EOF")


# ---------------------------------------------------------------------------
# unittest helper
# ---------------------------------------------------------------------------


@overload
def server_for_test(
    testcase: unittest.TestCase,
    commands: Script | PerConnection,
    **options: Unpack[ServerOptions],
) -> CommandServer: ...


@overload
def server_for_test(
    testcase: unittest.TestCase,
    commands: Script | PerConnection,
    server_class: type[_ServerT],
    **options: Unpack[AsyncioServerOptions],
) -> _ServerT: ...


def server_for_test(
    testcase: unittest.TestCase,
    commands: Script | PerConnection,
    server_class: type[CommandServer] = CommandServer,
    **options: Any,
) -> CommandServer:
    """Start a server for a ``unittest.TestCase`` (typically in ``setUp``) and register
    a cleanup that gives its verdict (``verdict()``: settle, stop, check), so failures
    fail the test.

    The keyword options are those of *server_class*'s constructor (``ServerOptions``;
    *loop* and *reader* are ``AsyncioCommandServer``'s); those not given keep its
    defaults. Returns the server, an instance of *server_class*.

        def setUp(self):
            self.server = server_for_test(self, [RECEIVE, "pong"], verbose=False)
    """
    add_cleanup = getattr(testcase, "addCleanup", None)
    if not callable(add_cleanup):
        raise TypeError(f"testcase must be a unittest.TestCase (with addCleanup), not {testcase!r}")
    server = server_class(commands, **options)
    add_cleanup(server.verdict)  # settle, stop, check
    return server
