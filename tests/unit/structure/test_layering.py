"""The structure DESIGN.md asks for, checked on the source: every import (module level, inside
functions, and under ``TYPE_CHECKING``) of the packages, no upward or sideways import between
layers, FastAPI only in ``service``, and no circle among modules."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("records", "features", "recommender", "training", "service", "pathways")

ALLOWED: dict[str, set[str]] = {
    "records": {"records"},
    "features": {"features", "records"},
    "recommender": {"recommender", "features", "records"},
    "training": {"training", "recommender", "features", "records"},
    "service": {"service", "recommender", "features", "records"},
    "pathways": set(PACKAGES),
}
"""package -> the packages it may import (DESIGN.md: dependencies point down; ``service`` and
``training`` do not import each other; settings live in ``records``, the shell is imported by none)."""

WEB_FRAMEWORKS = ("fastapi", "starlette", "uvicorn")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """(imported name, line) for every import in the file, resolved to a module when it is one."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                yield (candidate if candidate in known else module), node.lineno


def graph() -> tuple[dict[str, set[str]], list[str]]:
    """The module import graph among the packages, and every forbidden import found."""
    found = modules()
    known = set(found)
    edges: dict[str, set[str]] = {name: set() for name in found}
    problems = []
    for name, path in found.items():
        package = name.split(".")[0]
        for imported, line in imports_of(name, path, known):
            top = imported.split(".")[0]
            where = f"{path.relative_to(ROOT)}:{line}"
            if (
                top in WEB_FRAMEWORKS
                and package != "service"
                and not (package == "pathways" and top == "uvicorn")
            ):
                problems.append(f"{where} imports {imported} (only service may)")
            if top in PACKAGES and top not in ALLOWED[package]:
                problems.append(f"{where} imports {imported}: {package} may not import {top}")
            target = imported
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target.split(".")[0] in PACKAGES:
                edges[name].add(target)
    return edges, problems


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_checker_sees_a_circle_and_an_upward_import() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    edges, _ = graph()
    assert "records.db" in edges["service.app"]  # function-level and module-level imports are seen
    assert "recommender.hybrid" in edges["service.model_holder"]


def test_no_layer_imports_upward_or_sideways() -> None:
    _, problems = graph()
    assert problems == []


def test_no_modules_import_each_other_in_a_circle() -> None:
    edges, _ = graph()
    assert cycles(edges) == []
