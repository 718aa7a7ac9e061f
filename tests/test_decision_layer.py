"""The decision layer makes no text: none of its modules imports a formatter (``reports``) or pytest,
not even inside a function, and none is in an import cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "pytest_perfgate"
DECISIONS = (
    "gate", "session", "budgets", "stats", "model", "metrics", "evidence", "ab/judge", "load/kpi",
    "load/results", "mongo/analysis", *(f"measure/{p.stem}" for p in (PACKAGE / "measure").glob("[!_]*.py")),
)  # fmt: skip


MODULES = {
    ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py")
}


def _path(module: str) -> Path:
    relative = Path(*module.split(".")[1:])
    return PACKAGE / relative / "__init__.py" if (PACKAGE / relative).is_dir() else PACKAGE / f"{relative}.py"


def _imports(module: str) -> set[str]:
    """What ``module`` imports, at any level: modules of the package (``from . import x`` is ``x``
    when it is a module), and other top-level names such as pytest."""
    path = _path(module)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1]) if node.level else ""
            target = ".".join(p for p in (base, node.module or "") if p)
            for alias in node.names:
                full = f"{target}.{alias.name}"
                found.add(full if full in MODULES else target)
    return found


def _decision(name: str) -> str:
    return "pytest_perfgate." + name.replace("/", ".")


@pytest.mark.parametrize("module", DECISIONS)
def test_a_decision_module_imports_no_formatter_and_no_pytest(module: str) -> None:
    imported = _imports(_decision(module))
    assert not [m for m in imported if m.startswith("pytest_perfgate.reports")], module
    assert not [m for m in imported if m == "pytest" or m.startswith("pytest.") or m.startswith("_pytest")], module


def test_no_decision_module_is_in_an_import_cycle() -> None:
    graph = {}
    for name in MODULES:
        edges = set()
        for target in _imports(name):
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.add(target)
        graph[name] = edges
    for module in DECISIONS:
        start = _decision(module)
        seen: set[str] = set()
        stack = list(graph[start])
        while stack:
            current = stack.pop()
            assert current != start, f"{start} is in an import cycle"
            if current not in seen:
                seen.add(current)
                stack.extend(graph[current])
