"""The docs of the script servers show every step and topic in a python example (that each
example runs is checked with all the others, by tests/test_docs.py)."""

from __future__ import annotations

from _readme import code_of

#: The pages that took over the README's API section.
_PAGES = [
    ("docs/tutorial.md", "#"),
    ("docs/reference/steps.md", "#"),
    ("docs/reference/servers.md", "#"),
    ("docs/reference/verdict.md", "#"),
    ("docs/howto/retries.md", "#"),
    ("docs/howto/unittest.md", "#"),
    ("docs/howto/asyncio.md", "#"),
]


def test_api_doc_has_an_example_for_every_topic() -> None:
    code = code_of(*_PAGES)
    for name in [
        "RECEIVE", "ReadUntil", "ReadLine", "ReadFrame", "ReadUntilClose", "Expect(",
        "ExpectRegex", "ExpectFrame", "ExpectClose", "Send(", "SendFrame", "Garbage",
        "Drip", "Delay", "AcceptAndClose", "Reset()", "HalfClose", "Hang(", "Call(",
        "PerConnection", "concurrent=True", "OneShotServer", "server_for_test",
        "AsyncioCommandServer", ".check()", ".transcript()", 'host="localhost"',
        "assert_failed(", "settle=",
    ]:
        assert name in code, f"the server docs have no example using {name}"
