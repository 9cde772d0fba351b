"""One process-wide thread that watches the listeners of every server no client has reached.

Model
-----
A server listens from its constructor on, but needs no thread of its own until a client
connects, and most servers in a test suite that no client reaches (or that a test stops
before one comes) would pay for a thread, a wake-up and a join for nothing. So a server
hands its listeners to the acceptor (``watch``), whose one daemon thread waits on all of
them in one epoll. When a listener becomes readable, the acceptor
forgets that server's listeners and calls the server's *wake* (its accept thread's
``start``) once: the server's own thread then takes the connection from the backlog, as it
takes every later one. The acceptor itself never accepts, so nothing of a connection
passes through it. A server stopped before any client came calls ``forget``: it never had
a thread, and its start + stop is a bind, two epoll changes and a close.

Thread safety: the kernel's epoll takes changes from any thread while another
waits in them, so ``watch`` and ``forget`` change the set at once, with no wake-up; the
registry beside it is changed under one lock, which the thread also takes for each
readable listener. ``forget`` that comes too late (the thread is handing the server
over) waits until the hand-over is done, so that the caller may then join the thread it
started.

The thread is named ``embeddedserver:acceptor``; it starts with the first server and
serves every later one, and a ``fork()``'s child closes its parent's epoll and starts its
own on demand. Where there is no epoll (not Linux), ``acceptor()`` is None and each server
starts its own thread at once.
"""

from __future__ import annotations

import logging
import os
import select
import threading
from collections.abc import Callable, Sequence

__all__ = ["THREAD_NAME", "Acceptor", "Ticket", "acceptor"]

log = logging.getLogger(__name__)

#: The name of the acceptor's one thread (a test suite's thread-leak check may allow it).
THREAD_NAME = "embeddedserver:acceptor"

#: Linux's epoll takes changes from any thread while another waits in it (``selectors``
#: is not used: its bookkeeping costs more than the system calls here).
_HAS_EPOLL = hasattr(select, "epoll")


class Ticket:
    """One server's listeners as the acceptor watches them (see ``Acceptor.watch``)."""

    __slots__ = ("fds", "handing", "wake")

    def __init__(self, fds: Sequence[int], wake: Callable[[], None]) -> None:
        self.fds = tuple(fds)
        self.wake = wake
        #: Held by the acceptor's thread from the moment it takes the ticket until
        #: ``wake`` has returned.
        self.handing = threading.Lock()


class Acceptor:
    """The process-wide watcher of listeners (use ``acceptor()``)."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._lock = threading.Lock()
        self._tickets: dict[int, Ticket] = {}  # fd -> its server's ticket
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def watch(self, fds: Sequence[int], wake: Callable[[], None]) -> Ticket:
        """Watch the listening sockets *fds*; call *wake()* once, on the acceptor's thread,
        when a connection waits on any of them. The ticket is for ``forget``."""
        ticket = Ticket(fds, wake)
        with self._lock:
            for fd in ticket.fds:
                self._tickets[fd] = ticket
                self._epoll.register(fd, select.EPOLLIN)
        return ticket

    def forget(self, ticket: Ticket) -> bool:
        """Stop watching *ticket*'s listeners (before closing them). True if its *wake*
        was not called and never will be; False if it was: it has returned by now."""
        with self._lock:
            if self._tickets.get(ticket.fds[0]) is ticket:
                self._drop(ticket)
                return True
        with ticket.handing:  # the acceptor's thread took it: let it finish the hand-over
            return False

    def _drop(self, ticket: Ticket) -> None:
        # Lock held.
        for fd in ticket.fds:
            del self._tickets[fd]
            self._epoll.unregister(fd)

    def _run(self) -> None:
        wait = self._epoll.poll
        while True:
            for fd, _ in wait():
                with self._lock:
                    # Forgotten meanwhile: only the registry says whose it is now (a
                    # descriptor reused by a new server's listener at worst starts that
                    # server's thread early).
                    ticket = self._tickets.get(fd)
                    if ticket is None:
                        continue
                    self._drop(ticket)
                    ticket.handing.acquire()
                try:
                    ticket.wake()
                except Exception:  # the server's own to report; the acceptor serves on
                    log.exception("handing a connection over failed")
                finally:
                    ticket.handing.release()

    def _after_fork_in_child(self) -> None:
        # The child has only the thread that forked: the parent's acceptor thread and
        # the servers it watched are not its own.
        self._epoll.close()


_instance: Acceptor | None = None
_instance_lock = threading.Lock()


def acceptor() -> Acceptor | None:
    """The process's acceptor, started on first use; None where the platform has no
    selector that takes changes while it waits (each server then runs its own thread)."""
    global _instance
    found = _instance
    if found is not None or not _HAS_EPOLL:
        return found
    with _instance_lock:
        if _instance is None:
            _instance = Acceptor()
        return _instance


def _after_fork_in_child() -> None:
    global _instance, _instance_lock
    _instance_lock = threading.Lock()
    if _instance is not None:
        _instance._after_fork_in_child()
        _instance = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
