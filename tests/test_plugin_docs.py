"""Every python example in README.md (the README's plugin section) works.

Plain blocks are executed in a fresh namespace. Blocks whose first line names a test
file (``# test_something.py``) are written out together and run by one pytest
subprocess, as the README test runs them; every test in them must pass.
"""

from __future__ import annotations

import re

import pytest
from _readme import readme_section

pytest_plugins = ["pytester"]

_DOC_HEADING = '## The pytest plugin'
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_TEST_FILE = re.compile(r"#\s*(test_\w+)\.py")


def _blocks() -> list[tuple[int, str]]:
    text = readme_section(_DOC_HEADING)
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in _BLOCK.finditer(text)]


_ALL = _blocks()
_PLAIN = [(line, code) for line, code in _ALL if not _TEST_FILE.match(code)]
_FILES = [(line, code) for line, code in _ALL if _TEST_FILE.match(code)]


def test_plugin_doc_shows_every_fixture_and_step() -> None:
    code = "\n".join(code for _, code in _ALL)
    for name in [
        "tcpserver.expect_connect()", "expect_bytes(", "send_bytes(", "expect_frame(",
        "send_frame(", "expect_disconnect()", "disconnect()", "await tcpserver.join()",
        "tcpserver.join()", "tcpserver_factory(", "command_server(", "write_frame(",
        "read_frame(", "def embeddedserver_timeout", "TcpServer(",
    ]:
        assert name in code, f"README.md has no example using {name}"


@pytest.mark.parametrize(("line", "code"), _PLAIN, ids=[f"line{n}" for n, _ in _PLAIN])
def test_plugin_doc_example_runs(line: int, code: str) -> None:
    namespace: dict[str, object] = {"__name__": f"plugin_doc_line_{line}"}
    exec(compile(code, f"README.md:{line}", "exec"), namespace)


def test_plugin_doc_test_files_pass(pytester: pytest.Pytester) -> None:
    files = {}
    for _, code in _FILES:
        match = _TEST_FILE.match(code)
        assert match is not None
        assert match.group(1) not in files, f"two examples are named {match.group(1)}.py"
        files[match.group(1)] = code
    pytester.makepyfile(**files)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    code = "\n".join(files.values())
    result.assert_outcomes(passed=code.count("\ndef test_") + code.count("\nasync def test_"))
