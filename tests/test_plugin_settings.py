"""The plugin's settings: command-line options, ini keys and the ``embeddedserver`` marker.

Each test writes a small test file and runs it with ``pytester`` (in-process). A setting is
shown to work by what it changes: the timeout a failure message names, or a verdict that
fails by default and passes with the opt-out (and fails again where a closer setting says
no). The inner tests run each case three times (parametrized), so a verdict is neither late
nor random. Precedence: the call's argument > the marker > an override of the
``embeddedserver_timeout`` fixture > the command line > the ini file > the default.
"""

from __future__ import annotations

import asyncio
import doctest
import textwrap

import pytest

from embeddedserver import _settings
from embeddedserver._settings import EXPECT_CONNECTIONS, SETTINGS, from_marker

pytest_plugins = ["pytester"]

_INI = """
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
"""

_HEADER = """
import socket

import pytest

from embeddedserver import Expect, ReadLine


def connect(server):
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)

"""

_FAST = ("-p", "no:hypothesispytest", "-p", "no:benchmark")


def _run(pytester: pytest.Pytester, code: str, *args: str, ini: str = "") -> pytest.RunResult:
    pytester.makeini(_INI + textwrap.dedent(ini))
    pytester.makepyfile(test_example=_HEADER + textwrap.dedent(code))
    before = _current_loop()
    try:
        return pytester.runpytest(*_FAST, *args)
    finally:
        after = _current_loop()  # pytest-asyncio < 1.0 leaves a fresh loop set
        if after is not None and after is not before and not after.is_running():
            after.close()
            asyncio.get_event_loop_policy().set_event_loop(before)


def _with_mark(mark: str, code: str) -> str:
    """*code* in a module marked ``@pytest.mark.embeddedserver(mark)``."""
    return f"pytestmark = pytest.mark.embeddedserver({mark})\n" + textwrap.dedent(code)


def _current_loop() -> asyncio.AbstractEventLoop | None:
    local = getattr(asyncio.get_event_loop_policy(), "_local", None)
    return getattr(local, "_loop", None)


# A client that sends the first line and leaves the script waiting for the second: it
# keeps its connection open until after the verdict (fixtures are torn down in reverse).
_UNFINISHED = """
    @pytest.fixture
    def held():
        sockets = []
        yield sockets
        for sock in sockets:
            sock.close()

    @pytest.mark.parametrize("n", range(3))
    def test_it(held, command_server, n):
        server = command_server([ReadLine(), "ok\\n", ReadLine()], settle=0.1)
        sock = connect(server)
        held.append(sock)
        sock.sendall(b"one\\n")
        assert sock.recv(3, socket.MSG_WAITALL) == b"ok\\n"
"""

# A test whose server no client reaches.
_NOBODY = """
    @pytest.mark.parametrize("n", range(3))
    def test_it(command_server, n):
        command_server([ReadLine(), "ok\\n"])
"""

# A client that sends more than the expectations of the script.
_EXTRA = """
    @pytest.mark.parametrize("n", range(3))
    def test_it(command_server, n):
        server = command_server([Expect(b"PING\\r\\n"), "PONG\\r\\n"])
        with connect(server) as sock:
            sock.sendall(b"PING\\r\\nPING\\r\\n")
            assert sock.recv(6, socket.MSG_WAITALL) == b"PONG\\r\\n"
        server.wait_for_connections(1)
"""


# ---------------------------------------------------------------------------
# --help and --markers
# ---------------------------------------------------------------------------


def test_help_shows_every_option_and_ini_key_in_an_embeddedserver_group(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(_INI)
    result = pytester.runpytest(*_FAST, "--help")
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "embeddedserver fixtures (tcpserver, tcpserver_factory, command_server):",
        "*--embeddedserver-timeout=SECONDS*",
    ])
    out = result.stdout.str()
    for option in ("--embeddedserver-settle=SECONDS",
                   "--embeddedserver-allow-unfinished, --no-embeddedserver-allow-unfinished",
                   "--embeddedserver-allow-extra-bytes, --no-embeddedserver-allow-extra-bytes",
                   "--embeddedserver-expect-connections=N|N+|N-M|any"):
        assert option in out
    for key in ("embeddedserver_timeout", "embeddedserver_settle",
                "embeddedserver_allow_unfinished", "embeddedserver_allow_extra_bytes",
                "embeddedserver_expect_connections"):
        assert f"  {key} (string)" in out, key


def test_the_marker_is_registered(pytester: pytest.Pytester) -> None:
    pytester.makeini(_INI)
    result = pytester.runpytest(*_FAST, "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.embeddedserver(timeout=..., settle=..., "
                                 "allow_unfinished=..., allow_extra_bytes=..., "
                                 "expect_connections=...): *"])
    # --strict-markers accepts it
    pytester.makepyfile(test_marked="""
        import pytest

        @pytest.mark.embeddedserver(timeout=2)
        def test_it(embeddedserver_timeout):
            assert embeddedserver_timeout == 2
    """)
    pytester.runpytest(*_FAST, "--strict-markers").assert_outcomes(passed=1)


# ---------------------------------------------------------------------------
# the timeout
# ---------------------------------------------------------------------------

_NO_CLIENT = """
    @pytest.mark.parametrize("n", range(2))
    def test_it(tcpserver, n):
        tcpserver.expect_connect()
        tcpserver.join()
"""


def test_command_line_timeout_beats_the_ini(pytester: pytest.Pytester) -> None:
    result = _run(pytester, _NO_CLIENT, "--embeddedserver-timeout=0.3",
                  ini="embeddedserver_timeout = 10")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*no client connected within 0.3 s*"])
    assert "within 10 s" not in result.stdout.str()


def test_the_marker_timeout_beats_the_command_line_and_the_fixture_override(
    pytester: pytest.Pytester,
) -> None:
    result = _run(pytester, """
        @pytest.fixture
        def embeddedserver_timeout():
            return 0.6          # a module's override: the marker still wins

        @pytest.mark.embeddedserver(timeout=0.25)
        def test_marked(tcpserver):
            tcpserver.expect_connect()
            tcpserver.join()

        def test_override(tcpserver):
            tcpserver.expect_connect()
            tcpserver.join()
    """, "--embeddedserver-timeout=10")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*no client connected within 0.25 s*"])
    result.stdout.fnmatch_lines(["*no client connected within 0.6 s*"])


def test_the_call_argument_beats_the_marker(pytester: pytest.Pytester) -> None:
    result = _run(pytester, """
        @pytest.mark.embeddedserver(timeout=10)
        def test_factory(tcpserver_factory):
            server = tcpserver_factory(timeout=0.2)
            server.expect_connect()
            server.join()

        @pytest.mark.embeddedserver(timeout=10)
        def test_step(tcpserver):
            tcpserver.expect_connect(timeout=0.3)
            tcpserver.join()

        @pytest.mark.embeddedserver(timeout=0.4)
        def test_command_server(command_server):
            assert command_server("hi", timeout=3).timeout == 3
            assert command_server("hi").timeout == 0.4
            command_server("hi").stop()  # verdicts: each wants a client
    """, "--embeddedserver-expect-connections=any")
    result.assert_outcomes(failed=2, passed=1)
    result.stdout.fnmatch_lines(["*no client connected within 0.2 s*"])
    result.stdout.fnmatch_lines(["*no client connected within 0.3 s*"])


def test_the_closest_marker_wins_test_over_class_over_module(pytester: pytest.Pytester) -> None:
    result = _run(pytester, """
        pytestmark = pytest.mark.embeddedserver(timeout=1.5, settle=0.2)

        def test_module(embeddedserver_timeout, command_server):
            assert embeddedserver_timeout == 1.5
            assert command_server("hi", expect_connections=0).settle == 0.2

        @pytest.mark.embeddedserver(timeout=2.5)
        class TestClass:
            def test_class(self, embeddedserver_timeout):
                assert embeddedserver_timeout == 2.5

            @pytest.mark.embeddedserver(timeout=3.5)
            def test_method(self, embeddedserver_timeout, command_server):
                assert embeddedserver_timeout == 3.5
                server = command_server("hi", expect_connections=0)
                assert (server.timeout, server.settle) == (3.5, 0.2)
    """)
    result.assert_outcomes(passed=3)


def test_without_any_setting_the_builtin_defaults_hold(pytester: pytest.Pytester) -> None:
    result = _run(pytester, """
        from embeddedserver import AT_LEAST_ONE, DEFAULT_TIMEOUT, SETTLE, TCPSERVER_TIMEOUT

        def test_it(embeddedserver_timeout, tcpserver, command_server):
            assert embeddedserver_timeout is None
            assert tcpserver.timeout == TCPSERVER_TIMEOUT
            server = command_server("hi")
            assert (server.timeout, server.settle) == (DEFAULT_TIMEOUT, SETTLE)
            assert (server.allow_unfinished, server.allow_extra_bytes) == (False, False)
            assert server.expect_connections == AT_LEAST_ONE
            server.stop()
            server.expect_connections = None  # no client: this test judges only defaults
    """)
    result.assert_outcomes(passed=1)


# ---------------------------------------------------------------------------
# the verdict's opt-outs: each fails by default and passes with the setting
# ---------------------------------------------------------------------------


def test_an_unfinished_script_fails_by_default(pytester: pytest.Pytester) -> None:
    result = _run(pytester, _UNFINISHED)
    result.assert_outcomes(passed=3, errors=3)
    result.stdout.fnmatch_lines(["*step 2 of 3: ReadLine(): the script was not finished: "
                                 "the client sent nothing more in 0.1 s*"])


@pytest.mark.parametrize("how", ["option", "ini", "marker"])
def test_allow_unfinished_from_each_place_passes_it(pytester: pytest.Pytester, how: str) -> None:
    code, args, ini = _UNFINISHED, [], ""
    if how == "option":
        args = ["--embeddedserver-allow-unfinished"]
    elif how == "ini":
        ini = "embeddedserver_allow_unfinished = yes"
    else:
        code = _with_mark("allow_unfinished=True", code)
    result = _run(pytester, code, *args, ini=ini)
    result.assert_outcomes(passed=3)


def test_a_closer_no_beats_a_farther_yes_for_allow_unfinished(pytester: pytest.Pytester) -> None:
    marked = _with_mark("allow_unfinished=False", _UNFINISHED)
    result = _run(pytester, marked, "--embeddedserver-allow-unfinished")
    result.assert_outcomes(passed=3, errors=3)
    result = _run(pytester, _UNFINISHED, "--no-embeddedserver-allow-unfinished",
                  ini="embeddedserver_allow_unfinished = true")
    result.assert_outcomes(passed=3, errors=3)
    # the call's own argument beats them all
    own = _UNFINISHED.replace("settle=0.1)", "settle=0.1, allow_unfinished=False)")
    result = _run(pytester, own, "--embeddedserver-allow-unfinished")
    result.assert_outcomes(passed=3, errors=3)


def test_a_server_nobody_reaches_fails_by_default(pytester: pytest.Pytester) -> None:
    result = _run(pytester, _NOBODY)
    result.assert_outcomes(passed=3, errors=3)
    result.stdout.fnmatch_lines(["*no client connected to the server, which expected at "
                                 "least 1*"])


@pytest.mark.parametrize(
    ("args", "ini", "mark"),
    [
        (["--embeddedserver-expect-connections=0"], "", ""),
        (["--embeddedserver-expect-connections=any"], "", ""),
        ([], "embeddedserver_expect_connections = 0-2", ""),
        (["--embeddedserver-expect-connections=1+"], "", "expect_connections=0"),
        ([], "", "expect_connections=None"),
    ],
    ids=["option-0", "option-any", "ini-range", "marker-over-option", "marker-any"],
)
def test_expect_connections_lets_a_server_nobody_reaches_pass(
    pytester: pytest.Pytester, args: list[str], ini: str, mark: str
) -> None:
    code = _NOBODY
    if mark:
        code = _with_mark(mark, code)
    _run(pytester, code, *args, ini=ini).assert_outcomes(passed=3)


def test_expect_connections_at_least_two_fails_a_test_with_one_client(
    pytester: pytest.Pytester,
) -> None:
    result = _run(pytester, """
        @pytest.mark.parametrize("n", range(3))
        def test_it(command_server, n):
            server = command_server([ReadLine(), "ok\\n"])
            with connect(server) as sock:
                sock.sendall(b"hi\\n")
                assert sock.recv(3, socket.MSG_WAITALL) == b"ok\\n"
            server.wait_for_connections(1)
    """, "--embeddedserver-expect-connections=2+")
    result.assert_outcomes(passed=3, errors=3)
    result.stdout.fnmatch_lines(["*1 client connected to the server, which expected at "
                                 "least 2*"])


def test_extra_bytes_fail_by_default_and_pass_with_allow_extra_bytes(
    pytester: pytest.Pytester,
) -> None:
    result = _run(pytester, _EXTRA)
    result.assert_outcomes(passed=3, errors=3)
    result.stdout.fnmatch_lines(["*the client sent 6 bytes no step reads*"])
    _run(pytester, _EXTRA, "--embeddedserver-allow-extra-bytes").assert_outcomes(passed=3)
    _run(pytester, _EXTRA, ini="embeddedserver_allow_extra_bytes = on").assert_outcomes(passed=3)
    marked = _with_mark("allow_extra_bytes=True", _EXTRA)
    _run(pytester, marked).assert_outcomes(passed=3)


def test_settle_from_the_command_line_reaches_the_servers(pytester: pytest.Pytester) -> None:
    result = _run(pytester, _UNFINISHED.replace(", settle=0.1)", ")"),
                  "--embeddedserver-settle=0.15")
    result.assert_outcomes(passed=3, errors=3)
    result.stdout.fnmatch_lines(["*the client sent nothing more in 0.15 s*"])


# ---------------------------------------------------------------------------
# bad values: usage errors that name the value
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (["--embeddedserver-timeout=soon"], "",
         "*--embeddedserver-timeout must be a number of seconds > 0, not 'soon'*"),
        (["--embeddedserver-timeout=0"], "",
         "*--embeddedserver-timeout must be a number of seconds > 0, not '0'*"),
        ([], "embeddedserver_timeout = -1",
         "*embeddedserver_timeout must be a number of seconds > 0, not '-1'*"),
        (["--embeddedserver-settle=-0.5"], "",
         "*--embeddedserver-settle must be a number of seconds >= 0, not '-0.5'*"),
        ([], "embeddedserver_allow_unfinished = maybe",
         "*embeddedserver_allow_unfinished must be yes or no (true/false, on/off, 1/0), "
         "not 'maybe'*"),
        (["--embeddedserver-expect-connections=3-1"], "",
         "*--embeddedserver-expect-connections must be a number of clients: N (exactly N), "
         "N+ (at least N), N-M (from N to M) or any, not '3-1'*"),
        ([], "embeddedserver_expect_connections = some",
         "*embeddedserver_expect_connections must be a number of clients: *, not 'some'*"),
    ],
    ids=["timeout-word", "timeout-zero", "ini-timeout", "settle", "ini-flag",
         "connections-range", "ini-connections"],
)
def test_a_bad_option_or_ini_value_is_a_usage_error_naming_it(
    pytester: pytest.Pytester, args: list[str], ini: str, message: str
) -> None:
    result = _run(pytester, "def test_it(): pass", *args, ini=ini)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


@pytest.mark.parametrize(
    ("mark", "message"),
    [
        ('timeout="soon"', "timeout must be a number of seconds > 0, not 'soon'"),
        ("timeout=0", "timeout must be a number of seconds > 0, not 0"),
        ('allow_unfinished="yes"', "allow_unfinished must be True or False, not 'yes'"),
        ("expect_connections=-1", "expect_connections must be an int >= 0, not -1"),
        ("expect_connections=range(3, 1)", "expect_connections must be a non-empty range"),
        ("timout=1", "has no setting 'timout'; the settings are timeout, settle, "
                     "allow_unfinished, allow_extra_bytes, expect_connections"),
        ("3", "takes keyword arguments only (timeout, settle, allow_unfinished, "
              "allow_extra_bytes, expect_connections), not 3"),
    ],
    ids=["timeout-type", "timeout-zero", "flag-type", "connections", "range", "unknown",
         "positional"],
)
def test_a_bad_marker_is_a_usage_error_naming_the_test_and_the_value(
    pytester: pytest.Pytester, mark: str, message: str
) -> None:
    result = _run(pytester, f"""
        def test_fine():
            pass

        @pytest.mark.embeddedserver({mark})
        def test_marked():
            pass
    """)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "test_example.py::test_marked: @pytest.mark.embeddedserver(...) " in err, err
    assert message in err, err


# ---------------------------------------------------------------------------
# the settings module, without pytest
# ---------------------------------------------------------------------------


def test_the_settings_module_examples_run() -> None:
    result = doctest.testmod(_settings)
    assert result.attempted >= 3 and result.failed == 0


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", range(0, 1)), ("3", range(3, 4)), ("2+", range(2, 2**62)), (" 1-3 ", range(1, 4)),
     ("ANY", None)],
)
def test_expect_connections_text_reads_each_form(text: str, value: range | None) -> None:
    assert EXPECT_CONNECTIONS.from_text(text, "x") == value


def test_every_setting_has_an_option_and_an_ini_key_of_its_name() -> None:
    for setting in SETTINGS:
        assert setting.option == "--embeddedserver-" + setting.name.replace("_", "-")
        assert setting.ini == setting.dest == "embeddedserver_" + setting.name
    assert from_marker((), {"expect_connections": 2}) == {"expect_connections": range(2, 3)}
