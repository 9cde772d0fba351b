"""The pieces of argument parsing that the command line's two forms share.

``python -m embeddedserver STEP...`` (``cli``) and ``python -m embeddedserver proxy``
(``_proxycli``) read ``NAME[,OPTION=VALUE...][:ARG]`` items and a few numeric options;
each check here raises with the bad value and what is accepted, so both forms word their
errors alike.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

from ._text import unescape

__all__ = [
    "BadArgument",
    "as_bytes",
    "key",
    "number",
    "parse_options",
    "port_arg",
    "positive_int_arg",
    "seconds",
    "seconds_arg",
    "with_options",
]


class BadArgument(ValueError):
    """An argument that cannot be parsed; the message says why."""


def key(name: str) -> str:
    """*name* as looked up: case and hyphens/underscores do not matter."""
    return name.lower().replace("-", "").replace("_", "")


def number(value: str, what: str, minimum: int = 0) -> int:
    try:
        result = int(value)
    except ValueError:
        raise BadArgument(f"{what} must be a whole number, not {value!r}") from None
    if result < minimum:
        raise BadArgument(f"{what} must be >= {minimum}, not {result}")
    return result


def seconds(value: str, what: str) -> float:
    try:
        result = float(value)
    except ValueError:
        raise BadArgument(f"{what} must be a number of seconds, not {value!r}") from None
    if not result >= 0 or math.isinf(result):
        raise BadArgument(f"{what} must be a finite number of seconds >= 0, not {value!r}")
    return result


def as_bytes(value: str, what: str) -> bytes:
    """*value* with ``\\r \\n \\t \\0 \\\\ \\xNN`` escapes turned into bytes."""
    try:
        return unescape(value)
    except ValueError as exc:
        raise BadArgument(f"{what}: {exc}") from None


def with_options(usage: str, options: Sequence[str]) -> str:
    """*usage* (``drip:TEXT``) with its options shown: ``drip[,chunk=...][,interval=...]:TEXT``."""
    head, colon, tail = usage.partition(":")
    name, bracket, rest = head.partition("[")
    opts = "".join(f"[,{o}=...]" for o in options)
    return f"{name}{opts}{bracket}{rest}{colon}{tail}"


def parse_options(texts: Sequence[str], name: str, allowed: Sequence[str]) -> dict[str, str]:
    """``OPTION=VALUE`` texts as a dict; BadArgument for an option *name* does not take
    (one of *allowed*), a missing value or an option given twice."""
    options: dict[str, str] = {}
    for text in texts:
        option, eq, value = text.partition("=")
        option = option.strip().lower()
        if option not in allowed:
            listed = ", ".join(allowed) if allowed else "none"
            raise BadArgument(f"unknown option {text!r} for {name} (options: {listed})")
        if not eq or not value:
            raise BadArgument(f"option {option} needs a value: {option}=VALUE")
        if option in options:
            raise BadArgument(f"option {option} given twice")
        options[option] = value
    return options


# -- argparse ``type=`` functions ------------------------------------------------------


def positive_int_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, not {text!r}")
    return value


def port_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"expected a port from 0 (any free port) to 65535, not {text!r}")
    return value


def seconds_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, not {text!r}")
    return value
