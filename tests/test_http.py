"""The HTTP/1.1 kit: requests read and checked in HTTP's terms, responses that behave and
misbehave, several requests on one connection, Rules that match parsed requests.

The reader is driven without a socket first (whole, byte by byte, malformed); then real
clients on loopback: http.client, urllib.request and requests (a Session keeps one
connection alive), and a raw socket for what no library client sends. Each wrong client
fails with the HTTP-terms message; its twin, a correct client, passes, in the same loop.
"""

from __future__ import annotations

import http.client
import random
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import requests

from embeddedserver import CommandServer, Mismatch, Rule, Rules, Send, http_response
from embeddedserver import http as h
from embeddedserver.httpmessage import Headers, Query, Request, RequestReader
from embeddedserver.steps import Delay

CLIENT_TIMEOUT = 10.0
ROUNDS = 4

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def exchange(port: int, data: bytes, *, shut: bool = False) -> bytes:
    """Send *data* on a raw connection and read until the server closes it."""
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as client:
        client.sendall(data)
        if shut:
            client.shutdown(socket.SHUT_WR)
        try:
            while chunk := client.recv(65536):
                got += chunk
        except ConnectionResetError:
            pass  # the server closed with bytes of ours unread: the verdict says why
    return got


def feed(reader: RequestReader, data: bytes, *, step: int = 1) -> int | None:
    """Feed *data* to *reader* *step* bytes at a time, as a connection would."""
    buffer = bytearray()
    result = None
    for at in range(0, len(data), step):
        buffer += data[at : at + step]
        result = reader.check(buffer, False)
        if result is not None:
            return result
    return result


def request_bytes(method: str = "GET", target: str = "/", headers: str = "",
                  body: bytes = b"") -> bytes:
    length = f"Content-Length: {len(body)}\r\n" if body else ""
    return (f"{method} {target} HTTP/1.1\r\nHost: test\r\n{headers}{length}\r\n").encode() + body


CHUNKED = (b"POST /up?x=1&x=2&y= HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: 42\r\n\r\n")


# ---------------------------------------------------------------------------
# the reader, without a socket
# ---------------------------------------------------------------------------


def test_a_request_with_a_content_length_is_parsed_whole() -> None:
    data = request_bytes("POST", "/items?a=1", "Content-Type: application/json\r\n",
                         b'{"name": "ada"}')
    request = Request.parse(data)
    assert (request.method, request.target, request.path, request.version) == (
        "POST", "/items?a=1", "/items", "HTTP/1.1")
    assert request.query["a"] == "1" and request.headers["content-type"] == "application/json"
    assert request.json() == {"name": "ada"} and request.text() == '{"name": "ada"}'
    assert not request.chunked and request.trailers == Headers()


def test_a_chunked_request_is_dechunked_with_its_extensions_and_trailers() -> None:
    request = Request.parse(CHUNKED)
    assert request.body == b"hello world" and request.chunked
    assert request.trailers["x-checksum"] == "42"
    assert request.query.get_all("x") == ["1", "2"] and request.query["y"] == ""
    assert dict(request.query) == {"x": "1", "y": ""}


def test_the_reader_finds_the_same_end_fed_byte_by_byte_and_leaves_what_follows() -> None:
    pipelined = CHUNKED + request_bytes("GET", "/next")
    for step in (1, 2, 7, len(pipelined)):
        assert feed(RequestReader(), pipelined, step=step) == len(CHUNKED)
    lengthy = request_bytes("PUT", "/x", body=b"0123456789") + b"GET"
    assert feed(RequestReader(), lengthy) == len(lengthy) - 3


def test_headers_are_case_insensitive_and_keep_every_line() -> None:
    request = Request.parse(request_bytes(headers="Accept: a\r\nACCEPT: b\r\nX-Empty:\r\n"))
    assert request.headers["accept"] == "a, b" and request.headers.get_all("Accept") == ["a", "b"]
    assert request.headers["x-empty"] == "" and "X-EMPTY" in request.headers
    assert request.headers.fields[1:3] == (("Accept", "a"), ("ACCEPT", "b"))
    assert list(request.headers) == ["Host", "Accept", "X-Empty"]
    assert Query([("a", "1")]).get_all("A") == []  # query names are case-sensitive


def test_empty_lines_before_a_request_are_ignored_and_absolute_targets_have_a_path() -> None:
    request = Request.parse(b"\r\n\r\nGET http://example.org/p/q?z=9 HTTP/1.1\r\nHost: e\r\n\r\n")
    assert (request.path, request.query["z"]) == ("/p/q", "9")
    assert Request.parse(b"OPTIONS * HTTP/1.1\r\nHost: e\r\n\r\n").path == "*"
    assert Request.parse(b"GET / HTTP/1.0\r\n\r\n").version == "HTTP/1.0"  # no Host needed


MALFORMED = [
    (b"GET /x\r\n\r\n", "request line 'GET /x' has no HTTP version"),
    (b"GET\r\n\r\n", "request line 'GET' has no target and no HTTP version"),
    (b"GET /a b HTTP/1.1\r\n", "has 4 space-separated parts, not 3"),
    (b"GET / HTTP1.1\r\n", "ends in 'HTTP1.1', not an HTTP version"),
    (b"GET / HTTP/2.0\r\n", "HTTP version 'HTTP/2.0' is not HTTP/1.1 or HTTP/1.0"),
    (b"GET x HTTP/1.1\r\n", "request target 'x' is not a path starting with '/'"),
    (b"G(T / HTTP/1.1\r\n", "method 'G(T' is not a token"),
    (b"GET / HTTP/1.1\nHost: x\n\n", "request line 'GET / HTTP/1.1' ends in a bare LF"),
    (b"\x16\x03\x01\x02\x00\x01", "starts with b'\\x16' (0x16), not a method (a TLS handshake"),
    (b"GET / HTTP/1.1\r\n\r\n", "the HTTP/1.1 request has no Host header"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "the request has 2 Host headers"),
    (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", "has whitespace before the colon"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", "header line 'NoColon' has no colon"),
    (b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", "obsolete line folding"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", "header X has a control character"),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
     "both Transfer-Encoding and Content-Length"),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n",
     "Content-Length 'abc' is not a number of bytes"),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
     "the Content-Length values disagree"),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
     "Transfer-Encoding 'gzip' does not end in a single chunked"),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
     "chunk size 'zz' is not hex"),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n",
     "chunk 1 (3 bytes) is followed by b'd"),
]


@pytest.mark.parametrize(("data", "message"), MALFORMED, ids=[m for _, m in MALFORMED])
def test_a_malformed_request_fails_at_its_first_wrong_line_in_http_terms(
        data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Request.parse(data)
    # Fed byte by byte, the reader fails once the wrong line (or byte) is there, with
    # what had arrived, not waiting for the rest.
    with pytest.raises(Mismatch, match=re.escape(message)) as caught:
        feed(RequestReader(), data)
    received = caught.value.received
    assert data.startswith(received) and b"\n" not in data[len(received):].rstrip(b"\r\n")


def test_an_incomplete_request_says_where_it_ended() -> None:
    cases = {
        b"": "before sending a request",
        b"GET / HT": "in the request line",
        b"GET / HTTP/1.1\r\nHost: a\r\n": "in the request head",
        request_bytes("POST", body=b"0123456789")[:-7]: "after 3 of the 10 body bytes",
        CHUNKED[:-26]: "inside chunk 2, after 3 of its 6 bytes",
        CHUNKED[:-19]: "inside the chunked body, after 11 body bytes in 2 chunks",
    }
    for data, where in cases.items():
        with pytest.raises(ValueError, match=f"the data ends {re.escape(where)}"):
            Request.parse(data)


def test_a_head_that_never_ends_fails_past_the_limit_instead_of_growing() -> None:
    data = b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + b"a" * 70_000
    with pytest.raises(Mismatch, match="the request head is over 65536 bytes"):
        feed(RequestReader(), data, step=4096)


def test_bytes_after_the_request_are_not_one_request() -> None:
    with pytest.raises(ValueError, match="3 bytes follow the end of the request"):
        Request.parse(request_bytes() + b"GET")


# ---------------------------------------------------------------------------
# what a request must be: match() without a socket
# ---------------------------------------------------------------------------


def test_match_lists_every_difference_in_http_terms() -> None:
    want = h.match("POST", "/items", query={"a": "1"},
                   headers={"Content-Type": "application/json", "X-Token": "t",
                            "X-Debug": None},
                   json={"name": "ada"})
    wrong = request_bytes("GET", "/items?a=2&b=3", "Content-Type: text/plain\r\nX-Debug: 1\r\n",
                          b'{"name": "bob"}')
    assert not want(wrong)
    assert want.difference(wrong).split("; ") == [
        "expected POST /items, got GET /items",
        "query parameter a: expected '1', got '2'",
        "unexpected query parameter b='3'",
        "header Content-Type: expected 'application/json', got 'text/plain'",
        "missing header X-Token (expected 't')",
        "header X-Debug: expected absent, got '1'",
        "body JSON: expected {'name': 'ada'}, got {'name': 'bob'}",
    ]
    right = request_bytes("POST", "/items?a=1", "Content-Type: application/json\r\nX-Token: t\r\n",
                          b'{"name": "ada"}')
    assert want(right) and want.difference(right) == "matches"
    assert want.similarity(right) == 1.0 > want.similarity(wrong) > 0


def test_match_takes_regexes_predicates_and_says_what_failed() -> None:
    def has_id(request: Request) -> bool:
        return "id" in request.query

    want = h.match(path=re.compile(r"/users/\d+"), headers={"Accept": re.compile("text/.*")},
                   body=re.compile(rb"^name="), where=has_id)
    assert want(request_bytes("PUT", "/users/7?id=1", "Accept: text/html\r\n", b"name=x"))
    text = want.difference(request_bytes("PUT", "/users/x", "Accept: image/png\r\n", b"x=1"))
    assert "expected PUT a path matching '/users/\\\\d+', got PUT /users/x" in text
    assert "header Accept: expected a value matching 'text/.*', got 'image/png'" in text
    assert "body: expected a match for re.compile(b'^name='), got b'x=1'" in text
    assert "has_id returned False for the request" in text
    assert h.match(body=lambda b: len(b) == 3)(request_bytes(body=b"abc"))
    assert h.match(body="é")(request_bytes(body="é".encode()))
    assert "not an HTTP request: request line 'GET /x' has no HTTP version" in h.match(
        "GET").difference(b"GET /x\r\n\r\n")


def test_exact_body_differences_show_the_first_differing_byte() -> None:
    text = h.match(body=b"hello world").difference(request_bytes(body=b"hello there"))
    assert text == ("body: expected b'hello world' (11 bytes), got b'hello there' (11 bytes), "
                    "first difference at byte 6")
    assert "body is not JSON" in h.match(json=[1]).difference(request_bytes(body=b"[1,"))


@pytest.mark.parametrize(("call", "message"), [
    (lambda: h.match("G T"), "method must be a token such as 'GET', not 'G T'"),
    (lambda: h.match(path="/a?b=1"), "path '/a?b=1' has a query: give it as query="),
    (lambda: h.match(path=3), "path must be a str or a compiled regex, not 3"),
    (lambda: h.match(path="items"), "path 'items' does not start with '/'"),
    (lambda: h.match(path=re.compile(b"/a")), "a path regex is a str pattern"),
    (lambda: h.match(query={"a": 1}), "query 'a': give a str value"),
    (lambda: h.match(headers={"Bad Name": "x"}), "header name 'Bad Name' is not a token"),
    (lambda: h.match(headers={"X": 1}), "header X: give a str, a compiled str regex, or None"),
    (lambda: h.match(body=3), "body must be bytes, str, a compiled regex or a predicate"),
    (lambda: h.match(body=b"x", json=1), "give body= or json=, not both"),
    (lambda: h.match(json={1, 2}), "json must be a JSON value, not {1, 2}"),
    (lambda: h.match(where=1), "where must be a predicate"),
    (lambda: h.match(version="HTTP/2"), "version must be 'HTTP/1.1' or 'HTTP/1.0', not 'HTTP/2'"),
    (lambda: h.ExpectRequest(h.match("GET"), path="/x"), "takes no other criteria"),
    (lambda: h.ReadRequest(timeout=0), "timeout must be a number of seconds > 0, not 0"),
])
def test_a_bad_criterion_is_refused_where_it_is_given(call: Callable[[], object],
                                                      message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=re.escape(message)):
        call()


def test_steps_show_what_they_expect() -> None:
    step = h.ExpectRequest("POST", "/items", query={"a": "1"}, headers={"X": None}, body=b"{}",
                           timeout=2)
    assert repr(step) == ("ExpectRequest(method='POST', path='/items', query={'a': ['1']}, "
                          "headers={'X': None}, body=b'{}', timeout=2.0)")
    assert step.describe() == ("an HTTP request POST /items with query {'a': ['1']}; "
                               "headers X: (absent); body b'{}'")
    assert repr(h.ReadRequest()) == "ReadRequest()"
    assert repr(h.ExpectRequest(h.match("GET"))) == "ExpectRequest(method='GET')"


# ---------------------------------------------------------------------------
# reading and checking requests from real clients
# ---------------------------------------------------------------------------


def test_expect_request_passes_a_right_client_and_fails_a_wrong_method_at_once() -> None:
    script = [h.ExpectRequest("POST", "/items", json={"n": 1}), *h.response("made", 201)]
    for _ in range(ROUNDS):
        with CommandServer(script, verbose=False) as srvr:
            r = requests.post(f"http://127.0.0.1:{srvr.port}/items", json={"n": 1},
                              timeout=CLIENT_TIMEOUT)
            assert (r.status_code, r.text) == (201, "made")
            assert Request.parse(srvr.received[0]).json() == {"n": 1}
        with CommandServer(script, verbose=False, timeout=30) as srvr:
            with pytest.raises(requests.ConnectionError):
                requests.get(f"http://127.0.0.1:{srvr.port}/items", timeout=CLIENT_TIMEOUT)
            failure = srvr.assert_failed("mismatch", step=0)
            assert failure.summary == "expected POST /items, got GET /items"
            assert failure.expected.startswith("an HTTP request POST /items")


def test_wrong_headers_query_and_body_are_named_for_http_client_and_urllib() -> None:
    script = [h.ExpectRequest("PUT", "/doc", query={"v": "2"},
                              headers={"Content-Type": "application/json"}, body=b'{"a": 1}'),
              *h.response(status=204)]
    for _ in range(ROUNDS):
        with CommandServer(script, verbose=False) as srvr:
            conn = http.client.HTTPConnection("127.0.0.1", srvr.port, timeout=CLIENT_TIMEOUT)
            conn.request("PUT", "/doc?v=2", body=b'{"a": 1}',
                         headers={"Content-Type": "application/json"})
            assert conn.getresponse().status == 204
            conn.close()
        with CommandServer(script, verbose=False) as srvr:
            req = urllib.request.Request(f"http://127.0.0.1:{srvr.port}/doc?v=3", method="PUT",
                                         data=b'{"a": 2}', headers={"Content-Type": "text/plain"})
            with pytest.raises((urllib.error.URLError, http.client.HTTPException, OSError)):
                urllib.request.urlopen(req, timeout=CLIENT_TIMEOUT)
            failure = srvr.assert_failed("mismatch", step=0)
            assert failure.summary.split("\n  ") == [
                "query parameter v: expected '2', got '3'",
                "header Content-Type: expected 'application/json', got 'text/plain'",
            ]  # the head fails at once: the body is not waited for, nor judged


def test_a_wrong_body_fails_once_the_body_is_complete() -> None:
    script = [h.ExpectRequest("POST", "/", body=b"hello world"), *h.response()]
    for _ in range(ROUNDS):
        with CommandServer(script, verbose=False) as srvr:
            with pytest.raises(requests.ConnectionError):
                requests.post(f"http://127.0.0.1:{srvr.port}/", data=b"hello there",
                              timeout=CLIENT_TIMEOUT)
            failure = srvr.assert_failed("mismatch", step=0, match="first difference at byte 6")
            assert failure.received is not None and failure.received.endswith(b"hello there")
        with CommandServer(script, verbose=False) as srvr:
            assert requests.post(f"http://127.0.0.1:{srvr.port}/", data=b"hello world",
                                 timeout=CLIENT_TIMEOUT).status_code == 200


def test_a_chunked_upload_from_http_client_is_read_and_a_bad_chunk_fails() -> None:
    script = [h.ExpectRequest("PUT", "/up", body=b"hello world"), *h.response("ok")]
    for _ in range(ROUNDS):
        with CommandServer(script, verbose=False) as srvr:
            conn = http.client.HTTPConnection("127.0.0.1", srvr.port, timeout=CLIENT_TIMEOUT)
            conn.request("PUT", "/up", body=iter([b"hello", b" world"]), encode_chunked=True)
            assert conn.getresponse().read() == b"ok"
            conn.close()
            assert Request.parse(srvr.received[0]).chunked
        with CommandServer(script, verbose=False) as srvr:
            bad = (b"PUT /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"zz\r\nhello\r\n0\r\n\r\n")
            assert exchange(srvr.port, bad) == b""
            srvr.assert_failed("mismatch", step=0, match="chunk size 'zz' is not hex")


RAW_WRONG = [
    (b"GET /x\r\nHost: a\r\n\r\n", "request line 'GET /x' has no HTTP version"),
    (b"GET /x HTTP/1.1\nHost: a\n\n", "ends in a bare LF"),
    (b"GET /x HTTP/1.1\r\n\r\n", "the HTTP/1.1 request has no Host header"),
    (b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"3\r\nabc\r\n0\r\n\r\n", "both Transfer-Encoding and Content-Length"),
]


@pytest.mark.parametrize(("wrong", "message"), RAW_WRONG, ids=[m for _, m in RAW_WRONG])
def test_a_raw_client_that_breaks_http_fails_and_its_twin_passes(wrong: bytes,
                                                                  message: str) -> None:
    right = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"
    for _ in range(ROUNDS):
        with CommandServer([h.ReadRequest(), *h.response("ok")], verbose=False) as srvr:
            assert exchange(srvr.port, wrong) == b""
            srvr.assert_failed("mismatch", step=0, match=re.escape(message))
        with CommandServer([h.ReadRequest(), *h.response("ok")], verbose=False) as srvr:
            assert exchange(srvr.port, right).endswith(b"\r\n\r\nok")
            assert srvr.received == [right]


def test_a_client_that_closes_inside_the_body_fails_as_closed() -> None:
    whole = request_bytes("POST", "/", body=b"0123456789")
    for _ in range(ROUNDS):
        with CommandServer([h.ReadRequest(), *h.response()], verbose=False) as srvr:
            exchange(srvr.port, whole[:-7], shut=True)
            failure = srvr.assert_failed("closed", step=0)
            assert failure.summary == ("the client closed the connection after 3 of the 10 "
                                       "body bytes its Content-Length announced")
        with CommandServer([h.ReadRequest(), *h.response()], verbose=False) as srvr:
            assert exchange(srvr.port, whole, shut=True).startswith(b"HTTP/1.1 200 OK")


def test_a_long_body_arrives_whole_through_the_read_path_for_long_chunks() -> None:
    body = random.Random(5).randbytes(3 << 20)
    script = [h.ExpectRequest("POST", "/blob", body=body), *h.response("got it")]
    with CommandServer(script, verbose=False) as srvr:
        r = requests.post(f"http://127.0.0.1:{srvr.port}/blob", data=body,
                          timeout=CLIENT_TIMEOUT)
        assert r.text == "got it"
        assert Request.parse(srvr.received[0]).body == body


# ---------------------------------------------------------------------------
# several requests on one connection
# ---------------------------------------------------------------------------


def test_a_requests_session_reuses_one_connection_for_serve() -> None:
    for _ in range(ROUNDS):
        with CommandServer(h.serve(3, h.response("ok", keep_alive=True)), verbose=False) as srvr:
            with requests.Session() as session:
                for i in range(3):
                    r = session.get(f"http://127.0.0.1:{srvr.port}/n/{i}",
                                    timeout=CLIENT_TIMEOUT)
                    assert r.text == "ok" and "Connection" not in r.headers
            srvr.wait_for_connections(1)
            assert len(srvr.connections) == 1
            assert [Request.parse(c).path for c in srvr.received] == ["/n/0", "/n/1", "/n/2"]


def test_a_client_that_opens_a_connection_per_request_fails_serve() -> None:
    for _ in range(ROUNDS):
        with CommandServer(h.serve(2, h.response("ok", keep_alive=True)), verbose=False,
                           expect_connections=None) as srvr:
            for _ in range(2):  # no Session: each request on a new connection
                requests.get(f"http://127.0.0.1:{srvr.port}/", timeout=CLIENT_TIMEOUT)
            failure = srvr.assert_failed("closed", step=2)
            assert failure.summary == ("the client closed the connection before sending a "
                                       "request")
            srvr.assert_failed("closed", step=2)  # the second connection, alike


def test_serve_checks_each_request_in_turn() -> None:
    reads = [h.ExpectRequest("GET", "/a"), h.ExpectRequest("DELETE", "/a")]
    reply = h.response(status=204, keep_alive=True)
    for _ in range(ROUNDS):
        with CommandServer(h.serve(reads, reply), verbose=False) as srvr:
            conn = http.client.HTTPConnection("127.0.0.1", srvr.port, timeout=CLIENT_TIMEOUT)
            for method in ("GET", "DELETE"):
                conn.request(method, "/a")
                r = conn.getresponse()
                assert (r.status, r.read()) == (204, b"")
            conn.close()
        with CommandServer(h.serve(reads, reply), verbose=False) as srvr:
            conn = http.client.HTTPConnection("127.0.0.1", srvr.port, timeout=CLIENT_TIMEOUT)
            conn.request("GET", "/a")
            assert conn.getresponse().read() == b""
            conn.request("PUT", "/a")
            with pytest.raises((http.client.HTTPException, OSError)):
                conn.getresponse()  # the server hung up at the wrong request
            conn.close()
            srvr.assert_failed("mismatch", step=2, match="expected DELETE /a, got PUT /a")


def test_pipelined_requests_are_read_one_at_a_time_by_serve_and_by_rules() -> None:
    first = request_bytes("POST", "/a", body=b"12345")
    second = (b"PUT /b HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"3\r\nxyz\r\n0\r\n\r\n")
    third = request_bytes("GET", "/c")
    rules = Rules(h.ReadRequest(), Rule(h.match(path="/a"), h.response("A", keep_alive=True)),
                  Rule(h.match(path="/b"), h.response("B", keep_alive=True)),
                  Rule(h.match(path="/c"), h.response("C")))
    for script in ([rules], h.serve(3, h.response("x", keep_alive=True))):
        for _ in range(ROUNDS):
            with CommandServer(script, verbose=False) as srvr:
                got = exchange(srvr.port, first + second + third, shut=True)
                assert got.count(b"HTTP/1.1 200 OK") == 3
                assert srvr.received == [first, second, third]


def test_http_response_keep_alive_leaves_out_connection_close() -> None:
    two = [h.ReadRequest(), http_response("1", keep_alive=True),
           h.ReadRequest(), http_response("2", keep_alive=True)]
    for _ in range(ROUNDS):
        with CommandServer(two, verbose=False) as srvr:
            conn = http.client.HTTPConnection("127.0.0.1", srvr.port, timeout=CLIENT_TIMEOUT)
            for want in (b"1", b"2"):
                conn.request("GET", "/")
                assert conn.getresponse().read() == want
            conn.close()
            assert len(srvr.connections) == 1
        # Its twin: Connection: close, so http.client opens a new connection for the
        # second request and the first connection's script waits for it in vain.
        closing = [h.ReadRequest(), http_response("1"), h.ReadRequest(), http_response("2")]
        with CommandServer(closing, verbose=False, expect_connections=None) as srvr:
            conn = http.client.HTTPConnection("127.0.0.1", srvr.port, timeout=CLIENT_TIMEOUT)
            conn.request("GET", "/")
            assert conn.getresponse().read() == b"1"
            conn.close()
            srvr.assert_failed("closed", step=2, match="before sending a request")


def test_http_response_keeps_its_seed_bytes_and_documented_headers_and_reason() -> None:
    assert http_response("hi") == (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                   b"Connection: close\r\n\r\nhi")
    custom = http_response("x", 299, "Fine", {"Connection": "keep-alive", "X-A": "1"})
    assert custom == (b"HTTP/1.1 299 Fine\r\nContent-Length: 1\r\nConnection: keep-alive\r\n"
                      b"X-A: 1\r\n\r\nx")
    assert http_response(status=799).startswith(b"HTTP/1.1 799 Unknown\r\n")
    with pytest.raises(TypeError, match="keep_alive must be True or False, not 'yes'"):
        http_response(keep_alive="yes")  # type: ignore[arg-type]
    with CommandServer([h.ReadRequest(), http_response("x", 299, "Fine")], verbose=False) as srvr:
        conn = http.client.HTTPConnection("127.0.0.1", srvr.port, timeout=CLIENT_TIMEOUT)
        conn.request("GET", "/")
        r = conn.getresponse()
        assert (r.status, r.reason, r.read()) == (299, "Fine", b"x")
        conn.close()


# ---------------------------------------------------------------------------
# Rules: replies chosen by the parsed request
# ---------------------------------------------------------------------------


def api_rules() -> Rules:
    return Rules(
        h.ReadRequest(),
        Rule(h.match("GET", "/users/1"), h.response('{"name": "ada"}', keep_alive=True,
                                                    headers={"Content-Type": "application/json"})),
        Rule(h.match("POST", "/users", json={"name": "bob"}),
             h.response(status=201, keep_alive=True), times=1),
        Rule(h.match("GET", "/health"), h.response("up", keep_alive=True)),
        unmatched=h.response("no such page", 404),
    )


def test_rules_answer_a_session_in_any_order_on_one_connection() -> None:
    rng = random.Random(7)
    for _ in range(ROUNDS):
        calls = ["user", "health", "create", "health", "user"]
        rng.shuffle(calls)
        with CommandServer([api_rules()], verbose=False) as srvr:
            base = f"http://127.0.0.1:{srvr.port}"
            with requests.Session() as session:
                for call in calls:
                    if call == "user":
                        assert session.get(f"{base}/users/1", timeout=CLIENT_TIMEOUT).json() == {
                            "name": "ada"}
                    elif call == "health":
                        assert session.get(f"{base}/health", timeout=CLIENT_TIMEOUT).text == "up"
                    else:
                        assert session.post(f"{base}/users", json={"name": "bob"},
                                            timeout=CLIENT_TIMEOUT).status_code == 201
            srvr.wait_for_connections(1)
            assert len(srvr.connections) == 1


def test_a_request_no_rule_takes_shows_how_it_differs_from_each_rule() -> None:
    for _ in range(ROUNDS):
        srvr = CommandServer([api_rules()], verbose=False)
        try:
            with requests.Session() as session:
                r = session.post(f"http://127.0.0.1:{srvr.port}/users", json={"name": "eve"},
                                 timeout=CLIENT_TIMEOUT)
                assert r.status_code == 404
            failure = srvr.assert_failed("unmatched")
        finally:
            srvr.stop()
        text = failure.message()
        # The closest rule first: the POST that differs only by its body.
        closest = text.split("the closest rules:\n", 1)[1].splitlines()[0]
        assert closest.startswith("    rule 1 Rule(match(method='POST', path='/users'")
        assert closest.endswith("body JSON: expected {'name': 'bob'}, got {'name': 'eve'}")
        assert "expected GET /users/1, got POST /users" in text
        # The POST rule was never used: the verdict also fails its count.
        with pytest.raises(AssertionError, match=r"rule 1 .* was to match exactly once"):
            srvr.check()


def test_rules_with_concurrent_connections_count_across_the_pool() -> None:
    rules = Rules(h.ReadRequest(),
                  Rule(h.match("GET", re.compile(r"/item/\d+")),
                       h.response("item", keep_alive=True)),
                  Rule(h.match("GET", "/once"), h.response("once", keep_alive=True), times=1))
    for _ in range(ROUNDS):
        with CommandServer([rules], concurrent=True, verbose=False,
                           expect_connections=None) as srvr:
            conns = [http.client.HTTPConnection("127.0.0.1", srvr.port, timeout=CLIENT_TIMEOUT)
                     for _ in range(2)]
            for i, path in enumerate(["/item/1", "/once", "/item/2", "/item/3"]):
                conns[i % 2].request("GET", path)
                assert conns[i % 2].getresponse().read() in (b"item", b"once")
            for conn in conns:
                conn.close()


# ---------------------------------------------------------------------------
# responses that behave and misbehave
# ---------------------------------------------------------------------------


def fetch(port: int, method: str = "GET") -> tuple[http.client.HTTPResponse, bytes | str]:
    """One request with http.client: the response and its body (or how reading it
    failed)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request(method, "/")
        r = conn.getresponse()
        try:
            body: bytes | str = r.read()
        except http.client.IncompleteRead as exc:
            body = f"IncompleteRead after {exc.partial!r}"
        return r, body
    finally:
        conn.close()


def serve_once(steps: list[Any], read: Callable[[int], Any]) -> tuple[Any, CommandServer]:
    with CommandServer([h.ReadRequest(), *steps], verbose=False) as srvr:
        result = read(srvr.port)
    return result, srvr


def sends(srvr: CommandServer) -> list[bytes]:
    return [e.data for e in srvr.connections[0].events if e.kind == "send"]


def test_a_chunked_response_streams_each_chunk_as_its_own_write_with_trailers() -> None:
    steps = h.response(chunked=[b"hello ", b"streamed ", b"world"], interval=0.01,
                       trailers={"X-Sum": "3"}, keep_alive=True)
    assert [type(s).__name__ for s in steps] == ["Send", "Send", "Delay", "Send", "Delay",
                                                 "Send", "Delay", "Send"]
    for _ in range(ROUNDS):
        body, srvr = serve_once(steps, read_body)
        assert body == b"hello streamed world"
        assert sends(srvr)[1:] == [b"6\r\nhello \r\n", b"9\r\nstreamed \r\n", b"5\r\nworld\r\n",
                                   b"0\r\nX-Sum: 3\r\n\r\n"]
        assert b"Transfer-Encoding: chunked\r\n" in sends(srvr)[0]


def test_a_streamed_body_has_the_total_content_length() -> None:
    steps = h.response(["part one, ", "part two"])
    assert [type(s) for s in steps] == [Send, Send, Send]
    for _ in range(ROUNDS):
        r, srvr = serve_once(steps, read_body)
        assert r == b"part one, part two"
        assert sends(srvr)[0].endswith(b"Content-Length: 18\r\nConnection: close\r\n\r\n")


def test_slow_headers_drip_the_head_line_by_line() -> None:
    steps = h.response("x", slow_headers=0.01, headers={"X-A": "1"})
    assert [type(s) for s in steps].count(Delay) == 4
    for _ in range(ROUNDS):
        (r, body), srvr = serve_once(steps, fetch)
        assert r.getheader("X-A") == "1" and body == b"x"
        assert sends(srvr) == [b"HTTP/1.1 200 OK\r\n", b"Content-Length: 1\r\n",
                               b"Connection: close\r\n", b"X-A: 1\r\n", b"\r\n", b"x"]


def read_body(port: int) -> bytes | str:
    return fetch(port)[1]


@pytest.mark.parametrize(("kwargs", "seen"), [
    ({"body": "hello", "content_length": 20}, "IncompleteRead after b'hello'"),
    ({"body": "hello", "content_length": 2}, b"he"),
    ({"chunked": ["ab", "cd"], "malformed_chunk": 1}, "IncompleteRead after b'ab'"),
    ({"chunked": ["ab"], "final_chunk": False}, "IncompleteRead after b'ab'"),
    ({"body": "abc", "headers": {"Content-Length": None}}, b"abc"),  # until the close
])
def test_a_misbehaving_response_reaches_http_client_as_it_would_from_a_real_server(
        kwargs: dict[str, Any], seen: bytes | str) -> None:
    for _ in range(ROUNDS):
        assert serve_once(h.response(**kwargs), read_body)[0] == seen


def test_responses_without_a_body_and_interim_ones() -> None:
    for _ in range(ROUNDS):
        (r, body), _ = serve_once([*h.response(status=100), *h.response("final")], fetch)
        assert (r.status, body) == (200, b"final")
        (r, body), srvr = serve_once(h.response(status=204, keep_alive=True), fetch)
        assert r.status == 204 and sends(srvr) == [b"HTTP/1.1 204 No Content\r\n\r\n"]
        (r, body), _ = serve_once(h.response(content_length=42),
                                  lambda port: fetch(port, "HEAD"))
        assert r.getheader("Content-Length") == "42" and body == b""


def test_headers_replace_the_defaults_in_any_case_and_follow_them_in_order() -> None:
    (step,) = h.response("x", 299, reason="Fine",
                         headers=[("connection", "keep-alive"), ("X-B", "2"), ("X-A", "1")])
    assert isinstance(step, Send)
    assert step.data == (b"HTTP/1.1 299 Fine\r\nContent-Length: 1\r\nconnection: keep-alive\r\n"
                         b"X-B: 2\r\nX-A: 1\r\n\r\nx")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"status": 99}, "status must be an int from 100 to 999, not 99"),
    ({"reason": "a\r\nb"}, "reason must be a str without CR or LF"),
    ({"body": 3}, "body must be bytes, str or a list of them, not 3"),
    ({"headers": {"X": "a\nb"}}, "headers X: the value must be a str without CR or LF"),
    ({"headers": {"A B": "1"}}, "headers: name 'A B' is not a token"),
    ({"chunked": ["a", ""]}, "chunk 1 is empty: a 0-size chunk is the end of the body"),
    ({"chunked": []}, "chunked=[] has no chunk"),
    ({"body": "a", "chunked": ["b"]}, "give the body as body= or as chunked=[...], not both"),
    ({"trailers": {"X": "1"}}, "trailers needs a chunked body"),
    ({"final_chunk": False}, "final_chunk=False needs a chunked body"),
    ({"chunked": ["a"], "malformed_chunk": 1}, "malformed_chunk must be the index of one of the 1"),
    ({"status": 204, "body": "x"}, "a 204 response has no body"),
    ({"content_length": -1}, "content_length must be an int >= 0, not -1"),
    ({"interval": -1}, "interval must be a number of seconds >= 0, not -1"),
    ({"keep_alive": 1}, "keep_alive must be True or False, not 1"),
])
def test_a_bad_response_argument_is_refused_naming_it(kwargs: dict[str, Any],
                                                      message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=re.escape(message)):
        h.response(**kwargs)


def test_serve_refuses_what_is_not_a_count_of_requests_or_a_reply_that_reads() -> None:
    with pytest.raises(TypeError, match="requests must be a count >= 1 or a list of read steps"):
        h.serve("3", b"x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="requests must be an int >= 1, not 0"):
        h.serve(0, b"x")
    with pytest.raises(ValueError, match="reads, but a reply only sends or acts"):
        h.serve(1, [h.ReadRequest()])
    assert repr(h.serve(2, "ok")) == "[ReadRequest(), Send(b'ok'), ReadRequest(), Send(b'ok')]"


def test_a_raising_where_predicate_is_reported_with_its_traceback() -> None:
    def broken(request: Request) -> bool:
        raise RuntimeError("no luck")

    with CommandServer([h.ExpectRequest(where=broken), *h.response()], verbose=False) as srvr:
        exchange(srvr.port, request_bytes())
        failure = srvr.assert_failed("error", step=0, match="RuntimeError: no luck")
        assert "broken" in failure.traceback


def test_json_bodies_and_text_decoding() -> None:
    request = Request.parse(request_bytes("POST", "/", "Content-Type: text/plain; "
                                          "charset=latin-1\r\n", "café".encode("latin-1")))
    assert request.text() == "café"
    unknown = Request.parse(request_bytes("POST", "/", "Content-Type: text/plain; "
                                          "charset=x-klingon\r\n", b"ok"))
    assert unknown.text() == "ok"
    with pytest.raises(ValueError):
        request.json()
    assert Request.parse(request_bytes(body=b"[1, 2]")).json() == [1, 2]
