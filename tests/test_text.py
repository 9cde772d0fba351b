"""embeddedserver._text: one address formatter, one escape codec for the CLI and script files."""

from __future__ import annotations

import doctest

import pytest

from embeddedserver import _text, parse_script
from embeddedserver.cli import parse_step
from embeddedserver.steps import Send


def test_module_example_runs() -> None:
    result = doctest.testmod(_text)
    assert result.attempted and not result.failed


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        (("127.0.0.1", 40212), "127.0.0.1:40212"),
        (("::1", 8080, 0, 0), "[::1]:8080"),
        ("/tmp/s.sock", "unix:/tmp/s.sock"),
        ("\0name", "unix:@name"),
        (b"\0name", "unix:@name"),
        ("", "(unnamed peer)"),
        (None, "(unnamed peer)"),
    ],
)
def test_every_kind_of_address_is_shown_one_way(address: object, shown: str) -> None:
    assert _text.format_address(address) == shown


@pytest.mark.parametrize(
    "escaped", [r"PING\r\n", r"\x00\xff\\", r"say \"hi\"\t", "é and \\0"],
)
def test_the_command_line_and_script_files_read_escapes_alike(escaped: str) -> None:
    expected = _text.unescape(escaped)
    from_cli = parse_step(f"send:{escaped}")
    [from_file] = parse_script(f'server: "{escaped}"\n')
    assert isinstance(from_cli, Send) and isinstance(from_file, Send)
    assert from_cli.data == from_file.data == expected


def test_an_unknown_escape_is_named_exactly() -> None:
    with pytest.raises(_text.BadEscape, match=r"unknown escape '\\\\q': use \\r") as info:
        _text.unescape(r"a\qb")
    assert info.value.escape == "\\q"
    with pytest.raises(ValueError, match="lone backslash"):
        _text.unescape("a\\")


def test_plural() -> None:
    assert [_text.plural(n, "failure") for n in (0, 1, 2)] == [
        "0 failures", "1 failure", "2 failures"]
