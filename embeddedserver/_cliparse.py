"""The pieces of argument parsing that the command line's two forms share.

``python -m embeddedserver STEP...`` (``cli``) and ``python -m embeddedserver proxy``
(``_proxycli``) read ``NAME[,OPTION=VALUE...][:ARG]`` items and a few numeric options;
each check here raises with the bad value and what is accepted, so both forms word their
errors alike.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ._text import unescape

__all__ = [
    "BadArgument",
    "Spec",
    "as_bytes",
    "key",
    "number",
    "parse_item",
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


Built = TypeVar("Built")


@dataclass(frozen=True)
class Spec(Generic[Built]):
    """One NAME of an item syntax (a CLI step, a proxy fault): how it reads, what it
    does, how it is built from its ARG (None without a ':') and its options."""

    usage: str  # e.g. "recv[:N]"; the part before ":" / "[" is the name
    help: str
    #: "none", "optional", "required" (a ':' must follow, possibly with nothing after
    #: it: ``send:`` sends nothing) or "nonempty" (something must follow the ':').
    arg: str
    build: Callable[[Any, dict[str, str]], Built]
    options: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.usage.split(":")[0].split("[")[0]

    @property
    def full_usage(self) -> str:
        """The usage with the options shown: ``drip[,chunk=...][,interval=...]:TEXT``."""
        return with_options(self.usage, self.options)


def parse_item(
    text: str, specs: Mapping[str, Spec[Built]], what: str, accepted: str,
    common: Sequence[str] = (),
) -> Built:
    """Build ``NAME[,OPTION=VALUE...][:ARG]`` with the spec *specs* has for ``key(NAME)``;
    every spec also takes the *common* options. ValueError naming *text* (a *what*:
    "step", "fault") and what is *accepted*."""
    head, colon, arg = text.partition(":")
    name, *option_texts = head.split(",")
    spec = specs.get(key(name))
    if spec is None:
        raise ValueError(f"unknown {what} {name!r} in {text!r}; {what}s are: {accepted}")
    try:
        options = parse_options(option_texts, spec.name, (*spec.options, *common))
        if spec.arg == "none" and colon:
            raise BadArgument(f"{spec.name} takes no argument after ':'")
        if (spec.arg == "required" and not colon) or (spec.arg == "nonempty" and not arg):
            raise BadArgument(f"{spec.name} needs an argument")
        return spec.build(arg if colon else None, options)
    except (BadArgument, TypeError, ValueError) as exc:
        raise ValueError(f"bad {what} {text!r}: {exc} (use {spec.full_usage})") from None


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
