"""The real ``socket.socket`` class, named once for the modules of this package.

``capture`` replaces ``socket.socket`` with a stand-in while sockets are captured; this module
keeps the class a TestingSocket builds on, even if it is (re)imported while a capture is active.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

__all__ = ["RealSocket"]

if TYPE_CHECKING:
    RealSocket = socket.socket
else:
    RealSocket = getattr(socket.socket, "_testingsocket_original", socket.socket)
