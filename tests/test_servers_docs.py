"""Every python example in README.md (the README's API section) runs on its own."""

from __future__ import annotations

import re

import pytest
from _readme import readme_section

_API_HEADING = '## The API'
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks() -> list[tuple[int, str]]:
    text = readme_section(_API_HEADING)
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in _BLOCK.finditer(text)]


_ALL = _blocks()


def test_api_doc_has_an_example_for_every_topic() -> None:
    code = "\n".join(code for _, code in _ALL)
    for name in [
        "RECEIVE", "ReadUntil", "ReadLine", "ReadFrame", "ReadUntilClose", "Expect(",
        "ExpectRegex", "ExpectFrame", "ExpectClose", "Send(", "SendFrame", "Garbage",
        "Drip", "Delay", "AcceptAndClose", "Reset()", "HalfClose", "Hang(", "Call(",
        "PerConnection", "concurrent=True", "OneShotServer", "server_for_test",
        "AsyncioCommandServer", ".check()", ".transcript()", 'host="localhost"',
    ]:
        assert name in code, f"README.md has no example using {name}"


@pytest.mark.parametrize(("line", "code"), _ALL, ids=[f"line{n}" for n, _ in _ALL])
def test_api_example_runs(line: int, code: str, capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, object] = {"__name__": f"api_line_{line}"}
    exec(compile(code, f"README.md:{line}", "exec"), namespace)
