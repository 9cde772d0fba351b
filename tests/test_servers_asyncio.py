"""AsyncioCommandServer: chunks fed into an asyncio.StreamReader on the loop, EOF at
the end of a connection (or at stop() if no connection ended), clear errors without a
loop, and no deprecation warnings.

Every test here turns warnings into errors, so a DeprecationWarning from asyncio
(no current event loop, a loop= argument) fails it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from embeddedserver import (
    RECEIVE,
    AsyncioCommandServer,
    Expect,
    ExpectClose,
    ReadLine,
    ReadUntilClose,
)

CLIENT_TIMEOUT = 10.0


@pytest.fixture(autouse=True)
def _warnings_are_errors() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


async def talk(port: int, data: bytes, *, half_close: bool = True) -> bytes:
    """An asyncio client: send *data*, optionally shut the write side, read to EOF."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port), CLIENT_TIMEOUT
    )
    try:
        writer.write(data)
        await writer.drain()
        if half_close:
            writer.write_eof()
        return await asyncio.wait_for(reader.read(), CLIENT_TIMEOUT)
    finally:
        writer.close()
        await writer.wait_closed()


# ---------------------------------------------------------------------------
# inside a running loop
# ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_reader_returns_what_the_client_sent() -> None:
    srvr = AsyncioCommandServer([RECEIVE, ReadUntilClose(), "thanks"], verbose=False)
    try:
        assert srvr.loop is asyncio.get_running_loop()
        assert await talk(srvr.port, b"hello asyncio") == b"thanks"
        got = await asyncio.wait_for(srvr.reader.read(), CLIENT_TIMEOUT)
    finally:
        srvr.stop()
    assert got == b"hello asyncio"
    assert got == b"".join(srvr.received)
    srvr.check()


@pytest.mark.asyncio
async def test_reader_can_be_read_line_by_line_while_the_connection_is_open() -> None:
    srvr = AsyncioCommandServer([ReadLine(), "1\n", ReadLine(), "2\n"], verbose=False)
    reader, writer = await asyncio.open_connection("127.0.0.1", srvr.port)
    try:
        writer.write(b"first\n")
        assert await asyncio.wait_for(srvr.reader.readline(), CLIENT_TIMEOUT) == b"first\n"
        assert await asyncio.wait_for(reader.readline(), CLIENT_TIMEOUT) == b"1\n"
        writer.write(b"second\n")
        assert await asyncio.wait_for(srvr.reader.readline(), CLIENT_TIMEOUT) == b"second\n"
        assert await asyncio.wait_for(reader.read(), CLIENT_TIMEOUT) == b"2\n"
        assert await asyncio.wait_for(srvr.reader.read(), CLIENT_TIMEOUT) == b""
    finally:
        writer.close()
        await writer.wait_closed()
        srvr.stop()
    srvr.check()


@pytest.mark.asyncio
async def test_the_issue_form_with_loop_and_reader_given() -> None:
    reader = asyncio.StreamReader()
    srvr = AsyncioCommandServer(
        [RECEIVE, "pong"], loop=asyncio.get_running_loop(), reader=reader, verbose=False
    )
    try:
        assert srvr.reader is reader
        assert await talk(srvr.port, b"ping") == b"pong"
        assert await asyncio.wait_for(reader.read(), CLIENT_TIMEOUT) == b"ping"
    finally:
        srvr.stop()
    srvr.check()


@pytest.mark.asyncio
async def test_eof_is_fed_once_even_after_an_empty_final_chunk(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="embeddedserver")
    srvr = AsyncioCommandServer([ReadLine(), ExpectClose()], verbose=False)
    try:
        assert await talk(srvr.port, b"only line\n") == b""
        assert await asyncio.wait_for(srvr.reader.read(), CLIENT_TIMEOUT) == b"only line\n"
        srvr.wait_for_connections(1)
    finally:
        srvr.stop()
    srvr.check()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.asyncio
async def test_a_failure_still_ends_the_reader_and_is_surfaced_by_check() -> None:
    srvr = AsyncioCommandServer([Expect(b"right")], verbose=False, timeout=600)
    try:
        await talk(srvr.port, b"wrong", half_close=False)
        assert await asyncio.wait_for(srvr.reader.read(), CLIENT_TIMEOUT) == b""
        srvr.wait_for_connections(1)
    finally:
        srvr.stop()
    with pytest.raises(AssertionError, match="wrong bytes at offset 0"):
        srvr.check()


@pytest.mark.asyncio
async def test_stop_with_a_connected_client_feeds_eof() -> None:
    srvr = AsyncioCommandServer([RECEIVE, "never"], verbose=False, timeout=600)
    reader, writer = await asyncio.open_connection("127.0.0.1", srvr.port)
    try:
        srvr.wait_for_connections(1, finished=False)
        srvr.stop()
        assert await asyncio.wait_for(srvr.reader.read(), CLIENT_TIMEOUT) == b""
        assert await asyncio.wait_for(reader.read(), CLIENT_TIMEOUT) == b""
    finally:
        writer.close()
        await writer.wait_closed()
    srvr.assert_failed("unfinished", step=0, timeout=0.1)  # the client never sent a byte
    srvr.check()


@pytest.mark.asyncio
async def test_stop_without_any_connection_feeds_eof() -> None:
    srvr = AsyncioCommandServer([RECEIVE, "never"], verbose=False, timeout=600,
                                expect_connections=0)
    waiting = asyncio.ensure_future(srvr.reader.read())  # a task already awaiting the end
    srvr.stop()
    assert await asyncio.wait_for(waiting, CLIENT_TIMEOUT) == b""
    assert await asyncio.wait_for(srvr.reader.read(), CLIENT_TIMEOUT) == b""
    srvr.stop()  # again: harmless, the reader is at EOF already
    assert srvr.connections == []
    srvr.check()


@pytest.mark.asyncio
async def test_async_context_manager_style_use() -> None:
    with AsyncioCommandServer("ok", verbose=False) as srvr:
        assert await talk(srvr.port, b"x") == b"ok"
        srvr.wait_for_connections(1)
    assert srvr.STOPPED


# ---------------------------------------------------------------------------
# outside a running loop
# ---------------------------------------------------------------------------


def test_without_a_loop_it_is_a_clear_runtime_error() -> None:
    with pytest.raises(RuntimeError, match=r"needs an event loop.*loop="):
        AsyncioCommandServer([RECEIVE, "x"], verbose=False)


def test_with_an_explicit_loop_from_synchronous_code() -> None:
    loop = asyncio.new_event_loop()
    try:
        srvr = AsyncioCommandServer([RECEIVE, "pong"], loop=loop, verbose=False)
        try:
            with socket.create_connection(("127.0.0.1", srvr.port), CLIENT_TIMEOUT) as sock:
                sock.sendall(b"ping")
                assert sock.makefile("rb").read() == b"pong"
            srvr.wait_for_connections(1)
        finally:
            srvr.stop()
        srvr.check()
        assert loop.run_until_complete(srvr.reader.read()) == b"ping"
    finally:
        loop.close()


def test_the_loop_of_a_given_reader_is_used() -> None:
    loop = asyncio.new_event_loop()
    try:
        reader = asyncio.StreamReader(loop=loop)
        srvr = AsyncioCommandServer("x", reader=reader, verbose=False)
        srvr.stop()
        assert srvr.loop is loop
    finally:
        loop.close()


def test_stop_with_a_closed_loop_and_no_connection_is_quiet() -> None:
    loop = asyncio.new_event_loop()
    srvr = AsyncioCommandServer([RECEIVE, "pong"], loop=loop, verbose=False,
                                expect_connections=0)
    loop.close()
    srvr.stop()  # EOF cannot be fed on a closed loop: nobody can be reading
    srvr.check()


def test_stop_feeds_eof_on_a_loop_that_runs_later() -> None:
    loop = asyncio.new_event_loop()
    try:
        srvr = AsyncioCommandServer([RECEIVE, "pong"], loop=loop, verbose=False)
        srvr.stop()
        assert loop.run_until_complete(asyncio.wait_for(srvr.reader.read(), CLIENT_TIMEOUT)) == b""
    finally:
        loop.close()


def test_a_closed_loop_does_not_break_the_server() -> None:
    loop = asyncio.new_event_loop()
    srvr = AsyncioCommandServer([RECEIVE, "pong"], loop=loop, verbose=False)
    loop.close()
    try:
        with socket.create_connection(("127.0.0.1", srvr.port), CLIENT_TIMEOUT) as sock:
            sock.sendall(b"ping")
            assert sock.makefile("rb").read() == b"pong"
        srvr.wait_for_connections(1)
    finally:
        srvr.stop()
    srvr.check()


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"loop": "not a loop"}, ["loop", "'not a loop'"]),
        ({"reader": "not a reader"}, ["reader", "StreamReader", "'not a reader'"]),
    ],
)
def test_bad_loop_or_reader_is_a_type_error(kwargs: dict[str, Any], words: list[str]) -> None:
    loop = asyncio.new_event_loop()
    try:
        kwargs.setdefault("loop", loop)
        with pytest.raises(TypeError) as info:
            AsyncioCommandServer("x", verbose=False, **kwargs)
        for word in words:
            assert word in str(info.value)
    finally:
        loop.close()


def test_asyncio_server_takes_the_common_arguments() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match="port"):
            AsyncioCommandServer("x", loop=loop, port=-1, verbose=False)
        with AsyncioCommandServer("x", loop=loop, host="localhost", verbose=False,
                                  expect_connections=0) as srvr:
            assert srvr.host == "localhost"
    finally:
        loop.close()
