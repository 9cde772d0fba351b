"""Build scripted servers of each class, for the suites that run every test against all
of them (tests/test_tls.py, tests/test_unix.py).

The logic is a plain class, usable without pytest; a suite's fixture only creates one,
yields it and closes it::

    @pytest.fixture(params=SERVER_CLASSES, ids=lambda cls: cls.__name__)
    def make_server(request: pytest.FixtureRequest) -> Iterator[MakeServer]:
        with ServerMaker(request.param) as make:
            yield make
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from embeddedserver import AsyncioCommandServer, CommandServer, OneShotServer

#: Every server class a shared suite runs against.
SERVER_CLASSES: list[type[CommandServer]] = [CommandServer, OneShotServer, AsyncioCommandServer]

#: What ``make_server`` fixtures hand a test: ``make(commands, **kwargs) -> server``.
MakeServer = Callable[..., CommandServer]


class ServerMaker:
    """Builds servers of one class, quiet unless told otherwise; an
    ``AsyncioCommandServer`` gets an event loop of its own. ``close()`` (or leaving the
    ``with`` block) stops every server built and closes the loops; twice is harmless.

    >>> with ServerMaker(CommandServer) as make:
    ...     server = make(["hello"])
    >>> server.STOPPED
    True
    """

    def __init__(self, server_class: type[CommandServer]) -> None:
        self.server_class = server_class
        self._servers: list[CommandServer] = []
        self._loops: list[asyncio.AbstractEventLoop] = []

    def __call__(self, commands: Any, **kwargs: Any) -> CommandServer:
        kwargs.setdefault("verbose", False)
        if self.server_class is AsyncioCommandServer:
            self._loops.append(asyncio.new_event_loop())
            kwargs["loop"] = self._loops[-1]
        server = self.server_class(commands, **kwargs)
        self._servers.append(server)
        return server

    def close(self) -> None:
        while self._servers:
            self._servers.pop(0).stop()
        while self._loops:
            self._loops.pop(0).close()

    def __enter__(self) -> ServerMaker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
