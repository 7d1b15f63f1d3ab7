"""Each package has one public surface, its `__init__`'s `__all__`, and the other packages import
through it: a module of another package is reached only where its package names it in
`__all__` as a public submodule (`ide_client.terminal`, `wire.broker`). Tests are exempt: a unit
test imports the module it tests."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = sorted(
    path.parent.name
    for path in ROOT.glob("*/__init__.py")
    if path.parent.name not in {"tests", "clients"}
)


@dataclass(frozen=True)
class Import:
    """One `from module import name` of a product source file."""

    source: Path
    line: int
    module: str
    name: str


@cache
def exported(module: str) -> frozenset[str] | None:
    """The names in `__all__` of a package or module of the project; None when it has none."""
    base = ROOT.joinpath(*module.split("."))
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        ):
            return frozenset(ast.literal_eval(node.value))
    return None


def is_public(module: str) -> bool:
    """`module` is a package, or each step below the package is in its parent's `__all__`."""
    parts = module.split(".")
    for depth in range(1, len(parts)):
        names = exported(".".join(parts[:depth]))
        if names is None or parts[depth] not in names:
            return False
    return True


def foreign_imports() -> list[Import]:
    """Every import of another project package's names, in product code."""
    found = []
    for package in PACKAGES:
        for source in (ROOT / package).rglob("*.py"):
            tree = ast.parse(source.read_text())
            for node in ast.walk(tree):
                modules: list[tuple[str, str]] = []
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    modules = [(node.module, alias.name) for alias in node.names]
                elif isinstance(node, ast.Import):
                    modules = [(alias.name, "") for alias in node.names]
                for module, name in modules:
                    if module.split(".")[0] in PACKAGES and module.split(".")[0] != package:
                        found.append(Import(source.relative_to(ROOT), node.lineno, module, name))
    return found


def test_every_package_declares_its_surface() -> None:
    assert [package for package in PACKAGES if exported(package) is None] == []


def test_other_packages_import_only_through_the_surface() -> None:
    wrong = []
    for item in foreign_imports():
        names = exported(item.module) if is_public(item.module) else None
        if not is_public(item.module):
            wrong.append(f"{item.source}:{item.line}: {item.module} is not a public module")
        elif item.name and names is not None and item.name not in names:
            wrong.append(f"{item.source}:{item.line}: {item.name} is not in {item.module}.__all__")
    assert wrong == []


def test_the_check_sees_imports_and_refuses_a_private_module() -> None:
    modules = {item.module for item in foreign_imports()}
    assert {"wire", "orchestrator"} <= modules
    assert not is_public("orchestrator.runtime")
    assert is_public("wire") and is_public("ide_client.terminal")
