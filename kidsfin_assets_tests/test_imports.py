"""What the code location imports, read from the source with `ast` (nothing is imported):
no module of kidsfin_assets imports itself through others (no import cycle, counting imports
in functions and under `if TYPE_CHECKING:`), and no demo-only package (pandas and numpy are
the `demo` extra's).

    .venv/bin/python -m pytest kidsfin_assets_tests/test_imports.py
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "kidsfin_assets"


def modules(package: str = PACKAGE) -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its __init__.py)."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imported_names(name: str, path: Path) -> Iterator[str]:
    """The dotted names a module imports, wherever the import stands (module level, in a
    function, under `if TYPE_CHECKING:`): `from a.b import c` gives `a.b` and `a.b.c`."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's own package
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            yield source
            yield from (f"{source}.{alias.name}" for alias in node.names)


def test_the_code_location_imports_no_demo_only_package() -> None:
    """pandas and numpy are the demo's (kidsfin_demo), installed by the `demo` extra."""
    demo_only = {"pandas", "numpy"}
    for name, path in modules().items():
        used = {imported.split(".")[0] for imported in imported_names(name, path)}
        assert not used & demo_only, (name, used & demo_only)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {dep.split(">")[0].split("[")[0].strip() for dep in project["dependencies"]}
    assert not runtime & demo_only
    demo = {dep.split(">")[0].strip() for dep in project["optional-dependencies"]["demo"]}
    assert demo_only <= demo


def import_graph(package: str = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports by name (`from a import b` is a.b when b is
    a module, else a; a parent package's __init__, run on the way, is no edge)."""
    found = modules(package)
    graph: dict[str, set[str]] = {}
    for name, path in found.items():
        targets = set()
        for imported in imported_names(name, path):
            if imported.split(".")[0] != package:
                continue
            parts = imported.split(".")
            while parts and ".".join(parts) not in found:
                parts.pop()
            if parts and ".".join(parts) != name:
                targets.add(".".join(parts))
        graph[name] = targets
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Each group of modules that import one another (Tarjan), as one loop through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_loop(graph, group) for group in groups]


def _loop(graph: Mapping[str, set[str]], group: set[str]) -> list[str]:
    """A shortest path from the group's first module back to itself, within the group."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt in sorted(graph[node] & group):
                if nxt == start:
                    return [*paths[node], start]
                if nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    return sorted(group)


def test_no_import_cycle_in_the_package() -> None:
    graph = import_graph()
    assert len(graph) > 40 and "kidsfin_assets.reports.report_writer" in graph
    found = cycles(graph)
    assert not found, "import cycles: " + "; ".join(" -> ".join(loop) for loop in found)


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The same check on a graph that has one (as report_writer <-> async_writer once did)."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_every_folder_of_the_package_is_a_package() -> None:
    """Each folder has an __init__.py: setuptools' find (pyproject's packages) and pkgutil's
    walk (test_definitions' audit of every module) see only those."""
    folders = [p for p in (ROOT / PACKAGE).rglob("*") if p.is_dir() and p.name != "__pycache__"]
    assert folders
    assert [f for f in folders if not (f / "__init__.py").is_file()] == []
