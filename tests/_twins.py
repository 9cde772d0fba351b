"""A wrong client and its correct twin against one script, alternating, in a loop: the
wrong one must fail with given words (and get nothing back), the twin must pass and get
the reply, every round, so a verdict is neither late nor random."""

from __future__ import annotations

import re
import socket

import pytest

from embeddedserver import CommandServer, Step

__all__ = ["CLIENT_TIMEOUT", "send_and_read", "wrong_then_right"]

CLIENT_TIMEOUT = 10.0


def send_and_read(server: CommandServer, data: bytes) -> bytes:
    """Send *data*, shut the write side, read to the server's close."""
    with socket.create_connection(server.address, timeout=CLIENT_TIMEOUT) as client:
        client.sendall(data)
        client.shutdown(socket.SHUT_WR)
        with client.makefile("rb") as reader:
            return reader.read()


def wrong_then_right(
    step: Step, reply: bytes, wrong: bytes, right: bytes, words: str, rounds: int,
) -> None:
    """Serve ``[step, reply]`` *rounds* times, the odd rounds to a client sending *wrong*
    (the verdict must fail with *words*; the server hangs up before *reply*), the even
    ones to its twin sending *right* (the verdict passes; the client gets *reply*)."""
    for round_ in range(rounds):
        is_wrong = round_ % 2 == 0
        server = CommandServer([step, reply], verbose=False)
        try:
            got = send_and_read(server, wrong if is_wrong else right)
            if is_wrong:
                assert got == b""  # the server hung up at the wrong byte
                with pytest.raises(AssertionError, match=re.escape(words)):
                    server.verdict()
            else:
                assert got == reply
                server.verdict()
        finally:
            server.stop()
