"""The process-wide acceptor: a server no client reaches never has a thread, the first
client starts it, and a stop racing a client's arrival neither hangs nor leaks."""

from __future__ import annotations

import os
import socket
import sys
import threading

import pytest

from embeddedserver import CommandServer, Expect, OneShotServer, TcpServer
from embeddedserver._acceptor import THREAD_NAME, acceptor

pytestmark = pytest.mark.skipif(acceptor() is None, reason="no epoll here")


def _threads_named(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix)]


def test_a_server_no_client_reaches_never_starts_a_thread() -> None:
    before = threading.active_count()
    servers = [CommandServer([Expect(b"hi"), b"ok"], verbose=False) for _ in range(50)]
    assert threading.active_count() == before  # 50 servers listen, none has a thread
    for server in servers:
        server.stop()
        assert server.STOPPED
        assert server._thread.ident is None
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", server.port), timeout=5).close()


def test_the_first_client_starts_the_servers_thread_and_is_served() -> None:
    with CommandServer([Expect(b"hi"), b"ok"], verbose=False) as server:
        assert server._thread.ident is None
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"hi")
            assert sock.recv(2) == b"ok"
        server.wait_for_connections(1)
        assert server._thread.ident is not None
    assert server.received == [b"hi"]


def test_a_stop_in_the_middle_of_a_client_arriving_does_not_hang_or_leak() -> None:
    # stop() races the acceptor handing the server over: either no thread ran, or it
    # ran and was joined; nothing is left behind either way, in any order.
    for n in range(200):
        server = OneShotServer([Expect(b"x")], verbose=False, expect_connections=None)
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        if n % 2:
            sock.sendall(b"x")
        server.stop()
        sock.close()
        assert not server._thread.is_alive()
        assert server.STOPPED
    assert not _threads_named("embeddedserver:127.0.0.1")


def test_the_unfinished_script_of_a_server_no_client_reached_is_still_a_failure() -> None:
    server = TcpServer(timeout=5)
    server.expect_connect()
    server.stop()
    assert server.failure is not None and server.failure.kind == "unfinished"


def test_one_acceptor_thread_serves_every_server() -> None:
    servers = [CommandServer([b"ok"], verbose=False) for _ in range(20)]
    try:
        assert len(_threads_named(THREAD_NAME)) == 1
    finally:
        for server in servers:
            server.stop()


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform != "linux",
                    reason="fork and /proc/self/fd")
def test_a_forked_child_runs_its_own_acceptor_and_keeps_none_of_its_parents() -> None:
    watcher = acceptor()
    assert watcher is not None
    parent_epoll = watcher._epoll.fileno()
    assert _target(parent_epoll) == "anon_inode:[eventpoll]"
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running the parent's cleanup
        code = 1
        try:
            inherited = _target(parent_epoll) != ""  # closed at the fork, before any use
            with CommandServer([Expect(b"hi"), b"ok"], verbose=False) as server:
                with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
                    s.sendall(b"hi")
                    served = s.recv(2) == b"ok"
            code = 0 if served and not inherited else 2
        finally:
            os.write(write_end, bytes([code]))
            os._exit(code)
    os.close(write_end)
    try:
        result = os.read(read_end, 1)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    assert result == b"\x00", f"the forked child's server failed (code {result!r})"


def _target(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


def test_without_an_acceptor_every_server_runs_its_own_thread_from_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What a system without epoll gets: the thread starts in the constructor; the rest of
    # the lifecycle is the same.
    import embeddedserver._runtime

    monkeypatch.setattr(embeddedserver._runtime, "acceptor", lambda: None)
    for n in range(20):
        server = CommandServer([Expect(b"hi"), b"ok"], verbose=False,
                               expect_connections=n % 2)
        assert server._thread.is_alive()
        if n % 2:
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(b"hi")
                assert sock.recv(2) == b"ok"
        server.verdict()
        assert not server._thread.is_alive()
        assert server.received == ([b"hi"] if n % 2 else [])
