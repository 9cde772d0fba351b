"""TestingSocket: a real socket that records what a client sends, counts calls, breaks on cue.

``recording`` holds the socket and its cues; ``capture`` makes every socket that code you do
not own creates a TestingSocket while a ``with capture_sockets():`` block runs.
"""

from .capture import SocketCapture, capture_sockets
from .recording import Cue, TestingSocket

__all__ = ["Cue", "SocketCapture", "TestingSocket", "capture_sockets"]
