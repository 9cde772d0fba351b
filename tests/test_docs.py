"""The docs work as written: README.md and every page under docs/.

* Every ```python block runs. Plain blocks are executed in a fresh namespace (from the
  repository root, with this checkout first on the path of any subprocess they start).
  Blocks whose first line names a test file (``# test_something.py``) are pytest files:
  a page's test files are written side by side and run by ``pytester`` in one subprocess,
  and every test in them must pass.
* Every relative link points at a file that exists and, with an anchor, at a heading of
  that page, under the anchor both GitHub and MkDocs give it. Links from docs/ stay in
  docs/ (MkDocs builds only that directory).
* Every page under docs/ is in the ``nav`` of mkdocs.yml, and the nav names no missing page.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from _readme import DOCS, README, ROOT, Block, all_blocks, anchors, links, page_name, pages

pytest_plugins = ["pytester"]

_ALL = all_blocks()
_PLAIN = [block for block in _ALL if block.test_file is None]
_PYTEST = [block for block in _ALL if block.test_file is not None]


def _ids(blocks: list[Block]) -> list[str]:
    return [block.id for block in blocks]


@pytest.fixture
def this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Examples run from the repository root, and a subprocess they start (a pytest run,
    ``python -m embeddedserver``) imports this checkout, not another installed copy."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


@pytest.mark.usefixtures("this_checkout")
@pytest.mark.parametrize("block", _PLAIN, ids=_ids(_PLAIN))
def test_python_example_runs(block: Block) -> None:
    namespace: dict[str, object] = {"__name__": "docs_" + re.sub(r"\W", "_", block.id)}
    exec(compile(block.code, block.id, "exec"), namespace)


_PYTEST_PAGES = sorted({block.page for block in _PYTEST})


@pytest.mark.parametrize("page", _PYTEST_PAGES)
def test_pytest_examples_pass(
    page: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page's test files, written side by side as a reader may copy them, pass in one
    pytest run (one subprocess a page: each costs seconds to start)."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    files: dict[str, str] = {}
    tests = 0
    for block in (block for block in _PYTEST if block.page == page):
        assert block.test_file is not None
        assert block.test_file not in files, f"{block.id}: a second {block.test_file}.py"
        files[block.test_file] = block.code
        defined = block.code.count("\ndef test_") + block.code.count("\nasync def test_")
        assert defined, f"{block.id}: a test file with no test"
        tests += defined
    pytester.makepyfile(**files)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    passed = outcomes.pop("passed", 0)
    outcomes.pop("warnings", None)
    assert not outcomes and passed >= tests, "\n".join(result.outlines)


def test_readme_shows_each_way_in() -> None:
    """The front page has one short, running example of each way to use the library."""
    readme = [block.code for block in _ALL if block.page == "README.md"]
    for name in ["CommandServer(", "tcpserver", "TestingSocket", '"-m", "embeddedserver"',
                 "FaultProxy(", "Rules("]:
        assert any(name in code for code in readme), f"README.md has no example using {name}"


def test_readme_is_a_front_page() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= 300, f"README.md has {lines} lines: move the detail to docs/"


# ---------------------------------------------------------------------------
# links and the MkDocs nav
# ---------------------------------------------------------------------------

_EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # https:, mailto:, ...


def _link_problem(page: Path, target: str) -> str | None:
    if _EXTERNAL.match(target):
        return None
    path_part, _, anchor = target.partition("#")
    file = (page.parent / path_part).resolve() if path_part else page
    if not file.exists():
        return f"no file {path_part!r}"
    if page.is_relative_to(DOCS) and not file.is_relative_to(DOCS):
        return "a docs page links outside docs/ (MkDocs builds only docs/)"
    if anchor:
        if file.suffix != ".md":
            return f"an anchor into {path_part!r}, which is not a Markdown page"
        on_github, on_mkdocs = anchors(file)
        if anchor not in on_github:
            return f"{page_name(file)} has no heading with the GitHub anchor #{anchor}"
        if anchor not in on_mkdocs:
            return f"#{anchor} is GitHub's anchor but not MkDocs' (drop '/', '&' or '--')"
    return None


def test_every_relative_link_resolves() -> None:
    problems = [
        f"{page_name(page)}:{line}: ({target}) {problem}"
        for page in pages()
        for line, target in links(page)
        if (problem := _link_problem(page, target))
    ]
    assert not problems, "\n".join(problems)


def test_link_check_sees_links_and_anchors() -> None:
    """The checker is not vacuous: the pages link to each other, with anchors."""
    found = [target for page in pages() for _, target in links(page)]
    assert sum(not _EXTERNAL.match(t) for t in found) >= 30
    assert any("#" in t and not t.startswith("#") for t in found)
    assert _link_problem(README, "docs/no-such-page.md") == "no file 'docs/no-such-page.md'"
    assert "no heading" in str(_link_problem(README, "docs/index.md#no-such-heading"))


def _nav_pages() -> list[str]:
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = text.split("\nnav:\n", 1)[1]
    nav = re.split(r"\n(?=\S)", nav, maxsplit=1)[0]  # up to the next top-level key
    return re.findall(r"([\w./-]+\.md)\s*$", nav, re.M)


def test_every_docs_page_is_in_the_mkdocs_nav() -> None:
    nav = _nav_pages()
    on_disk = sorted(path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md"))
    assert len(nav) == len(set(nav)), f"a page is twice in the nav: {nav}"
    assert sorted(nav) == on_disk, (
        f"in docs/ but not in the nav: {sorted(set(on_disk) - set(nav))}; "
        f"in the nav but not in docs/: {sorted(set(nav) - set(on_disk))}"
    )


@pytest.mark.timeout(300)
def test_mkdocs_build_is_strict_clean(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="the docs extra (pip install '.[docs]') builds the site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "index.html").exists()
