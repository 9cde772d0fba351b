"""Replies chosen by what the client sends: the ``Rules`` step. No I/O.

Model
-----
A script is a fixed order; a client with a connection pool, pipelining or retries sends
its requests in an order the test does not fix. ``Rules(read, *rules)`` is one step that
loops: it reads one request with *read* (the step that frames it: ``ReadLine()``,
``ReadUntil(b"\\r\\n\\r\\n")``, ``ReadFrame()``, an int count...), gives it to the first
``Rule`` that accepts it, runs that rule's reply (sends, or any misbehaviour: ``Reset()``,
``Close()``, ``Delay()``, ``Hang()``), and reads the next request. The client closing at
a request boundary ends the step, normally; EOF inside a request fails it, as it fails any
read step.

A rule accepts a request by exact bytes (the whole request), a compiled regex (searched
in the request: anchor it with ``^`` and ``\\Z`` to match it whole) or a predicate
``func(request) -> bool``. How many times a rule may answer is its ``times``: None (the
default) any number of times; an int n exactly n times, after which it is used up (n=1:
a one-shot rule); a range (``range(0, 2)``: at most once, ``at_least(1)``) from
``start`` to ``stop - 1`` times. A rule used up no longer answers: the next rule that
accepts the request does.

With ``ordered=True`` the rules are a sequence, the way a script is: a request may be
answered by the first rule not used up, or by a later one when every rule before that
one has had its minimum; a rule passed over so is closed for good. A permanent rule
(``times=None``) is never used up, so what follows it answers only what it refuses.

Every rule's matcher sees every request (outside any lock: a predicate may be slow), the
first that accepts it and has uses left answers. The counts belong to the server (a
``RuleBook``), shared by all its connections and guarded by a lock (so is the place an
ordered step has reached: the sequence spans the connections), so a pooled client
spreading its requests over several connections is judged as one. At the verdict a rule
matched fewer or more times than its ``times`` says is a failure naming the rule, what it
expected and what it got (a used-up rule counts the requests it had to refuse). A request
no rule takes is a failure showing the request and the closest rules with how each
differs; the server then answers it with ``unmatched=`` (by default ``Close()``).
"""

from __future__ import annotations

import difflib
import re
import threading
from collections.abc import Callable, Sequence
from typing import TypeAlias

from ._text import bytes_pattern, match_repr
from .record import Failure, show_bytes
from .steps import (
    Close,
    ExpectClose,
    ReadStep,
    Receive,
    Script,
    Send,
    Step,
    compile_script,
)

__all__ = ["Matchable", "Reply", "Rule", "RuleBook", "Rules", "rules_in"]

#: What a rule accepts: exact bytes (a str is UTF-8), a compiled regex (searched in the
#: request) or a predicate ``func(request) -> bool``.
Matchable: TypeAlias = (
    bytes | bytearray | memoryview | str | re.Pattern[bytes] | re.Pattern[str]
    | Callable[[bytes], bool]
)

#: A reply: bytes or str (sent), one step, or a list of send and action steps (no read
#: steps: the ``Rules`` step reads the requests).
Reply: TypeAlias = Script

_MANY = 2**62
#: How many of the closest rules an unmatched request's failure shows.
_SHOWN = 5


def _compile_reply(reply: Reply, what: str) -> tuple[Step, ...]:
    if isinstance(reply, (bytes, bytearray, memoryview, str)):
        steps: tuple[Step, ...] = (Send(reply),)  # not compile_script's [RECEIVE, it]
    else:
        try:
            steps = compile_script(reply)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{what}: {exc}") from None
    for i, step in enumerate(steps):
        if isinstance(step, (ReadStep, Rules)):
            raise ValueError(
                f"{what}: command {i} ({step!r}) reads, but a reply only sends or acts "
                "(sends, Delay, Close, Reset, Hang...): the Rules step reads each request"
            )
    return steps


def _check_times(times: int | range | None) -> range:
    if times is None:
        return range(0, _MANY)
    if isinstance(times, range):
        if times.step != 1 or times.start < 0 or len(times) == 0:
            raise ValueError(
                f"times must be a non-empty range of counts >= 0 with step 1, not {times!r}"
            )
        return times
    if isinstance(times, bool) or not isinstance(times, int):
        raise TypeError(
            f"times must be None (any number), an int >= 1 (exactly) or a range such as "
            f"range(0, 2) or at_least(1), not {times!r}"
        )
    if times < 1:
        raise ValueError(
            f"times must be >= 1, not {times!r} (range(0, 1) says: never)"
        )
    return range(times, times + 1)


def _count_times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def _say_times(times: range) -> str:
    if times.stop >= _MANY:
        return "any number of times" if times.start == 0 else f"at least {times.start} times"
    if len(times) == 1:
        return "never" if times.start == 0 else f"exactly {_count_times(times.start)}"
    return f"{times.start} to {_count_times(times.stop - 1)}"


class Rule:
    """One answer of a ``Rules`` step: when a request matches *match*, send *reply*.

    Arguments:
        match: exact bytes or str (the whole request), a compiled regex (searched in the
            request), or a predicate ``func(request: bytes) -> bool``. A predicate with
            methods ``difference(request) -> str`` and ``similarity(request) -> float``
            (0 to 1), as ``embeddedserver.http.match()`` makes, explains itself in the
            report of a request no rule takes.
        reply: bytes/str to send, a step, or a list of send and action steps
            (``[b"+OK\\r\\n", Close()]``, ``Reset()``, ``Hang()``); ``()`` sends nothing.
        times: None, any number of times (the default); n, exactly n times (used up
            after); a range, that many (``range(0, 2)``: at most once).

    Raises TypeError/ValueError naming a bad argument.

    >>> Rule(b"PING\\r\\n", b"+PONG\\r\\n", times=2)
    Rule(b'PING\\r\\n', b'+PONG\\r\\n', times=2)
    """

    def __init__(self, match: Matchable, reply: Reply = (), *, times: int | range | None = None
                 ) -> None:
        self.exact: bytes | None = None
        self.pattern: re.Pattern[bytes] | None = None
        self.predicate: Callable[[bytes], bool] | None = None
        if isinstance(match, (bytes, bytearray, memoryview, str)):
            self.exact = match.encode("utf-8") if isinstance(match, str) else bytes(match)
            if not self.exact:
                raise ValueError("Rule(b'') would match no request: give at least one byte")
        elif isinstance(match, re.Pattern):
            self.pattern = bytes_pattern(match)
        elif callable(match):
            self.predicate = match
        else:
            raise TypeError(
                f"a Rule matches bytes, str, a compiled regex or a predicate "
                f"func(request) -> bool, not {match!r}"
            )
        self.reply = _compile_reply(reply, "reply")
        self._reply_given = reply
        self.times = _check_times(times)
        self._times_given = times

    def accepts(self, request: bytes) -> bool:
        """True if *request* matches this rule (its count aside)."""
        if self.exact is not None:
            return request == self.exact
        if self.pattern is not None:
            return self.pattern.search(request) is not None
        assert self.predicate is not None
        return bool(self.predicate(request))

    def difference(self, request: bytes) -> str:
        """How *request* differs from what the rule accepts, in words."""
        if self.pattern is not None:
            return "did not match"
        if self.predicate is not None:
            explain = getattr(self.predicate, "difference", None)  # http.match() has one
            return str(explain(request)) if callable(explain) else "returned False"
        assert self.exact is not None
        exact = self.exact
        at = next((i for i, (a, b) in enumerate(zip(exact, request, strict=False)) if a != b), None)
        if at is None:
            if len(request) < len(exact):
                missing = show_bytes(exact[len(request):], 40)
                return f"the request ends at byte {len(request)}, before {missing}"
            more = show_bytes(request[len(exact):], 40)
            return f"the request goes on after byte {len(exact)} with {more}"
        return (f"differs at byte {at}: the rule has {show_bytes(exact[at:at + 16], 40)} "
                f"there, the request {show_bytes(request[at:at + 16], 40)}")

    def similarity(self, request: bytes) -> float:
        """How close *request* is to the rule, from 0 to 1 (ranks an unmatched request's
        closest rules): difflib's ratio against the bytes, or the regex's source."""
        if self.exact is not None:
            target = self.exact
        elif self.pattern is not None:
            target = self.pattern.pattern
        else:
            rank = getattr(self.predicate, "similarity", None)  # http.match() has one
            return float(rank(request)) if callable(rank) else 0.0
        return difflib.SequenceMatcher(None, request, target, autojunk=False).ratio()

    def __repr__(self) -> str:
        head = match_repr(self.exact, self.pattern, self.predicate)
        args = [head]
        if self.reply:
            given = self._reply_given
            args.append(repr(given) if isinstance(given, (bytes, str)) else repr(list(self.reply)))
        if self._times_given is not None:
            args.append(f"times={self._times_given!r}")
        return f"Rule({', '.join(args)})"


class Rules(Step):
    """Answer each request by the first rule that accepts it, until the client closes.

    Arguments:
        read: the read step that frames one request (``ReadLine()``, ``ReadUntil(b"\\n\\n")``,
            ``ReadFrame()``, ``Receive(n)`` or an int n...); its ``timeout`` is how long
            the step waits for each request (else the server's): a client silent that
            long between requests, neither sending nor closing, fails with a timeout.
            A connection idle between requests when the server stops is no failure.
        rules: one or more ``Rule``.
        unmatched: the reply to a request no rule takes (which is also a failure):
            ``Close()`` (the default), ``Reset()``, or bytes such as ``b"-ERR\\r\\n"``
            (then the step goes on reading).
        ordered: the rules are a sequence (see ``embeddedserver.rules``).

    Raises TypeError/ValueError naming a bad argument.

    >>> from embeddedserver.steps import ReadLine
    >>> Rules(ReadLine(), Rule(b"PING\\r\\n", b"+PONG\\r\\n"))
    Rules(ReadLine(), Rule(b'PING\\r\\n', b'+PONG\\r\\n'))
    """

    kind = "rules"

    def __init__(
        self,
        read: ReadStep | int,
        *rules: Rule,
        unmatched: Reply = Close(),  # noqa: B008 (steps are immutable values)
        ordered: bool = False,
    ) -> None:
        if isinstance(read, int) and not isinstance(read, bool):
            read = Receive(read)
        if not isinstance(read, ReadStep) or isinstance(read, ExpectClose):
            raise TypeError(
                "Rules needs a read step that frames one request (ReadLine(), ReadUntil("
                f"delimiter), ReadFrame(), Receive(n) or an int n) first, not {read!r}"
            )
        if not rules:
            raise ValueError("Rules needs at least one Rule after the read step")
        for i, rule in enumerate(rules):
            if not isinstance(rule, Rule):
                raise TypeError(f"rule {i} must be a Rule(match, reply), not {rule!r}")
        if not isinstance(ordered, bool):
            raise TypeError(f"ordered must be True or False, not {ordered!r}")
        self.read = read
        self.rules: tuple[Rule, ...] = rules
        self.unmatched = _compile_reply(unmatched, "unmatched")
        self.ordered = ordered
        self.timeout = read.timeout

    def _repr_args(self) -> list[str]:
        args = [repr(self.read), *map(repr, self.rules)]
        if not (len(self.unmatched) == 1 and isinstance(self.unmatched[0], Close)):
            args.append(f"unmatched={list(self.unmatched)!r}")
        if self.ordered:
            args.append("ordered=True")
        return args

    def describe(self) -> str:
        """What the step waits for (used in failure messages)."""
        return f"a request ({self.read.describe()}) or the client to close"



class _Counts:
    __slots__ = ("closed", "refused", "step", "used")

    def __init__(self, step: Rules) -> None:
        self.step = step  # held, so that the id keying it stays this step's
        self.used = [0] * len(step.rules)
        self.refused = [0] * len(step.rules)  # accepted by a used-up rule, answered by none
        self.closed = 0  # ordered: the rules before this index were passed over


class RuleBook:
    """How many times each rule of each ``Rules`` step answered, for one server: shared
    by all its connections (thread-safe). A ``ScriptRunner`` without one makes its own.

    >>> from embeddedserver.steps import ReadLine
    >>> book, step = RuleBook(), Rules(ReadLine(), Rule(b"a\\n", times=1))
    >>> book.choose(step, b"a\\n")[0], book.choose(step, b"a\\n")[0], book.used(step)
    (0, None, [1])
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[int, _Counts] = {}

    def _of(self, step: Rules) -> _Counts:
        counts = self._counts.get(id(step))
        if counts is None:
            counts = self._counts[id(step)] = _Counts(step)
        return counts

    def choose(self, step: Rules, request: bytes) -> tuple[int | None, str]:
        """The index of the rule that answers *request* (counted), and ``""``; or None
        and what went wrong, with the closest rules. A predicate that raises raises."""
        accepted = [rule.accepts(request) for rule in step.rules]  # outside the lock
        with self._lock:
            counts = self._of(step)
            used, refused = counts.used, counts.refused
            blocked: int | None = None  # ordered: the rule not yet had its minimum
            first = counts.closed if step.ordered else 0
            for i in range(first, len(step.rules)):
                rule = step.rules[i]
                if accepted[i] and used[i] < rule.times.stop - 1:
                    used[i] += 1
                    if step.ordered:
                        counts.closed = i
                    return i, ""
                if step.ordered and used[i] < rule.times.start:
                    blocked = i
                    break
            spent = [i for i, ok in enumerate(accepted)
                     if ok and used[i] >= step.rules[i].times.stop - 1]
            for i in spent:
                refused[i] += 1
            snapshot = list(used)
        return None, _explain(step, request, accepted, snapshot, spent, blocked, first)

    def failures(self, steps: Sequence[Rules]) -> list[Failure]:
        """At the verdict: a failure for each rule of *steps* that answered fewer or more
        times than its ``times`` says (a used-up rule counts what it refused)."""
        found: list[Failure] = []
        seen: set[int] = set()
        with self._lock:
            for step in steps:
                if id(step) in seen:
                    continue
                seen.add(id(step))
                counts = self._counts.get(id(step))
                for i, rule in enumerate(step.rules):
                    used = counts.used[i] if counts else 0
                    refused = counts.refused[i] if counts else 0
                    if used + refused in rule.times:
                        continue
                    more = f" ({refused} more after it was used up)" if refused else ""
                    found.append(Failure(
                        "rules",
                        f"rule {i} {rule!r} was to match {_say_times(rule.times)}, and "
                        f"matched {_count_times(used + refused)}"
                        f"{more}",
                        step=step,
                    ))
        return found

    def used(self, step: Rules) -> list[int]:
        """How many requests each rule of *step* answered so far."""
        with self._lock:
            counts = self._counts.get(id(step))
            return list(counts.used) if counts else [0] * len(step.rules)


def _explain(
    step: Rules,
    request: bytes,
    accepted: list[bool],
    used: list[int],
    spent: list[int],
    blocked: int | None,
    first: int,
) -> str:
    lines = [f"no rule takes the request {show_bytes(request, 120)}"]
    for i in spent:
        rule = step.rules[i]
        lines.append(f"  rule {i} {rule!r} accepts it but is used up "
                     f"(matched {_count_times(used[i])}, {_say_times(rule.times)} allowed)")
    if blocked is not None:
        later = [i for i in range(blocked + 1, len(step.rules)) if accepted[i]]
        rule = step.rules[blocked]
        if later:
            lines.append(
                f"  rule {later[0]} {step.rules[later[0]]!r} accepts it, but the rules are "
                f"ordered and rule {blocked} {rule!r} comes first: it has matched "
                f"{_count_times(used[blocked])} of "
                f"{_say_times(rule.times)}")
    for i in range(first) if step.ordered else ():
        if accepted[i]:
            lines.append(f"  rule {i} {step.rules[i]!r} accepts it, but the rules are "
                         "ordered and a later rule has answered since")
    others = [i for i, ok in enumerate(accepted) if not ok]
    if others and not any(accepted):  # else the rules that accept it say enough
        ranked = sorted(others, key=lambda i: -step.rules[i].similarity(request))
        lines.append("  the closest rules:")
        lines.extend(f"    rule {i} {step.rules[i]!r}: {step.rules[i].difference(request)}"
                     for i in ranked[:_SHOWN])
        if len(ranked) > _SHOWN:
            lines.append(f"    ... and {len(ranked) - _SHOWN} more")
    return "\n".join(lines)


def rules_in(script: Sequence[Step] | None) -> list[Rules]:
    """The ``Rules`` steps of *script* (None: none)."""
    return [step for step in script or () if isinstance(step, Rules)]

