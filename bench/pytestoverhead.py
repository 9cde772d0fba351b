"""The pytest figures: what a test using the ``tcpserver`` fixture costs over one that
writes its own plain server.

    python bench/run.py --only pytest pytest_session pytest_command_server

Model
-----
Three test files are generated with N tests each: one using ``tcpserver`` (or
``command_server``) with a plain socket client, one with the same client against a
hand-written fixture (a thread server made per test, joined and checked at teardown: the
floor), one of empty tests. Each file runs in its own pytest subprocess, with
this checkout on ``PYTHONPATH`` and a conftest whose ``pytest_runtest_protocol`` hook times
every test (setup, call, teardown and reports) and the whole session. A warm-up run of each
file caches the assert-rewritten modules; rounds then alternate the order of the files.
The figure is the median fixture test against the median hand-written-fixture test (their
ratio, each test's whole cost in pytest); the empty test's median is in the note. The
session figure compares whole sessions divided by N instead (collection included, so
noisier).

The rounds are cached, so the per-test and the session figure share their subprocesses.
Imported by ``run.py``, which puts ``bench/`` on ``sys.path``.

Sections: generated test files - running pytest - the figures.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from figure import Figure

__all__ = ["figure_pytest"]

#: The checkout: the generated tests import its modules, not an installed copy.
ROOT = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------
# generated test files: tcpserver, command_server, a plain server, empty tests
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
def test_exchange_{n}(plain_server):
    with socket.create_connection(("127.0.0.1", plain_server.port), timeout=30) as s:
        s.sendall(b"hello")
        assert _recv_exactly(s, 5) == b"world"
'''

_COMMON = '''
import socket
import threading

import pytest

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


@pytest.fixture
def plain_server():
    """The hand-written fixture: a fresh server per test, joined and checked at teardown."""
    server = _PlainServer()
    yield server
    server.join()
'''


# ---------------------------------------------------------------------------
# running pytest: the plugin, a timing conftest, one subprocess per file
# ---------------------------------------------------------------------------


def _plugin_available() -> bool:
    return importlib.util.find_spec("embeddedserver.plugin") is not None


def _plugin_registered() -> bool:
    from importlib.metadata import entry_points

    return any(ep.value == "embeddedserver.plugin" for ep in entry_points(group="pytest11"))


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
    extra = [] if _plugin_registered() else ["-p", "embeddedserver.plugin"]
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


# ---------------------------------------------------------------------------
# the figures: overhead per test, whole session, command_server
# ---------------------------------------------------------------------------


def figure_pytest(
    rounds: int, tests: int, fixture: str = "tcpserver", session: bool = False
) -> Figure:
    if not session:
        fig = Figure(
            "pytest" if fixture == "tcpserver" else "pytest_command_server",
            f"one pytest test using {fixture} (sync client, 5-byte exchange)",
            "time", "<= 1.15x", ratio_max=1.15,
            note=f"median time of one of {tests} {fixture} tests against one of {tests} "
            "tests using a hand-written thread-server fixture, each file in its own pytest "
            "subprocess; a test's time is its setup, call, teardown and reports "
            "(pytest_runtest_protocol)",
        )
    else:
        fig = Figure(
            "pytest_session",
            "one pytest test using tcpserver, whole session / N (reference)",
            "time", "reference", reference=True,
            note=f"the same runs timed from pytest's session start to its end, divided by "
            f"{tests}: the tcpserver file against the hand-written-fixture file (collection "
            "included, so noisier)",
        )
    if not _plugin_available():
        fig.note = "plugin not available (embeddedserver.plugin is missing)"
        return fig
    empties = []
    for result in _pytest_rounds(rounds, tests, fixture):
        (fix_wall, fix_test), (plain_wall, plain_test), (empty_wall, empty_test) = (
            result[name] for name in _PYTEST_FILES
        )
        if session:
            fig.lib.append(fix_wall / tests)
            fig.base.append(plain_wall / tests)
            empties.append(empty_wall / tests)
        else:
            fig.lib.append(fix_test)
            fig.base.append(plain_test)
            empties.append(empty_test)
    fig.note += f"; an empty test: {statistics.median(empties) * 1e6:.0f} us"
    return fig
