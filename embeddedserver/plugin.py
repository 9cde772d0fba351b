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
the report as a section.

Settings (``_settings`` reads and checks them): the default step timeout of every fixture,
and the verdict settings of the ``command_server`` servers (``settle``,
``allow_unfinished``, ``allow_extra_bytes``, ``expect_connections``), each from the command
line (``--embeddedserver-timeout=3``, shown by ``pytest --help`` in the ``embeddedserver``
group), the ini file (``embeddedserver_timeout = 3``) or, for one test, class or module,
the marker ``@pytest.mark.embeddedserver(timeout=3, allow_unfinished=True)``. An argument
of the call wins over the marker, the marker over an override of the
``embeddedserver_timeout`` fixture, that over the command line, and the command line over
the ini file. Step timeouts default to 1 s for ``tcpserver`` (the engine's 5 s for
``command_server``). A bad value is a usage error naming it.

Sections: pytest hooks and fixtures.
"""

from __future__ import annotations

import argparse
from collections.abc import Generator, Iterator
from typing import Any, NoReturn, Protocol

import pytest

from ._acceptor import acceptor
from ._args import TCPSERVER_TIMEOUT
from ._settings import MARKER, SETTINGS, TIMEOUT, VERDICT_SETTINGS, from_marker, server_options
from .factories import CommandServerFactory, TcpServerFactory
from .tcpserver import TcpServer

__all__ = [
    "command_server",
    "embeddedserver_timeout",
    "pytest_addoption",
    "pytest_collection_modifyitems",
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
#: The settings the command line and the ini file gave, checked (name -> value).
_CONFIGURED = pytest.StashKey[dict[str, Any]]()
#: A test's settings from its ``embeddedserver`` markers, checked (name -> value).
_MARKED = pytest.StashKey[dict[str, Any]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(
        "embeddedserver", "embeddedserver fixtures (tcpserver, tcpserver_factory, command_server)"
    )
    for setting in SETTINGS:
        how: dict[str, Any] = (  # --embeddedserver-allow-unfinished, --no-embeddedserver-...
            {"action": argparse.BooleanOptionalAction} if setting.flag
            else {"metavar": setting.metavar})
        group.addoption(
            setting.option, dest=setting.dest, default=None,
            help=f"{setting.help}; ini: {setting.ini}; marker: "
            f"@pytest.mark.{MARKER}({setting.name}=...)", **how,
        )
        parser.addini(setting.ini, setting.help, default="")


def pytest_configure(config: pytest.Config) -> None:
    configured: dict[str, Any] = {}
    for setting in SETTINGS:
        given = config.getoption(setting.dest, None)
        if isinstance(given, bool):  # a flag, or its --no- twin
            configured[setting.name] = given
            continue
        where, text = (setting.option, given) if given is not None else (
            setting.ini, str(config.getini(setting.ini)).strip())
        if not text:
            continue
        try:
            configured[setting.name] = setting.from_text(str(text), where)
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
    config.stash[_CONFIGURED] = configured
    names = ", ".join(f"{s.name}=..." for s in SETTINGS)
    config.addinivalue_line(
        "markers",
        f"{MARKER}({names}): settings of the embeddedserver fixtures for this test (or "
        "class, or module), over the command line and the ini file; see pytest --help",
    )
    # The process-wide acceptor thread (and its epoll) starts now, not in the first test
    # that makes a server, so that a per-test thread or descriptor leak check sees it
    # there before and after every test.
    acceptor()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Check every ``embeddedserver`` marker once, at collection: a bad one is a usage
    error naming the test, the keyword and the value."""
    for item in items:
        marks = list(item.iter_markers(name=MARKER))  # the closest first
        if not marks:
            continue
        marked: dict[str, Any] = {}
        for mark in reversed(marks):
            try:
                marked.update(from_marker(mark.args, mark.kwargs))
            except (TypeError, ValueError) as exc:
                raise pytest.UsageError(
                    f"{item.nodeid}: @pytest.mark.{MARKER}(...) {exc}"
                ) from None
        item.stash[_MARKED] = marked


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


def _marked(request: pytest.FixtureRequest) -> dict[str, Any]:
    item: pytest.Item = request.node
    return item.stash.get(_MARKED, {})


def _configured(request: pytest.FixtureRequest) -> dict[str, Any]:
    return request.config.stash.get(_CONFIGURED, {})


@pytest.fixture
def embeddedserver_timeout(request: pytest.FixtureRequest) -> float | None:
    """Default step timeout of this module's fixtures: the marker's ``timeout``, else
    ``--embeddedserver-timeout``, else the ``embeddedserver_timeout`` ini setting, else
    None for the built-in defaults. Override this fixture to change it for a module,
    class or test (a marker's timeout still wins)."""
    return _marked(request).get("timeout", _configured(request).get("timeout"))


def _timeout(request: pytest.FixtureRequest, fixture_value: float | None) -> float | None:
    """The fixtures' timeout: the marker's over the ``embeddedserver_timeout`` fixture's."""
    return _marked(request).get(TIMEOUT.name, fixture_value)


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
    factory = _tcpserver_factory(_timeout(request, embeddedserver_timeout))
    _register(request, factory)
    yield factory
    _close(factory, request)


@pytest.fixture
def tcpserver(
    request: pytest.FixtureRequest, embeddedserver_timeout: float | None
) -> Iterator[TcpServer]:
    """One ``TcpServer``, named "tcpserver", made and checked as ``tcpserver_factory``'s
    are (its own factory: one fixture fewer to set up per test)."""
    factory = _tcpserver_factory(_timeout(request, embeddedserver_timeout))
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
    teardown each gets its verdict: settle, stop, check. The verdict settings (marker,
    command line, ini) are the servers' defaults; the call's own options win."""
    marked, configured = _marked(request), _configured(request)
    verdict = {s.name: marked.get(s.name, configured.get(s.name)) for s in VERDICT_SETTINGS
               if s.name in marked or s.name in configured}
    factory = CommandServerFactory(_timeout(request, embeddedserver_timeout),
                                   defaults=server_options(verdict))
    _register(request, factory)
    yield factory
    _close(factory, request)
