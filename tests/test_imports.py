"""The package graph of aurep has no cycle, and the plain-PyTorch packages load no Lightning."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "aurep"


def unit_of(module: str) -> str:
    """aurep.heads.base -> aurep.heads; top-level modules (aurep.au) are their own unit."""
    return ".".join(module.split(".")[:2])


def imported_modules(path: Path, module: str) -> set[str]:
    """Every aurep module ``path`` imports, at any depth of its code (lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parent = module.split(".")[: -node.level]
                base = ".".join([*parent, base]) if base else ".".join(parent)
            found.add(base)
    return {name for name in found if name == "aurep" or name.startswith("aurep.")}


def package_graph() -> dict[str, set[str]]:
    """unit -> the other units it imports."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        unit = unit_of(module)
        targets = {unit_of(name) for name in imported_modules(path, module)} - {unit, "aurep"}
        graph.setdefault(unit, set()).update(targets)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of units, or None (depth-first search)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(unit: str) -> list[str] | None:
        state[unit] = "open"
        stack.append(unit)
        for target in sorted(graph.get(unit, ())):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[unit] = "done"
        stack.pop()
        return None

    for unit in sorted(graph):
        if unit not in state and (cycle := visit(unit)):
            return cycle
    return None


def test_find_cycle_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_between_packages():
    graph = package_graph()
    assert {"aurep.heads", "aurep.data", "aurep.tasks", "aurep.prepare"} <= set(graph)
    assert find_cycle(graph) is None, find_cycle(graph)


@pytest.mark.parametrize("module", ["aurep.heads", "aurep.data.batch", "aurep.models"])
def test_plain_pytorch_modules_load_no_lightning(module):
    code = (
        f"import sys, {module}; "
        "print(any(m.split('.')[0] in ('pytorch_lightning', 'lightning') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
