"""Read the project's Markdown pages (README.md and docs/**/*.md): their sections, their
python examples and their links, for the tests that check their own part of the docs."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"

_FENCE = re.compile(r"^(```|~~~)")
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
#: A python block whose first line names a test file is a pytest file, run by pytester.
TEST_FILE = re.compile(r"#\s*(test_\w+)\.py")


def pages() -> list[Path]:
    """README.md and every Markdown page under docs/, in a stable order."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def page_name(page: Path) -> str:
    """The page's path from the repository root, as messages and test ids show it."""
    return page.relative_to(ROOT).as_posix()


def section(page: str | Path, heading: str) -> str:
    """The text of *page* (a path from the repository root, e.g. ``"docs/tutorial.md"``)
    from the line *heading* (e.g. ``"## TestingSocket"``) up to the next heading of the
    same or a higher level; AssertionError if there is no such heading. ``"#"`` alone
    gives the whole page."""
    path = ROOT / page
    text = path.read_text(encoding="utf-8")
    if heading == "#":
        return text
    lines = text.splitlines(keepends=True)
    level = len(heading.split(" ", 1)[0])
    heads = _heading_lines(lines)
    starts = [i for i in heads if lines[i].rstrip("\n") == heading]
    assert starts, f"{page_name(path)} has no section {heading!r}"
    start = starts[0]
    end = next((i for i in heads if i > start and _level(lines[i]) <= level), len(lines))
    return "".join(lines[start:end])


def readme_section(heading: str) -> str:
    """``section("README.md", heading)``."""
    return section("README.md", heading)


def _level(line: str) -> int:
    return len(line) - len(line.lstrip("#"))


def _heading_lines(lines: list[str]) -> list[int]:
    """The indexes of the ATX heading lines, leaving out fenced code (where ``# x`` is a
    comment)."""
    found, fenced = [], False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            found.append(i)
    return found


@dataclass(frozen=True)
class Block:
    """One ```python block: where it is and its code."""

    page: str
    line: int
    code: str

    @property
    def test_file(self) -> str | None:
        """The module name a ``# test_x.py`` block is written as, or None."""
        match = TEST_FILE.match(self.code)
        return match.group(1) if match else None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def python_blocks(text: str, page: str) -> list[Block]:
    """The python blocks of *text* (a page, or a section of one) named after *page*."""
    return [
        Block(page, text.count("\n", 0, m.start()) + 1, m.group(1))
        for m in _PYTHON_BLOCK.finditer(text)
    ]


def all_blocks() -> list[Block]:
    """Every python block of every page."""
    blocks: list[Block] = []
    for page in pages():
        blocks += python_blocks(page.read_text(encoding="utf-8"), page_name(page))
    return blocks


def code_of(*places: tuple[str, str]) -> str:
    """The python code of the given (page, heading) sections, joined: for tests that
    check a topic's examples use every name they should."""
    return "\n".join(
        block.code
        for page, heading in places
        for block in python_blocks(section(page, heading), page)
    )


# ---------------------------------------------------------------------------
# headings and links
# ---------------------------------------------------------------------------


def _heading_text(line: str) -> str:
    text = line.lstrip("#").strip()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link shows its text
    return text.replace("`", "").replace("*", "")


def github_slug(text: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, each space a
    hyphen."""
    kept = re.sub(r"[^\w\- ]", "", text.lower())
    return kept.replace(" ", "-")


def mkdocs_slug(text: str) -> str:
    """The anchor MkDocs (Python-Markdown's toc) gives a heading: punctuation dropped,
    runs of spaces and hyphens one hyphen."""
    kept = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", kept)


def anchors(page: Path) -> tuple[set[str], set[str]]:
    """The heading anchors of *page*: (GitHub's, MkDocs'), a repeated heading's included
    (GitHub adds ``-1``, ``-2``...; MkDocs ``_1``, ``_2``...)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    texts = [_heading_text(lines[i]) for i in _heading_lines(lines)]
    return _numbered(map(github_slug, texts), "-"), _numbered(map(mkdocs_slug, texts), "_")


def _numbered(slugs: Iterable[str], separator: str) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for slug in slugs:
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}{separator}{n}")
    return found


_LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_INLINE_CODE = re.compile(r"`[^`\n]*`")


def links(page: Path) -> list[tuple[int, str]]:
    """(line number, target) of every Markdown link of *page*, outside code."""
    found, fenced = [], False
    for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        for match in _LINK.finditer(_INLINE_CODE.sub("", line)):
            found.append((n, match.group(1)))
    return found
