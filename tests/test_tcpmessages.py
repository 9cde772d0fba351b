"""How a TcpServer failure is worded (embeddedserver._tcpmessages), without a socket: an engine
``Failure`` reworded for the call that added the step, and a client that left data unread.

The same messages, produced by real clients, are checked through pytester in
test_plugin.py; these tests feed the pure functions directly.

Sections: engine failures in tcpserver words - data left unread.
"""

from __future__ import annotations

from embeddedserver._tcpmessages import Planned, explain, unread_failure
from embeddedserver.record import Failure
from embeddedserver.steps import Expect, ExpectClose, Send


def _expect_bytes(data: bytes, timeout: float = 0.5) -> Planned:
    return Planned(f"expect_bytes({data!r})", "bytes", timeout, Expect(data, timeout=timeout))


def _expect_disconnect(timeout: float = 0.5) -> Planned:
    return Planned("expect_disconnect()", "disconnect", timeout, ExpectClose(timeout=timeout))


# ---------------------------------------------------------------------------
# engine failures in tcpserver words
# ---------------------------------------------------------------------------


def test_a_timeout_names_what_was_expected_and_what_arrived() -> None:
    failure = Failure("timeout", "engine words", received=b"pi", step_index=1)
    explained = explain(_expect_bytes(b"ping"), failure, (b"", False), 3)
    assert explained.summary == (
        "timed out after 0.5 s waiting for the client to send 4 bytes: only 2 bytes arrived"
    )
    assert explained.message().startswith("step 1 of 3: expect_bytes(b'ping'): timed out")


def test_a_mismatch_shows_the_differing_byte_of_the_planned_step() -> None:
    failure = Failure("mismatch", "engine words", step_index=1, received=b"pong", offset=1)
    message = explain(_expect_bytes(b"ping"), failure, (b"", False), 2).message()
    assert "wrong bytes from the client: first difference at byte offset 1" in message
    assert "expected b'i' (0x69), got b'o' (0x6f)" in message


def test_a_timeout_on_expect_disconnect_asks_whether_the_client_closed() -> None:
    explained = explain(_expect_disconnect(2), Failure("timeout", "x"), (b"", False), 2)
    assert explained.summary.startswith(
        "the client did not close the connection within 2 s: did the client close?"
    )


def test_a_reset_while_sending_says_the_server_was_sending() -> None:
    planned = Planned("send_bytes(b'x')", "send", 1.0, Send(b"x"))
    explained = explain(planned, Failure("reset", "x"), (b"", False), 2)
    assert explained.summary == (
        "the client reset the connection (ECONNRESET) while the server was sending"
    )


def test_a_failure_of_another_kind_keeps_the_engine_summary() -> None:
    explained = explain(_expect_bytes(b"a"), Failure("tls", "handshake broken"), (b"", False), 2)
    assert explained.summary == "handshake broken"
    assert explained.step.label == "expect_bytes(b'a')" and explained.script_length == 2


# ---------------------------------------------------------------------------
# data left unread
# ---------------------------------------------------------------------------


def test_a_reset_at_expect_disconnect_with_data_sent_is_reported_as_unread() -> None:
    failure = Failure("reset", "x", received=b"late", offset=0)
    explained = explain(_expect_disconnect(), failure, (b"pong", True), 4)
    assert explained.kind == "unread"
    assert explained.summary == (
        "the client closed the connection with 4 bytes the server sent still unread "
        "(its close arrived as a reset, ECONNRESET): b'pong'"
    )
    assert explained.received is None and explained.offset is None
    assert explained.script_length == 4


def test_unread_data_not_counted_exactly_is_what_was_sent_since_the_client_spoke() -> None:
    unread = unread_failure(Failure("unread", ""), b"pong", exact=False, reset=False)
    assert unread.summary == (
        "the client closed the connection while data the server sent was still unread; "
        "the bytes sent since the client last sent anything: b'pong' (4 bytes)"
    )
    assert unread.expected == "the client to read everything the server sent, then close"
