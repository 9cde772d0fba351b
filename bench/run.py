"""Benchmarks of embeddedserver against plain-socket baselines measured in the same run.

    python bench/run.py            # full run, prints the table (about two minutes)
    python bench/run.py --quick    # short run, same figures, fewer rounds
    python bench/run.py --json     # the result as JSON on stdout
    python bench/run.py --only start_stop exchange   # some figures only
    python bench/run.py --render result.json   # the table of a saved --json result

Model
-----
Each figure is a *job* (start and stop a server, serve one exchange, move 64 MiB...)
done two ways in the same process: by the library, with ``verbose=False``, and by a
*baseline*: the fastest plain Python sockets and threads can do the same job (blocking
sockets, ``recv_into`` straight into a preallocated buffer, ``sendall``, a listener shut
down to wake its ``accept``). Both ways share the client code. Rounds alternate library
and baseline, so a noisy neighbour slows both. A round yields one sample per operation
for durations and one sample for a rate; the table shows the median, p10 and p90 of the
samples, the ratio library/baseline of the medians, the target from issue 5 and PASS or
MISS.

Durations live here, never in the test suite. The figures are noisy on a loaded
machine: read the p10-p90 spread before trusting a ratio, and rerun when it is quiet.

Sections: helpers - baselines - figures - pytest overhead - table - main.
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib.util
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from embeddedserver import (  # noqa: E402  (the checkout's modules, not an installed copy)
    CommandServer,
    Expect,
    Receive,
    Send,
)

__all__ = ["FIGURES", "Figure", "main", "run_figures"]

MiB = 1024 * 1024
BIG = 64 * MiB
CHUNK = 256 * 1024
LOOPBACK = "127.0.0.1"
#: Every blocking client call in the benchmark gives up after this (a hang is a bug).
CLIENT_TIMEOUT = 30.0

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


@dataclass
class Figure:
    """One row of the table: samples for the library and the baseline, and the target.

    *kind* is 'time' (seconds, lower is better), 'bytes' (a size, lower is better), or
    the unit of a rate such as 'MiB/s' (higher is better). A ratio is shown only where it
    means something (*show_ratio*). *target* is checked against the ratio
    (``ratio_max``/``ratio_min``) or against the library's median (``absolute_max``).
    """

    key: str
    title: str
    kind: str
    target: str
    lib: list[float] = field(default_factory=list)
    base: list[float] = field(default_factory=list)
    ratio_max: float | None = None
    ratio_min: float | None = None
    absolute_max: float | None = None
    reference: bool = False
    show_ratio: bool = True
    note: str = ""

    def stats(self, samples: list[float]) -> dict[str, float] | None:
        if not samples:
            return None
        if len(samples) == 1:
            return {"median": samples[0], "p10": samples[0], "p90": samples[0]}
        cuts = statistics.quantiles(samples, n=10, method="inclusive")
        return {"median": statistics.median(samples), "p10": cuts[0], "p90": cuts[-1]}

    def ratio(self) -> float | None:
        lib, base = self.stats(self.lib), self.stats(self.base)
        if lib is None or base is None or base["median"] == 0:
            return None
        return lib["median"] / base["median"]

    def verdict(self) -> str:
        lib = self.stats(self.lib)
        if lib is None:
            return "n/a"
        if self.reference:
            return "-"
        if self.absolute_max is not None:
            return "PASS" if lib["median"] <= self.absolute_max else "MISS"
        ratio = self.ratio()
        if ratio is None:
            return "n/a"
        if self.ratio_max is not None and ratio > self.ratio_max:
            return "MISS"
        if self.ratio_min is not None and ratio < self.ratio_min:
            return "MISS"
        return "PASS"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            lib_stats=self.stats(self.lib), base_stats=self.stats(self.base),
            ratio=self.ratio(), verdict=self.verdict(),
        )
        return out


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], min(n - got, CHUNK))
        if not k:
            raise ConnectionError(f"EOF after {got} of {n} bytes")
        got += k
    return bytes(buf)


def _recv_into_all(sock: socket.socket, buf: bytearray) -> int:
    """Fill *buf* from *sock* in CHUNK reads (what a fast client does); return the count."""
    view = memoryview(buf)
    got, size = 0, len(buf)
    while got < size:
        k = sock.recv_into(view[got:], min(size - got, CHUNK))
        if not k:
            break
        got += k
    return got


def _client(port: int | None) -> socket.socket:
    assert port is not None, "the benchmark's servers listen on TCP"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(CLIENT_TIMEOUT)
    sock.connect((LOOPBACK, port))
    return sock


def _expect_eof(sock: socket.socket) -> None:
    if sock.recv(1) != b"":
        raise AssertionError("the server sent more than the script says")


def rss_bytes() -> int:
    """This process's resident set size (VmRSS), in bytes; 0 where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": f"{platform.system()} {platform.release()}",
        "loadavg": [round(x, 2) for x in load],
    }


# ---------------------------------------------------------------------------
# baselines: the fastest plain sockets + threads doing the same job
# ---------------------------------------------------------------------------


class PlainServer:
    """A listening socket and one accept thread running *handler* on each connection.

    ``stop()`` shuts the listener down, which wakes the blocked ``accept`` at once (Linux):
    no wake-up pipe, no poll, no timeout. With *threaded* each connection gets a thread.
    """

    def __init__(
        self, handler: Callable[[socket.socket], None], *, threaded: bool = False,
        backlog: int = 128,
    ) -> None:
        self.handler = handler
        self.threaded = threaded
        self.workers: list[threading.Thread] = []
        self.served = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(backlog)
        self.port: int = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.threaded:
                worker = threading.Thread(target=self._serve, args=(conn,), daemon=True)
                self.workers.append(worker)
                worker.start()
            else:
                self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            self.handler(conn)
        self.served += 1

    def stop(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(CLIENT_TIMEOUT)
        for worker in self.workers:
            worker.join(CLIENT_TIMEOUT)
        self.sock.close()


def _echo_handler(request: bytes, reply: bytes) -> Callable[[socket.socket], None]:
    def handler(conn: socket.socket) -> None:
        if _recv_exactly(conn, len(request)) == request:
            conn.sendall(reply)

    return handler


def _idle_handler(conn: socket.socket) -> None:
    pass


# ---------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------

#: Takes one round of measurements: one sample (a rate) or one per operation (a time).
Sampler = Callable[[], list[float]]


def _alternate(figure: Figure, rounds: int, lib: Sampler, base: Sampler) -> None:
    """Warm both up once, then run *rounds* rounds of each, alternating the order."""
    lib()
    base()
    for i in range(rounds):
        pair = [(figure.lib, lib), (figure.base, base)]
        if i % 2:
            pair.reverse()
        for samples, sampler in pair:
            gc.collect()
            samples.extend(sampler())


def _timed(op: Callable[[], None], count: int) -> list[float]:
    """Run *op* *count* times; the duration of each run."""
    clock = time.perf_counter
    out = []
    for _ in range(count):
        t0 = clock()
        op()
        out.append(clock() - t0)
    return out


def figure_start_stop(rounds: int, batch: int) -> Figure:
    fig = Figure(
        "start_stop", "fresh server start + stop, no client", "time", "<= 1.5x",
        ratio_max=1.5, note=f"one sample per server, {batch} per round",
    )
    script = [Expect(b"hello"), b"world"]

    def lib() -> list[float]:
        return _timed(lambda: CommandServer(script, verbose=False).stop(), batch)

    def base() -> list[float]:
        return _timed(lambda: PlainServer(_idle_handler).stop(), batch)

    _alternate(fig, rounds, lib, base)
    return fig


def figure_exchange(rounds: int, batch: int) -> Figure:
    fig = Figure(
        "exchange", "fresh server + one 5-byte exchange + stop", "time", "<= 1.3x",
        ratio_max=1.3,
        note=f"one sample per server, {batch} per round; the library in a with block "
        "(stop() and check())",
    )

    def talk(port: int | None) -> None:
        with _client(port) as sock:
            sock.sendall(b"hello")
            if _recv_exactly(sock, 5) != b"world":
                raise AssertionError("wrong reply")

    def lib_once() -> None:
        with CommandServer([Expect(b"hello"), b"world"], verbose=False) as server:
            talk(server.port)

    handler = _echo_handler(b"hello", b"world")

    def base_once() -> None:
        server = PlainServer(handler)
        talk(server.port)
        server.stop()

    def lib() -> list[float]:
        return _timed(lib_once, batch)

    def base() -> list[float]:
        return _timed(base_once, batch)

    _alternate(fig, rounds, lib, base)
    return fig


def figure_upload(rounds: int, as_bytes: bool = True) -> Figure:
    if as_bytes:
        fig = Figure(
            "upload", "client -> server 64 MiB, one read step", "MiB/s", ">= 0.8x throughput",
            ratio_min=0.8, note="baseline recv_into()s 256 KiB at a time straight "
            "into a preallocated 64 MiB buffer, then records it as bytes, as the library does",
        )
    else:
        fig = Figure(
            "upload_raw", "client -> server 64 MiB, baseline keeps a bytearray (reference)",
            "MiB/s", "reference", reference=True,
            note="the same library run against a baseline that stops once the data "
            "is in its preallocated bytearray: the physical limit, one memory pass fewer "
            "than any bytes record",
        )
    payload = os.urandom(BIG)

    def send(port: int | None) -> None:
        with _client(port) as sock:
            sock.sendall(payload)
            if _recv_exactly(sock, 1) != b"k":
                raise AssertionError("no acknowledgement")

    def lib() -> list[float]:
        with CommandServer([Receive(BIG), b"k"], verbose=False) as server:
            t0 = time.perf_counter()
            send(server.port)
            elapsed = time.perf_counter() - t0
            server.wait_for_connections(1, CLIENT_TIMEOUT)
        if server.received != [payload] or server.connections[0].received != payload:
            raise AssertionError("the 64 MiB upload was not recorded whole")
        return [BIG / MiB / elapsed]

    kept: list[bytes | bytearray] = []

    def handler(conn: socket.socket) -> None:
        buf = bytearray(BIG)
        got = _recv_into_all(conn, buf)
        record = bytes(buf) if as_bytes else buf
        if got == BIG:
            conn.sendall(b"k")
        kept.append(record)

    def base() -> list[float]:
        server = PlainServer(handler)
        t0 = time.perf_counter()
        send(server.port)
        elapsed = time.perf_counter() - t0
        server.stop()
        if kept.pop() != payload:
            raise AssertionError("the baseline lost bytes")
        return [BIG / MiB / elapsed]

    _alternate(fig, rounds, lib, base)
    return fig


def figure_download(rounds: int) -> Figure:
    fig = Figure(
        "download", "server -> client 64 MiB, one send step", "MiB/s", ">= 0.8x throughput",
        ratio_min=0.8, note="baseline sendall()s from a blocking socket",
    )
    payload = os.urandom(BIG)
    step = Send(payload)
    into = bytearray(BIG)

    def fetch(port: int | None) -> None:
        with _client(port) as sock:
            if _recv_into_all(sock, into) != BIG:
                raise AssertionError("short download")

    def lib() -> list[float]:
        with CommandServer([step], verbose=False) as server:
            t0 = time.perf_counter()
            fetch(server.port)
            elapsed = time.perf_counter() - t0
            server.wait_for_connections(1, CLIENT_TIMEOUT)
        if server.connections[0].sent != payload:
            raise AssertionError("the 64 MiB download was not recorded whole")
        return [BIG / MiB / elapsed]

    def handler(conn: socket.socket) -> None:
        conn.sendall(payload)

    def base() -> list[float]:
        server = PlainServer(handler)
        t0 = time.perf_counter()
        fetch(server.port)
        elapsed = time.perf_counter() - t0
        server.stop()
        return [BIG / MiB / elapsed]

    _alternate(fig, rounds, lib, base)
    if into != payload:
        raise AssertionError("the client received wrong bytes")
    return fig


def figure_sequential(rounds: int, batch: int) -> Figure:
    fig = Figure(
        "sequential", "sequential connections per second on one server", "conn/s",
        ">= 0.9x", ratio_min=0.9,
        note=f"each: connect, 4-byte request, 4-byte reply, close; "
        f"{batch} per sample",
    )

    def talk(port: int | None) -> None:
        for _ in range(batch):
            with _client(port) as sock:
                sock.sendall(b"ping")
                if _recv_exactly(sock, 4) != b"pong":
                    raise AssertionError("wrong reply")

    lib_server = CommandServer([Expect(b"ping"), b"pong"], verbose=False)
    base_server = PlainServer(_echo_handler(b"ping", b"pong"))

    def lib() -> list[float]:
        t0 = time.perf_counter()
        talk(lib_server.port)
        return [batch / (time.perf_counter() - t0)]

    def base() -> list[float]:
        t0 = time.perf_counter()
        talk(base_server.port)
        return [batch / (time.perf_counter() - t0)]

    try:
        _alternate(fig, rounds, lib, base)
        lib_server.wait_idle(CLIENT_TIMEOUT)
    finally:
        lib_server.stop()
        base_server.stop()
    lib_server.check()
    return fig


def figure_concurrent(rounds: int, clients: int) -> Figure:
    fig = Figure(
        "concurrent", f"{clients} concurrent clients on one server, concurrent mode",
        "clients/s", ">= 0.8x", ratio_min=0.8,
        note="all connect, then all send 5 bytes, then all read the reply "
        "and EOF; baseline is thread-per-connection; backlog 512 for both",
    )

    def crowd(port: int | None) -> None:
        socks = [_client(port) for _ in range(clients)]
        try:
            for sock in socks:
                sock.sendall(b"hello")
            for sock in socks:
                if _recv_exactly(sock, 5) != b"world":
                    raise AssertionError("wrong reply")
                _expect_eof(sock)
        finally:
            for sock in socks:
                sock.close()

    def lib() -> list[float]:
        server = CommandServer(
            [Expect(b"hello"), b"world"], verbose=False, concurrent=True, backlog=512
        )
        try:
            t0 = time.perf_counter()
            crowd(server.port)
            elapsed = time.perf_counter() - t0
            server.wait_for_connections(clients, CLIENT_TIMEOUT)
        finally:
            server.stop()
        server.check()
        return [clients / elapsed]

    handler = _echo_handler(b"hello", b"world")

    def base() -> list[float]:
        server = PlainServer(handler, threaded=True, backlog=512)
        t0 = time.perf_counter()
        crowd(server.port)
        elapsed = time.perf_counter() - t0
        server.stop()
        if server.served != clients:
            raise AssertionError(f"baseline served {server.served} of {clients}")
        return [clients / elapsed]

    _alternate(fig, rounds, lib, base)
    return fig


def figure_failure_latency(rounds: int, short: bool) -> Figure:
    expected = b"HELLO WORLD"
    wrong = b"HELLX" if short else b"HELLX WORLD"
    what = "fewer bytes than expected" if short else "as many bytes as expected"
    fig = Figure(
        "failure_short" if short else "failure_full",
        f"wrong bytes arriving -> failure recorded ({what})", "time", "<= 1 ms",
        absolute_max=1e-3,
        note="client send() to the failed connection being recorded and closed "
        "(wait_for_connections wakes on it: an upper bound); baseline: a plain server "
        "that compares and sets an Event",
    )

    def lib() -> list[float]:
        server = CommandServer([Expect(expected), b"never"], verbose=False)
        try:
            with _client(server.port) as sock:
                t0 = time.perf_counter()
                sock.send(wrong)
                server.wait_for_connections(1, CLIENT_TIMEOUT)
                elapsed = time.perf_counter() - t0
        finally:
            server.stop()
        if len(server.errors) != 1 or server.errors[0].offset != 4:
            raise AssertionError(f"wrong failure recorded: {server.errors!r}")
        return [elapsed]

    def base() -> list[float]:
        noticed = threading.Event()

        def handler(conn: socket.socket) -> None:
            got = conn.recv(CHUNK)
            if got != expected[: len(got)]:
                noticed.set()

        server = PlainServer(handler)
        with _client(server.port) as sock:
            t0 = time.perf_counter()
            sock.send(wrong)
            noticed.wait(CLIENT_TIMEOUT)
            elapsed = time.perf_counter() - t0
        server.stop()
        return [elapsed]

    _alternate(fig, rounds, lib, base)
    return fig


def figure_memory(count: int) -> Figure:
    fig = Figure(
        "memory", f"memory after {count:,} servers started and stopped", "bytes",
        "growth <= 5 MiB", absolute_max=5 * MiB, show_ratio=False,
        note="VmRSS growth; the 'baseline' column is the RSS before",
    )
    CommandServer([Expect(b"hello"), b"world"], verbose=False).stop()  # warm imports
    gc.collect()
    before = rss_bytes()
    for _ in range(count):
        CommandServer([Expect(b"hello"), b"world"], verbose=False).stop()
    gc.collect()
    fig.lib.append(float(rss_bytes() - before))
    fig.base.append(float(before))
    return fig


# ---------------------------------------------------------------------------
# pytest overhead: N tests using the tcpserver fixture vs N with a plain server
# ---------------------------------------------------------------------------

_FIXTURE_TEST = '''
import socket


def test_exchange_{n}(tcpserver):
    tcpserver.expect_connect()
    tcpserver.expect_bytes(b"hello")
    tcpserver.send_bytes(b"world")
    tcpserver.expect_disconnect()
    with socket.create_connection(("127.0.0.1", tcpserver.service_port), timeout=30) as s:
        s.sendall(b"hello")
        assert _recv_exactly(s, 5) == b"world"
    tcpserver.join()
'''

_COMMAND_SERVER_TEST = '''
def test_exchange_{n}(command_server):
    server = command_server([Expect(b"hello"), b"world", ExpectClose()], verbose=False)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(b"hello")
        assert _recv_exactly(s, 5) == b"world"
    server.wait_for_connections(1)
'''

_PLAIN_TEST = '''
def test_exchange_{n}():
    server = _PlainServer()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(b"hello")
        assert _recv_exactly(s, 5) == b"world"
    server.join()
'''

_COMMON = '''
import socket
import threading


from embeddedserver import Expect, ExpectClose


def _recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "EOF"
        data += chunk
    return data


class _PlainServer:
    """What a test writes by hand: listen, serve one exchange on a thread, expect EOF."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.error = None
        self.thread = threading.Thread(target=self._serve)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(30)
                if _recv_exactly(conn, 5) != b"hello":
                    raise AssertionError("wrong request")
                conn.sendall(b"world")
                if conn.recv(1) != b"":
                    raise AssertionError("the client did not close")
        except Exception as exc:
            self.error = exc
        finally:
            self.sock.close()

    def join(self):
        self.thread.join(30)
        assert not self.thread.is_alive()
        if self.error:
            raise self.error
'''


def _plugin_available() -> bool:
    return importlib.util.find_spec("pytest_embeddedserver") is not None


def _plugin_registered() -> bool:
    from importlib.metadata import entry_points

    return any(ep.value == "pytest_embeddedserver" for ep in entry_points(group="pytest11"))


_TIMING_CONFTEST = '''
import json
import os
import time

import pytest

_started = []
_tests = []


def pytest_sessionstart(session):
    _started.append(time.perf_counter())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    t0 = time.perf_counter()
    try:
        return (yield)
    finally:
        _tests.append(time.perf_counter() - t0)


def pytest_sessionfinish(session):
    with open(os.environ["EMBEDDEDSERVER_BENCH_SESSION"], "w") as out:
        json.dump({"session": time.perf_counter() - _started[0], "tests": _tests}, out)
'''


def _pytest_run(directory: Path, filename: str, extra: list[str]) -> tuple[float, float]:
    """Run one test file in a pytest subprocess: the seconds from pytest's session start
    to its end (collection and every test; not the interpreter and plugin start-up, the
    same for every file), and the median time of one test (its setup, call, teardown
    and reports: pytest_runtest_protocol)."""
    env = dict(os.environ)
    env["EMBEDDEDSERVER_BENCH_SESSION"] = str(directory / "session.json")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("PYTEST_ADDOPTS", None)
    # Let the warm-up run cache the assert-rewritten modules, as a developer's runs do:
    # else every run rewrites every test module again and the figure drowns in that noise.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # Plugins the tests do not use are left out: they only add start-up noise.
    cmd = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
        "-p", "no:xdist", "-p", "no:benchmark", "-p", "no:hypothesispytest", *extra, filename,
    ]
    done = subprocess.run(
        cmd, cwd=directory, env=env, capture_output=True, text=True, timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pytest failed on {filename}:\n{done.stdout[-3000:]}{done.stderr}")
    result = json.loads((directory / "session.json").read_text())
    return float(result["session"]), statistics.median(result["tests"])


_PYTEST_FILES = ("test_fixture.py", "test_plain.py", "test_empty.py")


@functools.cache
def _pytest_rounds(
    rounds: int, tests: int, fixture: str
) -> tuple[dict[str, tuple[float, float]], ...]:
    """Each round runs the three files (fixture, plain server, empty tests) in turn,
    alternating the order; one result per file and round (see ``_pytest_run``)."""
    extra = [] if _plugin_registered() else ["-p", "pytest_embeddedserver"]
    bodies = {
        "test_fixture.py": _FIXTURE_TEST if fixture == "tcpserver" else _COMMAND_SERVER_TEST,
        "test_plain.py": _PLAIN_TEST,
        "test_empty.py": "\n\ndef test_empty_{n}():\n    pass\n",
    }
    out = []
    with tempfile.TemporaryDirectory(prefix="embeddedserver-bench-") as tmp:
        directory = Path(tmp)
        header = textwrap.dedent(_COMMON)
        for name, body in bodies.items():
            (directory / name).write_text(header + "".join(body.format(n=n) for n in range(tests)))
        (directory / "pytest.ini").write_text("[pytest]\n")  # not this repo's config
        (directory / "conftest.py").write_text(_TIMING_CONFTEST)
        for name in _PYTEST_FILES:  # warm the file caches, cache the rewritten modules
            _pytest_run(directory, name, extra)
        for i in range(rounds):
            order = list(_PYTEST_FILES) if i % 2 == 0 else list(reversed(_PYTEST_FILES))
            out.append({name: _pytest_run(directory, name, extra) for name in order})
    return tuple(out)


def figure_pytest(
    rounds: int, tests: int, fixture: str = "tcpserver", session: bool = False
) -> Figure:
    if fixture == "tcpserver" and not session:
        fig = Figure(
            "pytest", "one pytest test using tcpserver (sync client): overhead per test",
            "time", "<= 0.5 ms", absolute_max=0.5e-3, show_ratio=False,
            note=f"median time of one of {tests} tcpserver tests - median time of one of "
            f"{tests} tests with a plain server written in the test, each file in its own "
            "pytest subprocess; a test's time is its setup, call, teardown and reports "
            "(pytest_runtest_protocol); the baseline column is what the plain-server test "
            "costs over an empty test",
        )
    elif fixture == "tcpserver":
        fig = Figure(
            "pytest_session",
            "one pytest test using tcpserver, whole session / N (reference)",
            "time", "reference", reference=True, show_ratio=False,
            note=f"the same runs timed from pytest's session start to its end: (time of the "
            f"{tests} tcpserver tests' file - time of the plain-server file) / {tests}; "
            "collection included, so noisier; the baseline column is the plain-server file "
            "minus the empty-test file, / N",
        )
    else:
        fig = Figure(
            "pytest_command_server",
            "one pytest test using command_server (the engine's CommandServer), reference",
            "time", "reference", reference=True, show_ratio=False,
            note="the same per-test measure with the command_server fixture (one "
            "CommandServer) instead of tcpserver",
        )
    if not _plugin_available():
        fig.note = "plugin not available (pytest_embeddedserver.py is missing)"
        return fig
    for result in _pytest_rounds(rounds, tests, fixture):
        (fix_wall, fix_test), (plain_wall, plain_test), (empty_wall, empty_test) = (
            result[name] for name in _PYTEST_FILES
        )
        if session:
            fig.lib.append((fix_wall - plain_wall) / tests)
            fig.base.append((plain_wall - empty_wall) / tests)
        else:
            fig.lib.append(fix_test - plain_test)
            fig.base.append(plain_test - empty_test)
    return fig


# ---------------------------------------------------------------------------
# table
# ---------------------------------------------------------------------------


def _show(value: float, kind: str) -> str:
    if kind == "time":
        if abs(value) < 1e-3:
            return f"{value * 1e6:.0f} us"
        return f"{value * 1e3:.2f} ms"
    if kind == "bytes":
        return f"{value / MiB:.2f} MiB"
    return f"{value:,.0f} {kind}"  # a rate: kind is its unit, e.g. "MiB/s"


def _cell(fig: Figure, samples: list[float]) -> str:
    stats = fig.stats(samples)
    if stats is None:
        return "-"
    head = _show(stats["median"], fig.kind)
    if len(samples) == 1:
        return head
    return f"{head} ({_show(stats['p10'], fig.kind)} .. {_show(stats['p90'], fig.kind)})"


def render_table(figures: list[Figure], info: dict[str, Any]) -> str:
    """The result as a Markdown table with the machine above it."""
    lines = [
        f"machine: {info['nproc']} cores, {info['cpu']}, {info['implementation']} "
        f"{info['python']}, {info['system']}; load average before {info['loadavg']}, "
        f"after {info.get('loadavg_after', '?')}",
        "",
        "| figure | library: median (p10 .. p90) | baseline: median (p10 .. p90) "
        "| library/baseline | target | result |",
        "|---|---|---|---|---|---|",
    ]
    for fig in figures:
        ratio = fig.ratio()
        shown = "-" if ratio is None or not fig.show_ratio else f"{ratio:.2f}x"
        if not fig.lib:
            lines.append(f"| {fig.title} | {fig.note} | - | - | {fig.target} | n/a |")
            continue
        lines.append(
            f"| {fig.title} | {_cell(fig, fig.lib)} | {_cell(fig, fig.base)} | {shown} "
            f"| {fig.target} | {fig.verdict()} |"
        )
    lines.append("")
    lines.extend(f"* {fig.title}: {fig.note}" for fig in figures if fig.lib and fig.note)
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

FIGURES = [
    "start_stop", "exchange", "pytest", "pytest_session", "pytest_command_server", "upload",
    "upload_raw",
    "download", "sequential", "concurrent", "failure_full", "failure_short", "memory",
]


def run_figures(
    names: list[str], quick: bool, progress: Callable[[str], None] = lambda s: None
) -> list[Figure]:
    """Measure the named figures (see ``FIGURES``), shorter runs with *quick*."""
    rounds = 5 if quick else 15
    makers: dict[str, Callable[[], Figure]] = {
        "start_stop": lambda: figure_start_stop(rounds, 100 if quick else 300),
        "exchange": lambda: figure_exchange(rounds, 50 if quick else 200),
        "pytest": lambda: figure_pytest(3 if quick else 7, 200 if quick else 500),
        "pytest_command_server": lambda: figure_pytest(
            3 if quick else 7, 200 if quick else 500, "command_server"
        ),
        "pytest_session": lambda: figure_pytest(
            3 if quick else 7, 200 if quick else 500, session=True
        ),
        "upload": lambda: figure_upload(rounds),
        "upload_raw": lambda: figure_upload(rounds, as_bytes=False),
        "download": lambda: figure_download(rounds),
        "sequential": lambda: figure_sequential(rounds, 200 if quick else 1000),
        "concurrent": lambda: figure_concurrent(rounds, 200),
        "failure_full": lambda: figure_failure_latency(rounds * 4, short=False),
        "failure_short": lambda: figure_failure_latency(rounds * 4, short=True),
        "memory": lambda: figure_memory(1000 if quick else 10_000),
    }
    figures = []
    # memory first: before the 64 MiB figures leave freed arenas that would hide growth
    for name in sorted(names, key=lambda n: n != "memory"):
        progress(f"measuring {name} ...")
        t0 = time.perf_counter()
        figures.append(makers[name]())
        progress(f"  done in {time.perf_counter() - t0:.1f} s")
    return sorted(figures, key=lambda f: FIGURES.index(f.key))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, smaller batches")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--only", nargs="+", choices=FIGURES, metavar="FIGURE",
                        help=f"measure only these: {', '.join(FIGURES)}")
    parser.add_argument("--render", metavar="FILE",
                        help="measure nothing: print the table of a saved --json result")
    args = parser.parse_args(argv)
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        fields = set(Figure.__dataclass_fields__)
        figures = [Figure(**{k: v for k, v in f.items() if k in fields}) for f in saved["figures"]]
        print(render_table(figures, saved["machine"]))
        return 0
    names = args.only or FIGURES

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    info = machine()
    figures = run_figures(names, args.quick, progress)
    info["loadavg_after"] = machine()["loadavg"]
    if args.json:
        json.dump(
            {"machine": info, "quick": args.quick, "figures": [f.as_dict() for f in figures]},
            sys.stdout, indent=2,
        )
        print()
    else:
        print(render_table(figures, info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
