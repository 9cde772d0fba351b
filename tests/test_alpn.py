"""ALPN: a server that offers protocols (``alpn_context``), the step that checks what the
client negotiated (``ExpectALPN``), the servers that refuse (``RequireALPN``,
``RefuseALPN``), and reading a ClientHello's offer. Real handshakes on loopback with
``ssl`` clients that offer h2, http/1.1, several, none or something else; each wrong
client beside its correct twin, in a loop; a ClientHello that arrives a few bytes at a
time (the peek waits for all of it); every server class.
"""

from __future__ import annotations

import doctest
import http.client
import re
import socket
import ssl
from collections.abc import Iterator

import pytest
from _servers import SERVER_CLASSES, MakeServer, ServerMaker

import embeddedserver.alpn
from embeddedserver import CommandServer, ReadLine, Receive
from embeddedserver.alpn import (
    NO_APPLICATION_PROTOCOL,
    ExpectALPN,
    RefuseALPN,
    RequireALPN,
    alpn_context,
    offered_protocols,
)
from embeddedserver.tls import LocalTLS

CLIENT_TIMEOUT = 10.0
ROUNDS = 6


@pytest.fixture(scope="module")
def tls() -> Iterator[LocalTLS]:
    pytest.importorskip("trustme")
    with LocalTLS() as certificates:
        yield certificates


@pytest.fixture(scope="module")
def offering(tls: LocalTLS) -> ssl.SSLContext:
    """A server context that offers h2, then http/1.1."""
    return alpn_context(tls, ["h2", "http/1.1"])


def client_context(tls: LocalTLS, protocols: list[str] | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=tls.ca_file)
    if protocols is not None:
        context.set_alpn_protocols(protocols)
    return context


def connect(server: CommandServer, tls: LocalTLS, protocols: list[str] | None,
            send: bytes = b"") -> tuple[str | None, bytes]:
    """Handshake offering *protocols*, send *send*, read to the end: (negotiated, data)."""
    raw = socket.create_connection(server.address, timeout=CLIENT_TIMEOUT)
    with client_context(tls, protocols).wrap_socket(raw, server_hostname="localhost") as client:
        if send:
            client.sendall(send)
        chunks = []
        while True:
            try:
                chunk = client.recv(65536)
            except (ssl.SSLEOFError, ConnectionResetError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return client.selected_alpn_protocol(), b"".join(chunks)


def client_hello(protocols: list[str] | None) -> bytes:
    """The records of a real ClientHello (ssl's own, through memory BIOs)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    context = ssl.create_default_context()
    if protocols is not None:
        context.set_alpn_protocols(protocols)
    tls_object = context.wrap_bio(incoming, outgoing, server_hostname="example.org")
    with pytest.raises(ssl.SSLWantReadError):
        tls_object.do_handshake()
    return outgoing.read()


# ---------------------------------------------------------------------------
# the ClientHello and the contexts
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("protocols", [["h2", "http/1.1"], ["http/1.1"], ["x" * 200], []])
def test_offered_protocols_reads_a_real_client_hello(protocols: list[str]) -> None:
    hello = client_hello(protocols or None)
    assert offered_protocols(hello) == protocols
    assert offered_protocols(hello[5:]) == protocols  # the handshake message alone


@pytest.mark.parametrize("junk", [b"GET / HTTP/1.1\r\n", b"\x16\x03\x01\x00\x05\x01\x00", b""])
def test_offered_protocols_is_none_for_what_is_no_client_hello(junk: bytes) -> None:
    assert offered_protocols(junk) is None


def test_alpn_context_leaves_the_local_tls_server_context_alone(tls: LocalTLS) -> None:
    context = alpn_context(tls, ["h2"])
    assert context is not tls.server_context
    with CommandServer([Receive(1), "ok"], ssl_context=tls.server_context,
                       verbose=False) as server:
        assert connect(server, tls, ["h2"], b"x") == (None, b"ok")
    mine = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.ca.issue_cert("localhost").configure_cert(mine)
    assert alpn_context(mine, ["http/1.1"]) is mine  # a context of your own: set in place
    with CommandServer([Receive(1), "ok"], ssl_context=mine, verbose=False) as server:
        assert connect(server, tls, ["h2", "http/1.1"], b"x") == ("http/1.1", b"ok")


@pytest.mark.parametrize(("call", "words"), [
    (lambda: alpn_context(object(), ["h2"]), "takes a LocalTLS or a server ssl.SSLContext"),  # type: ignore[arg-type]
    (lambda: alpn_context(ssl.create_default_context(), "h2"), "a list of protocol names"),
    (lambda: ExpectALPN(""), "a non-empty str of at most 255 bytes, not ''"),
    (lambda: RequireALPN("h2", 2), "not 2"),  # type: ignore[arg-type]
])
def test_bad_arguments_are_refused_where_given(call: object, words: str) -> None:
    with pytest.raises((TypeError, ValueError), match=re.escape(words)):
        call()  # type: ignore[operator]


def test_the_module_doctests_pass() -> None:
    pytest.importorskip("trustme")
    assert doctest.testmod(embeddedserver.alpn).failed == 0


# ---------------------------------------------------------------------------
# ExpectALPN: the right client and each wrong one
# ---------------------------------------------------------------------------

WRONG_CLIENTS = {
    # what the wrong client offers, what its twin offers, the expectation, the failure
    "negotiates http/1.1": (["http/1.1"], ["h2", "http/1.1"], "h2",
                            "the client negotiated 'http/1.1', expected 'h2'"),
    "offers nothing": (None, ["h2"], "h2", "the client offered no ALPN protocols, expected 'h2'"),
    "offers what the server does not": (
        ["spdy/3", "h3"], ["h3", "h2"], "h2",
        "the client offered 'spdy/3', 'h3', none of which the server offers: no protocol "
        "was negotiated, expected 'h2'"),
    "negotiates where none is wanted": (["h2"], None, None,
                                        "the client negotiated 'h2', expected none"),
}


@pytest.mark.parametrize("case", sorted(WRONG_CLIENTS))
def test_a_client_negotiating_the_wrong_protocol_fails_and_its_twin_passes(
    case: str, tls: LocalTLS, offering: ssl.SSLContext
) -> None:
    wrong_offer, right_offer, expected, words = WRONG_CLIENTS[case]
    for round_ in range(ROUNDS):
        wrong = round_ % 2 == 0
        server = CommandServer([ExpectALPN(expected), "hello"], ssl_context=offering,
                               verbose=False)
        try:
            negotiated, data = connect(server, tls, wrong_offer if wrong else right_offer)
            if wrong:
                assert data == b""
                with pytest.raises(AssertionError, match=re.escape(words)):
                    server.verdict()
            else:
                assert (negotiated, data) == (expected, b"hello")
                server.verdict()
        finally:
            server.stop()


def test_the_failure_is_a_mismatch_and_the_transcript_says_what_was_offered(
    tls: LocalTLS, offering: ssl.SSLContext
) -> None:
    with CommandServer([ExpectALPN("h2"), "hello"], ssl_context=offering,
                       verbose=False) as server:
        connect(server, tls, ["http/1.1"])
        failure = server.assert_failed("mismatch", step=0, match="negotiated 'http/1.1'")
    assert not failure.traceback  # the client's doing, not the server's error
    assert "expected: the client to negotiate ALPN protocol 'h2'" in failure.message()
    text = server.transcript()
    assert "the client offers ALPN 'http/1.1'" in text
    assert "TLS established" in text and "ALPN negotiated 'http/1.1'" in text


def test_expect_alpn_after_the_handshake_checks_the_protocol_already_negotiated(
    tls: LocalTLS, offering: ssl.SSLContext
) -> None:
    script = [ReadLine(), ExpectALPN("h2"), "ok\n"]
    for round_ in range(ROUNDS):
        wrong = round_ % 2 == 0
        server = CommandServer(script, ssl_context=offering, verbose=False)
        try:
            negotiated, data = connect(server, tls, ["http/1.1"] if wrong else ["h2"], b"hi\n")
            if wrong:
                assert data == b""
                with pytest.raises(AssertionError, match=re.escape(
                        "the client negotiated 'http/1.1', expected 'h2'")):
                    server.verdict()
            else:
                assert (negotiated, data) == ("h2", b"ok\n")
                server.verdict()
        finally:
            server.stop()


def test_expect_alpn_on_a_plain_server_says_it_needs_tls() -> None:
    with CommandServer([ExpectALPN("h2")], verbose=False) as server:
        with socket.create_connection(server.address, timeout=CLIENT_TIMEOUT) as client:
            assert client.recv(10) == b""  # the server judges before the client says a word
        server.assert_failed("mismatch", match="does not speak TLS: ALPN needs a server with "
                                               "ssl_context=")


def test_a_plaintext_client_breaks_the_handshake_expect_alpn_runs(
    offering: ssl.SSLContext,
) -> None:
    with CommandServer([ExpectALPN("h2"), "x"], ssl_context=offering, verbose=False) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=CLIENT_TIMEOUT)
        try:
            with pytest.raises((ConnectionError, http.client.HTTPException)):
                conn.request("GET", "/")
                conn.getresponse()
        finally:
            conn.close()
        server.assert_failed("tls", match="does not seem to speak TLS")


def test_a_client_hello_sent_a_few_bytes_at_a_time_is_read_whole(
    tls: LocalTLS, offering: ssl.SSLContext
) -> None:
    """The peek waits for the whole ClientHello (SO_RCVLOWAT), however it is cut."""
    for piece in (1, 7, 100):
        with CommandServer([ExpectALPN("h2"), "sliced"], ssl_context=offering,
                           verbose=False) as server:
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls_object = client_context(tls, ["h2"]).wrap_bio(
                incoming, outgoing, server_hostname="localhost")
            with socket.create_connection(server.address, timeout=CLIENT_TIMEOUT) as raw:
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                while True:
                    try:
                        tls_object.do_handshake()
                        break
                    except ssl.SSLWantReadError:
                        pending = outgoing.read()
                        for at in range(0, len(pending), piece):
                            raw.sendall(pending[at:at + piece])
                        incoming.write(raw.recv(65536))
                raw.sendall(outgoing.read())
                data = b""
                while True:
                    try:
                        data += tls_object.read(100)
                        if data == b"sliced":
                            break
                    except ssl.SSLWantReadError:
                        incoming.write(raw.recv(65536))
                assert tls_object.selected_alpn_protocol() == "h2"
            server.wait_for_connections(1)


@pytest.fixture(params=SERVER_CLASSES, ids=lambda cls: cls.__name__)
def make_server(request: pytest.FixtureRequest) -> Iterator[MakeServer]:
    with ServerMaker(request.param) as make:
        yield make


def test_every_server_class_checks_alpn(make_server: MakeServer, tls: LocalTLS,
                                        offering: ssl.SSLContext) -> None:
    server = make_server([ExpectALPN("h2"), "hello"], ssl_context=offering)
    assert connect(server, tls, ["h2"]) == ("h2", b"hello")
    server.wait_for_connections(1)
    server.stop()
    server.check()


# ---------------------------------------------------------------------------
# servers that refuse
# ---------------------------------------------------------------------------


def test_require_alpn_lets_an_h2_client_through_and_refuses_the_others(
    tls: LocalTLS, offering: ssl.SSLContext
) -> None:
    for round_ in range(ROUNDS):
        refused = round_ % 2 == 0
        with CommandServer([RequireALPN("h2"), Receive(1), "through"], ssl_context=offering,
                           verbose=False) as server:
            if refused:
                with pytest.raises(ssl.SSLError, match="no application protocol"):
                    connect(server, tls, ["http/1.1"], b"x")
            else:
                assert connect(server, tls, ["h2", "http/1.1"], b"x") == ("h2", b"through")
            server.wait_for_connections(1)
        # refusing is the server's doing: no failure, and the transcript says why
        record = server.connections[0]
        if refused:
            assert record.ended == ("server refused the client's ALPN protocols "
                                    "(no_application_protocol)")
            assert record.sent == NO_APPLICATION_PROTOCOL
        assert any("the client offers ALPN" in e.text for e in record.events)


def test_refuse_alpn_refuses_even_a_client_offering_what_the_server_has(
    tls: LocalTLS, offering: ssl.SSLContext
) -> None:
    for offer in (["h2"], None):
        with CommandServer([RefuseALPN()], ssl_context=offering, verbose=False) as server:
            with pytest.raises(ssl.SSLError, match="no application protocol"):
                connect(server, tls, offer)
            server.wait_for_connections(1)
    with pytest.raises(ValueError, match="can never run"):
        CommandServer([RefuseALPN(), "more"], ssl_context=offering, verbose=False)
