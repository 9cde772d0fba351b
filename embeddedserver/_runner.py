"""The script runner: which step is next, what it needs, and what the transcript says. No I/O.

Model
-----
A ``ScriptRunner`` runs one connection's script the way h11's ``Connection`` runs HTTP: it
owns no socket, no thread and no clock. The I/O shell (``_connection.Connection``) asks it
``next_action(now)`` and does what the answer says:

========== ==================================================================================
action     what the shell does, then what it tells the runner
========== ==================================================================================
READ       wait until bytes, EOF or ``deadline`` (None: no limit); ``receive(data)`` what
           one read returned (``b""`` at EOF), or nothing if the deadline passed. When
           ``inbox.space()`` is not None (a long chunk is under way), read into that view
           instead and ``inbox.commit(n)`` the count: the bytes land in the record itself
SEND       send ``outgoing`` whole; ``done()``
PAUSE      wait until ``deadline`` (a ``Delay``, the gap of a ``Drip``); nothing to tell
HALF_CLOSE shut the write side; ``done()``
CALL       run ``call(handle)``, the user's own step; ``done()``
START_TLS  run the server side of the TLS handshake; ``done()``
CLOSE      close gracefully (FIN), the connection ending as ``ending`` says; the script is over
RESET      close abortively (RST); the script is over
DONE       the script ran to its end: close gracefully as ``ending`` says
IDLE       a growing script ran out of steps: ``append()`` more, or end it
FAILED     the client did not do what the script says: ``failure`` says how
========== ==================================================================================

An I/O error the shell meets (a reset, a broken pipe, a send that stalled past its timeout,
an exception from a user's step) goes to ``io_error(exc)``, which turns it into the step's
failure, or, for a step whose meaning is to wait for the client to give up (``Hang``), into
the end of the script. Every read step's bytes, every send and the notes on EOF and
half-close are added to the connection's ``record`` here, so the whole script language can
be run and checked with no socket at all::

    >>> from embeddedserver.record import ConnectionRecord
    >>> from embeddedserver.steps import compile_script
    >>> runner = ScriptRunner(compile_script("pong"), ConnectionRecord(1, None), timeout=5)
    >>> runner.next_action(now=0.0), runner.deadline
    (<Action.READ: 'read'>, 5.0)
    >>> runner.receive(b"ping"); runner.next_action(now=0.1), runner.outgoing
    (<Action.SEND: 'send'>, b'pong')
    >>> runner.done(); runner.next_action(now=0.2), runner.ending
    (<Action.DONE: 'done'>, 'server closed')

A ``Rules`` step (``embeddedserver.rules``) reads one request at a time with its read step,
asks the ``RuleBook`` which rule answers it, and runs that rule's reply as a script of its
own: while the reply runs, ``steps`` is the reply and the script's place waits in
``_outer``; when the reply is over the ``Rules`` step reads the next request. A request no
rule takes is a failure that does not end the connection (the step goes on with its
``unmatched`` reply): it goes to ``on_report`` and ``reported``.

Scripts are compiled once per server (``steps.compile_script``); a runner is made per
connection and keeps only that connection's position, matcher and inbox.
"""

from __future__ import annotations

import enum
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._match import Inbox, Mismatch
from ._text import CLIENT_EOF_NOTE, SERVER_EOF_NOTE
from .record import ConnectionRecord, Failure, show_bytes
from .rules import RuleBook, Rules
from .steps import (
    Call,
    Delay,
    Drip,
    ExpectClose,
    Hang,
    ReadStep,
    ReadUntilClose,
    Send,
    Step,
)

__all__ = ["Action", "ScriptRunner"]


class Action(enum.Enum):
    """What the runner asks the I/O shell to do next (see the module's table)."""

    READ = "read"
    SEND = "send"
    PAUSE = "pause"
    HALF_CLOSE = "half-close"
    CALL = "call"
    START_TLS = "start TLS"
    CLOSE = "close"
    RESET = "reset"
    DONE = "done"
    IDLE = "idle"
    FAILED = "failed"


# The answers, bound once: an Enum member looked up on its class costs a metaclass
# lookup (about 60 ns), and next_action() returns one at every call.
_READ, _SEND, _PAUSE, _CALL = Action.READ, Action.SEND, Action.PAUSE, Action.CALL
_HALF_CLOSE, _START_TLS, _DONE = Action.HALF_CLOSE, Action.START_TLS, Action.DONE
_CLOSE, _RESET, _IDLE, _FAILED = Action.CLOSE, Action.RESET, Action.IDLE, Action.FAILED

#: How a connection ends (``ConnectionRecord.ended``) after a failure of each kind; any
#: other kind ends it as "failed".
_ENDINGS = {"timeout": "timeout", "closed": "client closed", "reset": "client reset",
            "error": "error"}

class ScriptRunner:
    """Runs the steps of one connection's script; fed bytes, EOF and the time.

    Arguments:
        steps: the compiled script (a list to ``append()`` to, for a growing script).
        record: the connection's transcript; reads, sends and notes are added to it.
        timeout: seconds a read step waits when it has no timeout of its own.
        emit: ``emit(record, text)`` for each thing done (a live log), or None.
        on_chunk: called with each read step's chunk (a server's ``received``), or None.
        tls: start TLS (``Action.START_TLS``) after the script's leading ``before_tls``
            steps, if the connection is still open.
        growing: when the steps run out, answer IDLE (more may be appended) instead of DONE.
        first_index: the index the first step has in failure messages.
        rulebook: the counts of the ``Rules`` steps' rules, shared by a server's
            connections (None: the runner keeps its own).
        on_report: called with each failure that does not end the connection (a request
            no rule takes), or None; ``reported`` lists them either way.

    Attributes the shell reads after an action: ``deadline``, ``outgoing``, ``call``,
    ``ending``, ``failure``; ``inbox`` holds the bytes received and not yet consumed.
    """

    __slots__ = (
        "_final", "_gap", "_index", "_offset", "_outer", "_requests", "_started",
        "_tls_pending", "call", "deadline", "emit", "ending", "failure", "first_index",
        "growing", "inbox", "on_chunk", "on_report", "outgoing", "record", "reported",
        "rulebook", "script_length", "steps", "timeout",
    )

    def __init__(
        self,
        steps: Sequence[Step],
        record: ConnectionRecord,
        timeout: float,
        *,
        emit: Callable[[ConnectionRecord, str], None] | None = None,
        on_chunk: Callable[[bytes], None] | None = None,
        tls: bool = False,
        growing: bool = False,
        first_index: int = 0,
        rulebook: RuleBook | None = None,
        on_report: Callable[[Failure], None] | None = None,
    ) -> None:
        self.steps = steps
        self.record = record
        self.timeout = timeout
        self.inbox = Inbox()
        self.emit = emit
        self.on_chunk = on_chunk
        self.growing = growing
        self.first_index = first_index
        #: The script length failure messages give ("step 2 of 3"); a growing script's
        #: owner may set it to the length of its whole plan.
        self.script_length: int | None = None
        self.deadline: float | None = None
        self.outgoing = b""
        self.call: Callable[[Any], object] | None = None
        self.ending = ""
        self.failure: Failure | None = None
        self._tls_pending = tls
        self._index = 0  # the step running, or next to run
        self._started = False  # the step at _index has begun (deadline set, matcher made)
        self._offset = 0  # a Drip: how much of its data has gone out
        self._gap = False  # a Drip: a chunk went out, the pause before the next is due
        #: CLOSE or RESET once a step ended the connection (Close, Reset, a Hang's end).
        self._final: Action | None = None
        self.rulebook = rulebook
        self.on_report = on_report
        self.reported: list[Failure] = []
        #: While a rule's reply runs: the script and the index of its Rules step.
        self._outer: tuple[Sequence[Step], int] | None = None
        self._requests = 0  # requests a Rules step read on this connection

    # -- what the shell tells the runner ---------------------------------------------

    def receive(self, data: bytes | bytearray | memoryview) -> None:
        """Bytes one read returned, or ``b""``: the client shut its write side (EOF)."""
        self.inbox.feed(data)

    def done(self) -> None:
        """The action asked for (SEND, HALF_CLOSE, CALL, START_TLS) was done."""
        if self._tls_pending and not self._started:
            self._tls_pending = False
            return
        step = self.steps[self._index]
        kind = step.kind
        if kind in ("send", "drip"):
            try:
                self._sent(self.outgoing)
            except Exception as exc:  # a live log raised: the step fails, as on a read
                self.io_error(exc)
                return
        if kind == "drip":
            assert isinstance(step, Drip)
            self._offset += len(self.outgoing)
            if self._offset < len(step.data):
                self._gap = True
                return
        elif kind == "half-close":
            self.record.add("note", text=f"{SERVER_EOF_NOTE} (half-close)")
        self._advance()

    def partly_sent(self, count: int, why: str) -> None:
        """A SEND did not complete (it failed, or the server stopped) after *count* bytes
        went out: record them, with *why* ("the send failed")."""
        if count:
            self.record.add("send", self.outgoing[:count], f"(partial, {why})")

    def io_error(self, exc: BaseException) -> None:
        """The shell's I/O for the current step failed with *exc* (or a user's step raised
        it): record the step's failure, or end the script for a step that waits for the
        client to give up. A ``Mismatch`` a custom step raises fails it as a mismatch
        (what the client did against what was expected, no traceback)."""
        if self._final is not None or self.failure is not None:
            return
        step = self.steps[self._index]
        if step.kind == "hang" and isinstance(exc, ConnectionResetError):
            self._end(_CLOSE, "client reset")  # giving up with a reset is giving up
            return
        if isinstance(exc, TimeoutError):
            reads = isinstance(step, (ReadStep, Rules))
            what = step.describe() if isinstance(step, (ReadStep, Rules)) else repr(step)
            got = bytes(self.inbox.buffer) if reads else None
            self._fail("timeout", str(exc), expected=what, received=got)
        elif isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
            reset = isinstance(exc, ConnectionResetError)
            self.record.ended = "client reset" if reset else "client closed"
            summary = (
                "the client reset the connection (ECONNRESET)" if reset
                else "the client had closed the connection (EPIPE)"
            )
            reads = isinstance(step, (ReadStep, Rules))
            received = bytes(self.inbox.buffer) if reads else None
            self._fail("reset" if reset else "closed", summary, received=received)
        elif isinstance(exc, Mismatch):  # a custom step judged the client as a read step does
            self._fail("mismatch", exc.reason, expected=exc.expected,
                       received=exc.received or None, offset=exc.offset)
        else:
            tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            self._fail("error", f"{type(exc).__name__}: {exc}", tb=tb)

    def append(self, step: Step) -> None:
        """Add a step to a growing script (``growing=True``)."""
        steps = self.steps if self._outer is None else self._outer[0]
        assert isinstance(steps, list), "append() needs the steps as a list"
        steps.append(step)

    # -- what the runner asks of the shell ---------------------------------------------

    def next_action(self, now: float) -> Action:
        """What to do next, at monotonic time *now*; see the module's table."""
        while True:
            if self.failure is not None:
                return _FAILED
            if self._final is not None:
                return self._final
            if self._index >= len(self.steps):
                if self._outer is not None:  # a rule's reply is over: the next request
                    self.steps, self._index = self._outer
                    self._outer = None
                    self._started = False
                    continue
                if self._tls_pending:  # only before_tls steps: TLS still starts
                    return _START_TLS
                if self.growing:
                    return _IDLE
                self.ending = "client closed" if self.inbox.eof else "server closed"
                return _DONE
            step = self.steps[self._index]
            if self._tls_pending and not step.before_tls and not self._started:
                return _START_TLS
            kind = step.kind
            if kind == "read":
                if TYPE_CHECKING:  # the kind says so; no isinstance() on the hot path
                    assert isinstance(step, ReadStep)
                if not self._started:
                    self._started = True
                    self.deadline = now + (step.timeout or self.timeout)
                    try:
                        self.inbox.begin(step)
                    except Exception as exc:  # a user's ReadStep whose matcher() raised
                        self.io_error(exc)
                        continue
                if not self.inbox.idle and self._read(step):  # no step ends on nothing
                    continue
                if self.failure is not None:
                    continue
                if TYPE_CHECKING:
                    assert self.deadline is not None
                if now >= self.deadline:
                    self._read_timed_out(step)
                    continue
                return _READ
            if kind == "send":
                if TYPE_CHECKING:
                    assert isinstance(step, Send)
                self._started = True
                self.outgoing = step.data
                return _SEND
            if kind == "drip":
                assert isinstance(step, Drip)
                if not self._started:
                    self._started, self._offset, self._gap = True, 0, False
                if self._offset >= len(step.data):  # Drip(b""): nothing to send
                    self._advance()
                    continue
                if self._gap:  # the pause runs from the moment the last chunk went out
                    if self.deadline is None:
                        self.deadline = now + step.interval
                    if now < self.deadline:
                        return _PAUSE
                    self._gap, self.deadline = False, None
                self.outgoing = step.data[self._offset : self._offset + step.chunk]
                return _SEND
            if kind == "delay":
                assert isinstance(step, Delay)
                if not self._started:
                    self._started = True
                    self.deadline = now + step.seconds
                assert self.deadline is not None
                if now < self.deadline:
                    return _PAUSE
                self._advance()
                continue
            if kind == "hang":
                assert isinstance(step, Hang)
                if not self._started:
                    self._started = True
                    self.deadline = None if step.seconds is None else now + step.seconds
                    limit = f" for {step.seconds:g} s" if step.seconds else ""
                    self.record.add("note", text="hanging" + limit)
                if self._hang(now):
                    continue
                return _READ
            if kind == "reset":
                self._end(_RESET, "server reset")
                continue
            if kind == "close":
                self._end(_CLOSE, "server closed")
                continue
            if kind == "half-close":
                self._started = True
                return _HALF_CLOSE
            if kind == "call":
                assert isinstance(step, Call)
                self._started = True
                self.call = step.func
                return _CALL
            if kind == "rules":
                if TYPE_CHECKING:
                    assert isinstance(step, Rules)
                if self._rules(step, now):
                    continue
                return _READ
            self._fail("error", f"TypeError: this server cannot run {step!r}")

    def ending_after(self, kind: str) -> str:
        """How this connection ends (``record.ended``) because of a failure of *kind*."""
        return self.record.ended or _ENDINGS.get(kind, "failed")

    @property
    def step(self) -> Step | None:
        """The step running or next to run, None past the end."""
        return self.steps[self._index] if self._index < len(self.steps) else None

    @property
    def tls_pending(self) -> bool:
        """True until TLS has started, on a connection that is to speak it."""
        return self._tls_pending

    @property
    def finished(self) -> bool:
        """True once the script ran to its end, or a step ended the connection."""
        return self._final is not None or (
            self._outer is None and self._index >= len(self.steps))

    @property
    def index(self) -> int:
        """The index (in failure messages) of the step running or next to run (while a
        rule's reply runs, the index of its Rules step)."""
        return self.first_index + (self._index if self._outer is None else self._outer[1])

    @property
    def between_requests(self) -> bool:
        """True while a Rules step waits for a request and none has begun to arrive."""
        step = self.step
        return (self._outer is None and isinstance(step, Rules) and self._final is None
                and self.failure is None and not self.inbox.buffer)

    # -- steps ---------------------------------------------------------------------

    def _read(self, step: ReadStep) -> bool:
        """Poll the inbox for the read step: True once it completed (the runner moved on)."""
        inbox = self.inbox
        if inbox.idle:  # no step completes on nothing
            return False
        _, chunk = self._poll_inbox()
        if chunk is None:
            return False
        self.record.add("recv", chunk)
        try:
            if self.emit is not None:
                self.emit(self.record, f"read {len(chunk)} bytes: {show_bytes(chunk)}")
            if self.on_chunk is not None:
                self.on_chunk(chunk)
        except Exception as exc:  # a hook (a live log, an asyncio feed) raised
            self.io_error(exc)
            return False
        if inbox.eof and isinstance(step, (ExpectClose, ReadUntilClose)):
            # The client shut its write side; it may still read, so later steps (a reply
            # to a half-closed client) still run. The close at the end says who went first.
            self.record.add("note", text=f"{CLIENT_EOF_NOTE} (EOF)")
        self._index += 1  # the step is done: the next one starts afresh
        self._started = False
        self.deadline = None
        return True

    def _poll_inbox(self) -> tuple[bool, bytes | None]:
        """The read step's chunk from the inbox, or None while it needs more: (False,
        chunk); (True, None) when the step failed (recorded: wrong bytes, EOF before its
        end, a user's matcher that raised)."""
        inbox = self.inbox
        try:
            return False, inbox.poll()
        except Mismatch as exc:
            kind = "closed" if inbox.eof and exc.offset == len(exc.received) else "mismatch"
            self._fail(kind, exc.reason, expected=exc.expected, received=exc.received,
                       offset=exc.offset)
        except Exception as exc:  # a user's predicate or read step raised: the step fails
            self.io_error(exc)
        return True, None

    def _rules(self, step: Rules, now: float) -> bool:
        """A Rules step: True once it moved on (a reply to run, the client closed, a
        failure); False while it waits for the rest of a request."""
        inbox = self.inbox
        if not self._started:
            self._started = True
            self.deadline = now + (step.read.timeout or self.timeout)
            try:
                inbox.begin(step.read)
            except Exception as exc:  # a user's ReadStep whose matcher() raised
                self.io_error(exc)
                return True
        if inbox.idle:
            pass
        elif inbox.eof and not inbox.buffer:  # closed at a request boundary: the end
            self.record.add("note", text=f"{CLIENT_EOF_NOTE} (EOF, after "
                            f"{self._requests} request{'' if self._requests == 1 else 's'})")
            self._advance()
            return True
        else:
            failed, request = self._poll_inbox()
            if failed:
                return True
            if request is not None:
                self._answer(step, request)
                return True
        assert self.deadline is not None
        if now >= self.deadline:
            self._read_timed_out(step.read)
            return True
        return False

    def _answer(self, step: Rules, request: bytes) -> None:
        """Count *request*, find the rule that answers it, and start that rule's reply."""
        self._requests += 1
        number = self._requests
        self.record.add("recv", request, f"(request {number})")
        try:
            if self.emit is not None:
                self.emit(self.record, f"request {number}: {show_bytes(request)}")
            if self.on_chunk is not None:
                self.on_chunk(request)
            if self.rulebook is None:
                self.rulebook = RuleBook()
            index, why = self.rulebook.choose(step, request)
        except Exception as exc:  # a hook or a user's predicate raised
            self.io_error(exc)
            return
        if index is not None:
            rule = step.rules[index]
            self.record.add("note", text=f"request {number} answered by rule {index}: {rule!r}")
            reply = rule.reply
        else:
            self.record.add("note", text=f"request {number} matched no rule: unmatched= "
                            f"answers {list(step.unmatched)!r}")
            failure = Failure(
                kind="unmatched",
                summary=f"request {number} on this connection: {why}",
                connection=self.record.number,
                peer=self.record.peer,
                step_index=self.index,
                step=step,
                script_length=self._length(),
                received=request,
                transcript=self.record.render(tail=8),
            )
            self.reported.append(failure)
            if self.on_report is not None:
                try:
                    self.on_report(failure)
                except Exception as exc:
                    self.io_error(exc)
                    return
            reply = step.unmatched
        self._outer = (self.steps, self._index)
        self.steps, self._index = reply, 0
        self._started = False
        self.deadline = None

    def _length(self) -> int:
        steps = self.steps if self._outer is None else self._outer[0]
        return self.script_length if self.script_length is not None else len(steps)

    def _read_timed_out(self, step: ReadStep) -> None:
        timeout = step.timeout or self.timeout
        buffered = len(self.inbox.buffer)
        self.io_error(TimeoutError(
            f"timed out after {timeout:g} s waiting for {step.describe()}"
            + (f" ({buffered} bytes arrived)" if buffered else " (the client sent nothing)")
        ))

    def _hang(self, now: float) -> bool:
        """A Hang: record what arrives; True once it ended (by EOF or its time)."""
        inbox = self.inbox
        if inbox.buffer:
            self.record.add("recv", inbox.take(len(inbox.buffer)), "(while hanging)")
        if inbox.eof:
            self._end(_CLOSE, "client closed")
            return True
        if self.deadline is not None and now >= self.deadline:
            self._advance()
            return True
        return False

    def _sent(self, data: bytes) -> None:
        self.record.add("send", data)
        if self.emit is not None:
            self.emit(self.record, f"sent {len(data)} bytes: {show_bytes(data)}")

    def _advance(self) -> None:
        self._index += 1
        self._started = False
        self.deadline = None

    def _end(self, action: Action, how: str) -> None:
        self._final = action
        self.ending = how

    def _fail(
        self,
        kind: str,
        summary: str,
        *,
        expected: str = "",
        received: bytes | None = None,
        offset: int | None = None,
        tb: str = "",
    ) -> None:
        if received:
            self.record.add("recv", received, "(partial, step failed)")
        step = self.steps[self._index]
        if self._outer is not None:  # in a rule's reply: the Rules step is the script's
            summary = f"in the reply to request {self._requests}, at {step!r}: {summary}"
            outer, at = self._outer
            step = outer[at]
        self.failure = Failure(
            kind=kind,
            summary=summary,
            connection=self.record.number,
            peer=self.record.peer,
            step_index=self.index,
            step=step,
            script_length=self._length(),
            expected=expected,
            received=received,
            offset=offset,
            traceback=tb,
            transcript=self.record.render(tail=8, ending=self.ending_after(kind)),
        )
