"""The packages' types as a user's type checker sees them: installed, marked typed, strict.

``tests/typing/user_misuse.py`` is a user's test module: correct uses of the public API, and
misuses marked ``# expect-error``. It is copied into an empty directory and checked there by
``mypy --strict`` for the interpreter running these tests, so that mypy finds the packages
where that interpreter has them installed (site-packages, through their ``py.typed``), never
in this source tree. An editable install has no files in site-packages for mypy to follow
(setuptools maps the packages with an import hook), so there mypy is pointed at the
install's own source tree, which is what such a user imports.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath

import pytest

_USER_FILE = Path(__file__).parent / "typing" / "user_misuse.py"
_MARK = "# expect-error"
_ERROR = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+): error: (?P<message>.*)$", re.M)
_UNRESOLVED = ("import-untyped", "import-not-found", "missing library stubs or py.typed")
_PACKAGES = {"embeddedserver", "testingsocket"}
_PROBE = """
import importlib.metadata, json
dist = importlib.metadata.distribution("embeddedserver")
print(json.dumps({"direct_url": dist.read_text("direct_url.json"),
                  "files": [str(f) for f in dist.files or ()]}))
"""


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")}


def _installed(where: Path) -> tuple[Path | None, list[str]]:
    """The distribution as this interpreter has it installed: the source tree of an editable
    install (``direct_url.json``'s ``dir_info.editable``, PEP 610) or None, and its files.

    Asked from *where*: run from this source tree, Python would find the
    ``embeddedserver.egg-info`` that ``pip install .`` leaves here before the installed one.
    """
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=where, env=_clean_env(),
        capture_output=True, text=True, timeout=60,
    )
    if probe.returncode:
        pytest.fail(f"embeddedserver is not installed for {sys.executable}:\n{probe.stderr}")
    found = json.loads(probe.stdout)
    info = json.loads(found["direct_url"] or "{}")
    editable = None
    if info.get("dir_info", {}).get("editable", False):
        url = urllib.parse.urlparse(info["url"])
        editable = Path(urllib.request.url2pathname(url.path))
    return editable, found["files"]


def _expected_lines(source: str) -> set[int]:
    return {n for n, line in enumerate(source.splitlines(), 1) if line.rstrip().endswith(_MARK)}


def test_user_file_marks_enough_misuses() -> None:
    assert len(_expected_lines(_USER_FILE.read_text())) >= 12


def test_mypy_reports_every_misuse_and_nothing_else(tmp_path: Path) -> None:
    pytest.importorskip("mypy", reason="mypy is not installed (pip install '.[test]')")
    source = _USER_FILE.read_text()
    shutil.copy(_USER_FILE, tmp_path / _USER_FILE.name)
    (tmp_path / "mypy.ini").write_text("[mypy]\n")  # no config of this project or the user's
    env = _clean_env()
    editable, _ = _installed(tmp_path)
    if editable is not None:
        env["MYPYPATH"] = str(editable)
    result = subprocess.run(
        [
            sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--strict",
            "--no-incremental", f"--cache-dir={tmp_path / 'cache'}",
            "--python-executable", sys.executable,
            "--no-pretty", "--no-color-output", "--show-error-codes", _USER_FILE.name,
        ],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=100,
    )
    output = result.stdout + result.stderr
    for problem in _UNRESOLVED:
        assert problem not in output, f"mypy did not see the installed packages typed:\n{output}"
    assert result.returncode == 1, f"mypy exited with {result.returncode}:\n{output}"
    errors: dict[int, list[str]] = {}
    for match in _ERROR.finditer(result.stdout):
        assert match["file"] == _USER_FILE.name, f"an error outside the user file:\n{output}"
        errors.setdefault(int(match["line"]), []).append(match["message"])
    lines = source.splitlines()
    expected = _expected_lines(source)
    missed = [f"  {n}: {lines[n - 1].strip()}" for n in sorted(expected - errors.keys())]
    unexpected = [f"  {n}: {lines[n - 1].strip()}\n      {m}"
                  for n in sorted(errors.keys() - expected) for m in errors[n]]
    assert not (missed or unexpected), "\n".join(
        ["misuses mypy did not report:", *missed, f"errors on lines not marked {_MARK!r}:",
         *unexpected]
    )


def test_distribution_holds_the_two_typed_packages(tmp_path: Path) -> None:
    editable, files = _installed(tmp_path)
    if editable is not None:
        pytest.skip(f"embeddedserver is installed in editable mode (from {editable}): there "
                    "are no installed package files to check; pip install . to check them")
    paths = [PurePosixPath(f) for f in files]
    outside = [p for p in paths if p.parts[0] == ".."]  # beside site-packages: bin/
    assert [p.name for p in outside] == ["embeddedserver"], f"not the console script: {outside}"
    top = {p.parts[0] for p in paths if p.parts[0] != ".."}
    assert {t for t in top if not t.endswith(".dist-info")} == _PACKAGES
    for package in sorted(_PACKAGES):
        assert f"{package}/py.typed" in files, f"{package}/py.typed is not installed"
