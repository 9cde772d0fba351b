"""The pytest plugin: fixtures, failure messages, report sections, asyncio and xdist.

Most tests write a small test file and run it with ``pytester`` (in-process, so the inner
servers' threads and sockets are checked by the leak guard of this suite). Each failure
situation of the plugin has its own example file, asserting the outcome and the message.
Steps that must not fail get generous timeouts; the step that is meant to time out gets
0.3 s, and no test asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import textwrap

import pytest

pytest_plugins = ["pytester"]

# Inner runs: generous defaults; a failing example shortens only the step meant to fail.
_INI = """
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
embeddedserver_timeout = 10
"""

_HEADER = """
import asyncio
import select
import socket
import struct

import pytest

from embeddedserver import read_frame, write_frame


def connect(server):
    return socket.create_connection(("127.0.0.1", server.service_port), timeout=10)

"""


# Plugins the inner runs do not need: hypothesis would be imported (and its modules
# assertion-rewritten) anew by every in-process run.
_FAST = ("-p", "no:hypothesispytest", "-p", "no:benchmark")


def _run(pytester: pytest.Pytester, code: str, *args: str, ini: str = _INI) -> pytest.RunResult:
    pytester.makeini(ini)
    pytester.makepyfile(test_example=_HEADER + textwrap.dedent(code))
    before = _current_loop()
    try:
        return pytester.runpytest(*_FAST, *args)
    finally:
        _close_loop_left_behind(before)


def _current_loop() -> asyncio.AbstractEventLoop | None:
    local = getattr(asyncio.get_event_loop_policy(), "_local", None)
    return getattr(local, "_loop", None)


def _close_loop_left_behind(before: asyncio.AbstractEventLoop | None) -> None:
    # pytest-asyncio < 1.0 sets a fresh event loop after each test; an in-process run
    # would leave it (an epoll and a socketpair) open in this process.
    after = _current_loop()
    if after is not None and after is not before and not after.is_running():
        after.close()
        asyncio.get_event_loop_policy().set_event_loop(before)


# ---------------------------------------------------------------------------
# happy paths
# ---------------------------------------------------------------------------


def test_async_example_from_the_issue_passes_in_strict_mode(pytester: pytest.Pytester) -> None:
    result = _run(pytester, """
        @pytest.mark.asyncio()
        async def test_hello(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_bytes(b"Hello, server!")
            tcpserver.send_bytes(b"Hello, client!")
            tcpserver.expect_disconnect()

            reader, writer = await asyncio.open_connection(None, tcpserver.service_port)
            writer.write(b"Hello, server!")
            assert await reader.readexactly(14) == b"Hello, client!"
            writer.close()
            await writer.wait_closed()

            await tcpserver.join()
    """)
    result.assert_outcomes(passed=1)


def test_async_test_without_marker_passes_in_auto_mode(pytester: pytest.Pytester) -> None:
    result = _run(pytester, """
        async def test_hello(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_bytes(b"ping")
            tcpserver.send_bytes(b"pong")
            tcpserver.expect_disconnect()
            reader, writer = await asyncio.open_connection("127.0.0.1", tcpserver.service_port)
            writer.write(b"ping")
            assert await reader.readexactly(4) == b"pong"
            writer.close()
            await writer.wait_closed()
            await tcpserver.join()
    """, "-o", "asyncio_mode=auto")
    result.assert_outcomes(passed=1)


def test_sync_client_with_blocking_join_passes(pytester: pytest.Pytester) -> None:
    result = _run(pytester, """
        def test_hello(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_bytes(b"Hello, server!")
            tcpserver.send_bytes(b"Hello, client!")
            tcpserver.expect_disconnect()
            with connect(tcpserver) as sock:
                sock.sendall(b"Hello, server!")
                assert sock.recv(14, socket.MSG_WAITALL) == b"Hello, client!"
            assert tcpserver.join() is not None   # a Join, done already
    """)
    result.assert_outcomes(passed=1)


def test_standard_library_clients_http_and_smtp(pytester: pytest.Pytester) -> None:
    result = _run(pytester, """
        import http.client
        import smtplib

        from embeddedserver import http_response

        def test_http_client(tcpserver):
            port = tcpserver.service_port
            tcpserver.expect_connect()
            tcpserver.expect_bytes(b"GET /status HTTP/1.1\\r\\nHost: 127.0.0.1:%d\\r\\n"
                                   b"Accept-Encoding: identity\\r\\n\\r\\n" % port)
            tcpserver.send_bytes(http_response("up"))
            tcpserver.expect_disconnect()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/status")
            assert conn.getresponse().read() == b"up"
            conn.close()
            tcpserver.join()

        def test_smtplib(tcpserver):
            tcpserver.expect_connect()
            tcpserver.send_bytes(b"220 fake ESMTP\\r\\n")
            tcpserver.expect_bytes(b"ehlo client.test\\r\\n")
            tcpserver.send_bytes(b"250 fake\\r\\n")
            tcpserver.expect_bytes(b"QUIT\\r\\n")
            tcpserver.send_bytes(b"221 bye\\r\\n")
            tcpserver.expect_disconnect()
            with smtplib.SMTP("127.0.0.1", tcpserver.service_port,
                              local_hostname="client.test", timeout=10) as smtp:
                assert smtp.ehlo()[0] == 250
            tcpserver.join()
    """)
    result.assert_outcomes(passed=2)


def test_steps_added_after_the_client_acts_and_between_joins(pytester: pytest.Pytester) -> None:
    result = _run(pytester, """
        def test_two_sessions(tcpserver):
            first = connect(tcpserver)          # before any step exists
            first.sendall(b"one")
            tcpserver.expect_connect()
            tcpserver.expect_bytes(b"one")
            tcpserver.join()
            tcpserver.send_bytes(b"1")
            assert first.recv(1) == b"1"
            first.close()
            tcpserver.expect_disconnect()
            tcpserver.join()
            with connect(tcpserver) as second:  # a new client once the first has gone
                tcpserver.expect_connect()
                tcpserver.disconnect()
                assert second.recv(1) == b""
            tcpserver.join()
    """)
    result.assert_outcomes(passed=1)


def test_asyncio_client_that_reads_everything_passes(pytester: pytest.Pytester) -> None:
    result = _run(pytester, """
        @pytest.mark.asyncio
        async def test_lines(tcpserver):
            tcpserver.expect_connect()
            tcpserver.send_bytes(b"a\\nbb\\nccc\\n")
            tcpserver.send_bytes(b"tail")
            tcpserver.disconnect()
            reader, writer = await asyncio.open_connection(None, tcpserver.service_port)
            lines = [line async for line in reader]   # readline() until EOF
            assert lines == [b"a\\n", b"bb\\n", b"ccc\\n", b"tail"]
            writer.close()
            await writer.wait_closed()
            await tcpserver.join()

        @pytest.mark.asyncio
        async def test_partial_reads(tcpserver):
            tcpserver.expect_connect()
            tcpserver.send_bytes(b"0123456789")
            tcpserver.expect_disconnect()
            reader, writer = await asyncio.open_connection(None, tcpserver.service_port)
            assert await reader.readuntil(b"3") == b"0123"
            assert await reader.readexactly(2) == b"45"
            rest = b""
            while len(rest) < 4:
                rest += await reader.read(4 - len(rest))
            assert rest == b"6789"
            writer.close()
            await writer.wait_closed()
            await tcpserver.join()
    """)
    result.assert_outcomes(passed=2)


def test_frames_with_write_frame_and_read_frame(pytester: pytest.Pytester) -> None:
    result = _run(pytester, """
        @pytest.mark.asyncio
        async def test_frames(tcpserver):
            server = tcpserver
            server.expect_connect()
            server.expect_frame(b"ping")
            server.send_frame(b"pong")
            server.send_frame(b"")
            server.disconnect()
            reader, writer = await asyncio.open_connection(None, server.service_port)
            write_frame(writer, b"ping")
            assert await read_frame(reader) == b"pong"
            assert await read_frame(reader) == b""   # the empty frame
            assert await read_frame(reader) == b""   # clean EOF
            writer.close()
            await writer.wait_closed()
            await server.join()
    """)
    result.assert_outcomes(passed=1)


def test_a_test_that_never_joins_is_checked_at_teardown(pytester: pytest.Pytester) -> None:
    result = _run(pytester, """
        def test_fine(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_bytes(b"hi")
            with connect(tcpserver) as sock:
                sock.sendall(b"hi")

        def test_wrong(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_bytes(b"hi")
            with connect(tcpserver) as sock:
                sock.sendall(b"ho")
    """)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_wrong*",
                                 "*wrong bytes from the client*"])


def test_a_failure_is_reported_once(pytester: pytest.Pytester) -> None:
    result = _run(pytester, """
        def test_it(tcpserver):
            tcpserver.expect_connect(timeout=0.3)
            with pytest.raises(pytest.fail.Exception, match="no client connected"):
                tcpserver.join()
            tcpserver.join()                  # already reported: silent
            tcpserver.expect_bytes(b"late")   # the server has failed: ignored
            tcpserver.join()
    """)
    result.assert_outcomes(passed=1)


def test_factory_with_two_servers_where_one_fails(pytester: pytest.Pytester) -> None:
    result = _run(pytester, """
        @pytest.mark.asyncio
        async def test_two(tcpserver_factory):
            good = await tcpserver_factory(name="good")
            bad = await tcpserver_factory(name="bad")
            assert good.service_port != bad.service_port
            for server in (good, bad):
                server.expect_connect()
                server.expect_bytes(b"ping")
            for server, data in ((good, b"ping"), (bad, b"pong")):
                reader, writer = await asyncio.open_connection(None, server.service_port)
                writer.write(data)
                writer.close()
                await writer.wait_closed()
    """)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*bad on port *wrong bytes from the client: first difference"
                                 " at byte offset 1*"])
    result.stdout.no_fnmatch_line("*good on port*wrong*")


# ---------------------------------------------------------------------------
# each failure situation, with its message
# ---------------------------------------------------------------------------

_SITUATIONS = {
    "connect_timeout": ("""
        def test_it(tcpserver):
            tcpserver.expect_connect(timeout=0.3)
            tcpserver.join()
    """, {"failed": 1}, ["*tcpserver on port *: step 0 of 1: expect_connect(): no client "
                        "connected within 0.3 s (the server listens on 127.0.0.1*"]),
    "bytes_timeout": ("""
        def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_bytes(b"Hello, server!", timeout=0.3)
            with connect(tcpserver) as sock:
                sock.sendall(b"Hello")
                tcpserver.join()
    """, {"failed": 1}, ["*expect_bytes(b'Hello, server!'): timed out after 0.3 s waiting for "
                        "the client to send 14 bytes: only 5 bytes arrived",
                        "*received: b'Hello'"]),
    "wrong_bytes": ("""
        def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_bytes(b"Hello, server!")
            with connect(tcpserver) as sock:
                sock.sendall(b"Hello, servex!")
                tcpserver.join()
    """, {"failed": 1}, ["*expect_bytes(b'Hello, server!'): wrong bytes from the client: first "
                        "difference at byte offset 12",
                        "*expected: b'Hello, server!'",
                        "*first difference at byte offset 12: expected b'r' (0x72), "
                        "got b'x' (0x78)"]),
    "closed_before_the_bytes": ("""
        def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_bytes(b"Hello, server!")
            with connect(tcpserver) as sock:
                sock.sendall(b"Hello")
            tcpserver.join()
    """, {"failed": 1}, ["*the client closed the connection after sending only 5 of the 14 "
                        "expected bytes", "*received: b'Hello'"]),
    "frame_timeout": ("""
        def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_frame(b"ping", timeout=0.3)
            with connect(tcpserver) as sock:
                sock.sendall(struct.pack(">I", 4) + b"pi")
                tcpserver.join()
    """, {"failed": 1}, ["*expect_frame(b'ping'): timed out after 0.3 s waiting for the client "
                        "to send a frame: only 6 bytes arrived"]),
    "wrong_frame": ("""
        def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_frame(b"ping")
            with connect(tcpserver) as sock:
                sock.sendall(struct.pack(">I", 5) + b"hello")
                tcpserver.join()
    """, {"failed": 1}, ["*expect_frame(b'ping'): wrong frame from the client: frame length "
                        "prefix says 5 bytes, expected 4"]),
    "wrong_frame_payload": ("""
        def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_frame(b"ping")
            with connect(tcpserver) as sock:
                sock.sendall(struct.pack(">I", 4) + b"pong")
                tcpserver.join()
    """, {"failed": 1}, ["*expect_frame(b'ping'): wrong frame from the client: wrong bytes at "
                        "offset 1*"]),
    "second_connection": ("""
        def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_bytes(b"hi")
            with connect(tcpserver) as first, connect(tcpserver) as second:
                tcpserver.join()
    """, {"failed": 1}, ["*: connection #2 from 127.0.0.1:*: a second connection arrived while "
                        "connection #1 from 127.0.0.1:* was still being served; a tcpserver "
                        "serves one client at a time*"]),
    "data_instead_of_disconnect": ("""
        def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_bytes(b"hi")
            tcpserver.expect_disconnect()
            with connect(tcpserver) as sock:
                sock.sendall(b"hi and more")
                tcpserver.join()
    """, {"failed": 1}, ["*expect_disconnect(): unexpected data while waiting for the client to "
                        "disconnect: it sent 9 more bytes instead of closing",
                        "*received: b' and more'"]),
    "disconnect_timeout": ("""
        def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_disconnect(timeout=0.3)
            with connect(tcpserver) as sock:
                tcpserver.join()
    """, {"failed": 1}, ["*expect_disconnect(): the client did not close the connection within "
                        "0.3 s: did the client close?*"]),
    "closed_with_unread_data_socket": ("""
        def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.send_bytes(b"unread data")
            tcpserver.expect_disconnect()
            sock = connect(tcpserver)
            select.select([sock], [], [], 10)   # the data has arrived; nobody reads it
            sock.close()
            tcpserver.join()
    """, {"failed": 1}, ["*expect_disconnect(): the client closed the connection while data "
                        "the server sent was still unread (its close arrived as a reset, "
                        "ECONNRESET); the bytes sent since the client last sent anything: "
                        "b'unread data' (11 bytes)"]),
    "closed_with_unread_data_asyncio": ("""
        @pytest.mark.asyncio
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.send_bytes(b"unread data")
            tcpserver.expect_disconnect()
            reader, writer = await asyncio.open_connection(None, tcpserver.service_port)
            assert await reader.readexactly(2) == b"un"
            writer.close()
            await writer.wait_closed()
            await tcpserver.join()
    """, {"failed": 1}, ["*expect_disconnect(): the client closed the connection with 9 bytes "
                        "the server sent still unread*: b'read data'"]),
    "closed_with_unread_lines_asyncio": ("""
        @pytest.mark.asyncio
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.send_bytes(b"line1\\nline2\\n")
            tcpserver.expect_disconnect()
            reader, writer = await asyncio.open_connection(None, tcpserver.service_port)
            assert await reader.readline() == b"line1\\n"   # readline() calls readuntil()
            writer.close()
            await writer.wait_closed()
            await tcpserver.join()
    """, {"failed": 1}, ["*the client closed the connection with 6 bytes the server sent still "
                        "unread*: b'line2\\n'"]),
    "reset_by_the_client": ("""
        def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.send_bytes(b"ready")
            tcpserver.expect_bytes(b"request")
            sock = connect(tcpserver)
            assert sock.recv(5, socket.MSG_WAITALL) == b"ready"
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            tcpserver.join()
    """, {"failed": 1}, ["*expect_bytes(b'request'): the client reset the connection "
                        "(ECONNRESET) while the server was waiting for data"]),
    "expect_disconnect_with_no_client": ("""
        def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.disconnect()
            tcpserver.expect_disconnect()
    """, {"failed": 1}, [">*tcpserver.expect_disconnect()",
                        "*: tcpserver.expect_disconnect() with no client connected: step 1 "
                        "(disconnect()) ended the connection; add tcpserver.expect_connect() "
                        "before it"]),
    "expect_disconnect_first": ("""
        def test_it(tcpserver):
            tcpserver.expect_disconnect()
    """, {"failed": 1}, ["*: tcpserver.expect_disconnect() with no client connected: no "
                        "expect_connect() step comes before it; add tcpserver.expect_connect() "
                        "before it"]),
    "first_step_not_expect_connect": ("""
        def test_it(tcpserver):
            tcpserver.send_bytes(b"hi")
    """, {"failed": 1}, ["*: tcpserver.send_bytes(b'hi') as the first step: the first step must "
                        "be expect_connect(); add tcpserver.expect_connect() before it"]),
    "step_after_the_connection_ended": ("""
        def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.disconnect()
            tcpserver.expect_bytes(b"hi")
    """, {"failed": 1}, ["*: tcpserver.expect_bytes(b'hi') with no client connected at this "
                        "point of the script: step 1 (disconnect()) ended the connection*"]),
    "expect_connect_while_connected": ("""
        def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_connect()
    """, {"failed": 1}, ["*: tcpserver.expect_connect() while the client connected by step 0 is "
                        "still connected in the script: add expect_disconnect() or disconnect() "
                        "first*"]),
    "close_without_wait_closed": ("""
        @pytest.mark.asyncio
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_disconnect()
            reader, writer = await asyncio.open_connection(None, tcpserver.service_port)
            writer.close()
            await tcpserver.join()
    """, {"passed": 1, "errors": 1}, ["*the client from *:* called writer.close() but never "
                                     "awaited writer.wait_closed()*"]),
    "join_not_awaited": ("""
        @pytest.mark.asyncio
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_disconnect()
            reader, writer = await asyncio.open_connection(None, tcpserver.service_port)
            writer.close()
            await writer.wait_closed()
            tcpserver.join()
    """, {"passed": 1, "errors": 1}, ["*tcpserver.join() was called in a coroutine but never "
                                     "awaited: write `await tcpserver.join()`"]),
    "connection_nobody_expected": ("""
        def test_it(tcpserver):
            with connect(tcpserver) as sock:
                sock.sendall(b"hello?")
            tcpserver.join()
    """, {"passed": 1, "errors": 1}, ["*connection #1 from 127.0.0.1:* was accepted but no "
                                     "expect_connect() step took it"]),
}


@pytest.mark.parametrize("situation", list(_SITUATIONS))
def test_failure_situation_has_its_own_message(pytester: pytest.Pytester, situation: str) -> None:
    code, outcomes, lines = _SITUATIONS[situation]
    result = _run(pytester, code)
    result.assert_outcomes(**outcomes)
    result.stdout.fnmatch_lines(lines)


# ---------------------------------------------------------------------------
# reports, timeouts, isolation
# ---------------------------------------------------------------------------


def test_failed_test_gets_the_transcript_as_a_report_section(pytester: pytest.Pytester) -> None:
    result = _run(pytester, """
        def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.send_bytes(b"greeting")
            with connect(tcpserver) as sock:
                assert sock.recv(8, socket.MSG_WAITALL) == b"greeting"
                assert False, "the client gave up"
    """)
    result.assert_outcomes(failed=1)   # no teardown error on top of the failure
    result.stdout.fnmatch_lines([
        "*the client gave up*",
        "*- embeddedserver: tcpserver on port * -*",
        "connection #1 from 127.0.0.1:*",
        "*-> server 8 bytes  b'greeting'*",
    ])


def test_ini_option_sets_the_default_timeout(pytester: pytest.Pytester) -> None:
    result = _run(pytester, """
        def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.join()
    """, ini=_INI.replace("= 10", "= 0.3"))
    result.stdout.fnmatch_lines(["*no client connected within 0.3 s*"])


def test_fixture_override_and_factory_argument_set_the_timeout(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest("""
        import pytest

        @pytest.fixture
        def embeddedserver_timeout():
            return 0.25
    """)
    result = _run(pytester, """
        def test_fixture(tcpserver):
            tcpserver.expect_connect()
            tcpserver.join()

        def test_factory(tcpserver_factory):
            server = tcpserver_factory(timeout=0.2)
            server.expect_connect()
            server.join()
    """)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*no client connected within 0.25 s*"])
    result.stdout.fnmatch_lines(["*no client connected within 0.2 s*"])


def test_bad_ini_timeout_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "def test_it(): pass", ini=_INI.replace("= 10", "= soon"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*embeddedserver_timeout must be a number of seconds > 0, "
                                 "not 'soon'*"])


def test_only_connections_to_the_fixture_servers_are_instrumented(
    pytester: pytest.Pytester,
) -> None:
    original = asyncio.StreamWriter.__init__
    result = _run(pytester, """
        @pytest.mark.asyncio
        async def test_it(tcpserver):
            tcpserver.expect_connect()
            tcpserver.expect_disconnect()
            other = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
            port = other.sockets[0].getsockname()[1]
            r1, w1 = await asyncio.open_connection("127.0.0.1", tcpserver.service_port)
            r2, w2 = await asyncio.open_connection("127.0.0.1", port)
            assert "read" in vars(r1) and "close" in vars(w1)
            assert "read" not in vars(r2) and "close" not in vars(w2)
            for writer in (w1, w2):
                writer.close()
                await writer.wait_closed()
            other.close()
            await other.wait_closed()
            await tcpserver.join()
    """)
    result.assert_outcomes(passed=1)
    assert asyncio.StreamWriter.__init__ is original  # monkeypatch undid the hook


def test_command_server_fixture_checks_at_teardown(pytester: pytest.Pytester) -> None:
    result = _run(pytester, """
        from embeddedserver import RECEIVE, AsyncioCommandServer, Expect

        def test_ok(command_server):
            server = command_server([RECEIVE, "pong"])
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                sock.sendall(b"ping")
                assert sock.recv(4, socket.MSG_WAITALL) == b"pong"

        def test_wrong(command_server):
            server = command_server([Expect(b"ping")])
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                sock.sendall(b"pong")
            server.wait_for_connections(1)

        @pytest.mark.asyncio
        async def test_asyncio_server(command_server):
            server = command_server([RECEIVE], AsyncioCommandServer)
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"hi")
            assert await server.reader.read() == b"hi"
            writer.close()
            await writer.wait_closed()
    """)
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_wrong*",
                                 "*CommandServer on 127.0.0.1:*: 1 failure*"])


def test_runs_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makeini(_INI)
    body = """
        import asyncio
        import socket

        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_sync(tcpserver, n):
            tcpserver.expect_connect()
            tcpserver.expect_bytes(b"%d" % n)
            with socket.create_connection(("127.0.0.1", tcpserver.service_port)) as sock:
                sock.sendall(b"%d" % n)

        @pytest.mark.parametrize("n", range(4))
        @pytest.mark.asyncio
        async def test_async(tcpserver, n):
            tcpserver.expect_connect()
            tcpserver.send_bytes(b"%d" % n)
            tcpserver.expect_disconnect()
            reader, writer = await asyncio.open_connection(None, tcpserver.service_port)
            assert await reader.readexactly(1) == b"%d" % n
            writer.close()
            await writer.wait_closed()
            await tcpserver.join()
    """
    pytester.makepyfile(test_a=textwrap.dedent(body), test_b=textwrap.dedent(body))
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", *_FAST)
    result.assert_outcomes(passed=16)
