"""HTTP/1.1 clients for the tests of ``embeddedserver.strategies``: two with the bugs the
strategies must find, and the correct clients that must pass the same search.

* ``read_once`` takes one read for the whole reply (it ignores ``Content-Length``): a
  reply split in pieces, or cut short, comes back as a short body, as if it were right.
* ``retry_forever`` retries a reset connection without end: against a server that always
  resets it never returns.

``fetch`` (and ``fetch_async``) read the headers to the blank line, then exactly
``Content-Length`` bytes, and raise ``ValueError`` for a reply that is not HTTP or ends
early, ``TimeoutError`` (their socket timeout, ``CLIENT_TIMEOUT``) for a silent server.
``retry_three_times`` gives up after three resets.
"""

from __future__ import annotations

import asyncio
import socket
import time

REQUEST = b"GET /hello HTTP/1.1\r\nHost: test\r\n\r\n"
BODY = b"hello world"
#: Seconds a client waits for the server before it gives up: short, so that a hang costs
#: little per example, and far below the ``within=`` the tests give.
CLIENT_TIMEOUT = 0.3


def _body(head: bytes) -> int:
    """The Content-Length of a reply whose header block is *head*; ValueError if none."""
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1.1 200 "):
        raise ValueError(f"not an HTTP/1.1 200 status line: {lines[0][:40]!r}")
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() == b"content-length":
            if not value.strip().isdigit():
                raise ValueError(f"bad Content-Length: {value!r}")
            return int(value)
    raise ValueError("the reply has no Content-Length")


def read_once(address: tuple[str, int]) -> bytes:
    """BUG: one read is taken for the whole reply."""
    with socket.create_connection(address, timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(REQUEST)
        reply = sock.recv(65536)
    head, _, body = reply.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ValueError(f"not an HTTP/1.1 200 reply: {head[:40]!r}")
    return body


def fetch(address: tuple[str, int]) -> bytes:
    """Correct: the headers up to the blank line, then exactly Content-Length bytes."""
    with socket.create_connection(address, timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(REQUEST)
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                raise ValueError(f"the server closed inside the headers: {reply!r}")
            reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        length = _body(head)
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise ValueError(f"the server closed after {len(body)} of {length} bytes")
            body += chunk
    if len(body) > length:
        raise ValueError(f"{len(body) - length} bytes after the body")
    return body


def retry_forever(address: tuple[str, int]) -> bytes:
    """BUG: a reset is retried without end (10 ms apart, as a client's backoff might)."""
    while True:
        try:
            return fetch(address)
        except ConnectionResetError:
            time.sleep(0.01)


def retry_three_times(address: tuple[str, int]) -> bytes:
    """Correct: a reset is retried twice, then raised."""
    for attempt in range(3):
        try:
            return fetch(address)
        except ConnectionResetError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:  # a reset connection reports it here too
        pass


async def read_once_async(address: tuple[str, int]) -> bytes:
    """BUG, with asyncio streams: one read for the whole reply."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(*address), CLIENT_TIMEOUT)
    try:
        writer.write(REQUEST)
        reply = await asyncio.wait_for(reader.read(65536), CLIENT_TIMEOUT)
    finally:
        await _close(writer)
    head, _, body = reply.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ValueError(f"not an HTTP/1.1 200 reply: {head[:40]!r}")
    return body


async def fetch_async(address: tuple[str, int]) -> bytes:
    """Correct, with asyncio streams (``wait_for`` raises TimeoutError on 3.11+; on 3.10
    its asyncio.TimeoutError is re-raised as the built-in one)."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(*address), CLIENT_TIMEOUT)
        try:
            writer.write(REQUEST)
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CLIENT_TIMEOUT)
                body = await asyncio.wait_for(
                    reader.readexactly(_body(head[:-4])), CLIENT_TIMEOUT)
            except asyncio.IncompleteReadError as exc:
                raise ValueError(f"the server closed early, after {exc.partial!r}") from None
            except asyncio.LimitOverrunError as exc:
                raise ValueError("headers too long") from exc
        finally:
            await _close(writer)
    except asyncio.TimeoutError:
        raise TimeoutError("the server was silent") from None
    return body
