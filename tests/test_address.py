"""``.url`` and ``.address`` on every server class: a real client reaches each.

Every class gets them from the one runtime (``_runtime.BaseServer``). Each test here makes a
server of one kind that answers one HTTP request, points a real client at the attribute
(``urllib`` at ``.url``, a socket at ``.address``, ``requests-unixsocket`` at a Unix
socket's ``.url``), and lets the server's own verdict judge what arrived: a client that
reached another server, or sent another request, fails it.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import ssl
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from embeddedserver import (
    AsyncioCommandServer,
    CommandServer,
    CommandServerFactory,
    FaultProxy,
    OneShotServer,
    ReadUntil,
    RecordingProxy,
    TcpServer,
    TcpServerFactory,
    http_response,
)
from embeddedserver._runtime import BaseServer, _url

CLIENT_TIMEOUT = 10.0
BODY = b"hello from the server"
RESPONSE = http_response(BODY)
HTTP_SCRIPT = [ReadUntil(b"\r\n\r\n"), RESPONSE]
PATH = "/address-test"


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


HAS_IPV6 = _ipv6_loopback()
HAS_UNIX = hasattr(socket, "AF_UNIX")


# ---------------------------------------------------------------------------
# one server of each kind, answering one HTTP request
# ---------------------------------------------------------------------------


class Kind:
    """Makes servers of one kind that answer an HTTP request with ``RESPONSE``, and judges
    them. ``request`` is the exact request a TcpServer expects (it only takes exact bytes);
    the script servers read up to the blank line and check the request line afterwards."""

    takes_host = True  # False: the class listens where it listens (TcpServer: both families)

    def __init__(self) -> None:
        self.servers: list[BaseServer] = []
        self.closers: list[Callable[[], None]] = []

    def make(self, request: bytes, **where: Any) -> BaseServer:
        raise NotImplementedError

    def verdict(self, server: BaseServer) -> None:
        assert isinstance(server, CommandServer)
        server.verdict()
        assert server.received and server.received[0].startswith(
            f"GET {PATH} HTTP/1.1\r\n".encode()), server.transcript()

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        for closer in reversed(self.closers):
            closer()


class ScriptKind(Kind):
    def __init__(self, server_class: type[CommandServer]) -> None:
        super().__init__()
        self.server_class = server_class

    def make(self, request: bytes, **where: Any) -> BaseServer:
        if self.server_class is AsyncioCommandServer:
            loop = asyncio.new_event_loop()
            self.closers.append(loop.close)
            where["loop"] = loop
        server = self.server_class(HTTP_SCRIPT, verbose=False, **where)
        self.servers.append(server)
        return server


class CommandFactoryKind(Kind):
    def make(self, request: bytes, **where: Any) -> BaseServer:
        factory = CommandServerFactory()
        self.closers.append(factory.stop)
        server = factory(HTTP_SCRIPT, **where)
        self.servers.append(server)
        return server


class TcpKind(Kind):
    takes_host = False

    def __init__(self, from_factory: bool) -> None:
        super().__init__()
        self.from_factory = from_factory

    def make(self, request: bytes, **where: Any) -> BaseServer:
        if self.from_factory:
            factory = TcpServerFactory(timeout=CLIENT_TIMEOUT)
            self.closers.append(factory.stop)
            server = factory(**where)
        else:
            server = TcpServer(timeout=CLIENT_TIMEOUT, **where)
        self.servers.append(server)
        server.expect_connect()
        server.expect_bytes(request)
        server.send_bytes(RESPONSE)
        server.disconnect()
        return server

    def verdict(self, server: BaseServer) -> None:
        assert isinstance(server, TcpServer)
        server.join()
        server.close(check=True)


class ProxyKind(Kind):
    """A proxy in front of a script server: the server behind it judges the request."""

    def __init__(self, proxy_class: type[RecordingProxy]) -> None:
        super().__init__()
        self.proxy_class = proxy_class
        self.upstreams: dict[int, CommandServer] = {}

    def make(self, request: bytes, **where: Any) -> BaseServer:
        upstream = CommandServer(HTTP_SCRIPT, verbose=False)
        self.servers.append(upstream)
        proxy = self.proxy_class(upstream.address, timeout=CLIENT_TIMEOUT, **where)
        self.servers.append(proxy)
        self.upstreams[id(proxy)] = upstream
        return proxy

    def verdict(self, server: BaseServer) -> None:
        server.wait_idle(CLIENT_TIMEOUT)
        server.stop()
        server.check()
        super().verdict(self.upstreams[id(server)])


KINDS: dict[str, Callable[[], Kind]] = {
    "CommandServer": lambda: ScriptKind(CommandServer),
    "OneShotServer": lambda: ScriptKind(OneShotServer),
    "AsyncioCommandServer": lambda: ScriptKind(AsyncioCommandServer),
    "CommandServerFactory": CommandFactoryKind,
    "TcpServer": lambda: TcpKind(from_factory=False),
    "TcpServerFactory": lambda: TcpKind(from_factory=True),
    "RecordingProxy": lambda: ProxyKind(RecordingProxy),
    "FaultProxy": lambda: ProxyKind(FaultProxy),
}


@pytest.fixture(params=list(KINDS))
def kind(request: pytest.FixtureRequest) -> Iterator[Kind]:
    made = KINDS[request.param]()
    try:
        yield made
    finally:
        made.close()


def _where(kind: Kind, family: str, tmp_path: Path) -> dict[str, Any]:
    if family == "ipv6":
        if not HAS_IPV6:
            pytest.skip("no IPv6 loopback (::1) on this machine")
        if not kind.takes_host:
            pytest.skip("TcpServer listens on 127.0.0.1 and ::1 at once: see the ::1 test")
        return {"host": "::1"}
    if family == "unix":
        if not HAS_UNIX:
            pytest.skip("no Unix-domain sockets here")
        return {"path": str(tmp_path / "s.sock")}
    return {}


# ---------------------------------------------------------------------------
# the clients
# ---------------------------------------------------------------------------


def _urllib_get(url: str, context: ssl.SSLContext | None = None) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "address-test"})
    with urllib.request.urlopen(request, timeout=CLIENT_TIMEOUT, context=context) as response:
        body: bytes = response.read()
        return body


def _urllib_request(host: str, port: int) -> bytes:
    """The exact bytes urllib sends for ``_urllib_get(f"http://{host}:{port}{PATH}")``,
    as a script server saw them (a TcpServer expects exact bytes; what urllib sends
    differs between Python versions, and between ports only in the Host header)."""
    with CommandServer([ReadUntil(b"\r\n\r\n"), RESPONSE], verbose=False) as recorder:
        assert _urllib_get(f"{recorder.url}{PATH}") == BODY
        recorder.wait_for_connections(1, CLIENT_TIMEOUT)
    [seen] = recorder.received
    where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    return seen.replace(f"Host: 127.0.0.1:{recorder.port}\r\n".encode(),
                        f"Host: {where}\r\n".encode())


def _socket_get(address: tuple[str, int] | str) -> bytes:
    request = f"GET {PATH} HTTP/1.1\r\nHost: test\r\n\r\n".encode()
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CLIENT_TIMEOUT)
        sock.connect(address)
    else:
        sock = socket.create_connection(address, timeout=CLIENT_TIMEOUT)
    with sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    return reply


def _make_for_url(kind: Kind, where: dict[str, Any]) -> BaseServer:
    """A server of *kind* ready for urllib at its url (a TcpServer needs the exact request,
    which names its port: it is made on a port picked first)."""
    if not isinstance(kind, TcpKind):
        return kind.make(b"", **where)
    # TcpServer's port is picked when it listens: make it, learn the port, then script it.
    server = TcpServer(timeout=CLIENT_TIMEOUT) if not kind.from_factory else None
    if server is None:
        factory = TcpServerFactory(timeout=CLIENT_TIMEOUT)
        kind.closers.append(factory.stop)
        server = factory()
    kind.servers.append(server)
    server.expect_connect()
    server.expect_bytes(_urllib_request("127.0.0.1", server.port))
    server.send_bytes(RESPONSE)
    server.disconnect()
    return server


# ---------------------------------------------------------------------------
# the tests
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_urllib_reaches_the_server_at_its_url(kind: Kind, family: str, tmp_path: Path) -> None:
    server = _make_for_url(kind, _where(kind, family, tmp_path))
    host = "[::1]" if family == "ipv6" else "127.0.0.1"
    assert server.url == f"http://{host}:{server.port}"
    assert _urllib_get(f"{server.url}{PATH}") == BODY
    kind.verdict(server)


@pytest.mark.parametrize("family", ["ipv4", "ipv6", "unix"])
def test_a_socket_reaches_the_server_at_its_address(
    kind: Kind, family: str, tmp_path: Path
) -> None:
    where = _where(kind, family, tmp_path)
    server = kind.make(f"GET {PATH} HTTP/1.1\r\nHost: test\r\n\r\n".encode(), **where)
    if family == "unix":
        assert server.address == where["path"] == server.path
    else:
        assert server.address == ("::1" if family == "ipv6" else "127.0.0.1", server.port)
    assert server.address == server.addresses[0]
    reply = _socket_get(server.address)
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n") and reply.endswith(BODY), reply
    kind.verdict(server)


def test_tcpserver_listens_on_both_loopbacks_and_its_url_is_the_ipv4_one() -> None:
    if not HAS_IPV6:
        pytest.skip("no IPv6 loopback (::1) on this machine")
    request = f"GET {PATH} HTTP/1.1\r\nHost: test\r\n\r\n".encode()
    with TcpServer(timeout=CLIENT_TIMEOUT) as server:
        assert server.url == f"http://127.0.0.1:{server.service_port}"
        assert server.addresses == [("127.0.0.1", server.port), ("::1", server.port)]
        server.expect_connect()
        server.expect_bytes(request)
        server.send_bytes(RESPONSE)
        server.disconnect()
        assert _socket_get(("::1", server.port)).endswith(BODY)
        server.join()


@pytest.mark.parametrize("name", ["file", "abstract"])
def test_requests_unixsocket_reaches_a_unix_socket_server_at_its_url(
    kind: Kind, name: str, tmp_path: Path
) -> None:
    requests_unixsocket = pytest.importorskip(
        "requests_unixsocket", reason="pip install '.[test]' (requests-unixsocket)")
    if not HAS_UNIX:
        pytest.skip("no Unix-domain sockets here")
    if name == "abstract" and not sys.platform.startswith("linux"):
        pytest.skip("abstract Unix socket names are Linux's")
    path = (str(tmp_path / "s.sock") if name == "file"
            else f"\0embeddedserver-url-{secrets.token_hex(8)}")
    with requests_unixsocket.Session() as session:
        # requests' own request, exactly as the TcpServer kinds expect it: learnt from the
        # same session against a script server first.
        request = b""
        if isinstance(kind, TcpKind):
            with CommandServer(HTTP_SCRIPT, verbose=False, path=path + "-probe") as probe:
                session.get(f"{probe.url}{PATH}", timeout=CLIENT_TIMEOUT).close()
                probe.wait_for_connections(1, CLIENT_TIMEOUT)
            request = probe.received[0]
            host = urllib.parse.quote(path + "-probe", safe="").encode()
            request = request.replace(host, urllib.parse.quote(path, safe="").encode())
        server = kind.make(request, path=path)
        assert server.url == "http+unix://" + urllib.parse.quote(path, safe="")
        assert "/" not in server.url.removeprefix("http+unix://")
        response = session.get(f"{server.url}{PATH}", timeout=CLIENT_TIMEOUT)
        assert (response.status_code, response.content) == (200, BODY)
        response.close()
    kind.verdict(server)


def test_a_tls_server_url_is_https_and_urllib_reaches_it() -> None:
    pytest.importorskip("trustme", reason="pip install '.[tls]'")
    from embeddedserver import LocalTLS

    with LocalTLS() as tls:
        with CommandServer(HTTP_SCRIPT, verbose=False, ssl_context=tls.server_context) as srv:
            assert srv.url == f"https://127.0.0.1:{srv.port}"
            assert _urllib_get(f"{srv.url}{PATH}", tls.client_context) == BODY
        tcp = TcpServer(timeout=CLIENT_TIMEOUT, ssl_context=tls.server_context)
        assert tcp.url == f"https://127.0.0.1:{tcp.port}"
        tcp.stop()
        # A proxy forwards bytes and speaks no TLS of its own: its url says http.
        upstream = CommandServer(HTTP_SCRIPT, verbose=False, ssl_context=tls.server_context)
        proxy = RecordingProxy(upstream.address)
        assert proxy.url == f"http://127.0.0.1:{proxy.port}"
        proxy.stop()
        upstream.stop()


def test_a_client_at_another_port_than_the_url_fails_the_verdict() -> None:
    """The twin of the tests above: the verdict does judge who came (here: nobody)."""
    with CommandServer(HTTP_SCRIPT, verbose=False) as elsewhere:
        assert _urllib_get(f"{elsewhere.url}{PATH}") == BODY
        elsewhere.wait_for_connections(1, CLIENT_TIMEOUT)
        server = CommandServer(HTTP_SCRIPT, verbose=False)
        with pytest.raises(AssertionError, match="no client connected"):
            server.verdict()


@pytest.mark.parametrize(
    ("address", "scheme", "url"),
    [
        (("127.0.0.1", 8080), "http", "http://127.0.0.1:8080"),
        (("::1", 8080), "http", "http://[::1]:8080"),
        (("0.0.0.0", 8080), "http", "http://127.0.0.1:8080"),
        (("::", 8080), "https", "https://[::1]:8080"),
        (("fe80::1%lo", 8080), "http", "http://[fe80::1%25lo]:8080"),
        ("/tmp/a b/s.sock", "http", "http+unix://%2Ftmp%2Fa%20b%2Fs.sock"),
        ("\0name", "http", "http+unix://%00name"),
        ("/tmp/s.sock", "https", "https+unix://%2Ftmp%2Fs.sock"),
    ],
)
def test_url_writes_each_kind_of_address(
    address: tuple[str, int] | str, scheme: str, url: str
) -> None:
    assert _url(address, scheme) == url
