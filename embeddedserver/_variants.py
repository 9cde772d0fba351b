"""Misbehaving variants of a known-good script: the pure half of ``embeddedserver.strategies``.

Model
-----
A *variant* is the script a server runs instead of a known-good one: the same steps up to
a point, then one misbehaviour. Each function below takes a compiled script and the
choices that say where and how (which step, which byte, how long) and returns the
variant's steps with a note in words; ``embeddedserver.strategies`` draws the choices with
Hypothesis. Nothing here touches a socket, starts a thread or draws a random number: the
same choices always give the same variant, so a falsifying example replays.

The misbehaviours, by the name ``strategies.misbehaving(kinds=...)`` gives them:

* ``close``, ``reset``, ``half-close``: a send step is cut at a byte offset, then the
  server closes (FIN), resets (RST) or shuts its write side and keeps reading;
* ``split``: a send step goes out in pieces, with pauses between them;
* ``delay``: a pause before a step; ``hang``: silence instead of a step and the rest;
* ``garbage``: pseudo-random bytes inserted in a send; ``flip``: one byte of a send changed;
* ``truncated-frame``: a ``SendFrame`` cut short, or whose length prefix claims more than
  follows, then a close;
* ``connection``: one connection of a few misbehaves so, the others follow the script.

``strategies.Variant`` holds a variant and its note. A variant is always a valid script
(``compile_script`` accepts it): nothing follows a close or a reset, nothing is sent
after a half-close.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence
from typing import TypeAlias

from .record import show_bytes
from .steps import (
    Close,
    Delay,
    Drip,
    Garbage,
    HalfClose,
    Hang,
    PerConnection,
    Receive,
    Reset,
    Script,
    Send,
    SendFrame,
    Step,
    compile_script,
)

__all__ = [
    "Base",
    "cut",
    "flip",
    "frame_steps",
    "hang",
    "insert_garbage",
    "overclaim_frame",
    "pause",
    "pause_points",
    "per_connection",
    "send_steps",
    "show_script",
    "split",
    "splittable_steps",
    "truncate_frame",
]

Steps: TypeAlias = tuple[Step, ...]

# ---------------------------------------------------------------------------
# how a script reads, and the script varied
# ---------------------------------------------------------------------------


def _show_step(step: Step) -> str:
    if type(step) is Receive and step.n is None and step.timeout is None:
        return "RECEIVE"
    return repr(step)


def show_script(commands: Sequence[Step] | PerConnection) -> str:
    """A script as Python would write it: ``[RECEIVE, Send(b'hi'), Reset()]``, or a
    ``PerConnection(...)`` call with each connection's script."""
    if isinstance(commands, PerConnection):
        parts = [show_script(script) for script in commands.scripts]
        if commands.then is not None:
            parts.append("then=" + show_script(commands.then))
        return f"PerConnection({', '.join(parts)})"
    return "[" + ", ".join(_show_step(step) for step in commands) + "]"


class Base:
    """A known-good script, compiled, as the strategies vary it: one script for every
    connection (``steps``), or a ``PerConnection`` plan (``plan``: a recording of several
    connections), whose scripts (``parts``, each with a label) are varied one at a time.

    Raises TypeError/ValueError for a bad script, as a server would.
    """

    def __init__(self, commands: Script | PerConnection) -> None:
        self.plan = commands if isinstance(commands, PerConnection) else None
        if self.plan is None:
            assert not isinstance(commands, PerConnection)
            self.parts: list[tuple[str, Steps]] = [("", compile_script(commands))]
        else:
            count = len(self.plan.scripts)
            self.parts = [(f"connection {n}", script)
                          for n, script in enumerate(self.plan.scripts, 1)]
            if self.plan.then is not None:
                self.parts.append((f"connections after {count}", self.plan.then))

    def __repr__(self) -> str:
        return f"Base({show_script(self.commands())})"

    @property
    def steps(self) -> Steps:
        """The script of a one-script base (``plan`` is None)."""
        assert self.plan is None
        return self.parts[0][1]

    def commands(self) -> list[Step] | PerConnection:
        """The base as a server takes it."""
        return list(self.steps) if self.plan is None else self.plan

    def rebuild(
        self, part: int, steps: Sequence[Step], note: str
    ) -> tuple[list[Step] | PerConnection, str]:
        """The commands that run *steps* in place of the script of ``parts[part]``, and
        *note* saying which connection that is (for a plan)."""
        if self.plan is None:
            return list(compile_script(list(steps))), note  # a bad variant fails here
        scripts = [list(script) for _, script in self.parts]
        scripts[part] = list(steps)
        then = scripts.pop() if self.plan.then is not None else None
        return PerConnection(*scripts, then=then), f"{self.parts[part][0]}: {note}"


# ---------------------------------------------------------------------------
# where a misbehaviour can go
# ---------------------------------------------------------------------------


def send_steps(steps: Steps) -> list[int]:
    """The indices of the steps that send at least one byte (``Send`` and its kin, ``Drip``)."""
    return [i for i, step in enumerate(steps) if isinstance(step, Send) and step.data]


def splittable_steps(steps: Steps) -> list[int]:
    """The send steps of two bytes or more that send at once (a ``Drip`` is split already)."""
    return [i for i in send_steps(steps)
            if len(_send(steps[i]).data) >= 2 and not isinstance(steps[i], Drip)]


def frame_steps(steps: Steps) -> list[int]:
    """The indices of the ``SendFrame`` steps."""
    return [i for i, step in enumerate(steps) if isinstance(step, SendFrame)]


def pause_points(steps: Steps) -> list[int]:
    """Where a pause or a hang may go: before any step, or at the end unless the script
    ends by closing. None in a script that starts with a step run before TLS (it is the
    whole script: nothing may come before it)."""
    if steps and steps[0].before_tls:
        return []
    ends = bool(steps) and steps[-1].ends_connection
    return list(range(len(steps) + (0 if ends else 1)))


def _send(step: Step) -> Send:
    assert isinstance(step, Send)
    return step


def _same_kind(step: Send, data: bytes) -> list[Step]:
    """A step that sends *data* the way *step* sends (a ``Drip`` drips): none for b''."""
    if not data:
        return []
    if isinstance(step, Drip):
        return [Drip(data, chunk=step.chunk, interval=step.interval)]
    return [Send(data)]


def _of_step(index: int, step: Send) -> str:
    return f"step {index} ({len(step.data)} bytes)"


# ---------------------------------------------------------------------------
# the misbehaviours
# ---------------------------------------------------------------------------

_ENDINGS: dict[str, list[Step]] = {
    "close": [Close()],
    "reset": [Reset()],
    # The server still reads: silent until the client closes or the server stops.
    "half-close": [HalfClose(), Hang()],
}


def cut(steps: Steps, index: int, offset: int, how: str) -> tuple[list[Step], str]:
    """Send the first *offset* bytes of step *index*, then close, reset or half-close
    (*how*) instead of the rest of the script."""
    step = _send(steps[index])
    assert 0 <= offset <= len(step.data) and how in _ENDINGS
    new = [*steps[:index], *_same_kind(step, step.data[:offset]), *_ENDINGS[how]]
    return new, f"{how} after {offset} of the {len(step.data)} bytes of step {index}"


def split(
    steps: Steps, index: int, cuts: Sequence[int], pauses: Sequence[float]
) -> tuple[list[Step], str]:
    """Send step *index* in pieces, cut at the byte offsets *cuts* (ascending, inside the
    data), with ``pauses[i]`` seconds after piece i (0: the next piece at once)."""
    step = _send(steps[index])
    data = step.data
    bounds = [0, *cuts, len(data)]
    assert all(a < b for a, b in itertools.pairwise(bounds)) and len(pauses) == len(cuts)
    pieces: list[Step] = []
    for i in range(len(bounds) - 1):
        pieces.append(Send(data[bounds[i]:bounds[i + 1]]))
        if i < len(pauses) and pauses[i] > 0:
            pieces.append(Delay(pauses[i]))
    sizes = ", ".join(str(b - a) for a, b in itertools.pairwise(bounds))
    waits = [p for p in pauses if p > 0]
    waited = f", {sum(waits):.3g} s of pauses between them" if waits else ", back to back"
    note = f"step {index} sent in {len(bounds) - 1} pieces of {sizes} bytes{waited}"
    return [*steps[:index], *pieces, *steps[index + 1:]], note


def pause(steps: Steps, index: int, seconds: float) -> tuple[list[Step], str]:
    """Pause *seconds* before step *index* (``len(steps)``: before the end)."""
    where = f"step {index}" if index < len(steps) else "the end of the script"
    note = f"a pause of {seconds:g} s before {where}"
    return [*steps[:index], Delay(seconds), *steps[index:]], note


def hang(steps: Steps, index: int) -> tuple[list[Step], str]:
    """Fall silent (``Hang()``: until the client gives up or the server stops) instead of
    step *index* and the rest (``len(steps)``: instead of the end, the close)."""
    if index < len(steps):
        note = f"silent (Hang) from step {index} on, until the client gives up"
    else:
        note = "silent (Hang) at the end instead of closing, until the client gives up"
    return [*steps[:index], Hang()], note


def insert_garbage(
    steps: Steps, index: int, offset: int, n: int, seed: int
) -> tuple[list[Step], str]:
    """Send *n* bytes of ``Garbage(n, seed)`` after the first *offset* bytes of step *index*."""
    step = _send(steps[index])
    data = step.data
    middle = [*_same_kind(step, data[:offset]), Garbage(n, seed=seed),
              *_same_kind(step, data[offset:])]
    note = f"{n} bytes of garbage at byte {offset} of {_of_step(index, step)}"
    return [*steps[:index], *middle, *steps[index + 1:]], note


def flip(steps: Steps, index: int, offset: int, mask: int) -> tuple[list[Step], str]:
    """Change byte *offset* of step *index* (xor *mask*, 1 to 255)."""
    step = _send(steps[index])
    assert 0 <= offset < len(step.data) and 1 <= mask <= 255
    data = bytearray(step.data)
    old = data[offset]
    data[offset] ^= mask
    note = (f"byte {offset} of {_of_step(index, step)} changed from "
            f"{show_bytes(bytes([old]))} to {show_bytes(bytes([data[offset]]))}")
    return [*steps[:index], *_same_kind(step, bytes(data)), *steps[index + 1:]], note


def truncate_frame(steps: Steps, index: int, offset: int) -> tuple[list[Step], str]:
    """Send the first *offset* bytes of the frame of step *index* (prefix included, fewer
    than all), then close."""
    step = steps[index]
    assert isinstance(step, SendFrame) and 0 <= offset < len(step.data)
    new = [*steps[:index], *_same_kind(step, step.data[:offset]), Close()]
    head = len(step.data) - len(step.payload)
    note = (f"the frame of step {index} cut after {offset} of its {len(step.data)} bytes "
            f"({head} of them the length prefix), then the server closes")
    return new, note


def overclaim_frame(steps: Steps, index: int, extra: int) -> tuple[list[Step], str] | None:
    """Send the frame of step *index* with a length prefix *extra* bytes longer than its
    payload, then close; None if the longer length does not fit the prefix."""
    step = steps[index]
    assert isinstance(step, SendFrame) and extra >= 1
    claimed = len(step.payload) + extra
    try:
        head = struct.pack(step.prefix, claimed)
    except struct.error:
        return None
    note = (f"the frame of step {index} says {claimed} payload bytes but sends "
            f"{len(step.payload)}, then the server closes")
    return [*steps[:index], Send(head + step.payload), Close()], note


def per_connection(
    steps: Steps, position: int, bad: Sequence[Step], note: str
) -> tuple[PerConnection, str]:
    """Connection *position* (1-based) runs *bad* (a variant of *steps*, which *note*
    describes); the connections before and after it run *steps*."""
    assert position >= 1
    good = list(steps)
    plan = PerConnection(*([good] * (position - 1)), list(bad), then=good)
    return plan, f"connection {position} misbehaves ({note}); the others follow the script"
