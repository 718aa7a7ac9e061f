"""The layering of docs/architecture.md, enforced on the package's import graph (every import
statement, function-level ones included: a cycle closed inside a function is still a cycle)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = "pytest_perfgate"
SRC = Path(__file__).resolve().parent.parent / "src" / PACKAGE

#: the pytest wiring: the only modules that may import pytest (docs/architecture.md, "Wiring")
WIRING = {
    "pytest_perfgate.plugin",
    "pytest_perfgate._state",
    "pytest_perfgate._tracking",
    "pytest_perfgate._counting",
    "pytest_perfgate.hookspecs",
    "pytest_perfgate.mongo.plugin",
    "pytest_perfgate.race.plugin",
    "pytest_perfgate.load.plugin",
    "pytest_perfgate.ab.worker",
}

#: where text is made: the formatters, and what may call them (the CLI, the wiring, the session's end)
PRESENTATION = ("pytest_perfgate.reports", "pytest_perfgate.cli")
MAY_FORMAT = WIRING | {"pytest_perfgate.session"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def _known(name: str) -> str | None:
    """The package module ``name`` is, or is inside of (``a.b.Name`` -> ``a.b``)."""
    while name:
        if name in modules():
            return name
        name = name.rpartition(".")[0]
    return None


def _type_checking_only(tree: ast.AST) -> set[int]:
    """The ids of the import nodes under ``if TYPE_CHECKING:`` (never run: types only)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(inner) for body in node.body for inner in ast.walk(body))
    return skipped


def _targets(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*anchor, base] if base else anchor)
    # ``from .pkg import name``: the submodule ``name`` if it is one, else the module ``pkg``
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules() else base for alias in node.names]


@cache
def graph() -> dict[str, frozenset[str]]:
    """module -> the package modules it imports anywhere in its body (types-only imports aside;
    a module's own parent packages aside: importing a submodule always runs them)."""
    edges: dict[str, frozenset[str]] = {}
    for name, path in modules().items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = _type_checking_only(tree)
        found: set[str] = set()
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in skipped:
                continue
            for target in _targets(node, package):
                known = _known(target) if target.startswith(PACKAGE) else None
                if known is not None and known != name and not name.startswith(known + "."):
                    found.add(known)
        edges[name] = frozenset(found)
    return edges


def imports_pytest(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] in ("pytest", "_pytest") for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("pytest", "_pytest"):
            return True
    return False


def cycles(edges: dict[str, frozenset[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    edges = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset({"a"})}
    assert cycles(edges) == [["a", "b", "c"]]
    assert cycles({"a": frozenset({"b"}), "b": frozenset()}) == []


def test_the_graph_sees_function_level_and_relative_imports() -> None:
    # plugin imports _tracking inside functions only, and config at function level
    assert "pytest_perfgate._tracking" in graph()["pytest_perfgate.plugin"]
    assert "pytest_perfgate.config" in graph()["pytest_perfgate.plugin"]


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_nothing_imports_the_plugin_module() -> None:
    """Subsystems talk to the core through _state, _tracking and the hookspecs, never plugin.py."""
    assert sorted(name for name, deps in graph().items() if "pytest_perfgate.plugin" in deps) == []


def test_only_the_wiring_imports_pytest() -> None:
    users = {name for name, path in modules().items() if imports_pytest(path)}
    testing = {name for name in users if name.startswith("pytest_perfgate.testing")}
    assert users - testing <= WIRING, sorted(users - testing - WIRING)


def test_decisions_import_no_formatter() -> None:
    """Decisions return typed results; text is made in reports/ (and the CLI prints it)."""
    offenders = {
        name: sorted(dep for dep in deps if dep.startswith(PRESENTATION))
        for name, deps in graph().items()
        if not name.startswith(PRESENTATION) and name not in MAY_FORMAT
    }
    assert {name: deps for name, deps in offenders.items() if deps} == {}


@pytest.mark.parametrize("name", ["pytest_perfgate.reports", "pytest_perfgate.cli"])
def test_presentation_is_not_imported_by_the_core_it_presents(name: str) -> None:
    """reports/ and cli/ exist (a rename would silently empty the rule above)."""
    assert any(module == name or module.startswith(name + ".") for module in modules())
