"""Suite-wide guards: every test must leave no thread and no file descriptor behind.

The guard snapshots the live threads and the open descriptors before each test and
compares after it. Threads get a bounded grace period to finish (a join, not a sleep);
descriptors are compared after a garbage collection, so a socket that was only
unreferenced (not closed) still counts as a leak if a finaliser cannot close it.
A test that needs to opt out (because it checks leaks itself) uses
``@pytest.mark.allow_leaks``.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator

import pytest

# tests/typing holds a user's module for mypy to check (tests/test_typing.py), not tests.
collect_ignore = ["typing"]

_FD_DIR = "/proc/self/fd"
_THREAD_GRACE = 5.0


def _open_fds() -> dict[int, str]:
    fds: dict[int, str] = {}
    try:
        names = os.listdir(_FD_DIR)
    except OSError:  # not Linux: descriptor checks are skipped
        return fds
    for name in names:
        try:
            fds[int(name)] = os.readlink(os.path.join(_FD_DIR, name))
        except OSError:
            continue  # the descriptor listdir itself used, already closed
    return fds


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allow_leaks: the test checks threads/descriptors itself; skip the guard"
    )


def _new_fds(before: dict[int, str]) -> dict[int, str]:
    # Sockets and pipes are what this library opens; anything else (a log file
    # pytest opened, a pyc cache) is not ours to judge.
    return {
        fd: target
        for fd, target in _open_fds().items()
        if (fd not in before or before[fd] != target)
        and target.startswith(("socket:", "pipe:", "anon_inode:"))
    }


@pytest.fixture(autouse=True)
def _no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("allow_leaks"):
        yield
        return
    threads_before = set(threading.enumerate())
    fds_before = _open_fds()
    yield
    new_threads = [t for t in threading.enumerate() if t not in threads_before]
    for thread in new_threads:
        thread.join(_THREAD_GRACE)
    alive = [t for t in new_threads if t.is_alive()]
    leaked = _new_fds(fds_before)
    if leaked:  # an unreferenced socket is closed by its finaliser: collect, then look again
        gc.collect()
        leaked = _new_fds(fds_before)
    problems = []
    if alive:
        problems.append("threads left running: " + ", ".join(repr(t.name) for t in alive))
    if leaked:
        problems.append(
            "file descriptors left open: "
            + ", ".join(f"{fd} -> {target}" for fd, target in sorted(leaked.items()))
        )
    if problems:
        pytest.fail("test leaked resources: " + "; ".join(problems), pytrace=False)
