"""FaultProxy: each fault seen from a real client, through the proxy, to a real echo
server started here. Timings are lower bounds with generous upper bounds."""

from __future__ import annotations

import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from embeddedserver import (
    Bandwidth,
    Blackhole,
    CommandServer,
    ConnectionRecord,
    Event,
    Expect,
    ExpectClose,
    Fault,
    FaultProxy,
    Latency,
    LimitData,
    LocalTLS,
    OnPattern,
    RecordingProxy,
    ResetPeer,
    Send,
    Slicer,
    SlowClose,
    Timeout,
)

CLIENT_TIMEOUT = 10.0
SLACK = 5.0  # the generous upper bound on any timing (a loaded 2-core VM)

# ---------------------------------------------------------------------------
# the real server: an echo server, and clients
# ---------------------------------------------------------------------------


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock = self.request
        try:
            while data := sock.recv(65536):
                sock.sendall(data)
        except OSError:
            pass  # reset through the proxy: the test looks at the client's side


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    server = _EchoServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield str(host), int(port)
    finally:
        server.shutdown()
        server.server_close()  # joins the handler threads
        thread.join(CLIENT_TIMEOUT)


@pytest.fixture
def proxy(echo: tuple[str, int]) -> Iterator[FaultProxy]:
    with FaultProxy(echo, seed=1) as faulty:
        yield faulty
        faulty.stop()


def connect(proxy: FaultProxy) -> socket.socket:
    return socket.create_connection(proxy.address, timeout=CLIENT_TIMEOUT)


def read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def round_trip(proxy: FaultProxy, payload: bytes = b"ping") -> tuple[bytes, float]:
    with connect(proxy) as client:
        start = time.monotonic()
        client.sendall(payload)
        data = read_exactly(client, len(payload))
        return data, time.monotonic() - start


# ---------------------------------------------------------------------------
# forwarding and recording
# ---------------------------------------------------------------------------


def test_without_faults_the_proxy_forwards_and_records(proxy: FaultProxy) -> None:
    assert round_trip(proxy)[0] == b"ping"
    proxy.wait_idle()
    record = proxy.connections[0]
    assert record.received == b"ping"
    assert record.sent == b"ping"
    assert "seed=1" in repr(proxy)


def test_the_proxy_forwards_to_a_command_server() -> None:
    with CommandServer([Expect(b"hello"), Send(b"world")], verbose=False) as real:
        with FaultProxy(real.address, seed=3) as proxy:
            proxy.add(Latency(0.05), "upstream")
            with connect(proxy) as client:
                client.sendall(b"hello")
                assert read_exactly(client, 5) == b"world"


# ---------------------------------------------------------------------------
# each fault
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["upstream", "downstream"])
def test_latency_delays_the_bytes_in_its_direction(proxy: FaultProxy, direction: str) -> None:
    proxy.add(Latency(0.2), direction)  # type: ignore[arg-type]
    data, elapsed = round_trip(proxy)
    assert data == b"ping"
    assert 0.2 <= elapsed < 0.2 + SLACK


def test_latency_with_jitter_stays_within_its_range(proxy: FaultProxy) -> None:
    proxy.add(Latency(0.15, jitter=0.05), "downstream")
    data, elapsed = round_trip(proxy)
    assert data == b"ping"
    assert 0.1 <= elapsed < 0.2 + SLACK


def test_bandwidth_limits_the_bytes_per_second(proxy: FaultProxy) -> None:
    proxy.add(Bandwidth(100_000), "downstream")
    payload = bytes(range(256)) * 100  # 25,600 bytes: at least 0.256 s
    data, elapsed = round_trip(proxy, payload)
    assert data == payload
    assert 0.25 <= elapsed < 0.26 + SLACK


def test_slicer_splits_the_bytes_into_small_spaced_writes(proxy: FaultProxy) -> None:
    proxy.add(Slicer(average=4, variation=2, delay=0.01), "downstream")
    payload = b"0123456789abcdef" * 4
    with connect(proxy) as client:
        client.sendall(payload)
        chunks: list[bytes] = []
        while sum(len(c) for c in chunks) < len(payload):
            chunks.append(client.recv(65536))
            assert chunks[-1], "EOF before the whole payload"
    assert b"".join(chunks) == payload
    assert len(chunks) > 1  # 16 writes ~5 ms apart: some arrive separately


def test_limit_data_closes_after_that_many_bytes(proxy: FaultProxy) -> None:
    proxy.add(LimitData(10), "downstream")
    with connect(proxy) as client:
        client.sendall(b"x" * 100)
        assert read_exactly(client, 100) == b"x" * 10  # then EOF
        assert client.recv(100) == b""


def test_limit_data_upstream_counts_what_the_client_sends() -> None:
    with CommandServer([Expect(b"abc"), ExpectClose()], verbose=False) as real:
        with FaultProxy(real.address, seed=1) as proxy:
            proxy.add(LimitData(3), "upstream")
            with connect(proxy) as client:
                client.sendall(b"abcdef")
                assert client.recv(10) == b""  # closed once 3 bytes passed
            proxy.wait_idle()
            assert proxy.connections[0].ended == "fault: close"


def test_timeout_holds_the_bytes_with_the_socket_open_until_removed(
    proxy: FaultProxy,
) -> None:
    handle = proxy.add(Timeout(), "downstream")
    with connect(proxy) as client:
        client.sendall(b"ping")
        client.settimeout(0.3)
        with pytest.raises(socket.timeout):
            client.recv(10)  # nothing within the window
        client.sendall(b"pong")  # still open
        client.settimeout(CLIENT_TIMEOUT)
        handle.remove()
        assert read_exactly(client, 8) == b"pingpong"  # what was held goes on
    assert handle.removed and not proxy.faults


def test_timeout_with_close_after_closes_the_connection(proxy: FaultProxy) -> None:
    proxy.add(Timeout(close_after=0.2), "upstream")
    with connect(proxy) as client:
        start = time.monotonic()
        client.sendall(b"ping")
        assert client.recv(10) == b""
        assert 0.2 <= time.monotonic() - start < 0.2 + SLACK


def test_reset_peer_at_once(proxy: FaultProxy) -> None:
    proxy.add(ResetPeer(), "upstream")
    with pytest.raises(ConnectionResetError), connect(proxy) as client:
        client.recv(10)  # (a reset that quick may even fail the connect)


def test_reset_peer_after_a_delay(proxy: FaultProxy) -> None:
    proxy.add(ResetPeer(after=0.2), "downstream")
    with connect(proxy) as client:
        start = time.monotonic()
        with pytest.raises(ConnectionResetError):
            client.sendall(b"ping")
            assert read_exactly(client, 4) == b"ping"  # works until the reset
            client.recv(10)
        assert 0.2 <= time.monotonic() - start < 0.2 + SLACK


def test_reset_peer_after_some_bytes(proxy: FaultProxy) -> None:
    proxy.add(ResetPeer(after_bytes=5), "downstream")
    got = b""
    with connect(proxy) as client, pytest.raises(ConnectionResetError):
        client.sendall(b"0123456789")
        while chunk := client.recv(100):
            got += chunk
    assert b"0123456789".startswith(got) and len(got) <= 5
    proxy.wait_idle()
    assert proxy.connections[0].ended == "fault: reset"


def test_slow_close_delays_the_fin(proxy: FaultProxy) -> None:
    proxy.add(SlowClose(0.3), "downstream")
    with connect(proxy) as client:
        client.sendall(b"hi")
        client.shutdown(socket.SHUT_WR)  # the echo server closes in turn
        start = time.monotonic()
        assert read_exactly(client, 2) == b"hi"
        assert client.recv(10) == b""
        assert 0.25 <= time.monotonic() - start < 0.3 + SLACK


def test_blackhole_downstream_drops_the_replies_while_upstream_works() -> None:
    with CommandServer([Expect(b"ping"), Send(b"pong")], verbose=False) as real:
        with FaultProxy(real.address, seed=1) as proxy:
            proxy.add(Blackhole(), "downstream")
            with connect(proxy) as client:
                client.sendall(b"ping")  # the server's verdict: it heard this
                client.settimeout(0.3)
                with pytest.raises(socket.timeout):
                    client.recv(10)  # and its answer (and its FIN) never came


def test_blackhole_upstream_keeps_the_server_from_hearing(proxy: FaultProxy) -> None:
    proxy.add(Blackhole(), "upstream")
    with connect(proxy) as client:
        client.sendall(b"ping")
        client.settimeout(0.3)
        with pytest.raises(socket.timeout):
            client.recv(10)
        proxy.stop()  # the connection is held open (the EOF is dropped too)
    assert proxy.connections[0].sent == b""  # the echo server heard nothing


def test_on_pattern_resets_when_the_client_sends_it(proxy: FaultProxy) -> None:
    proxy.add(OnPattern(b"QUIT"), "upstream")
    with connect(proxy) as client:
        client.sendall(b"GET a\r\n")
        assert read_exactly(client, 7) == b"GET a\r\n"  # no match yet: forwarded
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            client.sendall(b"QUIT\r\n")
            client.recv(100)
    proxy.wait_idle()
    assert proxy.connections[0].ended == "fault: reset"


def test_on_pattern_matches_across_reads_and_closes_after_it(proxy: FaultProxy) -> None:
    proxy.add(OnPattern(b"STOP", "close"), "downstream")
    with connect(proxy) as client:
        client.sendall(b"xxST")
        assert read_exactly(client, 4) == b"xxST"  # the proxy has read the first half
        client.sendall(b"OPyy")
        assert read_exactly(client, 10) == b"OP"  # through the pattern, then EOF
        assert client.recv(10) == b""


def test_on_pattern_delays_what_follows(proxy: FaultProxy) -> None:
    proxy.add(OnPattern(b"|", "delay", delay=0.2), "downstream")
    with connect(proxy) as client:
        start = time.monotonic()
        client.sendall(b"ab|cd")
        assert read_exactly(client, 3) == b"ab|"  # through the pattern: not held
        assert read_exactly(client, 2) == b"cd"
        assert 0.2 <= time.monotonic() - start < 0.2 + SLACK
        client.sendall(b"ef")  # once only: later bytes go at once (after the queue)
        assert read_exactly(client, 2) == b"ef"


# ---------------------------------------------------------------------------
# which connections: scope, toxicity, the seed
# ---------------------------------------------------------------------------


def test_the_first_connection_is_reset_and_the_second_works(proxy: FaultProxy) -> None:
    proxy.add(ResetPeer(after_bytes=0), "downstream", connections=1)
    with pytest.raises(ConnectionResetError), connect(proxy) as first:
        first.sendall(b"ping")
        first.recv(10)
    assert round_trip(proxy)[0] == b"ping"


def test_a_range_of_connections(proxy: FaultProxy) -> None:
    handle = proxy.add(Blackhole(), connections=range(2, 4))
    assert [handle.applies_to(n) for n in range(1, 6)] == [False, True, True, False, False]


def test_one_seed_makes_the_same_decisions(echo: tuple[str, int]) -> None:
    with FaultProxy(echo, seed=42) as one, FaultProxy(echo, seed=42) as two, \
            FaultProxy(echo, seed=43) as other:
        handles = [p.add(ResetPeer(after_bytes=0), toxicity=0.5) for p in (one, two, other)]
        decisions = [[h.applies_to(n) for n in range(1, 41)] for h in handles]
        assert decisions[0] == decisions[1]
        assert decisions[0] != decisions[2]
        assert True in decisions[0] and False in decisions[0]
        # And the proxy acts on them: connections 1..6, reset where drawn.
        for number in range(1, 7):
            try:
                with connect(one) as client:
                    client.sendall(b"ping")
                    outcome = read_exactly(client, 4) == b"ping"
            except (ConnectionResetError, BrokenPipeError):  # also in connect(), sendall()
                outcome = False
            assert outcome is not decisions[0][number - 1], number


def test_toxicity_zero_and_one(proxy: FaultProxy) -> None:
    never = proxy.add(Blackhole(), toxicity=0)
    always = proxy.add(Latency(0), toxicity=1)
    assert not any(never.applies_to(n) for n in range(1, 50))
    assert all(always.applies_to(n) for n in range(1, 50))
    assert round_trip(proxy)[0] == b"ping"


# ---------------------------------------------------------------------------
# changing faults while the test runs
# ---------------------------------------------------------------------------


def test_a_live_fault_meets_the_open_connection_and_goes_away(proxy: FaultProxy) -> None:
    with connect(proxy) as client:
        client.sendall(b"one")
        assert read_exactly(client, 3) == b"one"
        handle = proxy.add(Blackhole(), "downstream", live=True)
        client.sendall(b"two")
        client.settimeout(0.3)
        with pytest.raises(socket.timeout):
            client.recv(10)
        handle.remove()
        handle.remove()  # twice is harmless
        client.settimeout(CLIENT_TIMEOUT)
        client.sendall(b"three")
        assert read_exactly(client, 5) == b"three"


def test_a_fault_added_not_live_waits_for_the_next_connection(proxy: FaultProxy) -> None:
    with connect(proxy) as client:
        client.sendall(b"one")
        assert read_exactly(client, 3) == b"one"
        proxy.add(ResetPeer(), "downstream")
        client.sendall(b"two")
        assert read_exactly(client, 3) == b"two"  # the open connection is untouched
    with pytest.raises(ConnectionResetError), connect(proxy) as late:
        late.recv(10)


def test_change_swaps_the_fault_at_once(proxy: FaultProxy) -> None:
    handle = proxy.add(Timeout(), "downstream")
    with connect(proxy) as client:
        client.sendall(b"ping")
        client.settimeout(0.2)
        with pytest.raises(socket.timeout):
            client.recv(10)
        client.settimeout(CLIENT_TIMEOUT)
        handle.change(Latency(0.01))
        assert read_exactly(client, 4) == b"ping"
    assert handle.fault == Latency(0.01)


# ---------------------------------------------------------------------------
# stop() in every fault
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [
    Latency(60), Bandwidth(1), Slicer(1, 0, 30), Timeout(), Blackhole(), SlowClose(60),
    ResetPeer(after=60), LimitData(1_000_000),
], ids=repr)
@pytest.mark.parametrize("direction", ["upstream", "downstream"])
def test_stop_is_prompt_in_every_fault(
    echo: tuple[str, int], fault: Fault, direction: str
) -> None:
    proxy = FaultProxy(echo, seed=5)
    try:
        proxy.add(fault, direction)  # type: ignore[arg-type]
        with connect(proxy) as client:
            client.sendall(b"ping" * 10)
            client.shutdown(socket.SHUT_WR)
            proxy.wait_for_connections(1, finished=False)
            start = time.monotonic()
            proxy.stop()
            assert time.monotonic() - start < 2.0
    finally:
        proxy.stop()
    proxy.check()


# ---------------------------------------------------------------------------
# bad arguments
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("make", "error", "words"), [
    (lambda: Latency(-1), ValueError, "Latency delay"),
    (lambda: Latency("1"),  # type: ignore[arg-type]
     TypeError, "Latency delay"),
    (lambda: Bandwidth(0), ValueError, "bytes per second"),
    (lambda: Slicer(4, 4), ValueError, "less than average"),
    (lambda: Slicer(0), ValueError, "Slicer average"),
    (lambda: LimitData(-1), ValueError, "LimitData limit"),
    (lambda: LimitData(1.5),  # type: ignore[arg-type]
     TypeError, "LimitData limit"),
    (lambda: ResetPeer(after=-1), ValueError, "ResetPeer after"),
    (lambda: OnPattern(b""), ValueError, "must not be empty"),
    (lambda: OnPattern("x"),  # type: ignore[arg-type]
     TypeError, "pattern must be bytes"),
    (lambda: OnPattern(b"x", "explode"),  # type: ignore[arg-type]
     ValueError, "one of 'reset', 'close', 'delay'"),
    (lambda: OnPattern(b"x", delay=1), ValueError, "for action 'delay'"),
    (lambda: SlowClose(None),  # type: ignore[arg-type]
     TypeError, "SlowClose delay"),
])
def test_bad_fault_arguments(make: object, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        make()  # type: ignore[operator]


def test_bad_add_arguments(proxy: FaultProxy) -> None:
    with pytest.raises(TypeError, match="fault must be one of Latency"):
        proxy.add("latency")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"direction must be 'upstream'.*'sideways'"):
        proxy.add(Blackhole(), "sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"toxicity must be a probability.*1.5"):
        proxy.add(Blackhole(), toxicity=1.5)
    with pytest.raises(TypeError, match="toxicity"):
        proxy.add(Blackhole(), toxicity="half")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="connection number"):
        proxy.add(Blackhole(), connections=0)
    with pytest.raises(TypeError, match="connections must be"):
        proxy.add(Blackhole(), connections="1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="live"):
        proxy.add(Blackhole(), live="yes")  # type: ignore[arg-type]
    assert not proxy.faults


def test_bad_seed(echo: tuple[str, int]) -> None:
    with pytest.raises(TypeError, match=r"seed must be .* None \(pick one\), not 1\.5"):
        FaultProxy(echo, seed=1.5)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# the module's example, and a Unix-socket upstream
# ---------------------------------------------------------------------------


def test_the_module_docstring_example_runs() -> None:
    import doctest

    import embeddedserver.faults

    result = doctest.testmod(embeddedserver.faults)
    assert result.attempted and not result.failed


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix-domain sockets")
def test_a_unix_socket_upstream(tmp_path: Path) -> None:
    where = str(tmp_path / "real.sock")
    with CommandServer([Expect(b"ping"), Send(b"pong")], path=where, verbose=False):
        with FaultProxy(where, seed=2) as proxy:
            proxy.add(Latency(0.05), "downstream")
            with connect(proxy) as client:
                start = time.monotonic()
                client.sendall(b"ping")
                assert read_exactly(client, 4) == b"pong"
                assert time.monotonic() - start >= 0.05


# ---------------------------------------------------------------------------
# TLS passes through untouched; the live event hook
# ---------------------------------------------------------------------------


def _tls_ping(tls: LocalTLS, proxy: FaultProxy) -> bytes:
    with connect(proxy) as raw, tls.client_context.wrap_socket(
        raw, server_hostname="localhost"
    ) as client:
        client.sendall(b"ping")
        return read_exactly(client, 4)


def test_tls_passes_through_sliced_and_delayed() -> None:
    with LocalTLS() as tls:
        for seed in range(3):
            script = [Expect(b"ping"), Send(b"pong")]
            with CommandServer(script, verbose=False, ssl_context=tls.server_context) as real:
                with FaultProxy(real.address, seed=seed) as proxy:
                    for direction in ("upstream", "downstream"):
                        proxy.add(Slicer(3, 2), direction)  # type: ignore[arg-type]
                        proxy.add(Latency(0.01, 0.005), direction)  # type: ignore[arg-type]
                    assert _tls_ping(tls, proxy) == b"pong"
                    proxy.wait_idle(CLIENT_TIMEOUT)
                real.wait_for_connections(1, CLIENT_TIMEOUT)
            assert real.received == [b"ping"]


def test_a_reset_during_the_tls_handshake_fails_the_client() -> None:
    with LocalTLS() as tls:
        real = CommandServer([Expect(b"ping"), Send(b"pong")], verbose=False,
                             ssl_context=tls.server_context)
        try:
            with FaultProxy(real.address, seed=1) as proxy:
                proxy.add(ResetPeer(after_bytes=100), "downstream")  # inside the ServerHello
                with pytest.raises((ConnectionResetError, ssl.SSLError)):
                    _tls_ping(tls, proxy)
                proxy.wait_idle(CLIENT_TIMEOUT)
            real.wait_for_connections(1, CLIENT_TIMEOUT)
        finally:
            real.stop()
    assert len(proxy.connections[0].sent) >= 100  # the proxy read more than it passed on
    # The real server saw the reset too, and says so.
    assert "reset the connection during the TLS handshake" in real.failure_report()


def test_on_event_sees_every_event_of_each_connection(echo: tuple[str, int]) -> None:
    seen: list[tuple[int, str, bytes]] = []
    lock = threading.Lock()

    def listen(record: ConnectionRecord, event: Event) -> None:
        with lock:
            seen.append((record.number, event.kind, event.data))

    with FaultProxy(echo, seed=3, on_event=listen) as proxy:
        assert round_trip(proxy)[0] == b"ping"
        proxy.wait_idle(CLIENT_TIMEOUT)
        events = [(1, event.kind, event.data) for event in proxy.connections[0].events]
    assert seen == events
    assert (1, "recv", b"ping") in seen


@pytest.mark.parametrize("cls", [FaultProxy, RecordingProxy])
def test_on_event_must_be_callable(echo: tuple[str, int], cls: type[RecordingProxy]) -> None:
    with pytest.raises(TypeError, match=r"on_event must be a callable\(record, event\) or "
                       r"None, not 'print'"):
        cls(echo, on_event="print")  # type: ignore[arg-type]
