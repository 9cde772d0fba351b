"""Read sections of README.md for the tests that check their own part of it."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_section(heading: str) -> str:
    """The text of the README from the line *heading* (e.g. ``"## TestingSocket"``)
    up to the next heading of the same level; AssertionError if it is missing."""
    lines = README.read_text(encoding="utf-8").splitlines(keepends=True)
    level = heading.split(" ", 1)[0] + " "
    starts = [i for i, line in enumerate(lines) if line.rstrip("\n") == heading]
    assert starts, f"README.md has no section {heading!r}"
    start = starts[0]
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].startswith(level)), len(lines)
    )
    return "".join(lines[start:end])
