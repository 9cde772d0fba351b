"""The client under check: called on a thread of its own, judged against its contract,
and reported in words. The machinery of ``strategies.check_client``, which needs no
Hypothesis; pure but for the client's thread.

A client is called as ``client(address)`` on a daemon thread (an awaitable it returns runs
in a new event loop there, whose task can be cancelled), so that one that hangs is
reported rather than waited on. ``judge`` says what it did wrong, if anything: an
exception not allowed, a result ``correct`` rejects, a run past ``within``; ``report``
writes the message: the problem, the variant's script, what the client did, the failures
the server forgave and the end of its transcript.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from ._text import callable_name, plural, short_repr
from .record import Failure, show_bytes
from .servers import CommandServer

__all__ = [
    "ClientThread",
    "check_callable",
    "clip",
    "exception_classes",
    "failure_kinds",
    "judge",
    "report",
    "shown_exception",
    "shown_value",
]

#: How many connections (and forgiven failures) a report shows: the last ones.
_SHOWN_CONNECTIONS = 3


class ClientThread:
    """The client, called on a thread of its own so that one that hangs is reported
    rather than waited on; an awaitable it returns runs in a new event loop there."""

    def __init__(self, client: Callable[[Any], Any], address: Any) -> None:
        self.client = client
        self.address = address
        self.result: Any = None
        self.raised: BaseException | None = None
        self.started = time.monotonic()
        self.ended: float | None = None
        self._cancel: Callable[[], object] | None = None
        self.thread = threading.Thread(
            target=self._run, name=f"embeddedserver:client {callable_name(client)}",
            daemon=True,  # one that never ends is reported, and must not block the exit
        )
        self.thread.start()

    def _run(self) -> None:
        try:
            value = self.client(self.address)
            if inspect.isawaitable(value):
                value = asyncio.run(self._await(value))
            self.result = value
        except BaseException as exc:  # whatever the client raises is judged, never lost
            self.raised = exc
        finally:
            self.ended = time.monotonic()

    async def _await(self, awaitable: Awaitable[Any]) -> Any:
        loop, task = asyncio.get_running_loop(), asyncio.current_task()
        assert task is not None
        self._cancel = lambda: loop.call_soon_threadsafe(task.cancel)
        try:
            return await awaitable
        finally:
            self._cancel = None

    def wait(self, timeout: float) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()

    @property
    def is_async(self) -> bool:
        """True while the client's awaitable runs (in its own event loop)."""
        return self._cancel is not None

    def cancel(self) -> bool:
        """Cancel an async client's task; False for a sync client (nothing to cancel)."""
        cancel = self._cancel
        if cancel is None:
            return False
        try:
            cancel()
        except RuntimeError:  # the loop closed in between: the client has ended
            pass
        return True

    @property
    def elapsed(self) -> float:
        return (self.ended if self.ended is not None else time.monotonic()) - self.started


def exception_classes(value: object) -> tuple[type[BaseException], ...]:
    classes = value if isinstance(value, tuple) else (value,)
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise TypeError(f"may_raise must be an exception class or a tuple of them "
                            f"(such as (ConnectionError, TimeoutError)), not {value!r}")
    return classes


def check_callable(value: object, name: str, what: str) -> None:
    if not callable(value):
        raise TypeError(f"{name} must be {what}, not {value!r}")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown_value(value: object) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return show_bytes(bytes(value), 120)
    if isinstance(value, (str, int, float, type(None), list, tuple, dict)):
        return clip(repr(value), 200)
    return short_repr(value)  # a user's object: its repr may raise


def shown_exception(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def failure_kinds(kinds: object) -> tuple[str, ...]:
    if isinstance(kinds, str) or not isinstance(kinds, Collection) or not all(
            isinstance(kind, str) for kind in kinds):
        raise TypeError(f"fail_on must be a collection of failure kinds such as "
                        f"('error', 'mismatch'), not {kinds!r}")
    return tuple(kinds)


def judge(
    run: ClientThread,
    allowed: tuple[type[BaseException], ...],
    within: float,
    grace: float,
    in_time: bool,
    ended: bool,
    correct: Callable[[Any], object] | None,
) -> tuple[str, BaseException | None]:
    """What the client did wrong, in words, and the exception behind it (or '', None)."""
    if not in_time:
        head = f"the client did not finish within {within:g} s (within=)"
        if not ended:
            return (f"{head}, nor {grace:g} s after the server stopped and closed its "
                    f"connections: its thread {run.thread.name!r} is left running (a client "
                    "that ignores a closed connection, or retries forever?)", None)
        if run.raised is not None:
            return (f"{head}: it raised {shown_exception(run.raised)} only once the server "
                    f"had stopped, after {run.elapsed:.3f} s", run.raised)
        return (f"{head}: it returned {shown_value(run.result)} only once the server had "
                f"stopped, after {run.elapsed:.3f} s", None)
    if run.raised is not None:
        if isinstance(run.raised, allowed):
            return "", None
        names = ", ".join(cls.__name__ for cls in allowed) or "nothing"
        return (f"the client raised {shown_exception(run.raised)}, which may_raise does not "
                f"allow (it allows {names})", run.raised)
    if correct is None:
        return "", None
    try:
        verdict = correct(run.result)
    except Exception as exc:
        return (f"the client returned {shown_value(run.result)} as if it were right, and "
                f"correct={callable_name(correct)} rejected it: raised "
                f"{shown_exception(exc)}", exc)
    if verdict:
        return "", None
    return (f"the client returned {shown_value(run.result)} as if it were right, and "
            f"correct={callable_name(correct)} rejected it (returned {short_repr(verdict)})",
            None)


def report(
    problem: str,
    shown: str,
    run: ClientThread,
    within: float,
    server: CommandServer,
    serious: list[Failure],
    tolerated: list[Failure],
) -> str:
    if run.thread.is_alive():
        did = f"still running after {run.elapsed:.3f} s"
    elif run.raised is not None:
        did = f"raised {shown_exception(run.raised)} after {run.elapsed:.3f} s"
    else:
        did = f"returned {shown_value(run.result)} after {run.elapsed:.3f} s"
    lines = [
        problem,
        f"  server: {shown}",
        f"  client: {callable_name(run.client)}({run.address!r}) {did} "
        f"(within={within:g} s)",
    ]
    if serious:
        lines.append("  the server's own failures:")
        lines.extend("    " + line for f in serious for line in f.message().splitlines())
    if tolerated:
        lines.append("  what the server saw (forgiven: a client may react so):")
        lines.extend(f"    connection #{f.connection}: {f.summary}" if f.connection
                     else f"    {f.summary}" for f in tolerated[-_SHOWN_CONNECTIONS:])
    records = server.connections
    lines.append(f"  transcript ({plural(len(records), 'connection')}"
                 + (f", the last {_SHOWN_CONNECTIONS}" if len(records) > _SHOWN_CONNECTIONS
                    else "") + "):")
    if not records:
        lines.append("    (the client never connected)")
    for record in records[-_SHOWN_CONNECTIONS:]:
        lines.extend("    " + line for line in record.render(tail=12).splitlines())
    return "\n".join(lines)
