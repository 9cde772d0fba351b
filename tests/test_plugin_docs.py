"""The docs of the pytest plugin show every fixture and step in a python example (that
each example runs, and its tests pass, is checked with all the others by
tests/test_docs.py)."""

from __future__ import annotations

from _readme import code_of

_PAGES = [
    ("docs/reference/pytest-plugin.md", "#"),
    ("docs/howto/timeouts.md", "## In pytest: one setting for a project, a fixture for a module"),
]


def test_plugin_doc_shows_every_fixture_and_step() -> None:
    code = code_of(*_PAGES)
    for name in [
        "tcpserver.expect_connect()", "expect_bytes(", "send_bytes(", "expect_frame(",
        "send_frame(", "expect_disconnect()", "disconnect()", "await tcpserver.join()",
        "tcpserver.join()", "tcpserver_factory(", "command_server(", "write_frame(",
        "read_frame(", "def embeddedserver_timeout", "TcpServer(", "TcpServerFactory(",
    ]:
        assert name in code, f"the plugin docs have no example using {name}"
