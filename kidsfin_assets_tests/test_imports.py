"""What the code location imports, read from the source with `ast` (nothing is imported):
no demo-only package (pandas and numpy are the `demo` extra's)."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
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
