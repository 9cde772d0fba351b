"""What the command-line tests share: running ``main()`` in-process with a client on a
thread, and ``python -m embeddedserver`` as a child process whose first line is the port."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "CHILD_ENV", "ROOT", "WAIT", "Console", "children", "connect", "exchange", "http_get",
    "port_line", "read_to_eof", "run_cli",
]

ROOT = Path(__file__).resolve().parent.parent
WAIT = 30.0  # generous: a loaded 2-core machine must never time out a passing test
CHILD_ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


class Console(io.TextIOBase):
    """A stdout stand-in: keeps what is written, and signals the first line (the port)."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._lock = threading.Lock()
        self.first_line = threading.Event()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._parts.append(text)
            if "\n" in "".join(self._parts):
                self.first_line.set()
        return len(text)

    def getvalue(self) -> str:
        with self._lock:
            return "".join(self._parts)

    @property
    def port(self) -> int:
        return int(self.getvalue().splitlines()[0])


def run_cli(
    main: Callable[[list[str]], int], monkeypatch: pytest.MonkeyPatch, args: list[str],
    client: Callable[[int], Any],
) -> tuple[int, str, Any]:
    """Run ``main(args)`` here while *client(port)* runs on a thread; return the exit
    code, everything main printed and what the client returned (or raise its error)."""
    console = Console()
    monkeypatch.setattr(sys, "stdout", console)
    outcome: dict[str, Any] = {}
    main_done = threading.Event()

    def drive() -> None:
        console.first_line.wait(WAIT)
        if main_done.is_set() and not console.getvalue():
            return
        try:
            outcome["value"] = client(console.port)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=drive, name="cli-test-client")
    thread.start()
    try:
        code = main(args)
    finally:
        main_done.set()
        console.first_line.set()
        thread.join(WAIT)
    monkeypatch.undo()
    if "error" in outcome:
        raise outcome["error"]
    return code, console.getvalue(), outcome.get("value")


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=WAIT)


def read_to_eof(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def exchange(send: bytes, shut: bool = False) -> Callable[[int], bytes]:
    """A raw client: send *send* (then shut the write side if *shut*), read to EOF."""

    def client(port: int) -> bytes:
        with connect(port) as sock:
            sock.sendall(send)
            if shut:
                sock.shutdown(socket.SHUT_WR)
            return read_to_eof(sock)

    return client


def http_get(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello", timeout=WAIT) as response:
        body: bytes = response.read()
        return body


@contextlib.contextmanager
def children() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """``start(*args)`` runs ``python -m embeddedserver ARGS`` with piped output; each
    child still running at the end is killed, and every child is reaped."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "embeddedserver", *args], cwd=ROOT, env=CHILD_ENV,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        procs.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=WAIT)  # reaps it and closes its pipes


def port_line(proc: subprocess.Popen[str]) -> int:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip().isdigit(), f"first line is not a port: {line!r}"
    return int(line)


