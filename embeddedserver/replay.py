"""Record real conversations and replay them.

Model
-----
``RecordingProxy`` listens on a local port (or Unix socket), forwards every connection
to a real server, and records each one as a ``ConnectionRecord`` (the same transcript a
fake server keeps): timestamped ``recv`` events for what the client sent, ``send`` events
for what the server answered, notes for who shut or reset which side. One thread serves
every connection with ``poll`` and a wake-up pipe, so ``stop()`` is instant.

``proxy.save(path)`` writes the recording as a script file, readable and editable by a
person; ``load_script(path)`` (or ``CommandServer.from_file(path)``, or ``python -m
embeddedserver --script FILE``) turns it back into a script for any server class, which
replays the server's side to the same client code. Replayed client turns are exact
expectations (``exact=True``) or plain reads of the same size (the default); recorded
pauses are kept (``keep_timing=True``) or dropped. The file format and its reader and
writer live in ``embeddedserver.scriptfile`` and are re-exported here.

    >>> import http.client, http.server, threading, tempfile, os
    >>> from embeddedserver import CommandServer
    >>> class Hello(http.server.BaseHTTPRequestHandler):
    ...     def do_GET(self):
    ...         self.send_response(200); self.end_headers(); self.wfile.write(b"hi")
    ...     def log_message(self, *args): pass
    >>> real = http.server.HTTPServer(("127.0.0.1", 0), Hello)
    >>> thread = threading.Thread(target=real.serve_forever); thread.start()
    >>> def fetch(port):
    ...     client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    ...     client.request("GET", "/"); body = client.getresponse().read(); client.close()
    ...     return body
    >>> with RecordingProxy(real.server_address) as proxy:
    ...     fetch(proxy.port)
    ...     proxy.wait_idle()
    ...     text = proxy.script(timing=False)
    b'hi'
    >>> real.shutdown(); real.server_close(); thread.join()
    >>> with CommandServer(parse_script(text), verbose=False) as replay:
    ...     fetch(replay.port)
    b'hi'

Sections: the recording proxy.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from . import _args
from ._args import DEFAULT_TIMEOUT
from ._connection import poll_ms
from ._forward import BUFFER_LIMIT as _BUFFER_LIMIT
from ._forward import CHUNK as _CHUNK
from ._forward import ERR as _ERR
from ._forward import IN as _IN
from ._forward import OUT as _OUT
from ._forward import Pipe as _Pipe
from ._forward import abort as _abort
from ._listen import check_unix_path
from ._runtime import BaseServer
from ._text import CLIENT_EOF_NOTE, SERVER_EOF_NOTE, format_address
from .record import ConnectionRecord, Event, Failure
from .scriptfile import (  # the notes it reads back, and its public API
    format_script,
    save_script,
)

__all__ = ["RecordingProxy"]

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------
# the recording proxy
# ---------------------------------------------------------------------------

class RecordingProxy(BaseServer):
    """Forward connections to a real server and record each conversation.

    ``RecordingProxy(target)`` listens before it returns (on a free loopback port, or
    on ``path=``), then forwards every connection to *target* on its own thread,
    recording what each side sent, with timing, in ``connections``.

    Arguments:
        target: the real server: ``(host, port)``, or a Unix socket path (str/PathLike).
        host, port, path: where the proxy listens, as for ``CommandServer``.
        timeout: seconds to wait for the connection to *target*.
        backlog: the listen backlog.
        on_event: ``on_event(record, event)`` is called on the proxy's thread for every
            event of every connection accepted after it is set (the CLI prints the
            traffic live with it); be quick, do not raise.

    Raises TypeError/ValueError for bad arguments, OSError if it cannot listen or
    *target* does not resolve. A connection *target* refuses is a ``Failure`` in
    ``errors`` (the client's connection is reset); ``check()`` raises them.

    Callers use ``port``/``address``/``url``, ``connections``, ``errors``, ``wait_idle()``,
    ``wait_for_connections()``, ``script()``, ``save()``, ``transcript()``, ``check()``
    and ``stop()`` (instant; also by leaving the ``with`` block).

        with RecordingProxy(("127.0.0.1", real_port)) as proxy:
            run_my_client(proxy.port)
            proxy.wait_idle()
            proxy.save("conversation.script")
    """

    _finished_word = "ended"  # both sides closed
    _log = log

    def __init__(
        self,
        target: tuple[str, int] | str | os.PathLike[str],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        path: str | os.PathLike[str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        backlog: int = 128,
        on_event: Callable[[ConnectionRecord, Event], object] | None = None,
    ) -> None:
        self.target, self._target_family, self._target_address = _resolve_target(target)
        if on_event is not None and not callable(on_event):
            raise TypeError(f"on_event must be a callable(record, event) or None, not {on_event!r}")
        #: ``on_event(record, event)``, called for each event of each later connection.
        self.on_event = on_event
        # The servers' rules: a wrong type is a TypeError, a wrong number a ValueError.
        self.timeout = _args.timeout(timeout)
        _args.backlog(backlog)
        unix_path = check_unix_path(path, host, port)
        if unix_path is None:
            _args.host(host)
            _args.port(port)
        super().__init__(host=host, port=port, path=path, backlog=backlog, concurrent=True,
                         max_connections=None, thread_name="embeddedserver.replay-proxy")

    def __repr__(self) -> str:
        state = "stopped" if self._waker.closed else "recording"
        return f"<RecordingProxy {self._where} -> {self.target} {state}>"

    # -- results -------------------------------------------------------------

    def script(self, *, timing: bool = True, min_delay: float = 0.01, comment: str = "") -> str:
        """The recording as script file text (``format_script`` of ``connections``)."""
        return format_script(self._records(), timing=timing, min_delay=min_delay, comment=comment)

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        timing: bool = True,
        min_delay: float = 0.01,
        comment: str = "",
    ) -> None:
        """Write the recording to *path* as a script file (see ``save_script``).
        Call ``wait_idle()`` first, so that every connection has been recorded to its end."""
        save_script(self._records(), path, timing=timing, min_delay=min_delay, comment=comment)

    # -- wording of the shared messages ------------------------------------------

    def _report_head(self, count: int) -> str:
        return f"{self!r}: {count} failure(s)"

    def _still_busy(self, open_now: int) -> str:
        return f"still has {open_now} open connection(s)"

    # -- forwarding one connection, on its own thread -------------------------------

    def _serve(self, client: socket.socket, peer: Any, number: int) -> None:
        record = ConnectionRecord(number, peer, listener=self.on_event)
        with self._lock:
            self.connections.append(record)
        client.setblocking(False)
        record.add("note", text="connected")
        pipe = self._new_pipe(client, record)
        log.info("%r: connection #%d from %r", self, number, peer)
        try:
            self._open_upstream(pipe)
            while not pipe.done:
                if not pipe.connecting:
                    self._tick(pipe)  # what a subclass scheduled, due now
                    if pipe.done:
                        break
                poller = select.poll()
                poller.register(self._waker.rfd, _IN)
                owners: dict[int, tuple[_Pipe, bool]] = {}
                self._register(poller, pipe, owners)
                extra = self._extra_fds(pipe)
                for fd in extra:
                    poller.register(fd, _IN)
                deadline = pipe.deadline if pipe.connecting else self._timer(pipe)
                ready = poller.poll(None if deadline is None else poll_ms(deadline))
                if any(fd == self._waker.rfd for fd, _ in ready):
                    record.ended = record.ended or "stopped"
                    record.add("note", text="proxy stopped")
                    return
                for fd, events in ready:
                    if fd in owners and not pipe.done:
                        self._service(pipe, owners[fd][1], events)
                    elif fd in extra:
                        self._on_extra(pipe, fd)
                if pipe.connecting and not pipe.done and time.monotonic() >= pipe.deadline:
                    self._upstream_failed(pipe, f"no answer within {self.timeout:g} s")
        finally:
            self._finish(pipe)

    # -- hooks for a proxy that does more than forward (``faults.FaultProxy``) -----------
    # The defaults forward every byte at once: the recording proxy is the identity.

    def _new_pipe(self, client: socket.socket, record: ConnectionRecord) -> _Pipe:
        return _Pipe(client, record)

    def _tick(self, pipe: _Pipe) -> None:
        """Before each wait, once connected: do what is due (may set ``pipe.done``)."""

    def _timer(self, pipe: _Pipe) -> float | None:
        """The monotonic time the next wait must end by (None: no deadline)."""
        return None

    def _extra_fds(self, pipe: _Pipe) -> Sequence[int]:
        """More descriptors the wait watches for reading; ``_on_extra`` when one is."""
        return ()

    def _on_extra(self, pipe: _Pipe, fd: int) -> None:
        """One of ``_extra_fds`` became readable."""

    def _room(self, pipe: _Pipe, from_client: bool) -> bool:
        """True while the proxy may read more from one side (what it holds is bounded)."""
        return len(pipe.to_upstream if from_client else pipe.to_client) < _BUFFER_LIMIT

    def _forward(self, pipe: _Pipe, from_client: bool, data: bytes) -> None:
        """Pass *data*, just read from one side (and recorded), on to the other."""
        (pipe.to_upstream if from_client else pipe.to_client).extend(data)
        self._write(pipe, to_client=not from_client)  # forward at once if it can go

    def _eof_due(self, pipe: _Pipe, to_client: bool) -> bool:
        """True when the EOF of the side writing toward *to_client* may be passed on
        (once the buffer toward it is empty)."""
        return pipe.upstream_eof if to_client else pipe.client_eof

    def _register(
        self, poller: Any, pipe: _Pipe, owners: dict[int, tuple[_Pipe, bool]]
    ) -> None:
        client_mask = 0
        if not pipe.connecting and not pipe.client_eof and self._room(pipe, True):
            client_mask |= _IN
        if pipe.to_client:
            client_mask |= _OUT
        upstream_mask = 0
        if pipe.connecting or pipe.to_upstream:
            upstream_mask |= _OUT
        if not pipe.connecting and not pipe.upstream_eof and self._room(pipe, False):
            upstream_mask |= _IN
        if client_mask:
            poller.register(pipe.client, client_mask)
            owners[pipe.client.fileno()] = (pipe, True)
        if upstream_mask and pipe.upstream is not None:
            poller.register(pipe.upstream, upstream_mask)
            owners[pipe.upstream.fileno()] = (pipe, False)

    def _open_upstream(self, pipe: _Pipe) -> None:
        upstream = socket.socket(self._target_family, socket.SOCK_STREAM)
        pipe.upstream = upstream
        upstream.setblocking(False)
        pipe.deadline = time.monotonic() + self.timeout
        code = upstream.connect_ex(self._target_address)
        if code == 0:
            self._connected(pipe)
        elif code not in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            self._upstream_failed(pipe, os.strerror(code))

    def _connected(self, pipe: _Pipe) -> None:
        pipe.connecting = False
        pipe.record.add("note", text=f"connected to {self.target}")

    def _upstream_failed(self, pipe: _Pipe, reason: str) -> None:
        summary = f"cannot connect to the real server {self.target}: {reason}"
        pipe.record.add("note", text=summary)
        pipe.record.ended = "upstream unreachable"
        self._record(Failure("error", summary, connection=pipe.record.number,
                             peer=pipe.record.peer))
        _abort(pipe.client)  # the client sees a reset, much as a refused connection
        pipe.done = True

    def _service(self, pipe: _Pipe, is_client: bool, events: int) -> None:
        if not is_client and pipe.connecting:
            assert pipe.upstream is not None
            code = pipe.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self._upstream_failed(pipe, os.strerror(code))
            else:
                self._connected(pipe)
            return
        if events & (_IN | _ERR):
            self._read(pipe, is_client)
        if not pipe.done and events & (_OUT | _ERR):  # a write surfaces a pending error
            self._write(pipe, to_client=is_client)
        if not pipe.done:
            self._maybe_done(pipe)

    def _read(self, pipe: _Pipe, from_client: bool) -> None:
        sock = pipe.client if from_client else pipe.upstream
        assert sock is not None
        if (pipe.client_eof if from_client else pipe.upstream_eof):
            return
        try:
            data = sock.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._broken(pipe, from_client, exc)
            return
        record = pipe.record
        if data:
            record.add("recv" if from_client else "send", data)
            self._forward(pipe, from_client, data)
            return
        if from_client:
            pipe.client_eof = True
            record.add("note", text=f"{CLIENT_EOF_NOTE} (EOF)")
            record.ended = record.ended or "client closed"
        else:
            pipe.upstream_eof = True
            record.add("note", text=f"{SERVER_EOF_NOTE} (EOF from the real server)")
            record.ended = record.ended or "server closed"
        self._write(pipe, to_client=not from_client)  # passes the EOF on once drained

    def _write(self, pipe: _Pipe, to_client: bool) -> None:
        sock = pipe.client if to_client else pipe.upstream
        buffer = pipe.to_client if to_client else pipe.to_upstream
        if sock is None or pipe.connecting or pipe.done:
            return
        if buffer:
            try:
                sent = sock.send(buffer)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._broken(pipe, to_client, exc)
                return
            del buffer[:sent]
        if not buffer and self._eof_due(pipe, to_client) and not pipe.shut[to_client]:
            pipe.shut[to_client] = True
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the peer is gone; its side reports that on its own

    def _broken(self, pipe: _Pipe, client_side: bool, exc: OSError) -> None:
        """One side reset (or broke) the connection: reset the other side too."""
        who = "client" if client_side else "server"
        pipe.record.add("note", text=f"the {who} reset the connection ({exc})")
        pipe.record.ended = pipe.record.ended or f"{who} reset"
        for sock in pipe.sockets():
            _abort(sock)
        pipe.done = True

    def _maybe_done(self, pipe: _Pipe) -> None:
        if pipe.client_eof and pipe.upstream_eof and not pipe.to_client and not pipe.to_upstream:
            pipe.done = True

    def _finish(self, pipe: _Pipe) -> None:
        for sock in pipe.sockets():
            try:
                sock.close()
            except OSError:
                pass
        log.info("%r: connection #%d ended (%s)", self, pipe.record.number, pipe.record.ended)


def _resolve_target(target: Any) -> tuple[str, int, Any]:
    """(description, family, address) of the real server a proxy forwards to."""
    if isinstance(target, os.PathLike):
        target = os.fspath(target)
    if isinstance(target, str) and target:
        family = getattr(socket, "AF_UNIX", None)
        if family is None:
            raise OSError(errno.EAFNOSUPPORT, "Unix-domain sockets are not available here")
        return format_address(target), family, target
    if (
        isinstance(target, Sequence) and len(target) == 2
        and isinstance(target[0], str) and target[0]
        and isinstance(target[1], int) and not isinstance(target[1], bool)
        and 0 < target[1] <= 65535
    ):
        host, port = target
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise OSError(f"cannot resolve the real server {host!r}: {exc}") from exc
        family, _, _, _, address = infos[0]
        return format_address((host, port)), family, address
    raise TypeError(
        f"target must be (host, port) of the real server, or a Unix socket path, "
        f"not {target!r}"
    )
