"""Listeners, with real loopback sockets: ``listen_tcp`` opens what the servers open, and
``embeddedserver`` still exports what moved here.

How the servers use their listeners (addresses, busy ports, ``"localhost"``) is tested
through them in ``test_servers_lifecycle``; Unix sockets in ``test_unix``.
"""

from __future__ import annotations

import doctest
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
