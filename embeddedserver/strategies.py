"""Hypothesis strategies that draw misbehaving servers from a known-good script, and
``check_client``, which holds a client to its contract against each of them.

    from hypothesis import given, settings
    from embeddedserver import ReadUntil, http_response
    from embeddedserver.strategies import check_client, misbehaving

    SCRIPT = [ReadUntil(b"\\r\\n\\r\\n"), http_response("hello world")]

    @settings(max_examples=100, deadline=None)
    @given(misbehaving(SCRIPT))
    def test_fetch_never_returns_a_wrong_body(variant):
        check_client(variant, fetch, correct=lambda body: body == b"hello world")

Model
-----
A strategy takes a script that a correct client gets through (a list of steps, as
``CommandServer`` takes it, or a recording loaded with ``embeddedserver.load_script``) and
draws ``Variant``s of it: the same script up to a point, then one misbehaviour, at a
drawn step, byte offset and duration (the kinds are listed in ``KINDS``; each is made by a
pure function of ``embeddedserver._variants`` from the choices drawn here, so a falsifying
example replays exactly, from Hypothesis' database or with ``derandomize=True``). Delays
stay small (``max_delay``, 0.2 s in all by default), so thousands of examples run fast;
Hypothesis shrinks towards the first kind, the first send step, byte 0, the shortest pause.

``check_client(variant, client, ...)`` starts a server for the variant, calls
``client(address)`` on a thread of its own (an ``async def`` client runs in an event loop
there) and fails with ``AssertionError`` when the client raised what ``may_raise`` does not
allow, ran past ``within`` seconds (the server is then stopped, which closes its
connections, so a hanging client is reported, not waited on), or returned a result that
``correct`` rejects: a client may fail against a misbehaving server, but never return
wrong data as if it were right. The server's own verdict is relaxed for the variant (a
client may leave the script unfinished, send more, connect again or not at all, break an
expectation in its reaction); only an error on the server's side (``fail_on``) fails.
The client's thread, what it did wrong and the message live in ``embeddedserver._clientrun``.

Hypothesis is not a dependency of the package: this module needs it (``pip install
'embeddedserver[fuzz]'``) and the package does not import this module.

Sections: variants - strategies - checking a client.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - the fuzz extra is not installed
    raise ImportError(
        "embeddedserver.strategies needs Hypothesis: pip install 'embeddedserver[fuzz]'",
        name="hypothesis",
    ) from exc

from . import _args
from ._args import JOIN_TIMEOUT
from ._clientrun import (
    ClientThread,
    check_callable,
    clip,
    exception_classes,
    failure_kinds,
    judge,
    report,
)
from ._text import plural
from ._variants import (
    Base,
    cut,
    flip,
    frame_steps,
    hang,
    insert_garbage,
    overclaim_frame,
    pause,
    pause_points,
    per_connection,
    send_steps,
    show_script,
    split,
    splittable_steps,
    truncate_frame,
)
from .record import Failure
from .servers import CommandServer
from .steps import PerConnection, Script, Step, compile_script

__all__ = [
    "KINDS",
    "Outcome",
    "Variant",
    "check_client",
    "corruptions",
    "cut_sends",
    "delays",
    "hangs",
    "misbehaving",
    "one_connection",
    "split_sends",
    "truncated_frames",
]

_T = TypeVar("_T")
_Steps = tuple[Step, ...]

# ---------------------------------------------------------------------------
# variants
# ---------------------------------------------------------------------------

#: Every kind of misbehaviour, in the order Hypothesis shrinks towards (the first first):
#: a send cut short then a close, a reset or a half-close; a send split in pieces; a pause
#: before a step; silence (``Hang``) instead of a step; garbage inserted in a send; one
#: byte of a send changed; a ``SendFrame`` cut short or claiming more than follows; one
#: connection of a few misbehaving in one of the other ways.
KINDS = (
    "close", "reset", "half-close", "split", "delay", "hang", "garbage", "flip",
    "truncated-frame", "connection",
)
#: The kinds that change the bytes a client gets (no protocol check can always see it).
_CORRUPTING = frozenset({"garbage", "flip"})


class Variant:
    """One misbehaving server: the script it runs (``commands``, which every server class
    takes: a list of steps, or a ``PerConnection`` plan) and what was changed (``note``).

    ``kind`` is the misbehaviour's name (see ``KINDS``; ``"custom"`` for one made by
    hand). ``corrupts`` (by default, whether the kind does) is True when the variant
    changes the bytes the client gets (``garbage``, ``flip``), which a client cannot always
    notice, so a check of its result must allow for it. The repr reads as a script (and
    evaluates to an equal variant), so Hypothesis' falsifying example shows what the
    server did. The strategies make variants; a test may make one by hand
    (TypeError/ValueError for a bad script).

    >>> from embeddedserver import RECEIVE, Reset, Send
    >>> Variant([RECEIVE, Send(b"HTTP/1.1 200 OK\\r\\n"), Reset()], note="reset")
    Variant([RECEIVE, Send(b'HTTP/1.1 200 OK\\r\\n'), Reset()], note='reset')
    """

    __slots__ = ("commands", "corrupts", "kind", "note")

    def __init__(
        self,
        commands: Script | PerConnection,
        *,
        note: str,
        kind: str = "custom",
        corrupts: bool | None = None,
    ) -> None:
        if not isinstance(note, str) or not isinstance(kind, str):
            raise TypeError(f"note and kind must be str, not {note!r} and {kind!r}")
        self.commands: list[Step] | PerConnection = (
            commands if isinstance(commands, PerConnection) else list(compile_script(commands)))
        self.note = note
        self.kind = kind
        self.corrupts = kind in _CORRUPTING if corrupts is None else _args.flag(
            corrupts, "corrupts")

    def __repr__(self) -> str:
        return f"Variant({show_script(self.commands)}, note={self.note!r})"


def _base(script: Script | PerConnection | Variant) -> Base:
    return Base(script.commands if isinstance(script, Variant) else script)


def _made(base: Base, part: int, made: tuple[list[Step], str], kind: str) -> Variant:
    commands, note = base.rebuild(part, *made)
    return Variant(commands, note=note, kind=kind)

# ---------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------

#: The pauses a variant draws from (shrinking goes to the first): round numbers read well in
#: a falsifying example, and the shortest, 10 ms, still lets a client's read return first.
_LADDER = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_CUT_KINDS = ("close", "reset", "half-close")
_CORRUPT_KINDS = ("garbage", "flip")
_MAX_DELAY = 0.2
_MAX_PIECES = 8
_MAX_GARBAGE = 32
_CONNECTIONS = 3
_NOT_CONNECTION = tuple(kind for kind in KINDS if kind != "connection")


def _pause_choices(limit: float) -> list[float]:
    """The pauses of at most *limit* seconds: the ladder's, or *limit* itself if it is
    shorter than all of them (but not a pause too short to matter)."""
    choices = [p for p in _LADDER if p <= limit + 1e-9]
    return choices or ([limit] if limit >= 0.001 else [])


def _parts(base: Base, where: Callable[[_Steps], list[int]]) -> list[int]:
    """The parts of *base* (the script, or each script of a plan) where *where* finds places."""
    return [n for n, (_, steps) in enumerate(base.parts) if where(steps)]


@st.composite
def _place(
    draw: st.DrawFn, base: Base, where: Callable[[_Steps], list[int]]
) -> tuple[int, _Steps, int]:
    """Draw a part of *base* and a place in its script (a step index)."""
    part = draw(st.sampled_from(_parts(base, where)))
    steps = base.parts[part][1]
    return part, steps, draw(st.sampled_from(where(steps)))


def _data(steps: _Steps, index: int) -> bytes:
    data: bytes = getattr(steps[index], "data", b"")
    return data


@st.composite
def _cut(draw: st.DrawFn, base: Base, how: str) -> Variant:
    part, steps, index = draw(_place(base, send_steps))
    offset = draw(st.integers(0, len(_data(steps, index))))
    return _made(base, part, cut(steps, index, offset, how), how)


@st.composite
def _split(draw: st.DrawFn, base: Base, max_delay: float, max_pieces: int) -> Variant:
    part, steps, index = draw(_place(base, splittable_steps))
    size = len(_data(steps, index))
    cuts = sorted(draw(st.lists(st.integers(1, size - 1), min_size=1,
                                max_size=min(max_pieces - 1, size - 1), unique=True)))
    pauses, budget = [], max_delay
    for _ in cuts:
        choices = _pause_choices(budget)
        seconds = draw(st.sampled_from(choices)) if choices else 0.0
        pauses.append(seconds)
        budget -= seconds
    return _made(base, part, split(steps, index, cuts, pauses), "split")


@st.composite
def _pause(draw: st.DrawFn, base: Base, max_delay: float) -> Variant:
    part, steps, index = draw(_place(base, pause_points))
    seconds = draw(st.sampled_from(_pause_choices(max_delay)))
    return _made(base, part, pause(steps, index, seconds), "delay")


@st.composite
def _hang(draw: st.DrawFn, base: Base) -> Variant:
    part, steps, index = draw(_place(base, pause_points))
    return _made(base, part, hang(steps, index), "hang")


@st.composite
def _garbage(draw: st.DrawFn, base: Base, max_garbage: int) -> Variant:
    part, steps, index = draw(_place(base, send_steps))
    offset = draw(st.integers(0, len(_data(steps, index))))
    n = draw(st.integers(1, max_garbage))
    seed = draw(st.integers(0, 255))
    return _made(base, part, insert_garbage(steps, index, offset, n, seed), "garbage")


@st.composite
def _flip(draw: st.DrawFn, base: Base) -> Variant:
    part, steps, index = draw(_place(base, send_steps))
    offset = draw(st.integers(0, len(_data(steps, index)) - 1))
    mask = draw(st.integers(1, 255))
    return _made(base, part, flip(steps, index, offset, mask), "flip")


@st.composite
def _frame(draw: st.DrawFn, base: Base) -> Variant:
    part, steps, index = draw(_place(base, frame_steps))
    if draw(st.booleans()):  # a prefix that claims more than follows
        made = overclaim_frame(steps, index, draw(st.integers(1, 16)))
        if made is not None:
            return _made(base, part, made, "truncated-frame")
    offset = draw(st.integers(0, len(_data(steps, index)) - 1))
    return _made(base, part, truncate_frame(steps, index, offset), "truncated-frame")


@st.composite
def _connection(
    draw: st.DrawFn, base: Base, inner: st.SearchStrategy[Variant], connections: int
) -> Variant:
    position = draw(st.integers(1, connections))
    bad = draw(inner)
    assert not isinstance(bad.commands, PerConnection)
    plan, note = per_connection(base.steps, position, bad.commands, bad.note)
    return Variant(plan, note=note, kind="connection", corrupts=bad.corrupts)


def _kinds(kinds: object, what: str, accepted: Collection[str] = KINDS) -> tuple[str, ...]:
    if isinstance(kinds, str) or not isinstance(kinds, Collection):
        raise TypeError(f"{what} must be a collection of kind names such as ('reset',), "
                        f"not {kinds!r}")
    chosen = tuple(dict.fromkeys(kinds))
    unknown = [kind for kind in chosen if kind not in accepted]
    if unknown:
        raise ValueError(f"{what}: unknown kind {unknown[0]!r}; the kinds are "
                         + ", ".join(map(repr, accepted)))
    if not chosen:
        raise ValueError(f"{what} is empty: name at least one of " + ", ".join(accepted))
    return chosen


def _strategy(
    base: Base,
    kind: str,
    max_delay: float,
    *,
    max_pieces: int = _MAX_PIECES,
    max_garbage: int = _MAX_GARBAGE,
    inner: tuple[str, ...] = _NOT_CONNECTION,
    connections: int = _CONNECTIONS,
) -> st.SearchStrategy[Variant] | str:
    """The strategy of one kind of misbehaviour, or why it cannot apply to *base*."""
    if kind in _CUT_KINDS or kind in _CORRUPT_KINDS:
        if not _parts(base, send_steps):
            return "no step sends anything"
        if kind == "garbage":
            return _garbage(base, max_garbage)
        return _flip(base) if kind == "flip" else _cut(base, kind)
    if kind == "split":
        if not _parts(base, splittable_steps):
            return "no step sends 2 bytes or more at once (a Drip is split already)"
        return _split(base, max_delay, max_pieces)
    if kind in ("delay", "hang"):
        if not _parts(base, pause_points):
            return "there is no place for a pause (the script runs before TLS)"
        if kind == "hang":
            return _hang(base)
        if not _pause_choices(max_delay):
            return f"max_delay={max_delay:g} leaves no pause to make"
        return _pause(base, max_delay)
    if kind == "truncated-frame":
        return _frame(base) if _parts(base, frame_steps) else "no step is a SendFrame"
    assert kind == "connection"
    if base.plan is not None:
        return ("the script is a PerConnection plan already: every kind varies one of its "
                "connections")
    made = [_strategy(base, other, max_delay, max_pieces=max_pieces,
                      max_garbage=max_garbage) for other in inner if other != "connection"]
    branches = [s for s in made if not isinstance(s, str)]
    if not branches:
        return "no other kind applies to the script"
    return _connection(base, st.one_of(branches), connections)


def _only(base: Base, kinds: tuple[str, ...], what: str, max_delay: float,
          **more: Any) -> st.SearchStrategy[Variant]:
    """One of the strategies of *kinds* that fit *base*; ValueError naming *what* (the
    caller) and why each kind does not fit, if none does."""
    made = {kind: _strategy(base, kind, max_delay, **more) for kind in kinds}
    branches = [s for s in made.values() if not isinstance(s, str)]
    if not branches:
        why = "; ".join(f"{kind}: {reason}" for kind, reason in made.items())
        shown = clip(show_script(base.commands()), 200)
        raise ValueError(f"{what}: no misbehaviour of the kinds asked for fits the script "
                         f"{shown} ({why})")
    return st.one_of(branches)


def misbehaving(
    script: Script | PerConnection | Variant,
    *,
    kinds: Collection[str] = KINDS,
    max_delay: float = _MAX_DELAY,
) -> st.SearchStrategy[Variant]:
    """Variants of *script* that misbehave in one of *kinds* (by default every kind in
    ``KINDS`` that fits the script; a kind that does not fit, such as ``truncated-frame``
    for a script without ``SendFrame``, is left out).

    *script* is a known-good script as any server takes it, a ``PerConnection`` plan (each
    variant then varies one of its scripts) or a ``Variant``. *max_delay*: the most a
    variant pauses, in all, in seconds (a ``hang`` lasts until the client gives up).
    Raises TypeError/ValueError for a bad script or argument, and ValueError if no kind
    fits the script.

    >>> from hypothesis import find
    >>> from embeddedserver import RECEIVE
    >>> find(misbehaving([RECEIVE, b"pong"], kinds=("reset",)), lambda variant: True)
    Variant([RECEIVE, Reset()], note='reset after 0 of the 4 bytes of step 1')
    """
    base = _base(script)
    chosen = _kinds(kinds, "kinds")
    max_delay = _args.duration(max_delay, "max_delay")
    inner = tuple(kind for kind in chosen if kind != "connection") or _NOT_CONNECTION
    return _only(base, chosen, "misbehaving()", max_delay, inner=inner)


def cut_sends(
    script: Script | PerConnection | Variant,
    *,
    how: Collection[str] = _CUT_KINDS,
) -> st.SearchStrategy[Variant]:
    """Variants that send a drawn send step up to a drawn byte offset (0 to all of it), then
    close (``"close"``: FIN), reset (``"reset"``: RST) or half-close (``"half-close"``: the
    client reads EOF, the server stays silent and keeps reading) instead of the rest.
    ValueError if the script sends nothing."""
    base = _base(script)
    return _only(base, _kinds(how, "how", _CUT_KINDS), "cut_sends()", 0.0)


def split_sends(
    script: Script | PerConnection | Variant,
    *,
    max_delay: float = _MAX_DELAY,
    max_pieces: int = _MAX_PIECES,
) -> st.SearchStrategy[Variant]:
    """Variants that send a drawn send step in 2 to *max_pieces* pieces of drawn sizes,
    with pauses between them (10 ms or more, *max_delay* seconds in all; once that is spent,
    back to back): a client must not take one read for the whole reply."""
    base = _base(script)
    max_delay = _args.duration(max_delay, "max_delay")
    pieces = _args.count(max_pieces, "max_pieces", 2)
    return _only(base, ("split",), "split_sends()", max_delay, max_pieces=pieces)


def delays(
    script: Script | PerConnection | Variant, *, max_delay: float = _MAX_DELAY
) -> st.SearchStrategy[Variant]:
    """Variants that pause (``Delay``, at most *max_delay* seconds) before a drawn step,
    or before the end of the script."""
    base = _base(script)
    return _only(base, ("delay",), "delays()", _args.duration(max_delay, "max_delay"))


def hangs(script: Script | PerConnection | Variant) -> st.SearchStrategy[Variant]:
    """Variants that fall silent (``Hang()``) instead of a drawn step and the rest, or
    instead of closing at the end: the client's own timeout must end its wait."""
    return _only(_base(script), ("hang",), "hangs()", 0.0)


def corruptions(
    script: Script | PerConnection | Variant,
    *,
    how: Collection[str] = _CORRUPT_KINDS,
    max_garbage: int = _MAX_GARBAGE,
) -> st.SearchStrategy[Variant]:
    """Variants that insert 1 to *max_garbage* bytes of ``Garbage`` at a drawn byte of a
    send step (``"garbage"``), or change one byte of it (``"flip"``). The client gets
    wrong bytes: ``Variant.corrupts`` is True, and a check of its result must allow that
    a protocol cannot notice every change (a byte of an HTTP body, say)."""
    base = _base(script)
    garbage = _args.count(max_garbage, "max_garbage", 1)
    return _only(base, _kinds(how, "how", _CORRUPT_KINDS), "corruptions()", 0.0,
                 max_garbage=garbage)


def truncated_frames(script: Script | PerConnection | Variant) -> st.SearchStrategy[Variant]:
    """Variants that send a drawn ``SendFrame`` step cut short (in its prefix or its
    payload), or behind a length prefix that claims 1 to 16 bytes more than follow, then
    close. ValueError if the script has no ``SendFrame``."""
    return _only(_base(script), ("truncated-frame",), "truncated_frames()", 0.0)


def one_connection(
    script: Script | Variant,
    *,
    kinds: Collection[str] = _NOT_CONNECTION,
    max_delay: float = _MAX_DELAY,
    connections: int = _CONNECTIONS,
) -> st.SearchStrategy[Variant]:
    """Variants where connection 1 to *connections* (drawn) misbehaves in one of *kinds*
    and every other connection follows *script* (``PerConnection``): a client that
    retries, or keeps a pool, meets one bad connection among good ones."""
    base = _base(script)
    inner = _kinds(kinds, "kinds", _NOT_CONNECTION)
    count = _args.count(connections, "connections", 1)
    return _only(base, ("connection",), "one_connection()",
                 _args.duration(max_delay, "max_delay"), inner=inner, connections=count)


# ---------------------------------------------------------------------------
# checking a client
# ---------------------------------------------------------------------------

#: What a client may raise against a misbehaving server, by default.
_MAY_RAISE = (ConnectionError, TimeoutError, ValueError)
#: Seconds a client that ran past ``within`` gets to end once the server has stopped.
_GRACE = JOIN_TIMEOUT
#: Seconds a late async client gets, once the server has stopped, before its task is cancelled.
_CANCEL_AFTER = 0.5
#: The verdict a variant's server gives: a client may react to the misbehaviour in any way.
#: The client has returned when the verdict settles: no silence is worth waiting for.
_RELAXED: dict[str, Any] = {
    "verbose": False, "allow_unfinished": True, "allow_extra_bytes": True,
    "expect_connections": None, "settle": 0.0,
}


@dataclass
class Outcome(Generic[_T]):
    """What ``check_client`` saw, once the client kept its contract.

    ``result`` is what the client returned (None if it raised), ``raised`` the exception it
    raised (one ``may_raise`` allows), ``elapsed`` its run time in seconds, ``server`` the
    server of the variant (stopped: ``transcript()``, ``connections``), and ``tolerated``
    the failures the server recorded that the relaxed verdict forgives (a client that
    hung up in the middle of the script, say): they are taken out of ``server.errors``.
    """

    result: _T | None
    raised: BaseException | None
    elapsed: float
    server: CommandServer
    tolerated: list[Failure] = field(default_factory=list)


@overload
def check_client(
    variant: Variant | Script | PerConnection,
    client: Callable[[Any], Coroutine[Any, Any, _T]],
    *,
    may_raise: type[BaseException] | tuple[type[BaseException], ...] = ...,
    within: float = ...,
    correct: Callable[[_T], object] | None = ...,
    start: Callable[..., CommandServer] = ...,
    fail_on: Collection[str] = ...,
) -> Outcome[_T]: ...


@overload
def check_client(
    variant: Variant | Script | PerConnection,
    client: Callable[[Any], _T],
    *,
    may_raise: type[BaseException] | tuple[type[BaseException], ...] = ...,
    within: float = ...,
    correct: Callable[[_T], object] | None = ...,
    start: Callable[..., CommandServer] = ...,
    fail_on: Collection[str] = ...,
) -> Outcome[_T]: ...


def check_client(
    variant: Variant | Script | PerConnection,
    client: Callable[[Any], Any],
    *,
    may_raise: type[BaseException] | tuple[type[BaseException], ...] = _MAY_RAISE,
    within: float = 2.0,
    correct: Callable[[Any], object] | None = None,
    start: Callable[..., CommandServer] = CommandServer,
    fail_on: Collection[str] = ("error",),
) -> Outcome[Any]:
    """Run *client* against a server for *variant* and check the contract it must keep.

    Starts a server (``start(commands, **options)``: ``CommandServer`` by default, or the
    ``command_server`` fixture, or a ``functools.partial`` of a server class with options
    of yours) with a relaxed verdict (``allow_unfinished``, ``allow_extra_bytes``,
    ``expect_connections=None``), calls ``client(address)`` (``(host, port)``, or a path
    for a Unix-socket server) on a thread of its own (an ``async def`` client runs in an
    event loop there), then lets the server run its script on all the client sent and
    stops it (``verdict()``, which settles at once: the client is done). Raises
    AssertionError, with the variant's script, what the client did and the server's
    transcript, when the client

    * raised an exception that *may_raise* (a class or a tuple) does not allow;
    * ran past *within* seconds: the server is then stopped (which closes its
      connections) and the client given a few seconds more to end (an async client's
      task is cancelled); if it still runs, its thread is named in the message;
    * returned a result that *correct* rejects (returns false, or raises): a client may
      give up on a misbehaving server, but never return wrong data as if it were right;

    or when the server recorded a failure of a kind in *fail_on* (by default ``"error"``:
    an exception on the server's side, a ``Call`` step's; add ``"mismatch"`` for a script
    whose expectations the client must meet whatever the server does). Other failures are
    the client's reaction to the misbehaviour: they are taken out of ``server.errors``
    (so the ``command_server`` fixture's verdict passes) and returned in
    ``Outcome.tolerated``. From a coroutine, ``await asyncio.to_thread(check_client, ...)``.

    Returns an ``Outcome``. Raises TypeError/ValueError for a bad argument.

        check_client(variant, fetch, within=1.0, correct=lambda body: body == b"hello")
    """
    __tracebackhide__ = True
    commands: Script | PerConnection
    if isinstance(variant, Variant):
        commands, shown = variant.commands, repr(variant)
    else:
        base = _base(variant)  # a bad script fails here, as a server would
        commands, shown = variant, show_script(base.commands())
    allowed = exception_classes(may_raise)
    within = _args.timeout(within, "within")
    check_callable(client, "client", "a callable taking the server's address")
    if correct is not None:
        check_callable(correct, "correct", "a callable taking the client's result, or None")
    check_callable(start, "start", "a server class such as CommandServer, or a factory")
    fatal = frozenset(failure_kinds(fail_on))
    server = start(commands, **_RELAXED)
    if not isinstance(server, CommandServer):
        stop = getattr(server, "stop", None)
        if callable(stop):
            stop()
        raise TypeError(f"start must make a CommandServer (or a subclass), not {server!r}")
    try:
        run = ClientThread(client, server.address)
        in_time = run.wait(within)
        if in_time:  # the server runs its scripts on all the client sent, then stops
            with contextlib.suppress(AssertionError):  # its failures are judged below
                server.verdict()
    finally:
        server.stop()  # what a late client waits on closes: it ends, or it is reported
    # A late client gets time to see its connections close; an async one whose task
    # still waits (on something else than the server) is cancelled after a short while.
    ended = in_time or run.wait(_CANCEL_AFTER if run.is_async else _GRACE) or (
        run.cancel() and run.wait(_GRACE))
    serious = [f for f in server.errors if f.kind in fatal]
    tolerated = [f for f in server.errors if f.kind not in fatal]
    for failure in tolerated:  # stopped: every failure is recorded, none is waited for
        server.assert_failed(failure.kind, timeout=0.001)
    problem, cause = judge(run, allowed, within, _GRACE, in_time, ended, correct)
    if serious:
        problem = (problem + "; and " if problem else "") + (
            f"the server itself failed ({plural(len(serious), 'failure')} of kind "
            + ", ".join(sorted({f.kind for f in serious})) + ")")
    if problem:
        raise AssertionError(report(problem, shown, run, within, server, serious,
                                     tolerated)) from cause
    return Outcome(run.result, run.raised, run.elapsed, server, tolerated)
