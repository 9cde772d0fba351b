"""TLS: every server class speaks TLS with ``ssl_context=``; ``LocalTLS`` makes the
certificates; the misbehaviour steps give clients the errors real broken servers give;
a client that breaks the handshake is a recorded failure, not a crash."""

from __future__ import annotations

import asyncio
import gc
import http.client
import os
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from _servers import SERVER_CLASSES, MakeServer, ServerMaker

from embeddedserver import (
    RECEIVE,
    AsyncioCommandServer,
    Close,
    CommandServer,
    HalfClose,
    ReadUntil,
    ReadUntilClose,
    http_response,
)
from embeddedserver.steps import compile_script
from embeddedserver.tls import (
    PLAINTEXT_REPLY,
    AbortHandshake,
    CloseWithoutNotify,
    LocalTLS,
    PlaintextReply,
)

CLIENT_TIMEOUT = 10.0
HTTP_REQUEST_END = ReadUntil(b"\r\n\r\n")

# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls() -> Iterator[LocalTLS]:
    pytest.importorskip("trustme")
    with LocalTLS() as certificates:
        yield certificates


@pytest.fixture(params=SERVER_CLASSES, ids=lambda cls: cls.__name__)
def make_server(request: pytest.FixtureRequest) -> Iterator[MakeServer]:
    """Build servers of each class; all are stopped (and loops closed) at teardown."""
    with ServerMaker(request.param) as make:
        yield make


def _https_get(port: int | None, context: ssl.SSLContext, host: str = "localhost") -> bytes:
    client = http.client.HTTPSConnection(host, port, context=context, timeout=CLIENT_TIMEOUT)
    try:
        client.request("GET", "/secret")
        return client.getresponse().read()
    finally:
        client.close()


def _tls_connect(tls: LocalTLS, port: int | None, **kwargs: Any) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT)
    try:
        return tls.client_context.wrap_socket(raw, server_hostname="localhost", **kwargs)
    except BaseException:
        raw.close()
        raise


# ---------------------------------------------------------------------------
# scripted servers over TLS
# ---------------------------------------------------------------------------


def test_every_server_class_answers_http_client_over_tls(
    tls: LocalTLS, make_server: MakeServer
) -> None:
    server = make_server([HTTP_REQUEST_END, http_response("secret")],
                         ssl_context=tls.server_context)
    assert _https_get(server.port, tls.client_context) == b"secret"
    server.wait_idle()
    server.stop()
    server.check()
    assert server.received[0].startswith(b"GET /secret HTTP/1.1\r\n")
    assert "TLS established (TLSv1.3)" in server.transcript()


def test_requests_over_https_trusts_the_ca_file(tls: LocalTLS) -> None:
    requests = pytest.importorskip("requests")
    script = [HTTP_REQUEST_END, http_response('{"ok": true}',
                                              headers={"Content-Type": "application/json"})]
    with CommandServer(script, ssl_context=tls.server_context, verbose=False) as server:
        with requests.Session() as session:
            response = session.get(f"https://127.0.0.1:{server.port}/api",
                                   verify=tls.ca_file, timeout=CLIENT_TIMEOUT)
        assert response.json() == {"ok": True}


def test_urllib_over_https_with_the_ca_file(tls: LocalTLS) -> None:
    context = ssl.create_default_context(cafile=tls.ca_file)
    with CommandServer([HTTP_REQUEST_END, http_response("from urllib")],
                       ssl_context=tls.server_context, verbose=False) as server:
        url = f"https://localhost:{server.port}/"
        with urllib.request.urlopen(url, context=context, timeout=CLIENT_TIMEOUT) as reply:
            assert reply.read() == b"from urllib"


def test_certificate_is_valid_for_ipv6_loopback(tls: LocalTLS) -> None:
    try:
        server = CommandServer([HTTP_REQUEST_END, http_response("v6")], host="::1",
                               ssl_context=tls.server_context, verbose=False)
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    with server:
        assert _https_get(server.port, tls.client_context, host="::1") == b"v6"


async def _asyncio_exchange(port: int | None, context: ssl.SSLContext) -> bytes:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    try:
        writer.write(b"ping\n")
        return await reader.read()  # up to the server's close (with close_notify)
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.asyncio
async def test_asyncio_client_over_tls(tls: LocalTLS) -> None:
    server = AsyncioCommandServer([ReadUntil(b"\n"), "pong\n"],
                                  ssl_context=tls.server_context, verbose=False)
    try:
        reply = await asyncio.wait_for(
            _asyncio_exchange(server.port, tls.client_context), CLIENT_TIMEOUT
        )
        assert reply == b"pong\n"
        assert await asyncio.wait_for(server.reader.readline(), CLIENT_TIMEOUT) == b"ping\n"
    finally:
        server.stop()
    server.check()


# ---------------------------------------------------------------------------
# TLS misbehaviour steps and what clients see
# ---------------------------------------------------------------------------


def test_abort_handshake_gives_clients_an_ssl_eof_error(tls: LocalTLS) -> None:
    with CommandServer([AbortHandshake()], ssl_context=tls.server_context,
                       verbose=False) as server:
        with pytest.raises(ssl.SSLEOFError):
            _tls_connect(tls, server.port)
        with pytest.raises(ssl.SSLEOFError):
            _https_get(server.port, tls.client_context)
        server.wait_idle()
    first = server.connections[0]
    assert first.ended == "server closed during the TLS handshake"
    assert first.received[:1] == b"\x16"  # the ClientHello it read before hanging up


def test_abort_handshake_with_reset_gives_connection_reset(tls: LocalTLS) -> None:
    with CommandServer([AbortHandshake(reset=True)], ssl_context=tls.server_context,
                       verbose=False) as server:
        with pytest.raises(ConnectionResetError):
            _https_get(server.port, tls.client_context)
        with pytest.raises(urllib.error.URLError) as caught:
            urllib.request.urlopen(f"https://127.0.0.1:{server.port}/",
                                   context=tls.client_context, timeout=CLIENT_TIMEOUT)
        assert isinstance(caught.value.reason, ConnectionResetError)
        server.wait_idle()
    assert [r.ended for r in server.connections] == ["server reset", "server reset"]


def test_plaintext_reply_on_a_tls_port_breaks_the_client_handshake(tls: LocalTLS) -> None:
    with CommandServer([PlaintextReply()], ssl_context=tls.server_context,
                       verbose=False) as server:
        with pytest.raises(ssl.SSLError) as caught:
            _https_get(server.port, tls.client_context)
        assert not isinstance(caught.value, ssl.SSLEOFError)  # garbage, not a hang-up
        server.wait_idle()
    assert server.connections[0].sent == PLAINTEXT_REPLY


def test_requests_reports_the_plaintext_reply_as_an_ssl_error(tls: LocalTLS) -> None:
    requests = pytest.importorskip("requests")
    with CommandServer([PlaintextReply(b"220 smtp.test ESMTP\r\n")],
                       ssl_context=tls.server_context, verbose=False) as server:
        with requests.Session() as session, pytest.raises(requests.exceptions.SSLError):
            session.get(f"https://127.0.0.1:{server.port}/", verify=tls.ca_file,
                        timeout=CLIENT_TIMEOUT)


@pytest.mark.parametrize("end", [Close(), CloseWithoutNotify()], ids=repr)
def test_close_without_notify_is_a_ragged_eof_to_strict_clients(
    tls: LocalTLS, end: Any
) -> None:
    with CommandServer([RECEIVE, "data", end], ssl_context=tls.server_context,
                       verbose=False) as server:
        with _tls_connect(tls, server.port, suppress_ragged_eofs=False) as client:
            client.sendall(b"go")
            assert client.recv(100) == b"data"
            if isinstance(end, CloseWithoutNotify):
                with pytest.raises(ssl.SSLEOFError):
                    client.recv(100)
            else:
                assert client.recv(100) == b""  # close_notify: a clean end of stream
    assert server.connections[0].ended in (
        "server closed", "server closed without TLS close_notify"
    )


def test_close_without_notify_goes_unnoticed_by_http_client(tls: LocalTLS) -> None:
    # http.client (like urllib3) reads with suppress_ragged_eofs=True: a truncated body
    # without Content-Length looks complete. This is why the step exists.
    script = [HTTP_REQUEST_END, b"HTTP/1.0 200 OK\r\n\r\npartial bo", CloseWithoutNotify()]
    with CommandServer(script, ssl_context=tls.server_context, verbose=False) as server:
        assert _https_get(server.port, tls.client_context) == b"partial bo"


def test_half_close_over_tls_sends_close_notify_and_keeps_reading(tls: LocalTLS) -> None:
    script = [RECEIVE, "last words", HalfClose(), ReadUntilClose()]
    with CommandServer(script, ssl_context=tls.server_context, verbose=False) as server:
        with _tls_connect(tls, server.port, suppress_ragged_eofs=False) as client:
            client.sendall(b"hi")
            assert client.makefile("rb").read() == b"last words"  # a clean TLS EOF
            client.sendall(b"still talking")  # the server still reads, decrypted
        server.wait_idle()
    assert server.received == [b"hi", b"still talking"]


def test_misbehaviour_steps_must_end_the_script() -> None:
    for step in (AbortHandshake(), PlaintextReply(), CloseWithoutNotify()):
        with pytest.raises(ValueError, match="can never run"):
            compile_script([step, "more"])


def test_misbehaviour_steps_reject_bad_arguments() -> None:
    with pytest.raises(TypeError, match="reset must be True or False, not 'yes'"):
        AbortHandshake(reset="yes")
    with pytest.raises(TypeError, match="non-empty bytes or str"):
        PlaintextReply(b"")
    assert repr(PlaintextReply("x")) == "PlaintextReply(b'x')"
    assert repr(CloseWithoutNotify()) == "CloseWithoutNotify()"


def test_abort_handshake_records_a_client_that_does_not_speak_tls(tls: LocalTLS) -> None:
    server = CommandServer([AbortHandshake()], ssl_context=tls.server_context, verbose=False)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT) as c:
            c.sendall(b"HELO there\r\n")
            assert c.recv(100) == b""
        server.wait_idle()
    finally:
        server.stop()
    assert len(server.errors) == 1
    assert "does not speak TLS" in server.errors[0].message()


# ---------------------------------------------------------------------------
# a client that breaks the handshake is recorded, with words, not a traceback
# ---------------------------------------------------------------------------


def test_client_that_distrusts_the_certificate_is_a_tls_failure(tls: LocalTLS) -> None:
    server = CommandServer([RECEIVE, "never sent"], ssl_context=tls.server_context,
                           verbose=False)
    try:
        strict = ssl.create_default_context()  # does not trust the throwaway CA
        with pytest.raises(ssl.SSLCertVerificationError):
            _https_get(server.port, strict)
        server.wait_idle()
    finally:
        server.stop()
    [failure] = server.errors
    assert failure.kind == "tls"
    assert "TLS handshake failed" in failure.summary
    assert "UNKNOWN_CA" in failure.summary.upper()
    assert not failure.traceback
    with pytest.raises(AssertionError, match="TLS handshake failed"):
        server.check()


def test_plaintext_client_on_a_tls_port_is_a_tls_failure(tls: LocalTLS) -> None:
    server = CommandServer([RECEIVE, "never sent"], ssl_context=tls.server_context,
                           verbose=False)
    try:
        client = http.client.HTTPConnection("127.0.0.1", server.port,
                                            timeout=CLIENT_TIMEOUT)
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            client.request("GET", "/")
            client.getresponse()
        client.close()
        server.wait_idle()
    finally:
        server.stop()
    [failure] = server.errors
    assert failure.kind == "tls"
    assert "does not seem to speak TLS" in failure.summary


def test_silent_client_times_out_the_handshake(tls: LocalTLS) -> None:
    server = CommandServer([RECEIVE], ssl_context=tls.server_context, verbose=False,
                           timeout=0.5)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT) as c:
            assert c.recv(100) == b""  # the server gives up and closes
        server.wait_idle()
    finally:
        server.stop()
    [failure] = server.errors
    assert failure.kind == "timeout"
    assert "TLS handshake did not complete within 0.5 s" in failure.summary


def test_stop_interrupts_a_pending_handshake(tls: LocalTLS) -> None:
    server = CommandServer([RECEIVE], ssl_context=tls.server_context, verbose=False,
                           timeout=60)
    with socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT):
        server.wait_for_connections(1, finished=False)
        server.stop()  # returns at once although the handshake would wait 60 s
        assert not server._thread.is_alive()
    assert server.connections[0].ended == "stopped"
    [unfinished] = server.errors  # the client never did its side of the handshake
    assert "the client's side of the TLS handshake" in unfinished.summary


def test_client_context_as_ssl_context_is_rejected_at_construction(tls: LocalTLS) -> None:
    with pytest.raises(ValueError, match=r"is a client context \(check_hostname=True\)"):
        CommandServer([RECEIVE], ssl_context=tls.client_context, verbose=False)
    with pytest.raises(TypeError, match=r"ssl_context must be an ssl\.SSLContext, not 'tls'"):
        CommandServer([RECEIVE], ssl_context="tls", verbose=False)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# LocalTLS
# ---------------------------------------------------------------------------


def test_local_tls_removes_its_ca_file_on_close() -> None:
    pytest.importorskip("trustme")
    certificates = LocalTLS()
    assert os.path.isfile(certificates.ca_file)
    with open(certificates.ca_file, "rb") as pem:
        assert pem.read() == certificates.ca_pem
    assert certificates.ca_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    certificates.close()
    certificates.close()  # twice is harmless
    assert not os.path.exists(certificates.ca_file)
    assert "closed" in repr(certificates)


def test_local_tls_never_closed_removes_its_ca_file_when_collected() -> None:
    pytest.importorskip("trustme")
    certificates = LocalTLS()
    ca_file = certificates.ca_file
    assert os.path.isfile(ca_file)
    del certificates
    gc.collect()
    assert not os.path.exists(ca_file)


# The child forks before it exits: the fork's own exit must leave its parent's file alone.
_NEVER_CLOSED = """
import os, sys
from embeddedserver import LocalTLS
tls = LocalTLS()
if hasattr(os, "fork"):
    pid = os.fork()
    if pid == 0:
        sys.exit(0)
    os.waitpid(pid, 0)
    assert os.path.isfile(tls.ca_file), "a forked child's exit removed the CA file"
print(tls.ca_file)
"""


def test_local_tls_never_closed_removes_its_ca_file_at_interpreter_exit() -> None:
    pytest.importorskip("trustme")
    done = subprocess.run([sys.executable, "-c", _NEVER_CLOSED], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    ca_file = done.stdout.strip()
    assert os.path.basename(ca_file).startswith("embeddedserver-ca-")
    assert not os.path.exists(ca_file)


def test_local_tls_closed_then_collected_leaves_no_file_and_no_error() -> None:
    pytest.importorskip("trustme")
    with LocalTLS() as certificates:
        ca_file = certificates.ca_file
    assert not os.path.exists(ca_file)
    certificates.close()  # after __exit__: harmless
    os.close(os.open(ca_file, os.O_CREAT | os.O_WRONLY))  # a new file that took the name
    del certificates
    gc.collect()
    assert os.path.exists(ca_file)  # the closed one removed its file once, not this one
    os.unlink(ca_file)


def test_local_tls_for_other_names() -> None:
    pytest.importorskip("trustme")
    with LocalTLS(["fake.test"]) as certificates, CommandServer(
        [HTTP_REQUEST_END, http_response("named")],
        ssl_context=certificates.server_context, verbose=False,
    ) as server:
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT)
        with certificates.client_context.wrap_socket(raw, server_hostname="fake.test") as c:
            c.sendall(b"GET / HTTP/1.1\r\nHost: fake.test\r\n\r\n")
            assert c.makefile("rb").read().endswith(b"\r\n\r\nnamed")


def test_local_tls_rejects_bad_hostnames() -> None:
    with pytest.raises(TypeError, match="not 'localhost'"):
        LocalTLS("localhost")
    with pytest.raises(ValueError, match="at least one non-empty str"):
        LocalTLS([])


def test_local_tls_without_trustme_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "trustme", None)  # makes `import trustme` fail
    with pytest.raises(ImportError, match=r"pip install trustme") as caught:
        LocalTLS()
    assert "embeddedserver[tls]" in str(caught.value)
