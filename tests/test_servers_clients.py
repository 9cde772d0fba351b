"""Real clients against scripted servers: http.client, smtplib, urllib and requests;
a retrying client against per-connection scripts; a pool of simultaneous clients
against a concurrent server.
"""

from __future__ import annotations

import http.client
import smtplib
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from embeddedserver import (
    RECEIVE,
    AcceptAndClose,
    Call,
    CommandServer,
    Connection,
    Drip,
    Expect,
    ExpectClose,
    ExpectRegex,
    Garbage,
    Hang,
    PerConnection,
    ReadLine,
    ReadUntil,
    Reset,
    http_response,
)

CLIENT_TIMEOUT = 10.0
LONG = 600.0
HEADERS_END = ReadUntil(b"\r\n\r\n")


@contextmanager
def serving(commands: Any, **kwargs: Any) -> Iterator[CommandServer]:
    kwargs.setdefault("verbose", False)
    server = CommandServer(commands, **kwargs)
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------------------
# http.client
# ---------------------------------------------------------------------------


def test_http_client_gets_a_scripted_response() -> None:
    script = [
        ExpectRegex(rb"GET /status HTTP/1\.1\r\n", within=ReadLine()),
        HEADERS_END,
        http_response(b'{"ok": true}', headers={"Content-Type": "application/json"}),
    ]
    with serving(script) as srvr:
        conn = http.client.HTTPConnection("127.0.0.1", srvr.port, timeout=CLIENT_TIMEOUT)
        try:
            conn.request("GET", "/status")
            response = conn.getresponse()
            assert response.status == 200
            assert response.getheader("Content-Type") == "application/json"
            assert response.read() == b'{"ok": true}'
        finally:
            conn.close()
        srvr.wait_for_connections(1)
    srvr.check()
    assert b"Host: 127.0.0.1:%d\r\n" % srvr.port in srvr.received[1]


def test_http_client_sees_a_reset_as_connection_reset() -> None:
    with serving([HEADERS_END, Reset()]) as srvr:
        conn = http.client.HTTPConnection("127.0.0.1", srvr.port, timeout=CLIENT_TIMEOUT)
        try:
            conn.request("GET", "/")
            with pytest.raises(ConnectionResetError):
                conn.getresponse()
        finally:
            conn.close()
        srvr.wait_for_connections(1)
    srvr.check()


def test_http_client_sees_garbage_as_a_bad_status_line() -> None:
    with serving([HEADERS_END, Garbage(64, seed=1), b"\r\n"]) as srvr:
        conn = http.client.HTTPConnection("127.0.0.1", srvr.port, timeout=CLIENT_TIMEOUT)
        try:
            conn.request("GET", "/")
            with pytest.raises(http.client.HTTPException):
                conn.getresponse()
        finally:
            conn.close()
        srvr.wait_for_connections(1)
    srvr.check()


def test_http_client_sees_a_closed_connection_as_remote_disconnected() -> None:
    with serving([HEADERS_END]) as srvr:  # read the request, then close
        conn = http.client.HTTPConnection("127.0.0.1", srvr.port, timeout=CLIENT_TIMEOUT)
        try:
            conn.request("GET", "/")
            with pytest.raises(http.client.RemoteDisconnected):
                conn.getresponse()
        finally:
            conn.close()
        srvr.wait_for_connections(1)
    srvr.check()


def test_a_wrong_request_fails_the_script_and_check_says_where() -> None:
    script = [Expect(b"POST /submit HTTP/1.1\r\n"), http_response("ok")]
    with serving(script, timeout=LONG) as srvr:
        conn = http.client.HTTPConnection("127.0.0.1", srvr.port, timeout=CLIENT_TIMEOUT)
        try:
            conn.request("GET", "/submit")
            with pytest.raises((http.client.HTTPException, ConnectionError)):
                conn.getresponse()
        finally:
            conn.close()
        srvr.wait_for_connections(1)
        with pytest.raises(AssertionError) as info:
            srvr.check()
        srvr.errors.clear()
    text = str(info.value)
    assert "step 0 of 2: Expect(b'POST /submit HTTP/1.1\\r\\n'): wrong bytes at offset 0" in text
    assert "expected b'P' (0x50), got b'G' (0x47)" in text


# ---------------------------------------------------------------------------
# smtplib
# ---------------------------------------------------------------------------


def smtp_dialogue() -> list[Any]:
    line = ReadLine()
    return [
        "220 fake.example ESMTP ready\r\n",
        ExpectRegex(rb"ehlo \S+\r\n", within=line),  # smtplib writes verbs in lower case
        "250-fake.example\r\n250 8BITMIME\r\n",
        # ... and, from Python 3.13 on, the keywords after them too
        ExpectRegex(rb"mail (FROM|from):<alice@example\.com>\r\n", within=line),
        "250 OK\r\n",
        ExpectRegex(rb"rcpt (TO|to):<bob@example\.com>\r\n", within=line),
        "250 OK\r\n",
        Expect(b"data\r\n"),
        "354 End data with <CR><LF>.<CR><LF>\r\n",
        ReadUntil(b"\r\n.\r\n"),
        "250 OK: queued as 42\r\n",
        Expect(b"QUIT\r\n"),
        "221 Bye\r\n",
        ExpectClose(),
    ]


def test_smtplib_sends_mail_through_a_scripted_dialogue() -> None:
    with serving(smtp_dialogue()) as srvr:
        with smtplib.SMTP("127.0.0.1", srvr.port, timeout=CLIENT_TIMEOUT) as smtp:
            refused = smtp.sendmail(
                "alice@example.com", ["bob@example.com"], "Subject: hi\r\n\r\nHello Bob\r\n"
            )
        assert refused == {}
        srvr.wait_for_connections(1)
    srvr.check()
    message = srvr.received[4]
    assert b"Subject: hi\r\n\r\nHello Bob\r\n.\r\n" in message
    assert srvr.connections[0].ended == "client closed"


def test_smtplib_sees_a_rejected_recipient() -> None:
    script = [*smtp_dialogue()[:6], "550 No such user\r\n", Expect(b"rset\r\n"), "250 OK\r\n"]
    with serving(script) as srvr:
        smtp = smtplib.SMTP("127.0.0.1", srvr.port, timeout=CLIENT_TIMEOUT)
        try:
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                smtp.sendmail("alice@example.com", ["bob@example.com"], "hi")
        finally:
            smtp.close()
        srvr.wait_for_connections(1)
    srvr.check()


def test_smtplib_gives_up_on_a_server_that_hangs_after_the_greeting() -> None:
    with serving(["220 fake.example ESMTP\r\n", Hang()], timeout=LONG) as srvr:
        smtp = smtplib.SMTP("127.0.0.1", srvr.port, timeout=0.3)  # the timeout under test
        try:
            with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
                smtp.ehlo()
        finally:
            smtp.close()
        srvr.wait_for_connections(1)
    srvr.check()
    assert srvr.connections[0].received.startswith(b"ehlo ")


# ---------------------------------------------------------------------------
# urllib
# ---------------------------------------------------------------------------


def test_urllib_reads_a_body_that_drips_in() -> None:
    body = b"slow but complete"
    script = [HEADERS_END, Drip(http_response(body), chunk=7, interval=0.001)]
    with serving(script) as srvr:
        url = f"http://127.0.0.1:{srvr.port}/drip"
        with urllib.request.urlopen(url, timeout=CLIENT_TIMEOUT) as response:
            assert response.read() == body
        srvr.wait_for_connections(1)
    srvr.check()


def test_urllib_raises_http_error_for_a_scripted_500() -> None:
    with serving([HEADERS_END, http_response("boom", status=500)]) as srvr:
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{srvr.port}/", timeout=CLIENT_TIMEOUT)
        assert info.value.code == 500
        assert info.value.read() == b"boom"
        info.value.close()
        srvr.wait_for_connections(1)
    srvr.check()


def test_urllib_sees_accept_and_close_as_a_dropped_connection() -> None:
    with serving([AcceptAndClose()]) as srvr:
        with pytest.raises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):
            urllib.request.urlopen(f"http://127.0.0.1:{srvr.port}/", timeout=CLIENT_TIMEOUT)
        srvr.wait_for_connections(1)
    srvr.check()


def test_urllib_posts_and_the_server_records_the_body() -> None:
    script = [HEADERS_END, Expect(b"name=value"), http_response("created", status=201)]
    with serving(script) as srvr:
        request = urllib.request.Request(
            f"http://127.0.0.1:{srvr.port}/form", data=b"name=value", method="POST"
        )
        with urllib.request.urlopen(request, timeout=CLIENT_TIMEOUT) as response:
            assert response.status == 201
        srvr.wait_for_connections(1)
    srvr.check()
    assert srvr.received[0].startswith(b"POST /form HTTP/1.1\r\n")
    assert srvr.received[1] == b"name=value"


# ---------------------------------------------------------------------------
# requests, per-connection scripts and retries
# ---------------------------------------------------------------------------


def test_requests_session_retries_after_a_reset() -> None:
    plan = PerConnection([HEADERS_END, Reset()], [HEADERS_END, http_response("second try")])
    with serving(plan) as srvr, requests.Session() as session:
        retry = Retry(total=2, connect=0, read=2, backoff_factor=0)
        session.mount("http://", HTTPAdapter(max_retries=retry))
        response = session.get(f"http://127.0.0.1:{srvr.port}/", timeout=CLIENT_TIMEOUT)
        assert response.text == "second try"
        srvr.wait_for_connections(2)
    srvr.check()
    assert [r.ended for r in srvr.connections] == ["server reset", "server closed"]


def test_a_hand_written_retry_loop_against_per_connection_scripts() -> None:
    def fetch(port: int) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    plan = PerConnection(
        [HEADERS_END, Reset()],
        [AcceptAndClose()],
        then=[HEADERS_END, http_response("finally")],
    )
    errors: list[type[BaseException]] = []
    with serving(plan) as srvr:
        for _ in range(5):
            try:
                result = fetch(srvr.port)
                break
            except (ConnectionError, http.client.HTTPException) as exc:
                errors.append(type(exc))
        srvr.wait_for_connections(3)
    srvr.check()
    assert result == (200, b"finally")
    assert len(errors) == 2
    assert errors[0] is ConnectionResetError


def test_requests_against_a_server_that_hangs_times_out() -> None:
    with serving([HEADERS_END, Hang()], timeout=LONG) as srvr:
        with pytest.raises(requests.ReadTimeout):
            requests.get(f"http://127.0.0.1:{srvr.port}/", timeout=0.3)  # under test
        srvr.wait_for_connections(1)
    srvr.check()
    assert srvr.connections[0].ended == "client closed"


# ---------------------------------------------------------------------------
# concurrent mode
# ---------------------------------------------------------------------------


def _meet(barrier: threading.Barrier) -> Callable[[Connection], None]:
    def meet(conn: Connection) -> None:
        barrier.wait(CLIENT_TIMEOUT)  # breaks (and fails the step) unless all are in

    return meet


def test_concurrent_mode_serves_simultaneous_clients() -> None:
    clients = 4
    barrier = threading.Barrier(clients)
    script = [ReadLine(), Call(_meet(barrier)), "all here\n"]
    with serving(script, concurrent=True) as srvr:
        sockets = [
            socket.create_connection(("127.0.0.1", srvr.port), timeout=CLIENT_TIMEOUT)
            for _ in range(clients)
        ]
        try:
            for n, sock in enumerate(sockets):
                sock.sendall(b"client %d\n" % n)
            for sock in sockets:
                assert sock.makefile("rb").read() == b"all here\n"
        finally:
            for sock in sockets:
                sock.close()
        srvr.wait_for_connections(clients)
    srvr.check()
    assert sorted(srvr.received) == [b"client %d\n" % n for n in range(clients)]
    assert sorted(r.number for r in srvr.connections) == list(range(1, clients + 1))


def test_sequential_mode_serves_one_connection_at_a_time() -> None:
    script = [ReadLine(), "done\n"]
    with serving(script, timeout=LONG) as srvr:
        with socket.create_connection(("127.0.0.1", srvr.port), timeout=CLIENT_TIMEOUT) as one:
            srvr.wait_for_connections(1, finished=False)
            with socket.create_connection(("127.0.0.1", srvr.port), timeout=CLIENT_TIMEOUT) as two:
                two.sendall(b"second\n")
                with pytest.raises(TimeoutError):
                    srvr.wait_for_connections(2, timeout=0.2, finished=False)
                one.sendall(b"first\n")
                assert one.makefile("rb").read() == b"done\n"
                assert two.makefile("rb").read() == b"done\n"
        srvr.wait_for_connections(2)
    srvr.check()
    assert srvr.received == [b"first\n", b"second\n"]


def test_requests_pool_against_a_concurrent_server() -> None:
    clients = 3
    barrier = threading.Barrier(clients)
    script = [HEADERS_END, Call(_meet(barrier)), http_response("pooled")]
    results: list[str] = []
    failures: list[BaseException] = []

    def get(port: int) -> None:
        try:
            results.append(requests.get(f"http://127.0.0.1:{port}/", timeout=CLIENT_TIMEOUT).text)
        except BaseException as exc:
            failures.append(exc)

    with serving(script, concurrent=True) as srvr:
        threads = [threading.Thread(target=get, args=(srvr.port,)) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(CLIENT_TIMEOUT * 2)
        srvr.wait_for_connections(clients)
    assert not failures, failures
    assert results == ["pooled"] * clients
    srvr.check()


def test_concurrent_failures_are_all_recorded() -> None:
    with serving([Expect(b"right")], concurrent=True, timeout=LONG) as srvr:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", srvr.port), timeout=CLIENT_TIMEOUT) as s:
                s.sendall(b"wrong")
                try:
                    s.recv(10)
                except ConnectionResetError:
                    pass
        srvr.wait_for_connections(3)
        assert len(srvr.errors) == 3
        srvr.errors.clear()


def test_receive_step_then_requests_with_a_lone_response() -> None:
    with serving([RECEIVE, http_response("x")]) as srvr:
        assert requests.get(f"http://127.0.0.1:{srvr.port}/", timeout=CLIENT_TIMEOUT).text == "x"
        srvr.wait_for_connections(1)
    srvr.check()
