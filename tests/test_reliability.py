"""Reliability: hostile clients against every server class, leaks, and parallel servers.

Every hostile client runs against each server class (``CommandServer``,
``OneShotServer``, ``AsyncioCommandServer`` and ``CommandServer(concurrent=True)``).
After each one the test checks that the server recorded what happened, that it serves
the next client where its class serves more than one (a ``OneShotServer`` refuses it),
and that ``stop()`` returns. Nothing here times anything: scripts use read timeouts far
longer than any test, ordering comes from the protocol itself (a client reads the
server's reply before it misbehaves) or from ``wait_for_connections``, and "stop()
returns promptly" is a join of the stopping thread with a generous bound, plus the
absence of the "did not stop" failure ``stop()`` records when a thread outlives its join.
"""

from __future__ import annotations

import asyncio
import gc
import os
import selectors
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from embeddedserver import (
    AsyncioCommandServer,
    CommandServer,
    Expect,
    OneShotServer,
    Send,
)

KINDS = ["CommandServer", "OneShotServer", "AsyncioCommandServer", "concurrent"]
LONG = 120.0  # a server read timeout no test waits for
CLIENT_TIMEOUT = 30.0  # every blocking client call gives up after this
STOP_BOUND = 60.0  # stop() must return well within this (it is a wake-up, not a wait)
BIG = 50_000_000
SCRIPT = [Expect(b"hello"), b"world"]

MakeServer = Callable[..., CommandServer]

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _big_payload() -> bytes:
    pattern = bytes(range(256))
    return (pattern * (BIG // len(pattern) + 1))[:BIG]


def _build(
    kind: str, commands: Any, loops: list[asyncio.AbstractEventLoop], **kwargs: Any
) -> CommandServer:
    kwargs.setdefault("verbose", False)
    kwargs.setdefault("timeout", LONG)
    if kind == "OneShotServer":
        return OneShotServer(commands, **kwargs)
    if kind == "AsyncioCommandServer":
        loop = asyncio.new_event_loop()
        loops.append(loop)
        return AsyncioCommandServer(commands, loop=loop, **kwargs)
    if kind == "concurrent":
        return CommandServer(commands, concurrent=True, **kwargs)
    return CommandServer(commands, **kwargs)


def stop_returns(server: CommandServer) -> None:
    """Stop *server* on another thread and assert that stop() returned and every server
    thread ended (stop() records "did not stop" when one outlives its join)."""
    __tracebackhide__ = True
    stopper = threading.Thread(target=server.stop, name="test-stopper", daemon=True)
    stopper.start()
    stopper.join(STOP_BOUND)
    assert not stopper.is_alive(), f"{server!r}.stop() did not return"
    stuck = [f for f in server.errors if "did not stop" in f.summary]
    assert not stuck, stuck[0].message()
    assert not server._thread.is_alive()


def loopback(port: int | None) -> tuple[str, int]:
    assert port is not None, "these servers listen on TCP"
    return ("127.0.0.1", port)


@contextmanager
def connect(port: int | None) -> Iterator[socket.socket]:
    with socket.create_connection(loopback(port), timeout=CLIENT_TIMEOUT) as sock:
        yield sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:])
        if not k:
            raise EOFError(f"the server closed after {got} of {n} bytes")
        got += k
    return bytes(buf)


def read_to_eof(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def reset(sock: socket.socket) -> None:
    """Close abortively: SO_LINGER 0 sends RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def good_client(port: int | None, request: bytes = b"hello", reply: bytes = b"world") -> None:
    """A client that does exactly what the script (``SCRIPT`` by default) expects, then
    reads the server's EOF."""
    with connect(port) as sock:
        sock.sendall(request)
        assert read_to_eof(sock) == reply


def serves_next_client(
    server: CommandServer, kind: str, served: int, request: bytes = b"hello",
    reply: bytes = b"world",
) -> None:
    """After *served* connections: a well-behaved client is served (or, for a
    OneShotServer, refused) and nothing new is recorded as failed."""
    __tracebackhide__ = True
    failures = len(server.errors)
    if kind == "OneShotServer":
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(loopback(server.port), timeout=CLIENT_TIMEOUT)
        return
    good_client(server.port, request, reply)
    server.wait_for_connections(served + 1, CLIENT_TIMEOUT)
    assert len(server.errors) == failures, server.failure_report()
    assert server.connections[served].ended == "server closed"


def one_failure(server: CommandServer) -> Any:
    __tracebackhide__ = True
    assert len(server.errors) == 1, server.failure_report()
    return server.errors[0]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_server(kind: str) -> Iterator[MakeServer]:
    """Build servers of the parametrised class; stop them (asserting stop returns) after."""
    made: list[CommandServer] = []
    loops: list[asyncio.AbstractEventLoop] = []

    def make(commands: Any, **kwargs: Any) -> CommandServer:
        server = _build(kind, commands, loops, **kwargs)
        made.append(server)
        return server

    yield make
    try:
        for server in made:
            stop_returns(server)
    finally:
        for loop in loops:
            loop.close()


@pytest.fixture(scope="module")
def big_payload() -> bytes:
    return _big_payload()


# ---------------------------------------------------------------------------
# hostile clients, each against each server class
# ---------------------------------------------------------------------------


def test_client_that_connects_and_vanishes(make_server: MakeServer, kind: str) -> None:
    server = make_server(SCRIPT)
    with connect(server.port):
        pass
    server.wait_for_connections(1, CLIENT_TIMEOUT)
    failure = one_failure(server)
    assert failure.kind == "closed"
    assert failure.step_index == 0
    assert failure.received == b""
    assert server.connections[0].ended == "client closed"
    serves_next_client(server, kind, 1)


def serves_next_client_with_more(server: CommandServer, kind: str) -> None:
    if kind == "OneShotServer":
        serves_next_client(server, kind, 1)
        return
    with connect(server.port) as sock:
        sock.sendall(b"hello")
        assert recv_exactly(sock, 5) == b"world"
        sock.sendall(b"more")
        assert read_to_eof(sock) == b""
    server.wait_for_connections(2, CLIENT_TIMEOUT)
    assert len(server.errors) == 1, server.failure_report()


def test_client_that_resets_mid_script(make_server: MakeServer, kind: str) -> None:
    server = make_server([*SCRIPT, Expect(b"more")])
    with connect(server.port) as sock:
        sock.sendall(b"hello")
        assert recv_exactly(sock, 5) == b"world"  # the server is at step 2 now
        sock.sendall(b"mo")
        reset(sock)
    server.wait_for_connections(1, CLIENT_TIMEOUT)
    failure = one_failure(server)
    assert failure.kind == "reset"
    assert failure.step_index == 2
    record = server.connections[0]
    assert record.ended == "client reset"
    assert record.received.startswith(b"hello")
    serves_next_client_with_more(server, kind)


def test_client_that_half_closes_early(make_server: MakeServer, kind: str) -> None:
    server = make_server(SCRIPT)
    with connect(server.port) as sock:
        sock.sendall(b"hel")
        sock.shutdown(socket.SHUT_WR)
        assert read_to_eof(sock) == b""  # the server closes instead of replying
    server.wait_for_connections(1, CLIENT_TIMEOUT)
    failure = one_failure(server)
    assert failure.kind == "closed"
    assert failure.received == b"hel"
    assert failure.offset == 3
    assert server.connections[0].ended == "client closed"
    serves_next_client(server, kind, 1)


def test_client_that_sends_50_mb_when_the_script_reads_10_bytes(
    make_server: MakeServer, kind: str, big_payload: bytes
) -> None:
    # The flood after the script is what the test is about: let it pass the verdict.
    server = make_server([Expect(b"0123456789"), b"ok"], allow_extra_bytes=True)
    outcome: list[object] = []

    with connect(server.port) as sock:

        def flood() -> None:
            try:
                sock.sendall(b"0123456789" + big_payload)
                outcome.append("sent all")
            except OSError as exc:  # the server closed with our bytes unread: a reset
                outcome.append(exc)

        sender = threading.Thread(target=flood, name="test-flood", daemon=True)
        sender.start()
        server.wait_for_connections(1, CLIENT_TIMEOUT)
        sender.join(CLIENT_TIMEOUT)
        assert not sender.is_alive(), "the flooding client was never cut off"
    assert server.errors == [], server.failure_report()
    record = server.connections[0]
    assert record.ended == "server closed"
    first_read = next(e for e in record.events if e.kind == "recv")
    assert first_read.data == b"0123456789"  # the step took its 10 bytes, no more
    assert record.sent == b"ok"
    extra = record.received[10:]
    assert big_payload.startswith(extra)  # what it drained is recorded, in order
    serves_next_client(server, kind, 1, b"0123456789", b"ok")


def test_client_that_never_reads_a_50_mb_send(
    make_server: MakeServer, kind: str, big_payload: bytes
) -> None:
    server = make_server([Expect(b"hello"), Send(big_payload), b"end"])
    with connect(server.port) as sock:
        sock.sendall(b"hello")
        assert recv_exactly(sock, 1) == big_payload[:1]  # the send step is under way
        reset(sock)  # gone, with 50 MB unread
    server.wait_for_connections(1, CLIENT_TIMEOUT)
    failure = one_failure(server)
    assert failure.kind in ("reset", "closed")
    assert failure.step_index == 1
    record = server.connections[0]
    assert record.ended in ("client reset", "client closed")
    assert 0 < len(record.sent) < BIG
    assert big_payload.startswith(record.sent)
    if kind == "OneShotServer":
        serves_next_client(server, kind, 1)
        return
    with connect(server.port) as sock:  # the next client reads everything
        sock.sendall(b"hello")
        assert read_to_eof(sock) == big_payload + b"end"
    server.wait_for_connections(2, CLIENT_TIMEOUT)
    assert len(server.errors) == 1, server.failure_report()
    assert server.connections[1].sent == big_payload + b"end"


def test_stop_interrupts_a_send_the_client_never_reads(
    make_server: MakeServer, kind: str, big_payload: bytes
) -> None:
    server = make_server([Expect(b"hello"), Send(big_payload), b"end"])
    with connect(server.port) as sock:
        sock.sendall(b"hello")
        assert recv_exactly(sock, 1) == big_payload[:1]
        stop_returns(server)  # while the server waits for the client to read
    [unread] = server.errors  # the client left the reply unread: that is reported
    assert (unread.kind, unread.step_index) == ("unfinished", 1), server.failure_report()
    record = server.connections[0]
    assert record.ended == "stopped"
    assert 0 < len(record.sent) < BIG  # the part that went out before the stop
    assert big_payload.startswith(record.sent)


def _burst(port: int | None, clients: int) -> list[bytes | OSError]:
    """*clients* non-blocking connections opened at once, each sending b"hello" as soon
    as it is connected and reading until EOF; one thread, a selector, bounded."""
    results: dict[socket.socket, bytes | OSError] = {}
    received: dict[socket.socket, bytearray] = {}
    sel = selectors.DefaultSelector()
    socks = []
    try:
        for _ in range(clients):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.setblocking(False)
            sock.connect_ex(loopback(port))
            sel.register(sock, selectors.EVENT_WRITE)
        rounds = 0
        while len(results) < clients:
            rounds += 1
            assert rounds < 100_000, "the burst made no progress"
            events = sel.select(CLIENT_TIMEOUT)
            assert events, f"{clients - len(results)} clients got no answer"
            for key, mask in events:
                conn = key.fileobj
                assert isinstance(conn, socket.socket)
                try:
                    if mask & selectors.EVENT_WRITE:
                        error = conn.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if error:
                            raise OSError(error, os.strerror(error))
                        conn.send(b"hello")
                        received[conn] = bytearray()
                        sel.modify(conn, selectors.EVENT_READ)
                        continue
                    chunk = conn.recv(65536)
                    if chunk:
                        received[conn] += chunk
                        continue
                    results[conn] = bytes(received[conn])
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:
                    results[conn] = exc
                sel.unregister(conn)
    finally:
        sel.close()
        for sock in socks:
            sock.close()
    return list(results.values())


def test_500_connections_in_a_burst(make_server: MakeServer, kind: str) -> None:
    server = make_server(SCRIPT)
    results = _burst(server.port, 500)
    served = [r for r in results if r == b"world"]
    if kind == "OneShotServer":
        assert len(served) == 1
        assert all(isinstance(r, OSError) for r in results if r != b"world"), results
        server.wait_for_connections(1, CLIENT_TIMEOUT)
    else:
        assert len(served) == 500, [r for r in results if r != b"world"][:5]
        server.wait_for_connections(500, CLIENT_TIMEOUT)
        assert len(server.connections) == 500
    assert server.errors == [], server.failure_report()


def test_bytes_after_the_script_ended(make_server: MakeServer, kind: str) -> None:
    server = make_server(SCRIPT, allow_extra_bytes=True)  # recorded, and allowed here
    with connect(server.port) as sock:
        sock.sendall(b"helloEXTRA")  # one segment: the extra bytes arrive with the rest
        assert read_to_eof(sock) == b"world"
    server.wait_for_connections(1, CLIENT_TIMEOUT)
    assert server.errors == [], server.failure_report()
    assert server.received == [b"hello"]
    record = server.connections[0]
    assert record.received == b"helloEXTRA"
    assert [e.data for e in record.events if e.kind == "recv"] == [b"hello", b"EXTRA"]
    if isinstance(server, AsyncioCommandServer):
        got = server.loop.run_until_complete(asyncio.wait_for(server.reader.read(), LONG))
        assert got == b"hello"  # only what a step consumed, then EOF
    serves_next_client(server, kind, 1)


# ---------------------------------------------------------------------------
# leaks
# ---------------------------------------------------------------------------


def _descriptors() -> dict[int, str]:
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith(("socket:", "pipe:", "anon_inode:")):
            fds[int(name)] = target
    return fds


@pytest.mark.allow_leaks
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_2000_servers_leave_no_thread_or_descriptor_behind() -> None:
    loops: list[asyncio.AbstractEventLoop] = []
    try:
        for kind in KINDS:  # warm up: imports, the asyncio loop, lazily made objects
            _build(kind, SCRIPT, loops).stop()
        gc.collect()
        threads_before = set(threading.enumerate())
        fds_before = _descriptors()
        for i in range(2000):
            server = _build(KINDS[i % len(KINDS)], SCRIPT, loops)
            if i % 50 == 0:
                good_client(server.port)
                server.wait_for_connections(1, CLIENT_TIMEOUT)
            server.stop()
            if server.connections:
                server.check()
            else:  # no client came, as the test says; the verdict counts that
                with pytest.raises(AssertionError, match="no client connected"):
                    server.check()
            assert not server._thread.is_alive()
            while loops:
                loops.pop().close()
        gc.collect()
        threads_after = set(threading.enumerate())
        fds_after = _descriptors()
    finally:
        for loop in loops:
            loop.close()
    assert threads_after - threads_before == set()
    assert fds_after == {fd: t for fd, t in fds_before.items() if fd in fds_after}
    assert len(fds_after) <= len(fds_before)


# ---------------------------------------------------------------------------
# parallel servers
# ---------------------------------------------------------------------------


def test_100_servers_in_100_threads_at_once() -> None:
    count = 100
    start = threading.Barrier(count, timeout=CLIENT_TIMEOUT * 2)
    outcomes: list[BaseException | str] = []
    lock = threading.Lock()

    def one(index: int) -> None:
        loops: list[asyncio.AbstractEventLoop] = []
        try:
            start.wait()
            server = _build(KINDS[index % len(KINDS)], SCRIPT, loops)
            try:
                good_client(server.port)
                server.wait_for_connections(1, CLIENT_TIMEOUT)
            finally:
                server.stop()
            server.check()
            result: BaseException | str = "passed"
        except BaseException as exc:
            result = exc
        finally:
            for loop in loops:
                loop.close()
        with lock:
            outcomes.append(result)

    threads = [
        threading.Thread(target=one, args=(i,), name=f"test-parallel-{i}", daemon=True)
        for i in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(STOP_BOUND * 2)
    assert not [t.name for t in threads if t.is_alive()]
    failed = [o for o in outcomes if o != "passed"]
    assert not failed, failed[:3]
    assert len(outcomes) == count
