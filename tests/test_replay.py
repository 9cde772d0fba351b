"""Record and replay: RecordingProxy records real servers started here (http.server and
a tiny SMTP responder), the script file format writes and reads them, and replaying a
file to the same client code gives the client identical bytes."""

from __future__ import annotations

import asyncio
import http.client
import http.server
import re
import smtplib
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embeddedserver import (
    FORMAT_HEADER,
    RECEIVE,
    AsyncioCommandServer,
    Close,
    CommandServer,
    Delay,
    Expect,
    ExpectClose,
    ExpectRegex,
    HalfClose,
    Hang,
    Inbox,
    OneShotServer,
    PerConnection,
    ReadLike,
    ReadLine,
    ReadUntil,
    ReadUntilClose,
    Receive,
    RecordingProxy,
    Reset,
    ScriptSyntaxError,
    Send,
    format_script,
    load_script,
    parse_script,
    save_script,
)
from embeddedserver.record import ConnectionRecord, Event

CLIENT_TIMEOUT = 10.0
JOIN_TIMEOUT = 10.0

# ---------------------------------------------------------------------------
# real servers started by the tests
# ---------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "RealHTTP/1.0"

    def do_GET(self) -> None:
        body = b"hello" if self.path == "/hello" else b"other page"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(201)
        self.send_header("Content-Length", str(len(body) + 6))
        self.end_headers()
        self.wfile.write(b"echo: " + body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean


class _KeepAliveHandler(_Handler):
    protocol_version = "HTTP/1.1"


def _serve_http(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[int]:
    real = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=real.serve_forever, kwargs={"poll_interval": 0.05},
                              name="real-http-server")
    thread.start()
    try:
        yield real.server_address[1]
    finally:
        real.shutdown()
        real.server_close()
        thread.join(JOIN_TIMEOUT)
        assert not thread.is_alive()


@pytest.fixture
def http_port() -> Iterator[int]:
    """A real HTTP/1.0 server (one connection per request), shut down and joined."""
    yield from _serve_http(_Handler)


@pytest.fixture
def keepalive_http_port() -> Iterator[int]:
    """A real HTTP/1.1 server that keeps connections open between requests."""
    yield from _serve_http(_KeepAliveHandler)


def _smtp_session(conn: socket.socket) -> None:
    """A tiny SMTP responder: enough of RFC 5321 for smtplib.sendmail."""
    with conn, conn.makefile("rb") as lines:
        conn.sendall(b"220 smtp.test ESMTP tiny\r\n")
        while True:
            line = lines.readline()
            verb = line[:4].upper()
            if not line:
                return
            if verb == b"EHLO":
                conn.sendall(b"250-smtp.test greets you\r\n250-8BITMIME\r\n250 SIZE 10000\r\n")
            elif verb in (b"HELO", b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                conn.sendall(b"250 OK\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                while line not in (b".\r\n", b""):
                    line = lines.readline()
                conn.sendall(b"250 OK: queued as 42\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 Bye\r\n")
                return
            else:
                conn.sendall(b"500 what?\r\n")


@pytest.fixture
def smtp_port() -> Iterator[int]:
    """A real (tiny) SMTP server for one session on its own thread, joined at teardown."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(JOIN_TIMEOUT)
    port = listener.getsockname()[1]

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        conn.settimeout(JOIN_TIMEOUT)
        _smtp_session(conn)

    thread = threading.Thread(target=serve, name="real-smtp-server")
    thread.start()
    try:
        yield port
    finally:
        if thread.is_alive():  # never connected to: connect once so accept() returns
            try:
                socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT).close()
            except OSError:
                pass
        thread.join(JOIN_TIMEOUT)
        listener.close()
        assert not thread.is_alive()


# ---------------------------------------------------------------------------
# the client code that is recorded, then replayed
# ---------------------------------------------------------------------------

Seen = list[Any]


def http_client_code(port: int | None, host_header: str | None = None) -> Seen:
    """Two requests on separate connections; what the client saw of each."""
    seen: Seen = []
    headers = {"Host": host_header} if host_header else {}
    for method, path, body in (("GET", "/hello", None), ("POST", "/echo", b"payload")):
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
        try:
            client.request(method, path, body=body, headers=headers)
            reply = client.getresponse()
            seen.append((reply.status, reply.reason, reply.getheaders(), reply.read()))
        finally:
            client.close()
    return seen


def keepalive_client_code(port: int | None, host_header: str | None = None) -> Seen:
    """Two requests on one persistent HTTP/1.1 connection."""
    seen: Seen = []
    headers = {"Host": host_header} if host_header else {}
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
    try:
        for path in ("/hello", "/other"):
            client.request("GET", path, headers=headers)
            reply = client.getresponse()
            seen.append((reply.status, reply.getheaders(), reply.read()))
    finally:
        client.close()
    return seen


def smtp_client_code(port: int | None) -> Seen:
    """Send one mail with smtplib; every reply the client got."""
    smtp = smtplib.SMTP(local_hostname="client.test", timeout=CLIENT_TIMEOUT)
    try:
        replies = [smtp.connect("127.0.0.1", port or 0), smtp.ehlo()]
        replies.append(smtp.mail("alice@client.test"))
        replies.append(smtp.rcpt("bob@smtp.test"))
        replies.append(smtp.data(b"Subject: hi\r\n\r\nHello Bob.\r\n.leading dot\r\n"))
        replies.append(smtp.quit())
        return replies
    finally:
        smtp.close()


def _record(target_port: int, client: Callable[[int | None], Seen],
            connections: int) -> tuple[RecordingProxy, Seen]:
    with RecordingProxy(("127.0.0.1", target_port)) as proxy:
        seen = client(proxy.port)
        proxy.wait_for_connections(connections)
        proxy.wait_idle()
    return proxy, seen


def _replay(commands: Any, client: Callable[[int | None], Seen],
            **kwargs: Any) -> tuple[CommandServer, Seen]:
    with CommandServer(commands, verbose=False, **kwargs) as server:
        seen = client(server.port)
        server.wait_idle()
    return server, seen


# ---------------------------------------------------------------------------
# record, save, replay
# ---------------------------------------------------------------------------


def test_replayed_http_server_gives_the_client_identical_bytes(
    http_port: int, tmp_path: Path
) -> None:
    proxy, recorded = _record(http_port, http_client_code, 2)
    assert [s[3] for s in recorded] == [b"hello", b"echo: payload"]
    script = tmp_path / "http.script"
    proxy.save(script)

    # Default mode: client turns are plain reads, so a different Host port is fine.
    with CommandServer.from_file(script, verbose=False) as server:
        replayed = http_client_code(server.port)
        server.wait_idle()
    assert replayed == recorded
    assert [c.sent for c in server.connections] == [c.sent for c in proxy.connections]


def test_recorded_file_reads_like_the_conversation(http_port: int) -> None:
    proxy, _ = _record(http_port, http_client_code, 2)
    text = proxy.script(timing=False)
    assert text.startswith(FORMAT_HEADER + "\n")
    assert '\nconnection 1\nclient: "GET /hello HTTP/1.1\\r\\n"\n' in text
    assert '\nserver: "HTTP/1.0 200 OK\\r\\n"\n' in text
    assert '        "Server: RealHTTP/1.0 Python/' in text
    assert '        "payload"\n' in text
    # Who closes first after a response with Content-Length is a race: either is right.
    assert re.search(r'\n        "echo: payload"\n(expect close\n)?close\n', text)
    assert "\nconnection 2\n" in text and "connection 3" not in text
    assert "delay" not in text


def test_exact_replay_of_keepalive_http(keepalive_http_port: int, tmp_path: Path) -> None:
    def client(port: int | None) -> Seen:
        return keepalive_client_code(port, host_header="example.test")

    proxy, recorded = _record(keepalive_http_port, client, 1)
    assert [s[2] for s in recorded] == [b"hello", b"other page"]
    script = tmp_path / "keepalive.script"
    proxy.save(script)
    text = script.read_text()
    assert text.endswith("\nexpect close\nclose\n")  # the client hung up first

    commands = load_script(script, exact=True)
    assert isinstance(commands, list)
    assert sum(isinstance(step, Expect) for step in commands) == 2
    server, replayed = _replay(commands, client)
    assert replayed == recorded
    assert server.connections[0].sent == proxy.connections[0].sent
    assert server.connections[0].received == proxy.connections[0].received


def test_exact_replay_fails_where_the_client_differs(
    keepalive_http_port: int, tmp_path: Path
) -> None:
    proxy, _ = _record(keepalive_http_port, keepalive_client_code, 1)
    script = tmp_path / "host.script"
    proxy.save(script)
    server = CommandServer.from_file(script, exact=True, verbose=False)
    try:
        with pytest.raises(ConnectionError):
            keepalive_client_code(server.port)  # its Host header names another port
        server.wait_idle()
    finally:
        server.stop()
    [failure] = server.errors
    assert failure.kind == "mismatch"
    assert "Host: 127.0.0.1:" in failure.expected
    assert failure.offset is not None and failure.offset > len("GET /hello HTTP/1.1\r\nHost: ")


def test_replayed_smtp_exchange_gives_identical_replies(
    smtp_port: int, tmp_path: Path
) -> None:
    proxy, recorded = _record(smtp_port, smtp_client_code, 1)
    assert recorded[0] == (220, b"smtp.test ESMTP tiny")
    assert recorded[-1] == (221, b"Bye")
    script = tmp_path / "smtp.script"
    proxy.save(script, comment="smtplib sending one mail to the tiny SMTP responder")
    text = script.read_text()
    assert "# smtplib sending one mail" in text
    assert 'client: "ehlo client.test\\r\\n"' in text
    assert '"..leading dot\\r\\n"' in text  # smtplib doubled the leading dot

    for exact in (True, False):
        for server_class in (CommandServer, OneShotServer):
            with server_class.from_file(script, exact=exact, verbose=False) as server:
                replayed = smtp_client_code(server.port)
                server.wait_idle()
            assert replayed == recorded
            assert server.connections[0].sent == proxy.connections[0].sent
            assert server.connections[0].received == proxy.connections[0].received


@pytest.mark.asyncio
async def test_asyncio_server_from_file(tmp_path: Path) -> None:
    script = tmp_path / "ping.script"
    script.write_text('client: "PING\\r\\n"\nserver: "PONG\\r\\n"\n')
    server = AsyncioCommandServer.from_file(script, exact=True, verbose=False)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"PING\r\n")
        assert await asyncio.wait_for(reader.read(), CLIENT_TIMEOUT) == b"PONG\r\n"
        writer.close()
        await writer.wait_closed()
        assert await asyncio.wait_for(server.reader.read(), CLIENT_TIMEOUT) == b"PING\r\n"
    finally:
        server.stop()
    server.check()


# ---------------------------------------------------------------------------
# hand-edited and hand-written files
# ---------------------------------------------------------------------------


def test_hand_edited_recording_changes_what_the_client_sees(
    http_port: int, tmp_path: Path
) -> None:
    proxy, recorded = _record(http_port, http_client_code, 2)
    script = tmp_path / "edited.script"
    proxy.save(script)
    text = script.read_text()
    assert text.count('"hello"') == 1  # the body line (the path is inside a longer line)
    edited = text.replace('"hello"', '"howdy"  # edited by hand')
    edited = edited.replace("connection 1\n", "connection 1\n# a comment of my own\n", 1)
    script.write_text(edited)

    _, replayed = _replay(load_script(script), http_client_code)
    assert replayed[0][3] == b"howdy"
    assert replayed[1] == recorded[1]


HAND_WRITTEN = """\
# a line protocol, written by hand
connection 1
read line                         # the client's greeting, whatever it is
server: "WELCOME \\xe2\\x9c\\x93 ✓\\r\\n"   # escapes and UTF-8 mean the same bytes
expect "LIST\\r\\n"
server: "3 items\\r\\n"
        hex 00 01 02
        "\\r\\n"
read until "\\r\\n\\r\\n"
expect regex "BYE [0-9]+\\r\\n"
delay 0.01
server: "bye"
half-close
expect close

connection 2
server: "busy, go away\\r\\n"
read
reset
"""


def test_hand_written_file_with_two_connections(tmp_path: Path) -> None:
    script = tmp_path / "lines.script"
    script.write_text(HAND_WRITTEN, encoding="utf-8")
    commands = load_script(script, keep_timing=True)
    assert isinstance(commands, PerConnection)
    first, second = commands.scripts
    assert first == commands.script_for(1)
    assert isinstance(first[0], ReadLine)
    assert repr(first[1]) == repr(Send("WELCOME ✓ ✓\r\n"))
    assert repr(first[3]) == repr(Send(b"3 items\r\n\x00\x01\x02\r\n"))
    assert [type(s) for s in first[4:]] == [ReadUntil, ExpectRegex, Delay, Send, HalfClose,
                                            ExpectClose]
    assert [type(s) for s in second] == [Send, Receive, Reset]

    with CommandServer(commands, verbose=False) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT) as c:
            c.sendall(b"HELLO\nLIST\r\nsome\r\nheaders\r\n\r\nBYE 7\r\n")
            data = c.makefile("rb").read()  # up to the half-close
            assert data == "WELCOME ✓ ✓\r\n".encode() + b"3 items\r\n\x00\x01\x02\r\nbye"
        with socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT) as c:
            assert c.makefile("rb").readline() == b"busy, go away\r\n"
            c.sendall(b"ok")
            with pytest.raises(ConnectionResetError):
                c.recv(100)
        server.wait_for_connections(2)


def test_one_connection_file_serves_every_connection(tmp_path: Path) -> None:
    script = tmp_path / "pong.script"
    script.write_text('read\nserver: "pong"\n')
    with CommandServer.from_file(script, verbose=False) as server:
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", server.port),
                                          timeout=CLIENT_TIMEOUT) as c:
                c.sendall(b"ping")
                assert c.makefile("rb").read() == b"pong"


# ---------------------------------------------------------------------------
# modes: exact or plain reads, timing kept or dropped
# ---------------------------------------------------------------------------

TIMED = """\
client: "GET / HTTP/1.1\\r\\n"
        "Host: a\\r\\n"
        "\\r\\n"
delay 0.25
server: "HTTP/1.0 204 No Content\\r\\n\\r\\n"
close
"""


def test_exact_mode_expects_plain_mode_reads() -> None:
    exact = parse_script(TIMED, exact=True)
    assert isinstance(exact, list)
    assert [repr(s) for s in exact] == [
        repr(Expect(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")),
        repr(Send(b"HTTP/1.0 204 No Content\r\n\r\n")),
        repr(Close()),
    ]
    plain = parse_script(TIMED)
    assert isinstance(plain, list)
    assert isinstance(plain[0], ReadLike)
    assert plain[0].describe().startswith("3 lines (like b'GET / HTTP/1.1")


def test_timing_is_dropped_unless_kept() -> None:
    dropped = parse_script(TIMED)
    assert isinstance(dropped, list)
    assert not any(isinstance(s, Delay) for s in dropped)
    kept = parse_script(TIMED, keep_timing=True)
    assert isinstance(kept, list)
    assert isinstance(kept[1], Delay) and kept[1].seconds == 0.25


def test_read_like_reads_as_many_lines_then_bytes() -> None:
    inbox = Inbox()
    inbox.begin(ReadLike(b"POST / HTTP/1.1\r\nHost: a\r\n\r\nbody"))
    inbox.feed(b"POST / HTTP/1.1\r\nHost: a-much-longer-name:12345\r\n\r\nbo")
    assert inbox.poll() is None
    inbox.feed(b"dyNEXT")
    assert inbox.poll() == b"POST / HTTP/1.1\r\nHost: a-much-longer-name:12345\r\n\r\nbody"
    assert bytes(inbox.buffer) == b"NEXT"  # the next request is left for the next step


def test_read_like_counts_bytes_of_binary_data() -> None:
    inbox = Inbox()
    inbox.begin(ReadLike(b"\x00\n\x01\x02\xff"))
    inbox.feed(b"\x09\x08\x07\x06\x05\x04")
    assert inbox.poll() == b"\x09\x08\x07\x06\x05"
    with pytest.raises(TypeError, match="non-empty bytes"):
        ReadLike(b"")


# ---------------------------------------------------------------------------
# the writer
# ---------------------------------------------------------------------------


def _record_of(*events: tuple[float, str, bytes | str], ended: str = "server closed"
               ) -> ConnectionRecord:
    record = ConnectionRecord(1, ("127.0.0.1", 1), ended=ended)
    for at, kind, payload in events:
        if kind == "note":
            record.events.append(Event(at, "note", text=str(payload)))
        else:
            assert isinstance(payload, bytes)
            record.events.append(Event(at, kind, payload))
    return record


def _body(text: str) -> list[str]:
    return text.split("connection 1\n", 1)[1].splitlines()


def test_writer_merges_turns_and_writes_timing() -> None:
    record = _record_of(
        (0.001, "send", b"220 hi\r\n"),
        (0.010, "recv", b"HE"), (0.011, "recv", b"LO\r\n"),
        (0.300, "send", b"250 "), (0.301, "send", b"OK\r\n"),
        (0.900, "send", b"late\r\n"),
    )
    assert _body(format_script([record])) == [
        'server: "220 hi\\r\\n"',
        'client: "HELO\\r\\n"',
        "delay 0.289",
        'server: "250 OK\\r\\n"',
        "delay 0.599",
        'server: "late\\r\\n"',
        "close",
    ]
    assert "delay" not in format_script([record], timing=False)
    assert "delay" not in format_script([record], min_delay=1.0)


def test_writer_uses_hex_for_binary_and_quotes_for_text() -> None:
    binary = bytes(range(40))
    record = _record_of((0.0, "recv", binary), (0.0, "send", "naïve \"quote\"\t\\\n".encode()
                                                + b"\xff"), ended="server reset")
    assert _body(format_script([record])) == [
        "client: hex 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f",
        "        hex 10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f",
        "        hex 20 21 22 23 24 25 26 27",
        'server: "naïve \\"quote\\"\\t\\\\\\n"',
        '        "\\xff"',
        "reset",
    ]


def test_writer_cuts_long_lines() -> None:
    record = _record_of((0.0, "send", b"x" * 200))
    body = _body(format_script([record]))
    assert body[:3] == ['server: "' + "x" * 76 + '"', '        "' + "x" * 76 + '"',
                        '        "' + "x" * 48 + '"']


def test_writer_notes_how_connections_ended() -> None:
    half = _record_of((0.0, "recv", b"a"), (0.0, "note", "server shut its write side (EOF)"),
                      (0.0, "recv", b"b"), (0.0, "note", "client closed its side (EOF)"),
                      ended="server closed")
    assert _body(format_script([half])) == ['client: "a"', "half-close", 'client: "b"',
                                            "expect close", "close"]
    after_eof = _record_of((0.0, "recv", b"q"), (0.0, "note", "client closed its side (EOF)"),
                           (0.0, "send", b"answer"), ended="client closed")
    assert _body(format_script([after_eof])) == ['client: "q"', "expect close",
                                                 'server: "answer"']
    reset = _record_of((0.0, "recv", b"q"), ended="client reset")
    assert _body(format_script([reset]))[-1] == "# the client reset the connection here"


def test_writer_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="the recording is empty"):
        format_script([])
    with pytest.raises(TypeError, match="ConnectionRecord objects, not 'x'"):
        format_script(["x"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="min_delay must be a number of seconds >= 0"):
        format_script([_record_of()], min_delay=-1)
    save_script([_record_of((0.0, "send", b"hi"))], tmp_path / "s.script")
    loaded = load_script(tmp_path / "s.script")
    assert isinstance(loaded, list)
    assert [repr(s) for s in loaded] == ["Send(b'hi')", "Close()"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.binary(min_size=1, max_size=300)),
                min_size=1, max_size=6))
def test_any_bytes_survive_writing_and_reading(turns: list[tuple[bool, bytes]]) -> None:
    record = ConnectionRecord(1, None, ended="server closed")
    for from_client, data in turns:
        record.events.append(Event(0.0, "recv" if from_client else "send", data))
    steps = parse_script(format_script([record]), exact=True)
    assert isinstance(steps, list)
    read = b"".join(s.exact or b"" for s in steps if isinstance(s, Expect))
    sent = b"".join(s.data for s in steps if isinstance(s, Send))
    assert read == record.received
    assert sent == record.sent


# ---------------------------------------------------------------------------
# mistakes name the line
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lineno", "reason"),
    [
        ('# header\nconnection\nsever: "x"\n', 3,
         r"unknown step 'sever:' \(did you mean 'server:'\?\)"),
        ('server: "a\\qb"\n', 1, r"unknown escape '\\\\q' in quoted text"),
        ('server: "abc\n', 1, "unterminated quoted text"),
        ("server: hex 0d 0\n", 1, "bad hex '0': write bytes as pairs of hex digits"),
        ("server: hex 0d zz\n", 1, "bad hex 'zz'"),
        ("server:\n", 1, "server: needs data"),
        ('server: abc\n', 1, "expected quoted text .* found 'abc'"),
        ('close\n  "more"\n', 2, "continues the data of the step above"),
        ('close\nserver: "late"\n', 2, r"can never run: line 1 \('close'\) ends the connection"),
        ('half-close\nserver: "x"\n', 2, "would write after half-close at line 1"),
        ("read\ndelay soon\n", 2, "delay takes a number of seconds >= 0, such as 0.25, not 'soon'"),
        ("delay -1\n", 1, "not '-1'"),
        ("read some\n", 1, "read takes nothing, a byte count, 'line', 'until DATA' or 'to close'"),
        ("read \u00b2\n", 1, "read takes nothing, a byte count, 'line'"),  # not int()'s words
        ("read\nread 0\n", 2, r"read 0 would read nothing: a byte count starts at 1"),
        ("close now\n", 1, "close takes no arguments; unexpected 'now'"),
        ('client: ""\n', 1, "client: data must not be empty"),
        ('expect ""\n', 1, "Expect.*would match nothing"),
        ('expect regex "(unclosed"\n', 1, "invalid regex"),
        ('read\nexpect regex "a{99999999999}"\n', 2,
         r"invalid regex b'a\{99999999999\}': the repetition number is too large"),
        ('expect regex "' + "(" * 1000 + ")" * 1000 + '"\n', 1,
         "invalid regex .* nested too deeply"),
        ("expect regex GET\n", 1, "needs a quoted pattern"),
        ("connection\nread\nconnection 3\n", 3, "write 'connection 2'"),
        ("# only comments\n\n", 1, "the script has no steps"),
    ],
)
def test_bad_syntax_names_the_line(text: str, lineno: int, reason: str) -> None:
    with pytest.raises(ScriptSyntaxError, match=reason) as caught:
        parse_script(text, filename="bad.script")
    error = caught.value
    assert error.lineno == lineno
    assert str(error).startswith(f"bad.script, line {lineno}: ")
    if text.strip("#\n abcdefghijklmnopqrstuvwxyz"):
        assert error.line == text.splitlines()[lineno - 1]
        assert str(error).endswith("\n    " + error.line.strip())


def test_regex_at_the_repeat_limit_of_re_is_a_step() -> None:
    assert repr(parse_script('read\nexpect regex "a{4294967294}"\n')) == repr(
        [RECEIVE, ExpectRegex(b"a{4294967294}")]
    )


def test_read_0_is_explained_in_script_file_words() -> None:
    with pytest.raises(ScriptSyntaxError) as caught:
        parse_script("read 0\n", filename="zero.script")
    assert str(caught.value) == (
        "zero.script, line 1: read 0 would read nothing: a byte count starts at 1 "
        "('read N' reads at least N bytes); a plain 'read' reads what arrives\n    read 0"
    )
    assert "Receive" not in str(caught.value) and "RECEIVE" not in str(caught.value)


def test_bad_file_error_names_the_file_and_line(tmp_path: Path) -> None:
    script = tmp_path / "typo.script"
    script.write_text('read line\nserver: "ok"\nclsoe\n')
    with pytest.raises(ScriptSyntaxError) as caught:
        CommandServer.from_file(script, verbose=False)
    assert str(caught.value) == (
        f"{script}, line 3: unknown step 'clsoe' (did you mean 'close'?); steps are: "
        "connection, client:, server:, expect, read, delay, close, reset, half-close, hang, "
        "rules, rule, unmatched, end"
        "\n    clsoe"
    )
    assert isinstance(caught.value, ValueError)


def test_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    script = tmp_path / "latin1.script"
    script.write_bytes(b'read\nserver: "caf\xe9"\n')
    with pytest.raises(ScriptSyntaxError, match=r"line 2: the file is not UTF-8 text"):
        load_script(script)


def test_parse_script_rejects_wrong_types() -> None:
    with pytest.raises(TypeError, match="text must be the script as a str"):
        parse_script(b"read")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="exact must be True or False, not 1"):
        parse_script("read", exact=1)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# the proxy itself
# ---------------------------------------------------------------------------


def test_proxy_stops_at_once_with_connections_open() -> None:
    upstream = CommandServer([Hang()], verbose=False)
    proxy = RecordingProxy(upstream.address)
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=CLIENT_TIMEOUT) as c:
            c.sendall(b"hello?")
            proxy.wait_for_connections(1, finished=False)
            upstream.wait_for_connections(1, finished=False)
            proxy.stop()  # no timeout involved: the thread wakes up
            assert not proxy._thread.is_alive()
            try:
                assert c.recv(100) == b""
            except ConnectionResetError:
                pass  # closed with "hello?" unread: a reset, equally an end
    finally:
        proxy.stop()
        upstream.stop()
    assert proxy.connections[0].ended == "stopped"
    assert "the connection was still open" in proxy.script()


def test_proxy_records_a_fake_server_over_unix_sockets(tmp_path: Path) -> None:
    upstream = CommandServer([ReadUntilClose(), "reply after EOF"], path=tmp_path / "up.sock",
                             verbose=False)
    try:
        with RecordingProxy(str(tmp_path / "up.sock"), path=tmp_path / "proxy.sock") as proxy:
            assert proxy.address == str(tmp_path / "proxy.sock")
            with pytest.raises(AttributeError, match="listens on the Unix socket .*: it has no "
                                                     r"port; use \.path or \.address"):
                proxy.port  # noqa: B018
            with socket.socket(socket.AF_UNIX) as c:
                c.settimeout(CLIENT_TIMEOUT)
                c.connect(proxy.address)
                c.sendall(b"all of it")
                c.shutdown(socket.SHUT_WR)  # the client half-closes; the reply still comes
                assert c.makefile("rb").read() == b"reply after EOF"
            proxy.wait_idle()
        assert not (tmp_path / "proxy.sock").exists()
    finally:
        upstream.stop()
    upstream.check()
    assert _body(proxy.script(timing=False)) == ['client: "all of it"', "expect close",
                                                 'server: "reply after EOF"', "close"]
    steps = parse_script(proxy.script())
    assert isinstance(steps, list) and isinstance(steps[1], ExpectClose)


def test_proxy_passes_a_reset_on_and_records_it() -> None:
    with CommandServer([RECEIVE, Reset()], verbose=False) as upstream, \
            RecordingProxy(upstream.address) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=CLIENT_TIMEOUT) as c:
            c.sendall(b"bye")
            with pytest.raises(ConnectionResetError):
                c.recv(100)
        proxy.wait_idle()
    assert proxy.connections[0].ended == "server reset"
    assert _body(proxy.script()) == ['client: "bye"', "reset"]


def test_proxy_forwards_large_transfers_intact() -> None:
    blob = bytes(range(256)) * 12_000  # 3 MB: more than the proxy buffers per direction
    with CommandServer([Receive(len(blob)), Send(blob)], verbose=False) as upstream, \
            RecordingProxy(upstream.address) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=CLIENT_TIMEOUT) as c:
            sender = threading.Thread(target=c.sendall, args=(blob,), name="big-sender")
            sender.start()
            try:
                got = bytearray()
                while len(got) < len(blob):
                    chunk = c.recv(1 << 16)
                    if not chunk:
                        break
                    got += chunk
            finally:
                sender.join(JOIN_TIMEOUT)
            assert bytes(got) == blob
        proxy.wait_idle()
    assert proxy.connections[0].received == blob
    assert proxy.connections[0].sent == blob
    assert "client: hex 00 01 02" in proxy.script()


def _connect_and_be_reset(proxy: RecordingProxy) -> None:
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=CLIENT_TIMEOUT) as c:
            assert c.recv(100) == b""
    except ConnectionResetError:
        pass  # the proxy resets the client (even before connect() returns, if slow)
    proxy.wait_for_connections(1)


def _proxy_to_nobody(tmp_path: Path) -> RecordingProxy:
    """A stopped proxy that forwarded one connection to a server that does not exist."""
    proxy = RecordingProxy(str(tmp_path / "nobody-listens.sock"))
    try:
        _connect_and_be_reset(proxy)
    finally:
        proxy.stop()
    return proxy


def test_proxy_records_an_unreachable_server(tmp_path: Path) -> None:
    proxy = _proxy_to_nobody(tmp_path)
    [failure] = proxy.errors
    assert "cannot connect to the real server unix:" in failure.summary
    with pytest.raises(AssertionError, match="cannot connect to the real server"):
        proxy.check()


def test_proxy_messages_name_the_proxy_and_count_what_it_saw(tmp_path: Path) -> None:
    upstream = CommandServer([Hang()], verbose=False)
    try:
        with RecordingProxy(upstream.address) as proxy:
            with pytest.raises(TimeoutError, match=r"^0 of 1 connections ended within 0\.05 s "
                                                   r"on <RecordingProxy 127\.0\.0\.1:"):
                proxy.wait_for_connections(1, timeout=0.05)
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=CLIENT_TIMEOUT):
                proxy.wait_for_connections(1, finished=False)
                with pytest.raises(TimeoutError,
                                   match=r"still has 1 open connection\(s\) after 0\.05 s$"):
                    proxy.wait_idle(timeout=0.05)
            proxy.wait_idle()
    finally:
        upstream.stop()
    proxy = _proxy_to_nobody(tmp_path)
    report = proxy.failure_report()
    assert report.startswith(f"{proxy!r}: 1 failure(s)\n\n1) connection #1 from 127.0.0.1:")
    with pytest.raises(AssertionError) as caught:
        proxy.check()
    assert str(caught.value) == report


@pytest.mark.skipif(not hasattr(Exception, "add_note"), reason="exception notes: Python 3.11+")
def test_proxy_adds_its_failures_as_a_note_to_an_error_in_the_with_block(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConnectionError, match="the client gave up") as caught:
        with RecordingProxy(str(tmp_path / "nobody-listens.sock")) as proxy:
            _connect_and_be_reset(proxy)
            raise ConnectionError("the client gave up")
    [note] = caught.value.__notes__
    assert note == proxy.failure_report()
    assert "cannot connect to the real server unix:" in note


@pytest.mark.parametrize(
    ("target", "error", "message"),
    [
        (("127.0.0.1", 0), TypeError, "target must be"),
        (("127.0.0.1",), TypeError, "target must be"),
        (8080, TypeError, r"not 8080"),
        (("no such host.invalid", 80), OSError, "cannot resolve the real server"),
    ],
)
def test_proxy_rejects_bad_targets(target: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        RecordingProxy(target)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"timeout": "5"}, TypeError, r"timeout must be a number of seconds > 0, not '5'"),
        ({"timeout": 0}, ValueError, r"timeout must be a number of seconds > 0, not 0"),
        ({"backlog": 1.5}, TypeError, r"backlog must be an int >= 1, not 1\.5"),
        ({"backlog": 0}, ValueError, r"backlog must be an int >= 1, not 0"),
        ({"port": "80"}, TypeError, r"port must be an int from 0 .* not '80'"),
        ({"port": 70000}, ValueError, r"port must be an int from 0 .* not 70000"),
        ({"host": ""}, TypeError, r"host must be a non-empty str"),
    ],
)
def test_proxy_rejects_bad_arguments_as_the_servers_do(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        RecordingProxy(("127.0.0.1", 9), **kwargs)


def test_replay_of_two_connections_refuses_a_third(http_port: int) -> None:
    proxy, _ = _record(http_port, http_client_code, 2)
    commands = parse_script(proxy.script())
    assert isinstance(commands, PerConnection) and len(commands.scripts) == 2
    server = CommandServer(commands, verbose=False)
    try:
        http_client_code(server.port)
        with pytest.raises(ConnectionError):
            http_client_code(server.port)
        server.wait_idle()
    finally:
        server.stop()
    [failure] = server.errors
    assert failure.kind == "unexpected connection"
