"""Every python example in README.md runs as written.

Plain blocks are executed in a fresh namespace. Blocks whose first line is a comment
naming a test file (``# test_something.py``) are pytest files: they are run with
``pytester`` and must pass.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

_README = Path(__file__).resolve().parent.parent / "README.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_TEST_FILE = re.compile(r"#\s*(test_\w+\.py)")


def _blocks() -> list[tuple[int, str]]:
    text = _README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in _BLOCK.finditer(text)]


_ALL = _blocks()
_PLAIN = [(line, code) for line, code in _ALL if not _TEST_FILE.match(code)]
_PYTEST = [(line, code) for line, code in _ALL if _TEST_FILE.match(code)]


def test_readme_has_examples() -> None:
    assert len(_PLAIN) >= 5, "README.md lost its python examples"


@pytest.mark.parametrize(("line", "code"), _PLAIN, ids=[f"line{n}" for n, _ in _PLAIN])
def test_readme_example_runs(line: int, code: str) -> None:
    namespace: dict[str, object] = {"__name__": f"readme_line_{line}"}
    exec(compile(code, f"README.md:{line}", "exec"), namespace)


@pytest.mark.parametrize(("line", "code"), _PYTEST, ids=[f"line{n}" for n, _ in _PYTEST])
def test_readme_pytest_example_passes(line: int, code: str, pytester: pytest.Pytester) -> None:
    match = _TEST_FILE.match(code)
    assert match is not None
    pytester.makepyfile(**{match.group(1)[:-3]: code})
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=code.count("\ndef test_") + code.count("\nasync def test_"))
