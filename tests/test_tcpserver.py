"""TcpServer and its factories without pytest (embeddedserver.tcpserver, embeddedserver.factories).

The plugin's behaviour (messages, teardown, report sections) is tested through pytester
in test_plugin.py; these tests use the classes the way a unittest or asyncio user would:
failures are AssertionError, and the modules themselves never import pytest.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from embeddedserver import CommandServer
from embeddedserver.factories import TcpServerFactory
from embeddedserver.tcpserver import TcpServer

_ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------
# TcpServer without pytest
# ---------------------------------------------------------------------------


def test_tcpserver_works_without_pytest_as_a_context_manager() -> None:
    with TcpServer(timeout=10) as server:
        server.expect_connect()
        server.expect_bytes(b"ping")
        server.send_bytes(b"pong")
        with socket.create_connection(("127.0.0.1", server.service_port)) as sock:
            sock.sendall(b"ping")
            assert sock.recv(4, socket.MSG_WAITALL) == b"pong"
    assert server.failure is None
    assert "connection #1" in server.transcript()


def test_tcpserver_without_pytest_raises_assertion_error() -> None:
    server = TcpServer(timeout=10)
    try:
        with pytest.raises(AssertionError, match="the first step must be expect_connect"):
            server.expect_bytes(b"x")
    finally:
        server.stop()
        server.stop()  # twice is harmless


def test_stop_is_prompt_while_a_step_waits_and_reports_the_step_it_cut_short() -> None:
    server = TcpServer(timeout=60)
    server.expect_connect()
    server.stop()  # wakes the runner waiting for a client; the leak guard checks the threads
    assert server.failure is not None and server.failure.kind == "unfinished"
    with pytest.raises(AssertionError, match=r"step 0 of 1: expect_connect\(\): stopped "
                                             r"with 1 step of the script not done"):
        server.close(check=True)


def test_steps_pending_at_stop_fail_join_and_close() -> None:
    server = TcpServer(timeout=60)
    server.expect_connect()
    server.expect_bytes(b"ping")
    with socket.create_connection(("127.0.0.1", server.service_port)):
        server.stop()
    with pytest.raises(AssertionError, match=r"stopped with 2 steps of the script not done, "
                                             r"the first being expect_connect\(\)|stopped "
                                             r"with 1 step of the script not done, the first "
                                             r"being expect_bytes\(b'ping'\)"):
        server.join()
    server.close(check=True)  # reported once, by join()


def test_a_plan_done_before_stop_passes_join_and_close() -> None:
    server = TcpServer(timeout=60)
    server.expect_connect()
    server.expect_bytes(b"ping")
    with socket.create_connection(("127.0.0.1", server.service_port)) as sock:
        sock.sendall(b"ping")
        server.join()
    server.stop()
    server.join()
    server.close(check=True)
    assert server.failure is None


def test_a_step_added_after_stop_fails_at_once() -> None:
    server = TcpServer(timeout=60)
    server.stop()
    with pytest.raises(AssertionError, match=r"tcpserver.expect_connect\(\) after stop\(\): "
                                             r"the server no longer serves"):
        server.expect_connect()
    server.join()  # returns: nothing was added


def test_a_client_after_the_script_ended_is_reported_at_close() -> None:
    # Out of steps with no client connected, the server thread ends; a client arriving
    # then waits in the listener's backlog, and close() still takes and reports it.
    server = TcpServer(timeout=10)
    server.expect_connect()
    server.expect_disconnect()
    with socket.create_connection(("127.0.0.1", server.service_port), timeout=10):
        pass
    server.join()
    late = socket.create_connection(("127.0.0.1", server.service_port), timeout=10)
    try:
        with pytest.raises(AssertionError, match=r"connection #2 from 127\.0\.0\.1:\d+ was "
                           r"accepted but no expect_connect\(\) step took it"):
            server.close()
    finally:
        late.close()


@pytest.mark.parametrize("round_", range(100))
def test_a_client_no_step_expected_is_reported_however_close_it_came(round_: int) -> None:
    # The client connects and closes just before close(): whether the server thread has
    # accepted it yet or it still waits in the backlog, the verdict must see it.
    server = TcpServer(timeout=10)
    with socket.create_connection(("127.0.0.1", server.service_port)):
        pass
    with pytest.raises(AssertionError, match=r"connection #1 from .* was accepted but no "
                                             r"expect_connect\(\) step took it"):
        server.close(check=True)


@pytest.mark.parametrize("round_", range(100))
def test_a_client_a_step_expected_passes_however_close_it_came(round_: int) -> None:
    server = TcpServer(timeout=10)
    server.expect_connect()
    with socket.create_connection(("127.0.0.1", server.service_port)):
        pass
    server.close(check=True)


def test_steps_added_after_the_script_ended_start_serving_again() -> None:
    with TcpServer(timeout=10) as server:
        for word in (b"one", b"two"):
            server.expect_connect()
            server.expect_bytes(word)
            server.send_bytes(word.upper())
            server.expect_disconnect()
            with socket.create_connection(("127.0.0.1", server.service_port), timeout=10) as s:
                s.sendall(word)
                assert s.makefile("rb").read(3) == word.upper()
            server.join()
    assert "connection #2" in server.transcript()


@pytest.mark.parametrize(
    ("timeout", "error"),
    [(-1, ValueError), (0, ValueError), (float("nan"), ValueError), ("5", TypeError),
     (True, TypeError), (None, TypeError)],
)
def test_bad_timeout_is_rejected_with_the_value(timeout: Any, error: type[Exception]) -> None:
    # The same check, and the same exception types, as the CommandServer's timeout.
    with pytest.raises(error, match=f"timeout must be a number of seconds > 0, not {timeout!r}"):
        TcpServer(timeout=timeout)
    with pytest.raises(error, match=f"timeout must be a number of seconds > 0, not {timeout!r}"):
        CommandServer([], timeout=timeout)


# ---------------------------------------------------------------------------
# no pytest
# ---------------------------------------------------------------------------


def test_importing_the_modules_does_not_import_pytest() -> None:
    code = (
        "import sys, embeddedserver.tcpserver, embeddedserver.factories\n"
        "found = sorted(m for m in sys.modules if m.split('.')[0] in ('pytest', '_pytest'))\n"
        "assert not found, found\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------------
# TcpServerFactory without pytest
# ---------------------------------------------------------------------------


def test_factory_reports_each_failing_server_from_close() -> None:
    factory = TcpServerFactory(timeout=0.3)
    good, bad = factory(name="good"), factory(name="bad")
    good.expect_connect(timeout=10)
    bad.expect_connect()
    with socket.create_connection(("127.0.0.1", good.service_port), timeout=10):
        good.join()
    report = factory.close()
    assert report is not None
    assert report.startswith(f"bad on port {bad.service_port}: ")
    assert "no client connected within 0.3 s" in report
    assert "good" not in report


def _watched_exchange(factory: TcpServerFactory) -> None:
    """An asyncio client that leaves 6 bytes unread: the watch must count them exactly."""
    server = factory()
    server.expect_connect()
    server.send_bytes(b"hello world")
    server.expect_disconnect()

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.service_port)
        assert await reader.readexactly(5) == b"hello"
        writer.close()
        await writer.wait_closed()
        with pytest.raises(AssertionError, match="6 bytes the server sent still unread"):
            await server.join()

    asyncio.run(client())


def test_factory_as_a_context_manager_reports_at_the_end_of_the_block() -> None:
    with pytest.raises(AssertionError, match=r"lazy on port \d+: .*no client connected"):
        with TcpServerFactory(timeout=0.2) as factory:
            factory(name="lazy").expect_connect()
    assert all(s._stopped for s in factory.servers)
    with TcpServerFactory(timeout=10) as factory:  # nothing wrong: no error
        server = factory()
        server.expect_connect()
        with socket.create_connection(("127.0.0.1", server.service_port), timeout=10):
            server.join()


def test_factory_watch_streams_patches_and_undoes_them_itself() -> None:
    original = asyncio.StreamWriter.__init__
    factory = TcpServerFactory(timeout=10, watch_streams=True)
    try:
        _watched_exchange(factory)
        assert asyncio.StreamWriter.__init__ is not original  # watching
        assert factory.close() is None  # the failure was reported by join() already
        assert asyncio.StreamWriter.__init__ is original
    finally:
        factory.stop()  # twice is harmless
    assert asyncio.StreamWriter.__init__ is original


def test_factory_watch_counts_what_an_asyncio_client_read_with_any_patcher() -> None:
    original = asyncio.StreamWriter.__init__
    with pytest.MonkeyPatch.context() as patches:  # any object with setattr() will do
        factory = TcpServerFactory(timeout=10, monkeypatch=patches)
        try:
            _watched_exchange(factory)
            assert factory.close() is None
            assert asyncio.StreamWriter.__init__ is not original  # the patcher's to undo
        finally:
            factory.stop()
    assert asyncio.StreamWriter.__init__ is original


# ---------------------------------------------------------------------------
# expect_disconnect() after a send: the client must have read the reply
# ---------------------------------------------------------------------------


def _reply_then_disconnect() -> TcpServer:
    server = TcpServer(timeout=10)
    server.expect_connect()
    server.send_bytes(b"reply")
    server.expect_disconnect()
    return server


@pytest.mark.parametrize("round_", range(100))
def test_a_client_that_hangs_up_before_the_reply_fails_expect_disconnect(round_: int) -> None:
    server = _reply_then_disconnect()
    socket.create_connection(("127.0.0.1", server.service_port)).close()  # reads nothing
    with pytest.raises(AssertionError, match=r"step 2 of 3: expect_disconnect\(\): the client "
                                             r"closed the connection while data the server "
                                             r"sent was still unread.*b'reply'"):
        server.close(check=True)


@pytest.mark.parametrize("round_", range(100))
def test_a_client_that_reads_the_reply_then_hangs_up_passes(round_: int) -> None:
    server = _reply_then_disconnect()
    with socket.create_connection(("127.0.0.1", server.service_port)) as sock:
        assert sock.recv(5, socket.MSG_WAITALL) == b"reply"
    server.close(check=True)


def test_a_half_closed_client_that_reads_the_reply_passes() -> None:
    server = _reply_then_disconnect()
    with socket.create_connection(("127.0.0.1", server.service_port)) as sock:
        sock.shutdown(socket.SHUT_WR)  # its side is done before the reply: that is allowed
        assert sock.recv(5, socket.MSG_WAITALL) == b"reply"
    server.close(check=True)
