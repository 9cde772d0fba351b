"""What the proxies (``replay.RecordingProxy``, ``faults.FaultProxy``) share below their
forwarding loop: one proxied connection's state, the poll masks, the buffer bound, and
the abortive close."""

from __future__ import annotations

import select
import socket
import struct

from .record import ConnectionRecord

__all__ = ["BUFFER_LIMIT", "CHUNK", "ERR", "IN", "OUT", "Pipe", "abort"]

CHUNK = 65536
BUFFER_LIMIT = 1 << 20  # stop reading a side while this much waits for the other side
IN = select.POLLIN | select.POLLPRI
OUT = select.POLLOUT
ERR = select.POLLERR | select.POLLHUP | select.POLLNVAL


class Pipe:
    """One proxied connection: the client socket, the upstream one, and what is in flight."""

    def __init__(self, client: socket.socket, record: ConnectionRecord) -> None:
        self.client = client
        self.record = record
        self.upstream: socket.socket | None = None
        self.connecting = True
        self.deadline = 0.0
        self.to_upstream = bytearray()
        self.to_client = bytearray()
        self.client_eof = False
        self.upstream_eof = False
        self.shut = [False, False]  # [toward upstream, toward client]: FIN passed on
        self.done = False

    def sockets(self) -> list[socket.socket]:
        return [s for s in (self.client, self.upstream) if s is not None]


def abort(sock: socket.socket) -> None:
    """Close with SO_LINGER 0, so the peer gets ECONNRESET."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()
