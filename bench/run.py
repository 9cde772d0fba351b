"""Benchmarks of embeddedserver against plain-socket baselines measured in the same run.

    python bench/run.py            # full run, prints the table (about two minutes)
    python bench/run.py --quick    # short run, same figures, fewer rounds
    python bench/run.py --json     # the result as JSON on stdout
    python bench/run.py --only start_stop exchange   # some figures only
    python bench/run.py --render result.json   # the table of a saved --json result
    python bench/run.py --cpu 1    # the whole run (pytest children too) on CPU 1 only

Model
-----
Each figure is a *job* (start and stop a server, serve one exchange, move 64 MiB...)
done two ways in the same process: by the library, with ``verbose=False``, and by a
*floor*: the least plain Python sockets and threads can do for the same job, sharing
none of the library's costs. Start + stop is held against a socket bound, listening and
closed plus a no-op thread started and joined; an exchange against a thread that blocks
in ``accept``, serves its one connection and ends; uploads against ``recv_into`` one
reused buffer (``upload_bytes`` shows the floor for a ``bytes`` record beside it);
downloads against ``sendall``; many connections against a blocking accept loop or a
thread per connection. Both ways share the client code. Rounds alternate library
and baseline, so a noisy neighbour slows both. A round yields one sample per operation
for durations and one sample for a rate; the table shows the median, p10 and p90 of the
samples, the ratio library/baseline of the medians, the target (issue 13) and PASS or MISS.

Durations live here, never in the test suite. The figures are noisy on a loaded
machine: read the p10-p90 spread before trusting a ratio, and rerun when it is quiet.
With ``--cpu N`` the process and its children run on one CPU: server and client then
take turns on one core, a figure measures CPU cost rather than cross-core wake-ups, and
it varies far less from run to run. Use it to compare two versions of the code.

Sections: helpers - baselines - figures - table - main. A row of the table (its samples,
statistics and verdict) is a ``Figure`` from figure.py; the pytest figures, which time
generated test files in pytest subprocesses, are in pytestoverhead.py.
"""

from __future__ import annotations

import argparse
import faulthandler
import functools
import gc
import json
import os
import platform
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The checkout's modules, not an installed copy; and this folder's, also when run.py is
# imported rather than run (Python puts bench/ on sys.path only for the script).
for _path in (ROOT, HERE):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from figure import Figure  # noqa: E402
from pytestoverhead import figure_pytest  # noqa: E402

from embeddedserver import (  # noqa: E402
    CommandServer,
    Expect,
    ReadFrame,
    ReadUntil,
    ReadUntilClose,
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
#: A whole run that takes longer than this has hung: main() dumps the stacks and exits.
WATCHDOG = 1800.0

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


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


def _client(port: int | None, timeout: float | None = CLIENT_TIMEOUT) -> socket.socket:
    """A connected client socket; *timeout* None: a plain blocking socket (the cheapest
    client, used where the figure is a few microseconds: the watchdog in ``main`` ends a
    run that hangs)."""
    assert port is not None, "the benchmark's servers listen on TCP"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if timeout is not None:
        sock.settimeout(timeout)
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
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": f"{platform.system()} {platform.release()}",
        "loadavg": [round(x, 2) for x in load],
        "cpus_allowed": allowed,
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


class OneConnectionServer:
    """The floor for a fresh server and one exchange: listen, then a thread that blocks in
    ``accept``, runs *handler* on the one connection, and ends; ``stop()`` joins it."""

    def __init__(self, handler: Callable[[socket.socket], None]) -> None:
        self.handler = handler
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(128)
        self.port: int = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            self.handler(conn)

    def stop(self) -> None:
        self.thread.join(CLIENT_TIMEOUT)
        self.sock.close()


def _noop() -> None:
    pass


def bare_start_stop() -> None:
    """The floor for start + stop of a server no client reaches: a listening socket made
    and closed, and a thread that does nothing started and joined."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))
    sock.listen(128)
    thread = threading.Thread(target=_noop, daemon=True)
    thread.start()
    thread.join()
    sock.close()


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
        "start_stop", "fresh server start + stop, no client", "time", "<= 1.2x",
        ratio_max=1.2,
        note=f"one sample per server, {batch} per round; floor: socket, bind, listen and "
        "close, plus a no-op thread started and joined",
    )
    script = [Expect(b"hello"), b"world"]

    def lib() -> list[float]:
        return _timed(lambda: CommandServer(script, verbose=False).stop(), batch)

    def base() -> list[float]:
        return _timed(bare_start_stop, batch)

    _alternate(fig, rounds, lib, base)
    return fig


def figure_exchange(rounds: int, batch: int) -> Figure:
    fig = Figure(
        "exchange", "fresh server + one 5-byte exchange + stop", "time", "<= 1.2x",
        ratio_max=1.2,
        note=f"one sample per server, {batch} per round; the library in a with block "
        "(the verdict: settle, stop and check()); floor: a thread server whose thread "
        "ends after its one connection; both clients block with no timeout",
    )

    def talk(port: int | None) -> None:
        with _client(port, None) as sock:
            sock.sendall(b"hello")
            if _recv_exactly(sock, 5) != b"world":
                raise AssertionError("wrong reply")

    script = [Expect(b"hello"), b"world"]

    def lib_once() -> None:
        with CommandServer(script, verbose=False) as server:
            talk(server.port)

    handler = _echo_handler(b"hello", b"world")

    def base_once() -> None:
        server = OneConnectionServer(handler)
        talk(server.port)
        server.stop()

    def lib() -> list[float]:
        return _timed(lib_once, batch)

    def base() -> list[float]:
        return _timed(base_once, batch)

    _alternate(fig, rounds, lib, base)
    return fig


def _floor_rate(
    handler: Callable[[socket.socket], None], client: Callable[[int | None], None]
) -> list[float]:
    """One 64 MiB sample of a floor: *client* against a one-connection server running
    *handler*, as MiB/s."""
    server = OneConnectionServer(handler)
    t0 = time.perf_counter()
    client(server.port)
    elapsed = time.perf_counter() - t0
    server.stop()
    return [BIG / MiB / elapsed]


#: The upload figures: the read step, what the client sends after the payload, and
#: whether it half-closes (ReadUntilClose).
_UPLOADS: dict[str, str] = {
    "upload_int": "int N",
    "upload_receive": "Receive(N)",
    "upload_frame": "ReadFrame()",
    "upload_until": 'ReadUntil(b"\\r\\n\\r\\n")',
    "upload_close": "ReadUntilClose()",
    "upload_expect": "Expect(payload)",
}


def _upload_payload() -> bytes:
    """64 MiB of random bytes with no CR in them, so that no CRLFCRLF ends it early."""
    return os.urandom(BIG).replace(b"\r", b"\n")


def figure_upload(rounds: int, key: str, payload: bytes) -> Figure:
    step_name = _UPLOADS[key]
    fig = Figure(
        key, f"client -> server 64 MiB, {step_name}", "MiB/s", ">= 0.75x throughput",
        ratio_min=0.75,
        note="floor: recv_into() 256 KiB at a time into one buffer reused every round "
        "(no record kept)",
    )
    data, step, half_close = payload, None, False
    if key == "upload_int":
        script: list[Any] = [BIG, b"k"]
    elif key == "upload_receive":
        script = [Receive(BIG), b"k"]
    elif key == "upload_frame":
        data = struct.pack(">I", BIG) + payload
        script = [ReadFrame(), b"k"]
    elif key == "upload_until":
        data = payload + b"\r\n\r\n"
        script = [ReadUntil(b"\r\n\r\n"), b"k"]
    elif key == "upload_close":
        half_close = True
        script = [ReadUntilClose(), b"k"]
    else:
        step = Expect(payload)
        script = [step, b"k"]
    total = len(data)

    def send(port: int | None) -> None:
        with _client(port) as sock:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
            if _recv_exactly(sock, 1) != b"k":
                raise AssertionError("no acknowledgement")

    def lib() -> list[float]:
        with CommandServer(script, verbose=False) as server:
            t0 = time.perf_counter()
            send(server.port)
            elapsed = time.perf_counter() - t0
            server.wait_for_connections(1, CLIENT_TIMEOUT)
        if server.connections[0].received != data:
            raise AssertionError(f"the 64 MiB upload ({step_name}) was not recorded whole")
        return [BIG / MiB / elapsed]

    reused = bytearray(total)

    def handler(conn: socket.socket) -> None:
        if _recv_into_all(conn, reused) == total:
            if half_close and conn.recv(1) != b"":
                return
            conn.sendall(b"k")

    _alternate(fig, rounds, lib, lambda: _floor_rate(handler, send))
    if reused != data:
        raise AssertionError("the baseline lost bytes")
    return fig


def figure_upload_bytes_floor(rounds: int, payload: bytes) -> Figure:
    fig = Figure(
        "upload_bytes", "client -> server 64 MiB, the floor for a bytes record (reference)",
        "MiB/s", "reference", reference=True,
        note="the 'library' column here is recv(N, MSG_WAITALL), one bytes object made "
        "in one piece (the least any read step that records bytes can do), against the "
        "same recv_into() floor",
    )

    def send(port: int | None) -> None:
        with _client(port) as sock:
            sock.sendall(payload)
            if _recv_exactly(sock, 1) != b"k":
                raise AssertionError("no acknowledgement")

    kept: list[bytes] = []

    def as_bytes(conn: socket.socket) -> None:
        record = conn.recv(BIG, socket.MSG_WAITALL)
        if len(record) == BIG:
            conn.sendall(b"k")
        kept[:] = [record]  # the last one only: a list of them would grow the heap

    reused = bytearray(BIG)

    def into(conn: socket.socket) -> None:
        if _recv_into_all(conn, reused) == BIG:
            conn.sendall(b"k")

    _alternate(fig, rounds, lambda: _floor_rate(as_bytes, send), lambda: _floor_rate(into, send))
    if kept[-1] != payload or reused != payload:
        raise AssertionError("a floor lost bytes")
    return fig


def figure_download(rounds: int) -> Figure:
    fig = Figure(
        "download", "server -> client 64 MiB, one send step", "MiB/s", ">= 0.95x throughput",
        ratio_min=0.95, note="floor: sendall() from a blocking socket",
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
        return _floor_rate(handler, fetch)

    _alternate(fig, rounds, lib, base)
    if into != payload:
        raise AssertionError("the client received wrong bytes")
    return fig


def figure_sequential(rounds: int, batch: int) -> Figure:
    fig = Figure(
        "sequential", "sequential connections per second on one server", "conn/s",
        ">= 0.9x", ratio_min=0.9,
        note=f"each: connect, 4-byte request, 4-byte reply, close; "
        f"{batch} per sample; floor: a blocking accept loop serving each in turn; "
        "both clients block with no timeout",
    )

    def talk(port: int | None) -> None:
        for _ in range(batch):
            with _client(port, None) as sock:
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
        "clients/s", ">= 0.9x", ratio_min=0.9,
        note="all connect, then all send 5 bytes, then all read the reply "
        "and EOF; floor: a thread per connection; backlog 512 for both",
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
        f"after {info.get('loadavg_after', '?')}"
        + (f"; pinned to CPU {info['cpu_pinned']}" if info.get("cpu_pinned") is not None else ""),
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
    "start_stop", "exchange", "pytest", "pytest_command_server", "pytest_session",
    *_UPLOADS, "upload_bytes", "download", "sequential", "concurrent", "failure_full",
    "failure_short", "memory",
]


def run_figures(
    names: list[str], quick: bool, progress: Callable[[str], None] = lambda s: None
) -> list[Figure]:
    """Measure the named figures (see ``FIGURES``), shorter runs with *quick*."""
    rounds = 5 if quick else 15
    payload = functools.cache(_upload_payload)
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
        **{key: functools.partial(lambda k: figure_upload(rounds, k, payload()), key)
           for key in _UPLOADS},
        "upload_bytes": lambda: figure_upload_bytes_floor(rounds, payload()),
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
    parser.add_argument("--cpu", type=int, metavar="N",
                        help="run on CPU N only (and the pytest subprocesses with it)")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        if not hasattr(os, "sched_setaffinity"):
            parser.error("--cpu needs os.sched_setaffinity (Linux)")
        try:
            os.sched_setaffinity(0, {args.cpu})
        except (OSError, ValueError) as exc:
            parser.error(f"--cpu {args.cpu}: {exc}")
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        fields = set(Figure.__dataclass_fields__)
        figures = [Figure(**{k: v for k, v in f.items() if k in fields}) for f in saved["figures"]]
        print(render_table(figures, saved["machine"]))
        return 0
    names = args.only or FIGURES
    # The clients of the figures measured in microseconds block with no timeout (the
    # cheapest client): a run that hangs is ended here, with every thread's stack.
    faulthandler.dump_traceback_later(WATCHDOG, exit=True)

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    info = machine()
    info["cpu_pinned"] = args.cpu
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
