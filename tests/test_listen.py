"""Listeners, with real loopback sockets: ``listen_tcp`` opens what the servers open, and
``embeddedserver`` still exports what moved here.

How the servers use their listeners (addresses, busy ports, ``"localhost"``) is tested
through them in ``test_servers_lifecycle``; Unix sockets in ``test_unix``.
"""

from __future__ import annotations

import doctest
import errno
import os
import socket
from typing import Any

import pytest

import embeddedserver
import embeddedserver._listen
from embeddedserver import listen_tcp
from embeddedserver._text import format_address

CLIENT_TIMEOUT = 10.0


def test_module_example_runs() -> None:
    result = doctest.testmod(embeddedserver._listen)
    assert result.attempted and not result.failed


def test_listen_tcp_listens_as_the_servers_do() -> None:
    listeners = listen_tcp("localhost", 0, 4)
    try:
        ports = {s.getsockname()[1] for s in listeners}
        assert len(ports) == 1 and 0 not in ports
        assert {s.family for s in listeners} <= {socket.AF_INET, socket.AF_INET6}
        assert all(not s.getblocking() for s in listeners)
        port = listeners[0].getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT):
            pass  # it accepts connections: the backlog takes this one
    finally:
        for listener in listeners:
            listener.close()


@pytest.mark.parametrize(
    ("args", "error", "words"),
    [
        (("", 0, 4), TypeError, ["host", "''"]),
        ((None, 0, 4), TypeError, ["host", "None"]),
        (("127.0.0.1", "80", 4), TypeError, ["port", "'80'", "65535"]),
        (("127.0.0.1", 70000, 4), ValueError, ["port", "70000", "65535"]),
        (("127.0.0.1", 0, 0), ValueError, ["backlog", "0", ">= 1"]),
        (("127.0.0.1", 0, True), TypeError, ["backlog", "True"]),
    ],
)
def test_listen_tcp_rejects_bad_arguments_naming_them(
    args: tuple[Any, ...], error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as info:
        listen_tcp(*args)
    for word in words:
        assert word in str(info.value), f"{word!r} not in {str(info.value)!r}"


@pytest.mark.parametrize(
    ("host", "port", "path", "shown"),
    [
        ("127.0.0.1", 8080, None, "127.0.0.1:8080"),
        ("::1", 8080, None, "[::1]:8080"),
        (None, None, "/tmp/s.sock", "unix:/tmp/s.sock"),
        (None, None, "\0name", "unix:@name"),
    ],
)
def test_an_address_is_described_as_messages_show_it(
    host: str | None, port: int | None, path: str | None, shown: str
) -> None:
    assert format_address(path if path is not None else (host, port)) == shown


def _port_in_time_wait() -> int:
    """A loopback port whose listener is gone and whose one connection, closed by the
    server side first, waits in TIME_WAIT: what a busy suite leaves behind by thousands."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the library's are
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port: int = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    accepted, _ = listener.accept()
    accepted.close()  # the server side closes first: its end goes to TIME_WAIT
    assert client.recv(1) == b""
    client.close()
    listener.close()
    return port


@pytest.mark.skipif(os.name != "posix", reason="SO_REUSEADDR means something else elsewhere")
def test_a_port_held_only_by_time_wait_is_bound_past_it() -> None:
    port = _port_in_time_wait()
    with pytest.raises(OSError) as refused:  # what bind(0) runs into across the range
        embeddedserver._listen._bind_once(socket.AF_INET, ("127.0.0.1", port), 16, False)
    assert refused.value.errno == errno.EADDRINUSE
    sock = embeddedserver._listen._bind_past_time_wait(
        socket.AF_INET, ("127.0.0.1", 0), 16, [port]
    )
    assert sock is not None
    with sock:
        assert sock.getsockname() == ("127.0.0.1", port)
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            accepted, _ = _accept_blocking(sock)
            accepted.close()


@pytest.mark.skipif(os.name != "posix", reason="SO_REUSEADDR means something else elsewhere")
def test_binding_past_time_wait_never_takes_a_port_a_live_listener_has() -> None:
    live = socket.socket()
    live.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    live.bind(("127.0.0.1", 0))
    live.listen()
    spare = _port_in_time_wait()
    try:
        taken = live.getsockname()[1]
        sock = embeddedserver._listen._bind_past_time_wait(
            socket.AF_INET, ("127.0.0.1", 0), 16, [taken, spare]
        )
        assert sock is not None
        with sock:
            assert sock.getsockname()[1] == spare
        assert embeddedserver._listen._bind_past_time_wait(
            socket.AF_INET, ("127.0.0.1", 0), 16, [taken]
        ) is None
    finally:
        live.close()


def _accept_blocking(sock: socket.socket) -> tuple[socket.socket, Any]:
    sock.setblocking(True)
    sock.settimeout(10)
    return sock.accept()
