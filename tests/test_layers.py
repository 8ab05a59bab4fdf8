"""The layers tie together and depend on each other one way.

* Every ``source()`` of the dbt project names a catalogued stream, and every catalogued stream
  is read by some model or is marked ``landed_only`` with the reason (and a marked one is not
  read: the mark would be stale).
* Imports run one way: the interfaces (CLI, MCP server, ``serve``) -> flows -> settings,
  dashboards -> warehouse -> connectors; the warehouse reads only the connectors' declarations
  (the catalogue), the simulator only the package's constants; no module is part of an import
  cycle; no flow borrows from another flow's module.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from circleci_analytics.connectors import CATALOGUE
from circleci_analytics.warehouse.tables import TABLES

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "circleci_analytics"
SOURCE = re.compile(r"""source\(\s*['"]lake['"]\s*,\s*['"](\w+)['"]\s*\)""")


# -- sql <-> catalogue ---------------------------------------------------------------------------
def _sources() -> dict[str, list[str]]:
    """Lake table -> the SQL files that read it."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "sql").rglob("*.sql")):
        if "target" in path.relative_to(ROOT / "sql").parts:
            continue
        for name in SOURCE.findall(path.read_text()):
            found.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return found


def test_every_source_is_a_catalogued_stream_or_a_table_the_pipeline_writes() -> None:
    sources = _sources()
    assert sources, "no source('lake', ...) found: the pattern or the sql folder moved"
    unknown = {name: files for name, files in sources.items() if name not in CATALOGUE}
    written = {name for name in TABLES if name not in CATALOGUE}  # e.g. the alert history
    assert set(unknown) <= written, f"sources that are no catalogued stream: {unknown}"
    assert written <= set(sources), f"tables the pipeline writes but no model reads: {written - set(sources)}"


def test_every_stream_is_read_by_a_model_or_says_why_not() -> None:
    sources = _sources()
    unread = [name for name, s in CATALOGUE.items() if name not in sources and not s.landed_only]
    assert not unread, f"landed but read by no model (read it, stop landing it, or mark it landed_only): {unread}"
    stale = {name: sources[name] for name, s in CATALOGUE.items() if name in sources and s.landed_only}
    assert not stale, f"marked landed_only but read: {stale}"


# -- imports -------------------------------------------------------------------------------------
#: Layer of each top-level part of the package: a part may import a lower layer's, and the
#: interfaces (layer 5) each other's.
LAYERS = {
    "cli": 5, "serve": 5, "prefect_server": 5, "query": 5, "agent": 5,
    "flows": 4,
    "alerts": 3.5,  # reads the marts with the settings; the nightly calls it
    "teams": 2.5,  # owners rules: read by the settings, handed to the build
    "settings": 3, "dashboards": 3,
    "warehouse": 2,
    "connectors": 1, "simulator": 1,
    "": 0,  # the package itself: constants only
}  # fmt: skip
#: The connectors' modules the warehouse may read: declarations, not the HTTP side.
DECLARATIONS = {"connectors.catalogue", "connectors.streams", "connectors.usage_export.schema"}


def _modules() -> Iterator[tuple[str, Path]]:
    """(dotted name, file) of every module of the package, through its folder links."""
    base = ROOT / PACKAGE
    for folder, dirs, files in os.walk(base, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__pycache__")))
        for name in sorted(f for f in files if f.endswith(".py")):
            rel = (Path(folder) / name).relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            yield ".".join([PACKAGE, *parts]), Path(folder) / name


def _imports(module: str, path: Path) -> set[str]:
    """Every module of the package `module` imports, anywhere in it (also inside functions and
    ``if TYPE_CHECKING``): a dependency is a dependency."""
    out = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.add(target)
            out |= {f"{target}.{a.name}" for a in node.names}
    return {m for m in out if m == PACKAGE or m.startswith(PACKAGE + ".")}


MODULES = dict(_modules())
GRAPH = {name: {m for m in _imports(name, path) if m in MODULES} for name, path in MODULES.items()}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _sub(module: str) -> str:
    return module.removeprefix(PACKAGE + ".")


def test_the_module_list_covers_every_layer() -> None:
    assert {_part(m) for m in MODULES} <= set(LAYERS), {_part(m) for m in MODULES} - set(LAYERS)
    assert len(MODULES) > 40


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_the_layers(module: str) -> None:
    mine = _part(module)
    for target in GRAPH[module]:
        theirs = _part(target)
        if theirs == mine:
            continue
        ok = LAYERS[theirs] < LAYERS[mine] or LAYERS[theirs] == LAYERS[mine] == max(LAYERS.values())
        assert ok, f"{module} imports {target}: a lower layer reaches up (or across)"
        if mine == "warehouse" and theirs == "connectors":
            assert _sub(target) in DECLARATIONS | {"connectors"} and not target.endswith(".connectors"), (
                f"{module} imports {target}: the lake reads the connectors' declarations only"
            )
        if mine == "simulator":
            assert target == PACKAGE, f"{module} imports {target}: the simulator reads only the package's constants"


def test_the_package_itself_imports_nothing_of_its_own() -> None:
    assert GRAPH[PACKAGE] == set()


def _ancestors(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def test_no_import_cycles() -> None:
    # A module importing its own package (to reach a sibling through it) is not a cycle.
    graph = {m: {t for t in targets if t not in _ancestors(m)} for m, targets in GRAPH.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(trail[trail.index(nxt) :] + [nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_a_flow_borrows_nothing_from_another_flows_module() -> None:
    flows = {f"{PACKAGE}.flows.nightly", f"{PACKAGE}.flows.backfill"}
    for module, targets in GRAPH.items():
        if module in flows:
            assert not (targets & flows), f"{module} imports {targets & flows}: share it through flows.tasks"
