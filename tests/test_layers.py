"""The layer rules of docs/architecture.md, checked by walking every import of the package.

1. Protocol packages (``grantkeeper.oauth``, ``grantkeeper.risc``) import no web framework, no
   SQLAlchemy or Alembic, and nothing of the store, the keeper, the web API, the CLI, the demo
   or the emulator.
2. The store imports nothing of the keeper, the web API, the CLI, the demo, the emulator or
   ``risc``.
3. The faces (``grantkeeper.web`` and the CLI) reach grants only through the keeper's public
   API (``grantkeeper.keeper`` itself): nothing from ``grantkeeper.store`` (only the CLI's
   database command may use ``grantkeeper.store.migrate``), nothing from ``grantkeeper.risc``,
   no private keeper module.
4. No import cycles between grantkeeper's top-level packages and modules (imports under
   ``TYPE_CHECKING`` aside).

Every import counts, at module level or inside a function, so a lazy import cannot hide a
broken rule.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

import grantkeeper

PACKAGE_ROOT = Path(grantkeeper.__file__).parent

PROTOCOL = ("grantkeeper.oauth", "grantkeeper.risc")
FRAMEWORKS = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic")
APPLICATION = (
    "grantkeeper.store",
    "grantkeeper.keeper",
    "grantkeeper.web",
    "grantkeeper.cli",
    "grantkeeper._cli",
    "grantkeeper.demo",
    "grantkeeper.emulator",
)
FACES = ("grantkeeper.web", "grantkeeper.cli", "grantkeeper._cli")
DATABASE_COMMAND = "grantkeeper._cli.db"


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    """The module imported (``from a.b import c`` names ``a.b.c`` when that is a module)."""
    line: int
    type_checking: bool


def within(module: str, packages: Iterable[str] | str) -> bool:
    if isinstance(packages, str):
        packages = (packages,)
    return any(module == p or module.startswith(p + ".") for p in packages)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, *, is_package: bool, known: set[str]) -> list[Import]:
    """Every import in ``source`` (the module ``module``), resolved to absolute names."""
    tree = ast.parse(source)
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            guarded.update(id(sub) for stmt in node.body for sub in ast.walk(stmt))
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                drop = node.level - 1 if is_package else node.level
                anchor = anchor[: len(anchor) - drop] if drop else anchor
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                targets.append(full if full in known else base)
        for target in targets:
            found.append(Import(module, target, node.lineno, id(node) in guarded))
    return found


def package_imports(root: Path = PACKAGE_ROOT) -> list[Import]:
    paths = sorted(root.rglob("*.py"))
    known = {module_name(path, root) for path in paths}
    found = []
    for path in paths:
        module = module_name(path, root)
        found += imports_of(
            path.read_text(encoding="utf-8"),
            module,
            is_package=path.name == "__init__.py",
            known=known,
        )
    return found


def unit(module: str) -> str | None:
    """The top-level package or module of grantkeeper a module belongs to."""
    parts = module.split(".")
    if parts[0] != "grantkeeper" or len(parts) < 2:
        return None
    return parts[1]


def broken_rules(imports: Iterable[Import]) -> list[str]:
    problems = []
    graph: dict[str, set[str]] = {}
    for imp in imports:
        where = f"{imp.importer}:{imp.line} imports {imp.target}"
        if within(imp.importer, PROTOCOL) and within(imp.target, (*FRAMEWORKS, *APPLICATION)):
            problems.append(f"rule 1 (protocol stays protocol): {where}")
        if within(imp.importer, "grantkeeper.store"):
            banned = [p for p in APPLICATION if p != "grantkeeper.store"] + ["grantkeeper.risc"]
            if within(imp.target, banned):
                problems.append(f"rule 2 (the store stands alone): {where}")
        if within(imp.importer, FACES):
            migrate = imp.importer == DATABASE_COMMAND and within(
                imp.target, "grantkeeper.store.migrate"
            )
            private_keeper = within(imp.target, "grantkeeper.keeper") and (
                imp.target != "grantkeeper.keeper"
            )
            store_or_risc = within(imp.target, ("grantkeeper.store", "grantkeeper.risc"))
            if (store_or_risc and not migrate) or private_keeper:
                problems.append(f"rule 3 (faces use the keeper's public API): {where}")
        source, target = unit(imp.importer), unit(imp.target)
        if source and target and source != target and not imp.type_checking:
            graph.setdefault(source, set()).add(target)
    problems += [f"rule 4 (no cycles): {' -> '.join(cycle)}" for cycle in cycles(graph)]
    return problems


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of units, if any."""
    found: list[list[str]] = []
    seen: set[str] = set()
    for start in sorted(graph):
        if start in seen:
            continue
        path = _path_back(graph, start)
        if path:
            found.append(path)
            seen.update(path)
    return found


def _path_back(graph: Mapping[str, set[str]], start: str) -> list[str] | None:
    """A path start -> ... -> start, breadth first, or None."""
    queue = [[start]]
    visited = {start}
    while queue:
        path = queue.pop(0)
        for nxt in sorted(graph.get(path[-1], ())):
            if nxt == start:
                return [*path, start]
            if nxt not in visited:
                visited.add(nxt)
                queue.append([*path, nxt])
    return None


def arrows(imports: Iterable[Import]) -> set[tuple[str, str]]:
    """The package graph: (unit, unit) for every import between two top-level units."""
    found = set()
    for imp in imports:
        source, target = unit(imp.importer), unit(imp.target)
        if source and target and source != target and not imp.type_checking:
            found.add((source, target))
    return found


# -- the package as it is --------------------------------------------------------------------


def test_the_package_keeps_every_layer_rule() -> None:
    imports = package_imports()
    assert len(imports) > 300  # the walk saw the package
    assert broken_rules(imports) == []


# -- the checker catches what it should ----------------------------------------------------------


def _imports(module: str, source: str, known: Iterable[str] = ()) -> list[Import]:
    return imports_of(source, module, is_package=False, known=set(known))


@pytest.mark.parametrize(
    ("module", "source", "rule"),
    [
        ("grantkeeper.oauth.x", "import sqlalchemy", "rule 1"),
        ("grantkeeper.risc.x", "from fastapi import Request", "rule 1"),
        ("grantkeeper.risc.x", "from grantkeeper.store import GrantStatus", "rule 1"),
        ("grantkeeper.oauth.x", "def f():\n    from grantkeeper.keeper import Keeper", "rule 1"),
        ("grantkeeper.store.x", "from grantkeeper.risc.events import plan", "rule 2"),
        ("grantkeeper.store.x", "from ..keeper import Keeper", "rule 2"),
        ("grantkeeper.web.x", "from grantkeeper.store import GrantStore", "rule 3"),
        ("grantkeeper.web.x", "from grantkeeper.risc import verify_set", "rule 3"),
        ("grantkeeper._cli.x", "from grantkeeper.keeper.sweep import sweep", "rule 3"),
        ("grantkeeper._cli.x", "from grantkeeper.store import migrate", "rule 3"),
        ("grantkeeper.cli", "from grantkeeper.keeper import core", "rule 3"),
    ],
)
def test_a_broken_rule_is_reported(module: str, source: str, rule: str) -> None:
    known = {"grantkeeper.store.migrate", "grantkeeper.keeper.core"}
    problems = broken_rules(_imports(module, source, known))
    assert problems, source
    assert all(p.startswith(rule) for p in problems), problems


def test_what_the_rules_allow() -> None:
    known = {"grantkeeper.store.migrate"}
    allowed = [
        *_imports("grantkeeper._cli.db", "from grantkeeper.store import migrate", known),
        *_imports("grantkeeper.web.x", "from grantkeeper.keeper import Keeper"),
        *_imports("grantkeeper.risc.x", "from grantkeeper.oauth.jwks import JwksCache"),
        *_imports("grantkeeper.keeper.x", "from grantkeeper.store import GrantStore"),
    ]
    assert broken_rules(allowed) == []


def test_a_cycle_between_packages_is_reported_unless_only_for_type_checking() -> None:
    there = _imports("grantkeeper.keeper.x", "from grantkeeper.webhooks import WebhookSender")
    back = _imports("grantkeeper.webhooks", "from grantkeeper.keeper import Keeper")
    assert broken_rules([*there, *back]) == ["rule 4 (no cycles): keeper -> webhooks -> keeper"]
    typing_only = _imports(
        "grantkeeper.webhooks",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from grantkeeper.keeper import K",
    )
    assert broken_rules([*there, *typing_only]) == []


@dataclass(frozen=True)
class Figures:
    """The package graph in three numbers, for the architecture notes."""

    arrows: int
    """Imports between two of grantkeeper's top-level packages and modules (one per pair)."""
    cycles: int
    """Groups of units that import each other in a circle."""
    violations: int
    """Imports that break rules 1 to 3."""

    def __str__(self) -> str:
        return f"arrows: {self.arrows}, cycles: {self.cycles}, violations: {self.violations}"


def figures(imports: Iterable[Import]) -> Figures:
    """Arrows, cycles and broken layer rules of a package walk (``TYPE_CHECKING`` aside)."""
    imports = list(imports)
    problems = broken_rules(imports)
    in_cycles = sum(p.startswith("rule 4") for p in problems)
    return Figures(len(arrows(imports)), in_cycles, len(problems) - in_cycles)


def test_figures_count_arrows_cycles_and_violations() -> None:
    imports = [
        *_imports("grantkeeper.keeper.x", "from grantkeeper.webhooks import WebhookSender"),
        *_imports("grantkeeper.webhooks", "from grantkeeper.keeper import Keeper"),
        *_imports("grantkeeper.web.x", "from grantkeeper.store import GrantStore"),
    ]
    assert str(figures(imports)) == "arrows: 3, cycles: 1, violations: 1"
    assert figures(package_imports()).violations == 0


if __name__ == "__main__":  # pragma: no cover - `python -m tests.test_layers`: the figures
    walked = package_imports()
    edges = sorted(arrows(walked))
    print(figures(walked))
    for source, target in edges:
        print(f"  {source} -> {target}")
