"""What the command line and the demo print, and the name they print it under."""

from __future__ import annotations

__all__ = ["PROG", "emit"]

#: How the command line is invoked, in its usage text and the demo's hints.
PROG = "python -m embeddedserver"


def emit(text: str = "") -> None:
    """Print one block of output at once; a closed stdout (a pipe) is not an error."""
    try:
        print(text, flush=True)
    except (BrokenPipeError, ValueError):
        pass
