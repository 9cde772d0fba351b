"""Argument checks and default timeouts: one check per kind of argument, one place for defaults.

Every public constructor and call of the package checks its arguments here, where they are
given, so that a mistake is reported at the user's line and not later on a server thread. A
wrong type is a ``TypeError``, a wrong value a ``ValueError``; both echo the value (``!r``)
and say what is accepted. ``bool`` is never taken for a number.

    >>> timeout(2)
    2.0
    >>> duration(-1, "delay")
    Traceback (most recent call last):
    ...
    ValueError: delay must be a number of seconds >= 0, not -1
"""

from __future__ import annotations

import ssl
from typing import Any

__all__ = [
    "DEFAULT_TIMEOUT",
    "JOIN_TIMEOUT",
    "TCPSERVER_TIMEOUT",
    "backlog",
    "count",
    "duration",
    "expect_connections",
    "flag",
    "host",
    "integer",
    "optional_timeout",
    "port",
    "server_ssl_context",
    "timeout",
]

# ---------------------------------------------------------------------------
# defaults
# ---------------------------------------------------------------------------

#: Seconds a script server's read step waits for the client, and a send for progress; also
#: the default wait of ``wait_for_connections()`` and ``wait_idle()``.
DEFAULT_TIMEOUT = 5.0
#: Seconds a ``TcpServer`` step waits when neither the step, the server nor the
#: ``embeddedserver_timeout`` ini setting says otherwise.
TCPSERVER_TIMEOUT = 1.0
#: Seconds ``stop()`` waits for each server thread before reporting it stuck.
JOIN_TIMEOUT = 5.0


# ---------------------------------------------------------------------------
# numbers
# ---------------------------------------------------------------------------


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def timeout(value: Any, name: str = "timeout") -> float:
    """*value* as a float if it is a number of seconds > 0 (nan is not)."""
    if not _number(value):
        raise TypeError(f"{name} must be a number of seconds > 0, not {value!r}")
    if not value > 0:  # also rejects nan, which compares false to everything
        raise ValueError(f"{name} must be a number of seconds > 0, not {value!r}")
    return float(value)


def optional_timeout(value: Any, name: str = "timeout") -> float | None:
    """``timeout()`` that also takes None (meaning: the server's timeout)."""
    if value is None:
        return None
    if not _number(value):
        raise TypeError(f"{name} must be a number of seconds > 0 or None, not {value!r}")
    return timeout(value, name)


def duration(value: Any, name: str) -> float:
    """*value* as a float if it is a number of seconds >= 0: a delay, an interval."""
    if not _number(value):
        raise TypeError(f"{name} must be a number of seconds >= 0, not {value!r}")
    if not value >= 0:
        raise ValueError(f"{name} must be a number of seconds >= 0, not {value!r}")
    return float(value)


def integer(value: Any, name: str, low: int, high: int | None, accepted: str) -> int:
    """*value* if it is an int from *low* to *high* (None: no upper bound); the messages
    say it must be *accepted*."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be {accepted}, not {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be {accepted}, not {value!r}")
    return value


def count(value: Any, name: str, minimum: int = 0) -> int:
    """*value* if it is an int >= *minimum*: a byte count, a chunk size, a limit."""
    return integer(value, name, minimum, None, f"an int >= {minimum}")


def port(value: Any) -> int:
    """A TCP port to listen on: 0 (any free port) to 65535."""
    return integer(value, "port", 0, 65535, "an int from 0 (any free port) to 65535")


def backlog(value: Any) -> int:
    """A listen queue length."""
    return count(value, "backlog", 1)


# ---------------------------------------------------------------------------
# others
# ---------------------------------------------------------------------------


def host(value: Any) -> str:
    """A host to listen on or connect to: a non-empty str."""
    if not isinstance(value, str) or not value:
        raise TypeError(f"host must be a non-empty str such as '127.0.0.1', not {value!r}")
    return value


def server_ssl_context(value: Any) -> ssl.SSLContext | None:
    """None, or a server-side ``ssl.SSLContext`` (a client context is a mistake)."""
    if value is None:
        return None
    if not isinstance(value, ssl.SSLContext):
        raise TypeError(f"ssl_context must be an ssl.SSLContext, not {value!r}")
    if value.check_hostname:
        raise ValueError(
            f"ssl_context {value!r} is a client context (check_hostname=True); give a "
            "server context: embeddedserver.tls.LocalTLS().server_context, or "
            "ssl.create_default_context(ssl.Purpose.CLIENT_AUTH) with load_cert_chain()"
        )
    return value


def flag(value: Any, name: str) -> bool:
    """True or False, nothing else (a truthy string is a mistake, not a yes)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {value!r}")
    return value


def expect_connections(value: Any) -> range | None:
    """``expect_connections=``: an int N >= 0 (exactly N, as ``range(N, N + 1)``), a range
    of counts (``at_least(2)``, ``range(1, 4)``), or None (any number, none included)."""
    if value is None:
        return None
    if isinstance(value, range):
        if value.step != 1 or value.start < 0 or len(value) == 0:
            raise ValueError(f"expect_connections must be a non-empty range of counts >= 0 "
                             f"with step 1, not {value!r}")
        return value
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expect_connections must be an int >= 0, a range such as "
                        f"at_least(1), or None, not {value!r}")
    number = count(value, "expect_connections", 0)
    return range(number, number + 1)
