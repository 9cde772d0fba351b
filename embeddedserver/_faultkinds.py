"""The faults a ``FaultProxy`` injects: small frozen values, checked when made, with no
socket in them (``faults.FaultProxy`` applies them; ``faults`` re-exports them)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from . import _args

__all__ = [
    "Bandwidth",
    "Blackhole",
    "Fault",
    "Latency",
    "LimitData",
    "OnPattern",
    "ResetPeer",
    "Slicer",
    "SlowClose",
    "Timeout",
    "check_fault",
]

# ---------------------------------------------------------------------------
# the faults
# ---------------------------------------------------------------------------


def _rate(value: Any, name: str) -> float:
    if not _args._number(value):
        raise TypeError(f"{name} must be a number of bytes per second > 0, not {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a number of bytes per second > 0, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class Latency:
    """Delay every byte by *delay* seconds, plus a uniform draw in [-jitter, +jitter]
    for each read (never below 0; order is kept)."""

    delay: float
    jitter: float = 0.0

    def __post_init__(self) -> None:
        _args.duration(self.delay, "Latency delay")
        _args.duration(self.jitter, "Latency jitter")


@dataclass(frozen=True)
class Bandwidth:
    """Pass at most *rate* bytes per second."""

    rate: float

    def __post_init__(self) -> None:
        _rate(self.rate, "Bandwidth rate")


@dataclass(frozen=True)
class Slicer:
    """Split what is read into writes of *average* +- *variation* bytes (at least 1),
    each after a pause drawn in [0, *delay*] seconds."""

    average: int = 8
    variation: int = 4
    delay: float = 0.0

    def __post_init__(self) -> None:
        _args.count(self.average, "Slicer average", 1)
        _args.count(self.variation, "Slicer variation", 0)
        if self.variation >= self.average:
            raise ValueError(
                f"Slicer variation must be less than average ({self.average!r}), "
                f"not {self.variation!r}"
            )
        _args.duration(self.delay, "Slicer delay")


@dataclass(frozen=True)
class LimitData:
    """Close the connection (both sides, FIN) once *limit* bytes have passed."""

    limit: int

    def __post_init__(self) -> None:
        _args.count(self.limit, "LimitData limit", 0)


@dataclass(frozen=True)
class Timeout:
    """Stop forwarding (bytes and EOF are held, the sockets stay open); with
    *close_after*, close the connection that many seconds after the fault met it.
    Removing the fault lets what was held through."""

    close_after: float | None = None

    def __post_init__(self) -> None:
        if self.close_after is not None:
            _args.duration(self.close_after, "Timeout close_after")


@dataclass(frozen=True)
class ResetPeer:
    """Reset both sides (RST) once *after_bytes* bytes have passed (those bytes are
    written first), or *after* seconds after the fault met the connection, whichever
    comes first; with neither, at once."""

    after_bytes: int | None = None
    after: float | None = None

    def __post_init__(self) -> None:
        if self.after_bytes is not None:
            _args.count(self.after_bytes, "ResetPeer after_bytes", 0)
        if self.after is not None:
            _args.duration(self.after, "ResetPeer after")


@dataclass(frozen=True)
class SlowClose:
    """Pass the EOF (FIN) on *delay* seconds after it arrived."""

    delay: float

    def __post_init__(self) -> None:
        _args.duration(self.delay, "SlowClose delay")


@dataclass(frozen=True)
class Blackhole:
    """Drop every byte (and the EOF) in the direction; the connection stays open."""


_ACTIONS = ("reset", "close", "delay")


@dataclass(frozen=True)
class OnPattern:
    """When *pattern* passes (it may span reads), once per connection: ``"reset"``
    both sides (RST) or ``"close"`` them (FIN) right after it, the pattern itself
    forwarded; or ``"delay"`` what follows it by *delay* seconds."""

    pattern: bytes
    action: Literal["reset", "close", "delay"] = "reset"
    delay: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.pattern, bytes):
            raise TypeError(f"OnPattern pattern must be bytes, not {self.pattern!r}")
        if not self.pattern:
            raise ValueError("OnPattern pattern must not be empty")
        if self.action not in _ACTIONS:
            raise ValueError(f"OnPattern action must be one of {', '.join(map(repr, _ACTIONS))}"
                             f", not {self.action!r}")
        _args.duration(self.delay, "OnPattern delay")
        if self.delay and self.action != "delay":
            raise ValueError(f"OnPattern delay is for action 'delay', not {self.action!r}")


Fault = (
    Latency | Bandwidth | Slicer | LimitData | Timeout | ResetPeer | SlowClose | Blackhole
    | OnPattern
)
_FAULT_TYPES = (
    Latency, Bandwidth, Slicer, LimitData, Timeout, ResetPeer, SlowClose, Blackhole, OnPattern
)
_FAULT_NAMES = ", ".join(t.__name__ for t in _FAULT_TYPES)


def check_fault(fault: Any) -> Fault:
    if not isinstance(fault, _FAULT_TYPES):
        raise TypeError(f"fault must be one of {_FAULT_NAMES}, not {fault!r}")
    return fault
