"""The demo's own checks: a scenario that does not behave as designed makes
``run_demo`` return 1 naming why, and the drip scenario is slow by construction.

The whole demo (``--demo``, in-process and as ``python -m embeddedserver``) is run by
tests/test_cli.py.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Callable

import pytest

import embeddedserver.cli
import embeddedserver.demo
from embeddedserver import Expect
from embeddedserver.demo import run_demo

WAIT = 30.0


def _send(data: bytes) -> Callable[[int], str]:
    """A raw client for a scenario: send *data*, return the repr of what it reads to EOF."""

    def client(port: int) -> str:
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
            sock.sendall(data)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            return repr(b"".join(chunks))

    return client


def test_demo_exits_1_when_a_scenario_misbehaves(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = embeddedserver.demo._Scenario(
        "A server that is expected to hang but answers",
        "answer at once", ["hello"], "a raw socket", _send(b"x"),
        expect_error=TimeoutError,
    )
    monkeypatch.setattr(embeddedserver.demo, "_scenarios", lambda: [wrong])
    assert run_demo() == 1
    out = capsys.readouterr().out
    assert "-> NOT AS DESIGNED: expected the client to get TimeoutError, but it succeeded" in out
    assert "1 of 1 scenarios did NOT behave as designed:" in out


def test_demo_exits_1_when_the_server_records_an_unexpected_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = embeddedserver.demo._Scenario(
        "A client the server does not expect", "expect PING", [Expect(b"PING")],
        "a raw socket", _send(b"PONG"),
    )
    monkeypatch.setattr(embeddedserver.demo, "_scenarios", lambda: [wrong])
    assert run_demo() == 1
    assert "the server recorded 1 failure, expected 0" in capsys.readouterr().out


def test_drip_scenario_outlasts_the_client_timeout_by_construction() -> None:
    drip = embeddedserver.demo._DRIP
    pauses = math.ceil(len(drip.data) / drip.chunk) - 1
    assert pauses * drip.interval > embeddedserver.demo._DRIP_TIMEOUT
    assert drip.interval * 5 <= embeddedserver.demo._DRIP_TIMEOUT  # each gap far below it
