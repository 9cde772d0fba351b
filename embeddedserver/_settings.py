"""The settings of the pytest fixtures: what the command line, the ini file and the
``embeddedserver`` marker may set, each read and checked here, with no pytest import.

    >>> TIMEOUT.from_text("2.5", "--embeddedserver-timeout")
    2.5
    >>> EXPECT_CONNECTIONS.from_text("1-3", "embeddedserver_expect_connections")
    range(1, 4)
    >>> from_marker((), {"allow_unfinished": True})
    {'allow_unfinished': True}

Model
-----
Each ``Setting`` has a name (the marker's keyword and the constructor's argument), a
command-line option (``--embeddedserver-NAME``, with dashes) and an ini key
(``embeddedserver_NAME``). Text from the command line or the ini file is read by
``from_text``; a marker's Python values are checked by ``from_marker`` with the same
checks the constructors make (``_args``). A bad value is a ValueError that names where it
was given, the value (``!r``) and what is accepted; the plugin turns it into a usage error.

Precedence (the plugin applies it): an argument given in the call (``command_server(...,
timeout=2)``, ``tcpserver_factory(timeout=2)``, a step's ``timeout=``) > the marker (the
closest one: a test's over its class's over its module's) > an override of the
``embeddedserver_timeout`` fixture (timeout only) > the command line > the ini file > the
built-in default.

Sections: reading values - the settings - the marker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _args
from ._args import DEFAULT_TIMEOUT, TCPSERVER_TIMEOUT
from .servers import SETTLE, at_least

if TYPE_CHECKING:
    from .servers import ServerOptions

__all__ = [
    "ALLOW_EXTRA_BYTES",
    "ALLOW_UNFINISHED",
    "EXPECT_CONNECTIONS",
    "MARKER",
    "SETTINGS",
    "SETTLE_SETTING",
    "TIMEOUT",
    "VERDICT_SETTINGS",
    "Setting",
    "from_marker",
    "server_options",
]

#: The marker's name, as tests write it: ``@pytest.mark.embeddedserver(timeout=3)``.
MARKER = "embeddedserver"


# ---------------------------------------------------------------------------
# reading values
# ---------------------------------------------------------------------------

_YES = {"yes", "true", "on", "1"}
_NO = {"no", "false", "off", "0"}


def _seconds(text: str, where: str, check: Callable[[Any, str], float], accepted: str) -> float:
    try:
        return check(float(text), where)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be {accepted}, not {text!r}") from None


def _timeout_text(text: str, where: str) -> float:
    return _seconds(text, where, _args.timeout, "a number of seconds > 0")


def _settle_text(text: str, where: str) -> float:
    return _seconds(text, where, _args.duration, "a number of seconds >= 0")


def _flag_text(text: str, where: str) -> bool:
    word = text.strip().lower()
    if word in _YES:
        return True
    if word in _NO:
        return False
    raise ValueError(f"{where} must be yes or no (true/false, on/off, 1/0), not {text!r}")


def _connections_text(text: str, where: str) -> range | None:
    """``N`` (exactly N), ``N+`` (at least N), ``N-M`` (N to M, both included), ``any``."""
    word = text.strip().lower()
    try:
        if word == "any":
            return None
        if word.endswith("+"):
            return at_least(int(word[:-1]))
        low, dash, high = word.partition("-")
        if dash:
            return _args.expect_connections(range(int(low), int(high) + 1))
        return _args.expect_connections(int(word))
    except (TypeError, ValueError):
        raise ValueError(
            f"{where} must be a number of clients: N (exactly N), N+ (at least N), N-M "
            f"(from N to M) or any, not {text!r}"
        ) from None


# ---------------------------------------------------------------------------
# the settings
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One setting: its *name* (the marker keyword and the constructor argument), how
    ``--help`` shows it, how its text is read and how a marker's value is checked."""

    name: str
    metavar: str
    help: str
    read_text: Callable[[str, str], Any]
    check_value: Callable[[Any], Any]
    flag: bool = False  # on the command line a flag and its --no- twin; yes/no in the ini

    @property
    def option(self) -> str:
        """The command-line option: ``--embeddedserver-allow-unfinished``."""
        return "--embeddedserver-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        """The ini key: ``embeddedserver_allow_unfinished``."""
        return "embeddedserver_" + self.name

    @property
    def dest(self) -> str:
        """Where pytest keeps the command-line value (``config.getoption(dest)``)."""
        return "embeddedserver_" + self.name

    def from_text(self, text: str, where: str) -> Any:
        """The value of *text* given at *where* (the option or the ini key); ValueError
        naming both and what is accepted if it is not one."""
        return self.read_text(text, where)


TIMEOUT = Setting(
    "timeout", "SECONDS",
    "default seconds each step of the embeddedserver fixtures waits (tcpserver: "
    f"{TCPSERVER_TIMEOUT:g}, command_server: {DEFAULT_TIMEOUT:g} when unset)",
    _timeout_text, _args.timeout,
)
SETTLE_SETTING = Setting(
    "settle", "SECONDS",
    "command_server: seconds the verdict waits for a silent client whose script is not "
    f"finished (default {SETTLE:g})",
    _settle_text, lambda value: _args.duration(value, "settle"),
)
ALLOW_UNFINISHED = Setting(
    "allow_unfinished", "yes|no",
    "command_server: a script a client left waiting in a read step, or a reply it never "
    "read, is no failure (default no)",
    _flag_text, lambda value: _args.flag(value, "allow_unfinished"), flag=True,
)
ALLOW_EXTRA_BYTES = Setting(
    "allow_extra_bytes", "yes|no",
    "command_server: bytes a client sends after a script of expectations are no failure "
    "(default no)",
    _flag_text, lambda value: _args.flag(value, "allow_extra_bytes"), flag=True,
)
EXPECT_CONNECTIONS = Setting(
    "expect_connections", "N|N+|N-M|any",
    "command_server: how many clients the verdict wants: N exactly, N+ at least N, N-M, or "
    "any (none included); default 1+",
    _connections_text, _args.expect_connections,
)

#: Every setting, in the order ``--help`` lists them.
SETTINGS = (TIMEOUT, SETTLE_SETTING, ALLOW_UNFINISHED, ALLOW_EXTRA_BYTES, EXPECT_CONNECTIONS)
#: The settings of the script servers' verdict, passed to the ``command_server`` servers.
VERDICT_SETTINGS = (SETTLE_SETTING, ALLOW_UNFINISHED, ALLOW_EXTRA_BYTES, EXPECT_CONNECTIONS)
_BY_NAME = {setting.name: setting for setting in SETTINGS}


def server_options(values: Mapping[str, Any]) -> ServerOptions:
    """The verdict settings among *values* (checked), as a script server's options."""
    options: ServerOptions = {}
    if "settle" in values:
        options["settle"] = values["settle"]
    if "allow_unfinished" in values:
        options["allow_unfinished"] = values["allow_unfinished"]
    if "allow_extra_bytes" in values:
        options["allow_extra_bytes"] = values["allow_extra_bytes"]
    if "expect_connections" in values:
        options["expect_connections"] = values["expect_connections"]
    return options


# ---------------------------------------------------------------------------
# the marker
# ---------------------------------------------------------------------------


def from_marker(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of one ``@pytest.mark.embeddedserver(...)``, checked: ValueError or
    TypeError naming the bad keyword or value and what is accepted."""
    if args:
        raise TypeError(f"takes keyword arguments only ({', '.join(_BY_NAME)}), not "
                        f"{', '.join(map(repr, args))}")
    values = {}
    for name, value in kwargs.items():
        setting = _BY_NAME.get(name)
        if setting is None:
            raise TypeError(f"has no setting {name!r}; the settings are "
                            f"{', '.join(_BY_NAME)}")
        values[name] = setting.check_value(value)
    return values
