"""A proxy that makes the network misbehave: Toxiproxy's toxics inside the test process.

Model
-----
``FaultProxy`` is a ``RecordingProxy`` (the same forwarding loop on the same runtime, the
same ``connections`` records) whose forwarding passes each direction through the faults
added to it. A direction is ``"upstream"`` (client to server) or ``"downstream"`` (server
to client). A fault is a small frozen value (``Latency``, ``Bandwidth``, ``Slicer``,
``LimitData``, ``Timeout``, ``ResetPeer``, ``SlowClose``, ``Blackhole``, ``OnPattern``);
``proxy.add()``
puts one on a direction and returns a ``FaultHandle`` to ``change()`` or ``remove()`` it
while the test runs.

Which connections a fault applies to is decided once per connection, when the fault
first meets it: the connection's number must be in the handle's ``connections`` (all
when None), and a draw from the proxy's ``seed`` (never the clock, never thread order)
must fall under its ``toxicity``. The same seed and the same ``add()`` calls make the same
decisions, so a failing run replays exactly: ``proxy.seed`` is in its repr, and
``handle.applies_to(n)`` answers without a connection. Random timing (jitter, slice sizes)
comes from the same seed, drawn per read (so it follows the reads as they came). A fault
added with ``live=False`` (the default) meets the connections accepted from then on;
``live=True`` also the open ones, at once.

Bytes in each direction go read -> recorded -> faults -> a queue of (release time, bytes)
-> the socket. Every wait is the loop's ``poll`` with the next release time as its
deadline and the wake-up pipe in it, so ``stop()`` is instant in any fault; each
connection also has a pipe of its own that ``add``/``change``/``remove`` wake.

    >>> import socket, threading
    >>> from embeddedserver import CommandServer, Expect, Send
    >>> with CommandServer([Expect(b"ping"), Send(b"pong")], verbose=False) as real:
    ...     with FaultProxy(real.address, seed=7) as proxy:
    ...         handle = proxy.add(Latency(0.05), "downstream")
    ...         with socket.create_connection(proxy.address, timeout=10) as client:
    ...             client.sendall(b"ping")
    ...             client.recv(4)
    b'pong'

Sections: the handle, the proxy (the faults themselves are in ``_faultkinds``).
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from . import _args
from ._args import DEFAULT_TIMEOUT
from ._connection import Waker
from ._faultkinds import (
    Bandwidth,
    Blackhole,
    Fault,
    Latency,
    LimitData,
    OnPattern,
    ResetPeer,
    Slicer,
    SlowClose,
    Timeout,
    check_fault,
)
from ._forward import BUFFER_LIMIT, Pipe, abort
from .record import ConnectionRecord, Event
from .replay import RecordingProxy

__all__ = [  # the faults themselves: _faultkinds (the package exports them)
    "DOWNSTREAM",
    "UPSTREAM",
    "Direction",
    "FaultHandle",
    "FaultProxy",
]

Direction = Literal["upstream", "downstream"]
UPSTREAM: Direction = "upstream"  # client to server
DOWNSTREAM: Direction = "downstream"  # server to client

# ---------------------------------------------------------------------------
# the handle
# ---------------------------------------------------------------------------


class FaultHandle:
    """One fault on one direction of a ``FaultProxy``, as ``proxy.add()`` returned it.

    Attributes: ``fault``, ``direction``, ``toxicity``, ``connections`` (None: all),
    ``live``, ``removed``. ``change(fault)`` swaps the fault on every connection it
    applies to (the draw stays); ``remove()`` takes it off everywhere (twice is harmless);
    ``applies_to(n)`` is the seeded decision for connection *n*.
    """

    def __init__(
        self,
        proxy: FaultProxy,
        ident: int,
        fault: Fault,
        direction: Direction,
        toxicity: float,
        connections: frozenset[int] | None,
        live: bool,
        generation: int,
    ) -> None:
        self._proxy = proxy
        self.ident = ident
        self.fault = fault
        self.direction = direction
        self.toxicity = toxicity
        self.connections = connections
        self.live = live
        self.removed = False
        self._generation = generation  # the proxy's count of add() calls, at this one

    def __repr__(self) -> str:
        scope = "" if self.connections is None else f" on {sorted(self.connections)}"
        state = " removed" if self.removed else ""
        return (f"<FaultHandle #{self.ident} {self.fault!r} {self.direction} "
                f"toxicity={self.toxicity:g}{scope}{state}>")

    def applies_to(self, number: int) -> bool:
        """True if this fault applies to connection *number* (1 is the first): in scope,
        and the seeded draw for (fault, connection) falls under ``toxicity``."""
        _args.count(number, "number", 1)
        if self.connections is not None and number not in self.connections:
            return False
        if self.toxicity >= 1.0:
            return True
        draw = random.Random(f"{self._proxy.seed}:{self.ident}:{number}").random()
        return draw < self.toxicity

    def change(self, fault: Fault) -> None:
        """Replace the fault (any kind) on every connection it applies to, at once."""
        fault = check_fault(fault)
        self._proxy._faults_changed(lambda: setattr(self, "fault", fault))

    def remove(self) -> None:
        """Take the fault off every connection, at once; what a ``Timeout`` held goes on."""
        self._proxy._remove(self)


# ---------------------------------------------------------------------------
# the proxy
# ---------------------------------------------------------------------------


@dataclass
class _Stream:
    """One direction of one connection, between the faults and the socket."""

    queue: deque[tuple[float, bytes]] = field(default_factory=deque)
    held: bytearray = field(default_factory=bytearray)  # by a Timeout
    last_release: float = 0.0
    bandwidth_free: float = 0.0
    passed: int = 0  # bytes past the faults, for LimitData and ResetPeer
    eof_at: float | None = None
    end: str | None = None  # "close" or "reset" once the queue has gone out


@dataclass
class _Applied:
    handle: FaultHandle
    fault: Fault
    since: float
    rng: random.Random
    tail: bytes = b""  # OnPattern: the end of what passed, a match may start in it
    fired: bool = False  # OnPattern: matched (once per connection)


class _FaultPipe(Pipe):
    def __init__(self, client: socket.socket, record: ConnectionRecord, born: int) -> None:
        super().__init__(client, record)
        self.kick = Waker()
        self.born = born
        self.generation = -1  # the proxy's generation last synced with
        self.applied: dict[int, _Applied] = {}
        self.streams = (_Stream(), _Stream())  # [0] upstream, [1] downstream


def _direction(value: Any) -> Direction:
    if value == UPSTREAM:
        return UPSTREAM
    if value == DOWNSTREAM:
        return DOWNSTREAM
    raise ValueError(
        f"direction must be 'upstream' (client to server) or 'downstream' (server to "
        f"client), not {value!r}"
    )


def _scope(value: Any) -> frozenset[int] | None:
    if value is None:
        return None
    items: Iterable[Any] = [value] if isinstance(value, int) else value
    if isinstance(value, (str, bytes)) or not isinstance(items, Iterable):
        raise TypeError(f"connections must be a connection number (1 is the first), a "
                        f"collection of them, or None (all), not {value!r}")
    numbers = frozenset(_args.count(n, "connection number", 1) for n in items)
    if not numbers:
        raise ValueError(f"connections must name at least one connection, not {value!r}")
    return numbers


class FaultProxy(RecordingProxy):
    """Forward connections to a real server through faults, and record each one.

    ``FaultProxy(upstream)`` listens before it returns (a free loopback port, or
    ``path=``) and forwards every connection to *upstream*: ``(host, port)`` or a Unix
    socket path. Bytes are forwarded untouched (TLS passes through). Faults are added,
    changed and removed while the test runs; see the module docstring for the model.

    Arguments:
        upstream: the real server.
        host, port, path, timeout, backlog, on_event: as for ``RecordingProxy``.
        seed: the seed of every decision (toxicity draws, jitter, slice sizes); None
            picks one, shown in ``seed`` and the repr, to replay a failing run.

    Callers use ``add()``, ``faults``, everything ``RecordingProxy`` has (``port``,
    ``address``, ``url``, ``connections``, ``wait_idle()``, ``save()``, ``check()``, ``stop()``).

        with FaultProxy(("127.0.0.1", redis_port), seed=1) as proxy:
            proxy.add(ResetPeer(after_bytes=0), "downstream", connections=1)
            run_client_that_retries(proxy.port)   # the first connection is reset
    """

    def __init__(
        self,
        upstream: tuple[str, int] | str | os.PathLike[str],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        path: str | os.PathLike[str] | None = None,
        seed: int | str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        backlog: int = 128,
        on_event: Callable[[ConnectionRecord, Event], object] | None = None,
    ) -> None:
        if seed is None:
            seed = random.SystemRandom().randrange(1 << 32)
        elif isinstance(seed, bool) or not isinstance(seed, (int, str)):
            raise TypeError(f"seed must be an int, a str or None (pick one), not {seed!r}")
        #: The seed of every decision; the same seed and add() calls replay a run.
        self.seed: int | str = seed
        self._faults_lock = threading.Lock()
        self._handles: list[FaultHandle] = []
        self._next_ident = 1
        self._generation = 0
        self._pipes: set[_FaultPipe] = set()
        super().__init__(upstream, host, port, path=path, timeout=timeout, backlog=backlog,
                         on_event=on_event)

    def __repr__(self) -> str:
        state = "stopped" if self._waker.closed else "forwarding"
        return f"<FaultProxy {self._where} -> {self.target} seed={self.seed!r} {state}>"

    # -- the faults ------------------------------------------------------------------

    @property
    def faults(self) -> list[FaultHandle]:
        """The faults in place, in the order they were added."""
        with self._faults_lock:
            return list(self._handles)

    def add(
        self,
        fault: Fault,
        direction: Direction = DOWNSTREAM,
        *,
        toxicity: float = 1.0,
        connections: int | Collection[int] | None = None,
        live: bool = False,
    ) -> FaultHandle:
        """Put *fault* on *direction* ("upstream": client to server; "downstream": server
        to client) and return its handle.

        Arguments:
            toxicity: the probability (0..1) that it applies to a connection, drawn per
                connection from the proxy's seed.
            connections: a connection number (1 is the first), a collection of them
                (``range(2, 5)``), or None: all.
            live: also apply to the connections open now (else: to those accepted
                from now on).

        Raises TypeError/ValueError naming a bad argument.
        """
        fault = check_fault(fault)
        direction = _direction(direction)
        if not _args._number(toxicity):
            raise TypeError(f"toxicity must be a probability from 0 to 1, not {toxicity!r}")
        if not 0 <= toxicity <= 1:
            raise ValueError(f"toxicity must be a probability from 0 to 1, not {toxicity!r}")
        scope = _scope(connections)
        live = _args.flag(live, "live")
        with self._faults_lock:
            self._generation += 1
            handle = FaultHandle(self, self._next_ident, fault, direction, float(toxicity),
                                 scope, live, self._generation)
            self._next_ident += 1
            self._handles.append(handle)
            pipes = list(self._pipes)
        if live:
            for pipe in pipes:
                pipe.kick.wake()
        return handle

    def _faults_changed(self, change: Callable[[], None]) -> None:
        with self._faults_lock:
            change()
            self._generation += 1
            pipes = list(self._pipes)
        for pipe in pipes:
            pipe.kick.wake()

    def _remove(self, handle: FaultHandle) -> None:
        def take_off() -> None:
            handle.removed = True
            if handle in self._handles:
                self._handles.remove(handle)

        self._faults_changed(take_off)

    # -- one connection, on its worker thread (the hooks of RecordingProxy's loop) ------

    def _new_pipe(self, client: socket.socket, record: ConnectionRecord) -> Pipe:
        with self._faults_lock:
            pipe = _FaultPipe(client, record, self._generation)
            self._pipes.add(pipe)
        return pipe

    def _finish(self, pipe: Pipe) -> None:
        assert isinstance(pipe, _FaultPipe)
        with self._faults_lock:
            self._pipes.discard(pipe)
        pipe.kick.close()
        super()._finish(pipe)

    def _extra_fds(self, pipe: Pipe) -> Sequence[int]:
        assert isinstance(pipe, _FaultPipe)
        return (pipe.kick.rfd,)

    def _on_extra(self, pipe: Pipe, fd: int) -> None:
        assert isinstance(pipe, _FaultPipe)
        pipe.kick.clear()  # _tick, next, syncs with the proxy's faults

    def _sync(self, pipe: _FaultPipe, now: float) -> None:
        """Bring the connection's faults up to date with the proxy's."""
        with self._faults_lock:
            if pipe.generation == self._generation:
                return
            pipe.generation = self._generation
            handles = list(self._handles)
        number = pipe.record.number
        released = [False, False]
        for ident, applied in list(pipe.applied.items()):
            handle = applied.handle
            if handle.removed or handle.fault is not applied.fault:
                if isinstance(applied.fault, Timeout):
                    released[handle.direction == DOWNSTREAM] = True
                if handle.removed:
                    del pipe.applied[ident]
                    pipe.record.add("note", text=f"fault removed: {handle.fault!r} "
                                    f"{handle.direction}")
                else:
                    applied.fault, applied.since = handle.fault, now
                    pipe.record.add("note", text=f"fault changed: {handle.fault!r} "
                                    f"{handle.direction}")
        for handle in handles:
            if handle.ident in pipe.applied or handle.removed:
                continue
            if not handle.live and handle._generation > pipe.born:
                continue
            if handle.applies_to(number):
                rng = random.Random(f"{self.seed}:{handle.ident}:{number}:timing")
                pipe.applied[handle.ident] = _Applied(handle, handle.fault, now, rng)
                pipe.record.add("note", text=f"fault: {handle.fault!r} {handle.direction}")
        for index, release in enumerate(released):
            stream = pipe.streams[index]
            if release and not self._has(pipe, index, Timeout) and stream.held:
                data, stream.held = bytes(stream.held), bytearray()
                self._schedule(pipe, index, data, now)

    def _active(self, pipe: _FaultPipe, index: int) -> list[_Applied]:
        direction = DOWNSTREAM if index else UPSTREAM
        return [a for a in pipe.applied.values() if a.handle.direction == direction]

    def _has(self, pipe: _FaultPipe, index: int, kind: type) -> bool:
        return any(isinstance(a.fault, kind) for a in self._active(pipe, index))

    def _room(self, pipe: Pipe, from_client: bool) -> bool:
        assert isinstance(pipe, _FaultPipe)
        stream = pipe.streams[0 if from_client else 1]
        buffer = pipe.to_upstream if from_client else pipe.to_client
        queued = sum(len(chunk) for _, chunk in stream.queue)
        return len(buffer) + queued + len(stream.held) < BUFFER_LIMIT

    def _forward(self, pipe: Pipe, from_client: bool, data: bytes) -> None:
        assert isinstance(pipe, _FaultPipe)
        index = 0 if from_client else 1
        now = time.monotonic()
        self._sync(pipe, now)
        stream = pipe.streams[index]
        if stream.end is not None or self._has(pipe, index, Blackhole):
            return  # dropped: past a limit or a pattern, or into the hole
        if self._has(pipe, index, Timeout):
            stream.held.extend(data)
            return
        self._schedule(pipe, index, data, now)

    def _schedule(self, pipe: _FaultPipe, index: int, data: bytes, now: float) -> None:
        """Queue *data* with the time each piece may go, through the direction's faults."""
        stream = pipe.streams[index]
        active = self._active(pipe, index)
        for applied in active:
            fault = applied.fault
            if not isinstance(fault, OnPattern) or applied.fired:
                continue
            cut = _match_end(applied, fault.pattern, data)
            if cut is None:
                continue
            applied.fired = True
            pipe.record.add("note", text=f"fault {fault!r}: the pattern passed "
                            f"{DOWNSTREAM if index else UPSTREAM}")
            if fault.action == "delay":  # what follows waits: the queue keeps order
                self._schedule(pipe, index, data[:cut], now)
                stream.last_release = max(stream.last_release, now + fault.delay)
                if cut < len(data):
                    self._schedule(pipe, index, data[cut:], now)
                return
            data = data[:cut]
            stream.end = fault.action
        for applied in active:
            fault = applied.fault
            limit = (fault.limit if isinstance(fault, LimitData)
                     else fault.after_bytes if isinstance(fault, ResetPeer) else None)
            if limit is not None and stream.passed + len(data) >= limit:
                data = data[:max(0, limit - stream.passed)]
                stream.end = "reset" if isinstance(fault, ResetPeer) else "close"
        stream.passed += len(data)
        base = now
        pieces = [data]
        for applied in active:
            fault = applied.fault
            if isinstance(fault, Latency):
                base += max(0.0, fault.delay + applied.rng.uniform(-fault.jitter, fault.jitter))
            elif isinstance(fault, Slicer):
                pieces = [s for piece in pieces for s in _slices(piece, fault, applied.rng)]
        slicer = next((a for a in active if isinstance(a.fault, Slicer)), None)
        rates = [a.fault.rate for a in active if isinstance(a.fault, Bandwidth)]
        if rates:  # pieces of ~10 ms each, every one released once its time has passed
            size = max(1, int(min(rates) / 100))
            pieces = [p[i:i + size] for p in pieces for i in range(0, len(p), size)]
        for number, piece in enumerate(pieces):
            if slicer is not None and number:
                assert isinstance(slicer.fault, Slicer)
                base += slicer.rng.uniform(0, slicer.fault.delay)
            release = max(base, stream.last_release)
            if rates:
                release = max(release, stream.bandwidth_free) + len(piece) / min(rates)
                stream.bandwidth_free = release
            stream.last_release = release
            stream.queue.append((release, piece))
        self._release(pipe, index, now)

    def _release(self, pipe: _FaultPipe, index: int, now: float) -> None:
        """Move the pieces due by *now* to the socket's buffer, and write."""
        stream = pipe.streams[index]
        buffer = pipe.to_upstream if index == 0 else pipe.to_client
        moved = False
        while stream.queue and stream.queue[0][0] <= now:
            buffer.extend(stream.queue.popleft()[1])
            moved = True
        if moved or not stream.queue:
            self._write(pipe, to_client=index == 1)

    def _tick(self, pipe: Pipe) -> None:
        assert isinstance(pipe, _FaultPipe)
        now = time.monotonic()
        self._sync(pipe, now)
        for applied in pipe.applied.values():
            fault = applied.fault
            if isinstance(fault, ResetPeer) and (
                (fault.after is None and fault.after_bytes is None)
                or (fault.after is not None and now >= applied.since + fault.after)
            ):
                self._end(pipe, "reset", f"fault {fault!r}: reset both sides")
                return
            if (isinstance(fault, Timeout) and fault.close_after is not None
                    and now >= applied.since + fault.close_after):
                self._end(pipe, "close", f"fault {fault!r}: closed both sides")
                return
        for index, stream in enumerate(pipe.streams):
            if stream.end is None:
                for applied in self._active(pipe, index):  # a limit already passed
                    fault = applied.fault
                    if isinstance(fault, LimitData) and stream.passed >= fault.limit:
                        stream.end = "close"
                    elif (isinstance(fault, ResetPeer) and fault.after_bytes is not None
                          and stream.passed >= fault.after_bytes):
                        stream.end = "reset"
            self._release(pipe, index, now)
            if pipe.done:
                return
            buffer = pipe.to_upstream if index == 0 else pipe.to_client
            if stream.end is not None and not stream.queue and not buffer:
                self._end(pipe, stream.end, f"fault: {stream.end} after {stream.passed} "
                          f"byte(s) {DOWNSTREAM if index else UPSTREAM}")
                return
        self._maybe_done(pipe)

    def _end(self, pipe: _FaultPipe, how: str, note: str) -> None:
        pipe.record.add("note", text=note)
        pipe.record.ended = pipe.record.ended or f"fault: {how}"
        if how == "reset":
            for sock in pipe.sockets():
                abort(sock)
        pipe.done = True  # the loop ends; _finish closes the sockets

    def _timer(self, pipe: Pipe) -> float | None:
        assert isinstance(pipe, _FaultPipe)
        times: list[float] = []
        for applied in pipe.applied.values():
            fault = applied.fault
            if isinstance(fault, ResetPeer) and fault.after is not None:
                times.append(applied.since + fault.after)
            elif isinstance(fault, Timeout) and fault.close_after is not None:
                times.append(applied.since + fault.close_after)
        for index, stream in enumerate(pipe.streams):
            if stream.queue:
                times.append(stream.queue[0][0])
            slow = [a.fault.delay for a in self._active(pipe, index)
                    if isinstance(a.fault, SlowClose)]
            if stream.eof_at is not None and slow and not pipe.shut[index]:
                times.append(stream.eof_at + max(slow))
        return min(times) if times else None

    def _eof_due(self, pipe: Pipe, to_client: bool) -> bool:
        assert isinstance(pipe, _FaultPipe)
        if not super()._eof_due(pipe, to_client):
            return False
        index = 1 if to_client else 0
        stream = pipe.streams[index]
        now = time.monotonic()
        if stream.eof_at is None:
            stream.eof_at = now
        if stream.queue or stream.held or stream.end is not None:
            return False
        active = self._active(pipe, index)
        if any(isinstance(a.fault, (Blackhole, Timeout)) for a in active):
            return False  # the EOF is held (Timeout) or dropped (Blackhole) too
        slow = [a.fault.delay for a in active if isinstance(a.fault, SlowClose)]
        return not slow or now >= stream.eof_at + max(slow)

    def _maybe_done(self, pipe: Pipe) -> None:
        if all(pipe.shut):
            super()._maybe_done(pipe)


def _slices(data: bytes, fault: Slicer, rng: random.Random) -> list[bytes]:
    pieces = []
    start = 0
    while start < len(data):
        size = max(1, fault.average + rng.randint(-fault.variation, fault.variation))
        pieces.append(data[start:start + size])
        start += size
    return pieces


def _match_end(applied: _Applied, pattern: bytes, data: bytes) -> int | None:
    """Where in *data* the first *pattern* ends (it may start in what passed before),
    or None, keeping the tail a later match may start in."""
    window = applied.tail + data
    at = window.find(pattern)
    if at < 0:
        applied.tail = window[max(0, len(window) - len(pattern) + 1):] if len(pattern) > 1 else b""
        return None
    return at + len(pattern) - len(applied.tail)
