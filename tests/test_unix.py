"""Unix-domain sockets: every server class listens on ``path=`` (a socket file in a
tmp_path, or a Linux abstract name) instead of host/port, and removes its file."""

from __future__ import annotations

import asyncio
import http.client
import os
import socket
import sys
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _servers import SERVER_CLASSES, MakeServer, ServerMaker

from embeddedserver import (
    RECEIVE,
    AsyncioCommandServer,
    CommandServer,
    Expect,
    OneShotServer,
    ReadUntil,
    http_response,
)

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")

CLIENT_TIMEOUT = 10.0
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="abstract socket names are a Linux feature")

@pytest.fixture(params=SERVER_CLASSES, ids=lambda cls: cls.__name__)
def make_server(request: pytest.FixtureRequest) -> Iterator[MakeServer]:
    """Build servers of each class; all are stopped (and loops closed) at teardown."""
    with ServerMaker(request.param) as make:
        yield make


def _exchange(address: Any, data: bytes) -> bytes:
    """Send *data* over AF_UNIX, shut the write side, read to EOF."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(CLIENT_TIMEOUT)
        client.connect(address)
        client.sendall(data)
        client.shutdown(socket.SHUT_WR)
        return client.makefile("rb").read()


class _UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix socket: only connect() changes."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=CLIENT_TIMEOUT)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


# ---------------------------------------------------------------------------
# serving on a socket file
# ---------------------------------------------------------------------------


def test_every_server_class_serves_a_unix_socket_file(
    tmp_path: Path, make_server: MakeServer
) -> None:
    path = tmp_path / "fake.sock"
    server = make_server([RECEIVE, "pong"], path=path)
    assert path.is_socket()
    assert _exchange(server.address, b"ping") == b"pong"
    server.wait_idle()
    server.stop()
    server.check()
    assert server.received == [b"ping"]
    assert not path.exists()


def test_unix_server_says_where_it_listens(tmp_path: Path) -> None:
    path = str(tmp_path / "where.sock")
    with CommandServer([RECEIVE], path=path, verbose=False, expect_connections=0) as server:
        assert server.host is None
        assert server.path == path
        assert server.address == path
        assert server.addresses == [path]
        assert repr(server) == f"<CommandServer unix:{path} serving>"


def test_unix_server_has_no_port_and_says_what_to_use_instead(tmp_path: Path) -> None:
    path = str(tmp_path / "noport.sock")
    with CommandServer([RECEIVE], path=path, verbose=False, expect_connections=0) as server:
        with pytest.raises(AttributeError) as info:
            server.port  # noqa: B018
        assert str(info.value) == (
            f"<CommandServer unix:{path} serving> listens on the Unix socket {path!r}: "
            "it has no port; use .path or .address"
        )
        assert getattr(server, "port", None) is None
        assert not hasattr(server, "port")


def test_tcp_server_address_is_host_and_port() -> None:
    with CommandServer([RECEIVE], verbose=False, expect_connections=0) as server:
        assert server.path is None
        assert server.address == ("127.0.0.1", server.port)


def test_http_client_over_a_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "http.sock")
    with CommandServer([ReadUntil(b"\r\n\r\n"), http_response("over unix")], path=path,
                       verbose=False) as server:
        client = _UnixHTTPConnection(path)
        try:
            client.request("GET", "/")
            assert client.getresponse().read() == b"over unix"
        finally:
            client.close()
    assert server.received[0].startswith(b"GET / HTTP/1.1\r\n")


def test_requests_over_a_unix_socket_with_requests_unixsocket(tmp_path: Path) -> None:
    requests_unixsocket = pytest.importorskip("requests_unixsocket")
    path = str(tmp_path / "requests.sock")
    with CommandServer([ReadUntil(b"\r\n\r\n"), http_response("via adapter")], path=path,
                       verbose=False) as server:
        url = f"http+unix://{urllib.parse.quote(path, safe='')}/status"
        with requests_unixsocket.Session() as session:
            assert session.get(url, timeout=CLIENT_TIMEOUT).text == "via adapter"
    assert server.received[0].startswith(b"GET /status HTTP/1.1\r\n")


@pytest.mark.asyncio
async def test_asyncio_unix_client_and_asyncio_server(tmp_path: Path) -> None:
    path = str(tmp_path / "async.sock")
    server = AsyncioCommandServer([ReadUntil(b"\n"), "pong\n"], path=path, verbose=False)
    try:
        reader, writer = await asyncio.open_unix_connection(path)
        try:
            writer.write(b"ping\n")
            assert await asyncio.wait_for(reader.read(), CLIENT_TIMEOUT) == b"pong\n"
        finally:
            writer.close()
            await writer.wait_closed()
        assert await asyncio.wait_for(server.reader.readline(), CLIENT_TIMEOUT) == b"ping\n"
    finally:
        server.stop()
    server.check()
    assert not os.path.exists(path)


def test_tls_over_a_unix_socket(tmp_path: Path) -> None:
    pytest.importorskip("trustme")
    from embeddedserver.tls import LocalTLS

    path = str(tmp_path / "tls.sock")
    with LocalTLS() as tls, CommandServer([RECEIVE, "secret"], path=path,
                                          ssl_context=tls.server_context,
                                          verbose=False):
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.settimeout(CLIENT_TIMEOUT)
        raw.connect(path)
        with tls.client_context.wrap_socket(raw, server_hostname="localhost") as client:
            client.sendall(b"hi")
            assert client.recv(100) == b"secret"


def test_failure_report_names_the_socket_path(tmp_path: Path) -> None:
    path = str(tmp_path / "report.sock")
    server = CommandServer([Expect(b"PING")], path=path, verbose=False)
    try:
        _exchange(path, b"PONG")
        server.wait_idle()
    finally:
        server.stop()
    with pytest.raises(AssertionError, match=f"CommandServer on unix:{path}: 1 failure"):
        server.check()


def test_verbose_output_names_the_socket(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "loud.sock")
    with CommandServer([RECEIVE, "pong"], path=path) as server:
        _exchange(path, b"ping")
        server.wait_idle()
    assert f"[embeddedserver unix:{path}] #1 connected" in capsys.readouterr().out


# ---------------------------------------------------------------------------
# the socket file's life
# ---------------------------------------------------------------------------


def test_one_shot_server_removes_its_file_after_its_connection(tmp_path: Path) -> None:
    path = tmp_path / "once.sock"
    with OneShotServer([RECEIVE, "once"], path=path, verbose=False) as server:
        assert _exchange(str(path), b"x") == b"once"
        server.wait_for_connections(1)
        assert not path.exists()  # it stopped listening: nothing may connect again
        with pytest.raises((FileNotFoundError, ConnectionRefusedError)):
            _exchange(str(path), b"again")


def test_stop_leaves_a_file_that_replaced_the_socket(tmp_path: Path) -> None:
    path = tmp_path / "replaced.sock"
    server = CommandServer([RECEIVE], path=path, verbose=False)
    path.unlink()
    path.write_text("someone else's file")
    server.stop()
    assert path.read_text() == "someone else's file"


def test_existing_file_at_the_path_is_an_error_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "taken.sock"
    path.write_text("keep me")
    with pytest.raises(OSError, match="a file exists there: remove it or choose another path"):
        CommandServer([RECEIVE], path=path, verbose=False)
    assert path.read_text() == "keep me"


def test_too_long_a_path_says_so(tmp_path: Path) -> None:
    path = tmp_path / ("x" * 120 + ".sock")
    with pytest.raises(OSError, match="use a shorter path"):
        CommandServer([RECEIVE], path=path, verbose=False)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"path": b"/tmp/bytes.sock"}, TypeError, "path must be a str or os.PathLike"),
        ({"path": ""}, ValueError, "path must name a Unix socket file"),
        ({"path": "/tmp/x.sock", "port": 8080}, ValueError, "either path= .* or host/port"),
        ({"path": "/tmp/x.sock", "host": "::1"}, ValueError, "not both"),
    ],
)
def test_bad_path_arguments(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        CommandServer([RECEIVE], verbose=False, **kwargs)


# ---------------------------------------------------------------------------
# Linux abstract names
# ---------------------------------------------------------------------------


@linux_only
def test_abstract_name_serves_without_a_file(make_server: MakeServer) -> None:
    name = f"\0embeddedserver-test-{uuid.uuid4().hex}"
    server = make_server([RECEIVE, "abstract"], path=name)
    assert server.address == name
    assert f"unix:@{name[1:]}" in repr(server)
    assert _exchange(server.address, b"hello") == b"abstract"
    server.wait_idle()
    server.stop()
    server.check()
    # The name is free again once the server stopped.
    with CommandServer([RECEIVE, "again"], path=name, verbose=False) as second:
        assert _exchange(name, b"x") == b"again"
    assert second.received == [b"x"]


@linux_only
def test_abstract_name_in_use_is_an_error() -> None:
    name = f"\0embeddedserver-test-{uuid.uuid4().hex}"
    with CommandServer([RECEIVE], path=name, verbose=False, expect_connections=0):
        with pytest.raises(OSError, match="another socket has this abstract name"):
            CommandServer([RECEIVE], path=name, verbose=False)
