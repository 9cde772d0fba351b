"""What the pytest fixtures are made of, usable without pytest: the server factories, and
the asyncio side of a ``TcpServer`` test.

``TcpServerFactory`` makes independent ``TcpServer`` objects (the ``tcpserver_factory`` and
``tcpserver`` fixtures); ``CommandServerFactory`` starts ``CommandServer``-family servers
(the ``command_server`` fixture). Each has ``close(check)``, which runs the checks the
fixture teardown runs and returns one report of the failures (or None), and
``report_sections()``, the transcripts the plugin attaches to a failed test's report::

    factory = TcpServerFactory(timeout=5)
    server = factory()
    ...                            # script the server, run the client
    report = factory.close()       # None, or what went wrong on every server
    assert report is None, report

Asyncio stream clients get ``write_frame``/``read_frame``, the client half of
``expect_frame``/``send_frame``. With ``watch_streams=True`` (or given a *monkeypatch*:
anything with pytest's ``setattr(target, name, value)`` that undoes its patches later),
``TcpServerFactory`` watches the asyncio streams connected to its servers, and only those:
it counts what each ``StreamReader`` handed to the application (so a close with data still
unread is reported exactly) and notes a ``writer.close()`` never followed by ``await
writer.wait_closed()``. Its own patches are undone by ``close()``/``stop()``.

Sections: asyncio stream helpers - asyncio stream watch - factories.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import os
import ssl
import struct
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeVar, overload

from . import _args
from ._args import TCPSERVER_TIMEOUT
from ._tcpmessages import StreamClient
from .record import Failure
from .servers import AsyncioServerOptions, CommandServer, ServerOptions
from .steps import PerConnection, Script
from .tcpserver import TcpServer

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack is 3.11+; only checkers read it

__all__ = ["CommandServerFactory", "TcpServerFactory", "read_frame", "write_frame"]

log = logging.getLogger(__name__)

_FRAME = struct.Struct(">I")
_LOOPBACK = ("127.0.0.1", "::1")
# True inside an instrumented read of the current task: readline() calls readuntil(),
# and only the outermost call counts what the application got.
_IN_READ = contextvars.ContextVar("embeddedserver_in_read", default=False)

_ServerT = TypeVar("_ServerT", bound=CommandServer)


class _Patcher(Protocol):
    """What the stream watch needs of pytest's ``MonkeyPatch``: patches undone later."""

    def setattr(self, target: Any, name: str, value: Any) -> None: ...


# ---------------------------------------------------------------------------
# asyncio stream helpers
# ---------------------------------------------------------------------------


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
# asyncio stream watch
# ---------------------------------------------------------------------------


@functools.cache
def _writer_signature() -> inspect.Signature:
    """``StreamWriter.__init__``'s signature, computed once (it costs more than the rest
    of a watch's set-up)."""
    return inspect.signature(asyncio.StreamWriter.__init__)


class _Patches:
    """Attributes set through ``setattr``, put back in reverse by ``undo()`` (twice is
    harmless): the stream watch's patches when no *monkeypatch* is given."""

    _ABSENT = object()

    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, Any]] = []

    def setattr(self, target: Any, name: str, value: Any) -> None:
        self._saved.append((target, name, vars(target).get(name, self._ABSENT)))
        setattr(target, name, value)

    def undo(self) -> None:
        while self._saved:
            target, name, old = self._saved.pop()
            if old is self._ABSENT:
                delattr(target, name)
            else:
                setattr(target, name, old)


class _StreamWatch:
    """Instruments the asyncio streams connected to the watched servers, and only those:
    ``StreamWriter.__init__`` is patched to spot them by peer address, then that writer's
    ``close``/``wait_closed`` and its reader's read methods are wrapped, all through
    *monkeypatch*, so everything is undone at teardown."""

    _READS = ("read", "readexactly", "readline", "readuntil")

    def __init__(self, monkeypatch: _Patcher) -> None:
        self._monkeypatch = monkeypatch
        self._servers: dict[int, TcpServer] = {}

    def watch(self, server: TcpServer) -> None:
        if not self._servers:
            self._install()
        self._servers[server.service_port] = server

    def _install(self) -> None:
        original = asyncio.StreamWriter.__init__
        signature = _writer_signature()

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
        client = StreamClient(tuple(local[:2]))
        if isinstance(reader, asyncio.StreamReader):
            for name in self._READS:
                self._monkeypatch.setattr(reader, name, _counting(client, getattr(reader, name)))
        self._monkeypatch.setattr(writer, "close", _noting_close(client, writer.close))
        self._monkeypatch.setattr(
            writer, "wait_closed", _noting_wait_closed(client, writer.wait_closed)
        )
        server.note_stream_client(client)


def _counting(
    client: StreamClient, read: Callable[..., Awaitable[bytes]]
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


def _noting_close(client: StreamClient, close: Callable[[], None]) -> Callable[[], None]:
    @functools.wraps(close)
    def noted() -> None:
        if sys._getframe(1).f_code.co_name != "__del__":  # the garbage collector's close
            client.closed = True
        close()

    return noted


def _noting_wait_closed(
    client: StreamClient, wait_closed: Callable[[], Awaitable[None]]
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
    *watch_streams*: watch the asyncio streams connected to these servers (see the
    module docstring); the patches are made through *monkeypatch* if given, else undone
    by ``close()``/``stop()``.

    As a context manager it runs ``close()`` at the end of the block and raises
    AssertionError with the report (or, if the block raised, only stops the servers)::

        with TcpServerFactory(watch_streams=True) as factory:
            server = factory(name="db")
            ...
    """

    def __init__(
        self,
        *,
        timeout: float = TCPSERVER_TIMEOUT,
        fail: Callable[[str], NoReturn] | None = None,
        monkeypatch: _Patcher | None = None,
        watch_streams: bool = False,
    ) -> None:
        self.timeout = _args.timeout(timeout)
        self.servers: list[TcpServer] = []
        self._fail = fail
        # Patches go through *monkeypatch* when given (undone by its owner), else through
        # our own, undone by close()/stop().
        self._patches = _Patches() if monkeypatch is None and watch_streams else None
        patcher = monkeypatch or self._patches
        self._watch = None if patcher is None else _StreamWatch(patcher)

    def __enter__(self) -> TcpServerFactory:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        __tracebackhide__ = True
        report = self.close(check=exc_type is None)
        if report:
            raise AssertionError(report)

    def __call__(
        self,
        *,
        timeout: float | None = None,
        name: str | None = None,
        path: str | os.PathLike[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> TcpServer:
        """A new server; *timeout* (seconds) overrides the default for its steps; *path*
        and *ssl_context* as for ``TcpServer``."""
        server = TcpServer(
            timeout=self.timeout if timeout is None else timeout,
            name=name or f"tcpserver_factory() server #{len(self.servers) + 1}",
            fail=self._fail,
            path=path,
            ssl_context=ssl_context,
        )
        self.servers.append(server)
        if self._watch is not None and server.path is None:  # the watch knows TCP ports
            self._watch.watch(server)
        return server

    def close(self, check: bool = True) -> str | None:
        """Check (unless not *check*) and stop every server; the failures, or None."""
        reports: list[str] = []
        try:
            for server in self.servers:
                report = server.teardown_report() if check else None
                if report:
                    reports.append(report)
        finally:
            self.stop()
        return "\n\n".join(reports) or None

    def stop(self) -> None:
        """Stop every server and undo the stream watch's own patches (idempotent)."""
        try:
            for server in self.servers:
                server.stop()
        finally:
            if self._patches is not None:
                self._patches.undo()

    def report_sections(self) -> list[tuple[str, str]]:
        return [
            (f"embeddedserver: {s.name} on {s.location}", _section_text(s, s.failure))
            for s in self.servers
        ]


def _section_text(server: TcpServer, failure: Failure | None) -> str:
    text = server.transcript()
    if failure is None:
        return text
    return f"{text}\nfirst failure: {replace(failure, transcript='').message()}"


class CommandServerFactory:
    """The ``command_server`` fixture: ``command_server(commands, server_class=
    CommandServer, **options)`` starts a ``CommandServer``-family server, with *options*
    the keyword arguments of *server_class*'s constructor (*loop* and *reader* are
    ``AsyncioCommandServer``'s), ``verbose=False`` and *timeout* (the ini timeout) unless
    given, the constructor's defaults for the others. Returns the server, an instance of
    *server_class*. *defaults* are options every server gets unless the call gives them
    (the plugin's verdict settings: ``settle``, ``allow_unfinished``, ...). At teardown
    each is stopped and ``check()``ed."""

    def __init__(
        self, timeout: float | None = None, *, defaults: ServerOptions | None = None
    ) -> None:
        self.timeout = timeout
        self.defaults: ServerOptions = {} if defaults is None else defaults.copy()
        self.servers: list[CommandServer] = []

    @overload
    def __call__(
        self, commands: Script | PerConnection, **options: Unpack[ServerOptions]
    ) -> CommandServer: ...

    @overload
    def __call__(
        self,
        commands: Script | PerConnection,
        server_class: type[_ServerT],
        **options: Unpack[AsyncioServerOptions],
    ) -> _ServerT: ...

    def __call__(
        self,
        commands: Script | PerConnection,
        server_class: type[CommandServer] = CommandServer,
        **options: Any,
    ) -> CommandServer:
        if not (isinstance(server_class, type) and issubclass(server_class, CommandServer)):
            raise TypeError(f"server_class must be CommandServer or a subclass, not "
                            f"{server_class!r}")
        options.setdefault("verbose", False)
        for name, value in self.defaults.items():
            options.setdefault(name, value)
        if "timeout" not in options and self.timeout is not None:
            options["timeout"] = self.timeout
        server = server_class(commands, **options)
        self.servers.append(server)
        return server

    def close(self, check: bool = True) -> str | None:
        """With *check*, the verdict of every server (``verdict()``: settle, stop,
        check): the failures, or None; without, just stop them."""
        if not check:
            self.stop()
            return None
        reports = []
        try:
            for server in self.servers:
                try:
                    server.verdict()
                except AssertionError as exc:
                    reports.append(str(exc))
        finally:
            self.stop()
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

