"""The shape of the two packages: what a reader and a type checker see from the file list.

Read from the source with ``ast`` (no import side effects): every module declares
``__all__`` with only its own names, ``__init__`` only imports, the run-time import graph has
no cycle, no module imports another's private name, only the plugin imports pytest. The
source read is the one Python imports: this tree, or an installed wheel's (``.ci/run`` runs
the suite against the wheel, from a copy of the tests with no package beside them).
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.util
from pathlib import Path

import pytest

PACKAGES = ("embeddedserver", "testingsocket")
#: Public modules whose names the package does not re-export: the shells on top, and
#: ``strategies``, which needs Hypothesis (not a dependency: the package must not import it).
SHELLS = {"embeddedserver.cli", "embeddedserver.demo", "embeddedserver.plugin",
          "embeddedserver.strategies"}


def _package_dir(package: str) -> Path:
    """Where *package* is imported from (found without importing it)."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, f"{package} is not importable"
    return Path(next(iter(spec.submodule_search_locations)))


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted(_package_dir(package).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            found[name] = path
    return found


MODULES = _modules()
#: Protocol kits, used as namespaces (``from embeddedserver import http``, then
#: ``http.response(...)``): their names (``response``, ``match``, ``serve``) say what they
#: are only beside the module's, so the package does not re-export them.
KITS = {"embeddedserver.http", "embeddedserver.httpmessage", "embeddedserver.websocket",
        "embeddedserver.resp", "embeddedserver.proxyprotocol", "embeddedserver.alpn",
        "embeddedserver.http2"}


def _tree(name: str) -> ast.Module:
    return ast.parse(MODULES[name].read_text(encoding="utf-8"), str(MODULES[name]))


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str) -> list[tuple[str, list[str]]]:
    """(module imported, names) for each run-time import in *name*: imports inside
    ``if TYPE_CHECKING:`` are left out (they never run)."""
    package = name.split(".")[0] if name in PACKAGES or "." in name else name
    found: list[tuple[str, list[str]]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, []) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package + (f".{child.module}" if child.module else "")
                else:
                    base = child.module or ""
                names = [alias.name for alias in child.names]
                if base in MODULES and not child.module and child.level:  # from . import _x
                    found.extend((f"{package}.{n}", []) for n in names
                                 if f"{package}.{n}" in MODULES)
                else:
                    found.append((base, names))
            visit(child)

    visit(_tree(name))
    return found


def _own_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()

    def collect(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.If):
                collect(node.body)
                collect(node.orelse)

    collect(tree.body)
    return names


def _declared_all(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            assert node.value is not None
            return list(ast.literal_eval(node.value))
    return None


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_is_typed(package: str) -> None:
    assert (_package_dir(package) / "py.typed").is_file()


@pytest.mark.parametrize("name", [n for n in MODULES if not n.endswith("__main__")])
def test_every_module_declares_only_its_own_names(name: str) -> None:
    tree = _tree(name)
    declared = _declared_all(tree)
    assert declared is not None, f"{name} has no __all__"
    if name in PACKAGES:
        return  # __init__ re-exports: checked below
    foreign = sorted(set(declared) - _own_names(tree))
    assert not foreign, f"{name}.__all__ lists names it does not define: {foreign}"


@pytest.mark.parametrize("package", PACKAGES)
def test_init_only_imports_and_lists_all(package: str) -> None:
    for node in _tree(package).body:
        docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        is_all = isinstance(node, ast.Assign) and [
            getattr(t, "id", None) for t in node.targets] == ["__all__"]
        assert docstring or is_all or isinstance(node, ast.ImportFrom), ast.dump(node)[:80]


@pytest.mark.parametrize("package", PACKAGES)
def test_the_package_exports_every_public_name_of_its_public_modules(package: str) -> None:
    top = importlib.import_module(package)
    for name in MODULES:
        leaf = name.rsplit(".", 1)[-1]
        if (not name.startswith(package + ".") or leaf.startswith("_") or name in SHELLS
                or name in KITS):
            continue
        module = importlib.import_module(name)
        for public in module.__all__:
            assert public in top.__all__, f"{package} does not export {name}.{public}"
            assert getattr(top, public) is getattr(module, public), f"{public} differs"
    missing = [n for n in top.__all__ if not hasattr(top, n)]
    assert not missing


@pytest.mark.parametrize("name", sorted(KITS & set(MODULES)))
def test_a_kit_shares_no_name_with_the_package(name: str) -> None:
    kit = importlib.import_module(name)
    top = importlib.import_module("embeddedserver")
    assert not set(kit.__all__) & set(top.__all__), "a kit's name would shadow the package's"


def test_the_import_graph_has_no_cycle() -> None:
    graph = {name: {m for m, _ in _imports(name) if m in MODULES and m != name}
             for name in MODULES}
    done: set[str] = set()

    def walk(name: str, path: list[str]) -> None:
        if name in path:
            cycle = [*path[path.index(name):], name]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        for other in sorted(graph[name]):
            if other not in PACKAGES:  # importing a package runs its __init__: not a cycle
                walk(other, [*path, name])
        done.add(name)

    for name in sorted(graph):
        walk(name, [])


def test_no_module_imports_a_private_name_of_another() -> None:
    offences = []
    for name in MODULES:
        for module, names in _imports(name):
            if module in MODULES:
                offences += [f"{name} imports {module}.{n}" for n in names
                             if n.startswith("_") and not n.endswith("__")]  # __version__
    assert not offences, offences


def test_the_two_packages_are_independent_and_only_the_plugin_imports_pytest() -> None:
    for name in MODULES:
        imported = {m.split(".")[0] for m, _ in _imports(name)}
        own, other = name.split(".")[0], ({*PACKAGES} - {name.split(".")[0]}).pop()
        assert other not in imported, f"{name} imports {other}"
        if name != "embeddedserver.plugin":
            assert "pytest" not in imported, f"{name} imports pytest"
        assert own  # every module belongs to one package


def test_the_installed_distribution_has_the_version_the_package_says() -> None:
    """The version is written once (``_version.py``); the wheel's metadata reads it there."""
    import embeddedserver

    try:
        dist = importlib.metadata.distribution("embeddedserver")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("embeddedserver is not installed: only its source is on sys.path")
    imported = Path(embeddedserver.__file__).resolve()
    if not any(Path(str(dist.locate_file(f))).resolve() == imported for f in dist.files or ()):
        pytest.skip("the embeddedserver imported is not the installed one's files "
                    "(an editable install, or this source tree first on sys.path)")
    assert dist.version == embeddedserver.__version__
