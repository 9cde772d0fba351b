"""embeddedserver._args: one check per kind of argument, the same words everywhere."""

from __future__ import annotations

import doctest
import math

import pytest

import embeddedserver
from embeddedserver import _args


def test_module_example_runs() -> None:
    result = doctest.testmod(_args)
    assert result.attempted and not result.failed


@pytest.mark.parametrize(
    ("value", "error"),
    [(True, TypeError), ("5", TypeError), (None, TypeError), (0, ValueError),
     (-1.5, ValueError), (math.nan, ValueError)],
)
def test_timeout_takes_a_number_of_seconds_above_zero(value: object, error: type) -> None:
    with pytest.raises(error, match=rf"timeout must be a number of seconds > 0, not {value!r}"):
        _args.timeout(value)


def test_optional_timeout_takes_none_and_says_so() -> None:
    assert _args.optional_timeout(None) is None
    assert _args.optional_timeout(3) == 3.0
    with pytest.raises(TypeError, match=r"> 0 or None, not '3'"):
        _args.optional_timeout("3")


@pytest.mark.parametrize(("value", "error"), [(False, TypeError), (-0.1, ValueError),
                                              (math.nan, ValueError)])
def test_duration_takes_zero_but_nothing_below(value: object, error: type) -> None:
    assert _args.duration(0, "delay") == 0.0
    with pytest.raises(error, match=r"delay must be a number of seconds >= 0"):
        _args.duration(value, "delay")


def test_counts_ports_and_flags_refuse_bools_and_name_the_bound() -> None:
    with pytest.raises(TypeError, match=r"chunk size must be an int >= 1, not True"):
        _args.count(True, "chunk size", 1)
    with pytest.raises(ValueError, match=r"port must be an int from 0 .* not 65536"):
        _args.port(65536)
    with pytest.raises(TypeError, match=r"verbose must be True or False, not 'yes'"):
        _args.flag("yes", "verbose")
    with pytest.raises(TypeError, match=r"host must be a non-empty str"):
        _args.host("")


def test_the_defaults_are_the_package_s() -> None:
    assert embeddedserver.DEFAULT_TIMEOUT is _args.DEFAULT_TIMEOUT
    assert embeddedserver.TCPSERVER_TIMEOUT is _args.TCPSERVER_TIMEOUT
    assert embeddedserver.JOIN_TIMEOUT is _args.JOIN_TIMEOUT


def test_steps_and_servers_use_the_same_words() -> None:
    for make in (lambda: embeddedserver.Receive(timeout=0),
                 lambda: embeddedserver.CommandServer("x", timeout=0, verbose=False)):
        with pytest.raises(ValueError, match=r"timeout must be a number of seconds > 0, not 0"):
            make()
    with pytest.raises(ValueError, match=r"delay must be a number of seconds >= 0, not -1"):
        embeddedserver.Delay(-1)
