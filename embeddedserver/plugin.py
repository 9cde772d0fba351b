"""pytest plugin: the ``tcpserver``, ``tcpserver_factory`` and ``command_server`` fixtures.

Installed with the package (``pytest11`` entry point), so a test just asks for a fixture::

    @pytest.mark.asyncio()
    async def test_hello(tcpserver):
        tcpserver.expect_connect()
        tcpserver.expect_bytes(b"Hello, server!")
        tcpserver.send_bytes(b"Hello, client!")
        tcpserver.expect_disconnect()
        reader, writer = await asyncio.open_connection(None, tcpserver.service_port)
        ...
        await tcpserver.join()     # failures, if any, are reported here

Model
-----
This module is the only one that imports pytest, and it is thin: each fixture creates an
object that also works without pytest, yields it, and undoes it. ``TcpServer`` and
``Join`` live in ``embeddedserver.tcpserver`` (its docstring explains how a server whose script
grows while the test runs works); ``TcpServerFactory``, ``CommandServerFactory``,
``write_frame``/``read_frame`` and the asyncio stream watch live in ``embeddedserver.factories``.
Every public name is importable from here as before.

What the plugin adds: failures are reported with ``pytest.fail``. At teardown of a test
that passed, every server is checked: a ``TcpServer`` that has not failed gets
``expect_disconnect()`` (if a client is still connected in its script) and is joined; a
``command_server`` server is stopped and ``check()``ed. Asyncio streams connected to this
test's ``TcpServer``s are watched (patches undone at teardown). When a test fails, its
servers are stopped (so their transcripts are final) and each transcript is attached to
the report as a section. Step timeouts default to 1 s for
``tcpserver`` (the engine's default for ``command_server``): the ``embeddedserver_timeout``
ini setting or fixture changes that for the fixtures.

Sections: pytest hooks and fixtures.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import NoReturn, Protocol

import pytest

from . import _args
from ._acceptor import acceptor
from ._args import DEFAULT_TIMEOUT, TCPSERVER_TIMEOUT
from .factories import CommandServerFactory, TcpServerFactory
from .tcpserver import TcpServer

__all__ = [
    "command_server",
    "embeddedserver_timeout",
    "pytest_addoption",
    "pytest_configure",
    "pytest_runtest_makereport",
    "tcpserver",
    "tcpserver_factory",
]


# ---------------------------------------------------------------------------
# pytest hooks and fixtures
# ---------------------------------------------------------------------------


class _Reporter(Protocol):
    def stop(self) -> None: ...

    def report_sections(self) -> list[tuple[str, str]]: ...


_REPORTERS = pytest.StashKey[list[_Reporter]]()
_CALL_PASSED = pytest.StashKey[bool]()
_SECTIONS_ADDED = pytest.StashKey[bool]()
_TIMEOUT = pytest.StashKey[float | None]()
_INI = "embeddedserver_timeout"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        _INI,
        "default seconds each step of the embeddedserver fixtures waits (tcpserver: "
        f"{TCPSERVER_TIMEOUT:g}, command_server: {DEFAULT_TIMEOUT:g} when unset)",
        default="",
    )


def pytest_configure(config: pytest.Config) -> None:
    raw = str(config.getini(_INI)).strip()
    value: float | None = None
    if raw:
        try:
            value = _args.timeout(float(raw), _INI)
        except ValueError:
            raise pytest.UsageError(
                f"{_INI} must be a number of seconds > 0, not {raw!r}"
            ) from None
    config.stash[_TIMEOUT] = value
    # The process-wide acceptor thread (and its epoll) starts now, not in the first test
    # that makes a server, so that a per-test thread or descriptor leak check sees it
    # there before and after every test.
    acceptor()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_CALL_PASSED] = report.passed
    if report.failed and not item.stash.get(_SECTIONS_ADDED, False):
        reporters = item.stash.get(_REPORTERS, [])
        for reporter in reporters:  # a stopped server's transcript is complete and final
            reporter.stop()
        sections = [s for r in reporters for s in r.report_sections()]
        if sections:
            item.stash[_SECTIONS_ADDED] = True
            report.sections.extend(sections)
    if report.when == "teardown" and _REPORTERS in item.stash:
        # The item lives as long as the session: let its servers (transcripts, sockets,
        # threads) go now, not after the last test.
        del item.stash[_REPORTERS]
    return report


def _pytest_fail(message: str) -> NoReturn:
    __tracebackhide__ = True
    pytest.fail(message)


def _register(request: pytest.FixtureRequest, reporter: _Reporter) -> None:
    request.node.stash.setdefault(_REPORTERS, []).append(reporter)


def _should_check(request: pytest.FixtureRequest) -> bool:
    """Teardown checks only after a passing test: a failed one has said what went wrong
    (the servers' transcripts are in its report) and may have left its client open."""
    item: pytest.Item = request.node  # pytest types it Any; the fixtures are per test
    return item.stash.get(_CALL_PASSED, False)


@pytest.fixture
def embeddedserver_timeout(pytestconfig: pytest.Config) -> float | None:
    """Default step timeout of this module's fixtures: the ``embeddedserver_timeout`` ini
    setting, or None for the built-in defaults. Override this fixture to change it for a
    module, class or test."""
    return pytestconfig.stash.get(_TIMEOUT, None)


def _tcpserver_factory(timeout: float | None) -> TcpServerFactory:
    return TcpServerFactory(
        timeout=TCPSERVER_TIMEOUT if timeout is None else timeout,
        fail=_pytest_fail,
        watch_streams=True,
    )


def _close(
    factory: TcpServerFactory | CommandServerFactory, request: pytest.FixtureRequest
) -> None:
    report = factory.close(check=_should_check(request))
    if report:
        pytest.fail(report, pytrace=False)


@pytest.fixture
def tcpserver_factory(
    request: pytest.FixtureRequest, embeddedserver_timeout: float | None
) -> Iterator[TcpServerFactory]:
    """Make independent ``TcpServer``s: ``server = await tcpserver_factory()`` (or
    without await in a sync test); ``tcpserver_factory(timeout=0.5, name="db")``. At
    teardown each server is checked (``expect_disconnect()`` if a client is connected in
    its script, then join) and stopped."""
    factory = _tcpserver_factory(embeddedserver_timeout)
    _register(request, factory)
    yield factory
    _close(factory, request)


@pytest.fixture
def tcpserver(
    request: pytest.FixtureRequest, embeddedserver_timeout: float | None
) -> Iterator[TcpServer]:
    """One ``TcpServer``, named "tcpserver", made and checked as ``tcpserver_factory``'s
    are (its own factory: one fixture fewer to set up per test)."""
    factory = _tcpserver_factory(embeddedserver_timeout)
    _register(request, factory)
    yield factory(name="tcpserver")
    _close(factory, request)


@pytest.fixture
def command_server(
    request: pytest.FixtureRequest, embeddedserver_timeout: float | None
) -> Iterator[CommandServerFactory]:
    """Start ``CommandServer``-family servers: ``command_server([RECEIVE, "pong"])``,
    ``command_server(commands, OneShotServer, timeout=2)``; the signature, typed, is
    ``CommandServerFactory.__call__`` (a script, a server class, ``ServerOptions``). At
    teardown each gets its verdict: settle, stop, check."""
    factory = CommandServerFactory(embeddedserver_timeout)
    _register(request, factory)
    yield factory
    _close(factory, request)
