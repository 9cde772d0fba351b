"""``await server.join()`` on each event loop: asyncio, trio, and anyio on either.

``TcpServer.join()`` called in a coroutine must not block: the client runs on the same
loop. These tests run the server's script and a client of the loop's own kind (asyncio
streams, trio streams, anyio streams) as two tasks, the join started *before* the client
acts, so a join that blocked the loop would starve the client and fail with "no client
connected". Each right client has a wrong twin that must fail, three rounds each. trio and
anyio are optional (``pip install '.[test]'`` has them); asyncio always runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import embeddedserver
from embeddedserver.tcpserver import TcpServer

pytest_plugins = ["pytester"]

LOOPS = ["asyncio", "trio", "anyio-asyncio", "anyio-trio"]
ROUNDS = range(3)
WAIT = 10.0  # generous: the steps that must pass


def _needs(loop: str) -> None:
    if loop.startswith("anyio"):
        pytest.importorskip("anyio", reason="pip install '.[test]' (anyio)")
    if "trio" in loop:
        pytest.importorskip("trio", reason="pip install '.[test]' (trio)")


def _run(loop: str, main: Callable[[], Awaitable[Any]]) -> Any:
    """Run *main* on *loop* and return what it returns."""
    if loop == "asyncio":
        async def wrapped() -> Any:
            return await main()
        return asyncio.run(wrapped())
    if loop == "trio":
        import trio

        return trio.run(main)
    import anyio

    return anyio.run(main, backend=loop.removeprefix("anyio-"))


async def _both(loop: str, first: Callable[[], Awaitable[Any]],
                second: Callable[[], Awaitable[Any]]) -> None:
    """Run two tasks at once on *loop* (a join and a client); the first error propagates."""
    if loop == "asyncio":
        await asyncio.gather(first(), second())
    elif loop == "trio":
        import trio

        async with trio.open_nursery() as nursery:
            nursery.start_soon(first)
            nursery.start_soon(second)
    else:
        import anyio

        async with anyio.create_task_group() as group:
            group.start_soon(first)
            group.start_soon(second)


async def _client(loop: str, port: int, send: bytes, receive: int) -> bytes:
    """Connect to 127.0.0.1:*port* the way *loop*'s users do, send, read *receive* bytes,
    close; what was read."""
    if loop == "asyncio":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(send)
        await writer.drain()
        got = await reader.readexactly(receive) if receive else b""
        writer.close()
        await writer.wait_closed()
        return got
    if loop == "trio":
        import trio

        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(send)
            got = b""
            while len(got) < receive:
                chunk = await stream.receive_some(receive - len(got))
                if not chunk:
                    break
                got += chunk
        return got
    import anyio

    async with await anyio.connect_tcp("127.0.0.1", port) as tcp:
        await tcp.send(send)
        got = b""
        while len(got) < receive:
            try:
                got += await tcp.receive(receive - len(got))
            except anyio.EndOfStream:
                break
    return got


def _first_leaf(error: BaseException) -> BaseException:
    """The first error inside the (Base)ExceptionGroups that trio and anyio wrap a task's
    error in (a group on 3.11+, the ``exceptiongroup`` backport's on 3.10)."""
    while isinstance(getattr(error, "exceptions", None), (list, tuple)) and error.exceptions:
        error = error.exceptions[0]
    return error


def _ping_pong(server: TcpServer) -> None:
    server.expect_connect()
    server.expect_bytes(b"PING\r\n")
    server.send_bytes(b"PONG\r\n")
    server.expect_disconnect()


# ---------------------------------------------------------------------------
# a right client passes, its wrong twin fails
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("round_", ROUNDS)
@pytest.mark.parametrize("loop", LOOPS)
def test_join_awaited_before_the_client_acts_waits_without_blocking_the_loop(
    loop: str, round_: int
) -> None:
    _needs(loop)
    replies: list[bytes] = []
    with TcpServer(timeout=WAIT) as server:
        _ping_pong(server)

        async def join() -> None:
            await server.join()  # started first: the client must still get to run

        async def client() -> None:
            replies.append(await _client(loop, server.service_port, b"PING\r\n", 6))

        async def main() -> None:
            await _both(loop, join, client)

        _run(loop, main)
    assert replies == [b"PONG\r\n"]
    assert server.failure is None


@pytest.mark.parametrize("round_", ROUNDS)
@pytest.mark.parametrize("loop", LOOPS)
def test_a_wrong_client_fails_the_awaited_join_at_the_first_wrong_byte(
    loop: str, round_: int
) -> None:
    _needs(loop)
    server = TcpServer(timeout=WAIT)
    try:
        _ping_pong(server)

        async def join() -> None:
            await server.join()

        async def client() -> None:
            await _client(loop, server.service_port, b"PONG\r\n", 0)

        async def main() -> None:
            await _both(loop, join, client)

        with pytest.raises(BaseException) as caught:
            _run(loop, main)
        failure = _first_leaf(caught.value)
        assert isinstance(failure, AssertionError), caught.value
        assert "first difference at byte offset 1" in str(failure)
    finally:
        server.stop()


@pytest.mark.parametrize("loop", LOOPS)
def test_expect_connect_times_out_in_an_awaited_join(loop: str) -> None:
    _needs(loop)
    server = TcpServer(timeout=0.3)
    try:
        server.expect_connect()

        async def main() -> None:
            await server.join()

        with pytest.raises(AssertionError, match=r"no client connected within 0\.3 s"):
            _run(loop, main)
    finally:
        server.stop()


@pytest.mark.parametrize("loop", LOOPS)
def test_join_in_a_coroutine_returns_at_once_and_unawaited_is_reported(loop: str) -> None:
    _needs(loop)
    server = TcpServer(timeout=WAIT)
    _ping_pong(server)

    async def main() -> None:
        pending = server.join()  # returns at once, in a coroutine: nothing waited for yet
        assert not pending.awaited and server.failure is None
        assert await _client(loop, server.service_port, b"PING\r\n", 6) == b"PONG\r\n"
        # ... and the test forgets `await pending`

    _run(loop, main)
    with pytest.raises(AssertionError) as caught:
        server.close(check=True)
    assert "tcpserver.join() was called in a coroutine but never awaited" in str(caught.value)


@pytest.mark.parametrize("loop", LOOPS)
def test_awaiting_a_server_returns_it(loop: str) -> None:
    _needs(loop)
    with TcpServer(timeout=WAIT) as server:
        async def main() -> TcpServer:
            return await server

        assert _run(loop, main) is server


# ---------------------------------------------------------------------------
# cancellation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_an_awaited_join_is_cancellable(loop: str) -> None:
    """A join whose step waits long for a silent client ends when the loop cancels it
    (a timeout of the test's own); the server then stops at once."""
    _needs(loop)
    server = TcpServer(timeout=60)
    try:
        server.expect_connect(timeout=60)

        async def main() -> bool:
            if loop == "asyncio":
                try:
                    await asyncio.wait_for(server.join(), 0.2)
                except asyncio.TimeoutError:
                    return True
                return False
            if loop == "trio":
                import trio

                with trio.move_on_after(0.2) as scope:
                    await server.join()
                return bool(scope.cancelled_caught)
            import anyio

            with anyio.move_on_after(0.2) as scope:
                await server.join()
            return bool(scope.cancelled_caught)

        assert _run(loop, main) is True
        assert server.failure is None  # cancelled, not failed: the step still waits
    finally:
        server.stop()
    assert server.failure is not None and server.failure.kind == "unfinished"


# ---------------------------------------------------------------------------
# the pytest fixtures under anyio's pytest plugin, on both backends
# ---------------------------------------------------------------------------

_ANYIO_TESTS = '''
import anyio
import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param


async def converse(tcpserver, request):
    async def join():
        await tcpserver.join()        # awaited first: the client must still run

    async def client():
        async with await anyio.connect_tcp("127.0.0.1", tcpserver.service_port) as tcp:
            await tcp.send(request)
            if request == b"PING\\r\\n":
                assert await tcp.receive(6) == b"PONG\\r\\n"

    async with anyio.create_task_group() as group:
        group.start_soon(join)
        group.start_soon(client)


def script(tcpserver):
    tcpserver.expect_connect()
    tcpserver.expect_bytes(b"PING\\r\\n")
    tcpserver.send_bytes(b"PONG\\r\\n")
    tcpserver.expect_disconnect()


@pytest.mark.anyio
@pytest.mark.parametrize("n", range(3))
async def test_right(tcpserver, n):
    script(tcpserver)
    await converse(tcpserver, b"PING\\r\\n")


@pytest.mark.anyio
@pytest.mark.parametrize("n", range(3))
async def test_wrong(tcpserver, n):
    script(tcpserver)
    await converse(tcpserver, b"PONG\\r\\n")
'''


def test_the_tcpserver_fixture_awaits_under_anyio_on_asyncio_and_trio(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("anyio", reason="pip install '.[test]' (anyio)")
    pytest.importorskip("trio", reason="pip install '.[test]' (trio)")
    # The child imports the embeddedserver this process imports (this tree, or the wheel).
    monkeypatch.setenv("PYTHONPATH", str(Path(embeddedserver.__file__).parent.parent))
    pytester.makeini("[pytest]\nembeddedserver_timeout = 10\n")
    pytester.makepyfile(test_anyio=_ANYIO_TESTS)
    # In a subprocess: trio keeps idle worker threads (its thread cache) for a while.
    result = pytester.runpytest_subprocess("-p", "no:hypothesispytest", "-p", "no:asyncio",
                                           "-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=6, failed=6)
    for backend in ("asyncio", "trio"):
        result.stdout.fnmatch_lines([f"*test_right*{backend}* PASSED*"])
        result.stdout.fnmatch_lines([f"*test_wrong*{backend}* FAILED*"])
    assert result.stdout.str().count("first difference at byte offset 1") >= 6
