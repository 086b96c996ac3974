"""Every import points down: the packages form the layers drawn in docs/design.md ("The target
layout"), no module imports a layer above its own, nothing under web/api or web/pages imports the
app factory's module, and there is no import cycle anywhere in the package.

The walk reads every import statement, including those inside functions and ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hrm_fhir

PACKAGE = Path(hrm_fhir.__file__).parent
APP = "hrm_fhir.web.app"
LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(layer.split())
    for layer in (
        "clock errors terminology untrusted domain display paging logs",
        "config programme",
        "rules",
        "adapters adapters.fhir adapters.store",
        "evaluation",
        "offline",
        "summary register tasks",
        "workflow sweep synthetic",
        "audit",
        "web",
        "cli",
        "hrm_fhir",
    )
)
"""Bottom to top: a unit imports only units of layers below its own (docs/design.md)."""


def _absolute(node: ast.ImportFrom, package: str) -> str:
    """The module a ``from ... import`` in ``package`` names, relative levels resolved."""
    parts = package.split(".")
    base = parts[: len(parts) - node.level + 1] if node.level else []
    return ".".join([*base, *([node.module] if node.module else [])])


def imported(source: str, package: str) -> set[str]:
    """The modules ``source`` (a module of ``package``) imports, as absolute names;
    ``from X import y`` counts as both X and X.y, since y may be a module."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, package)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _importers_of_app(folder: str) -> list[str]:
    found = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        package = ".".join(("hrm_fhir", *path.relative_to(PACKAGE).parent.parts))
        if APP in imported(path.read_text(encoding="utf-8"), package):
            found.append(str(path.relative_to(PACKAGE)))
    return found


@pytest.mark.parametrize("folder", ["web/api", "web/pages"])
def test_no_module_under_the_blueprints_imports_the_app_module(folder: str) -> None:
    assert list((PACKAGE / folder).glob("*.py"))
    assert _importers_of_app(folder) == []


@pytest.mark.parametrize(
    "source",
    [
        "from hrm_fhir.web.app import create_app",
        "import hrm_fhir.web.app",
        "from hrm_fhir.web import app",
        "def f():\n    from .. import app",
        "from ..app import service_state",
    ],
)
def test_the_walk_sees_an_import_of_the_app_module_in_any_form(source: str) -> None:
    assert APP in imported(source, "hrm_fhir.web.api")


def test_the_walk_does_not_mistake_the_web_modules_for_the_app() -> None:
    source = "from hrm_fhir.web.state import service_state\nfrom hrm_fhir.web import db"
    assert APP not in imported(source, "hrm_fhir.web.pages")


def _graph() -> dict[str, set[str]]:
    """Every hrm_fhir module -> the hrm_fhir modules it imports: ``from X import y`` is an edge
    to X.y when that is a module, else to X (a package counts as its ``__init__``)."""
    modules: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("hrm_fhir", *path.relative_to(PACKAGE).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                module = _absolute(node, package)
                subs = {f"{module}.{alias.name}" for alias in node.names} & modules.keys()
                edges |= subs if len(subs) == len(node.names) else {*subs, module}
        graph[name] = (edges & modules.keys()) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_anywhere_in_the_package() -> None:
    graph = _graph()
    assert len(graph) > 100
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def unit(module: str) -> str:
    """The layer unit of a module: its first package under hrm_fhir (``adapters.fhir`` and
    ``adapters.store`` apart), or the module itself at the top level."""
    parts = module.split(".")[1:]
    if not parts:
        return "hrm_fhir"
    return ".".join(parts[:2]) if parts[0] == "adapters" and len(parts) > 1 else parts[0]


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs that point up a layer or sideways within one."""
    rank = {name: level for level, layer in enumerate(LAYERS) for name in layer}
    found = []
    for module, imports in sorted(graph.items()):
        for target in sorted(imports):
            mine, theirs = unit(module), unit(target)
            if mine == theirs:
                continue
            if rank[theirs] >= rank[mine]:
                found.append((module, target))
    return found


def test_every_module_belongs_to_a_layer() -> None:
    known = set().union(*LAYERS)
    assert {unit(module) for module in _graph()} - known == set()


def test_every_import_points_down_a_layer() -> None:
    assert upward_imports(_graph()) == []


def test_the_layer_check_finds_an_upward_and_a_sideways_import() -> None:
    graph = {
        "hrm_fhir.rules.evaluate": {"hrm_fhir.adapters.fhir.mapping"},
        "hrm_fhir.tasks.emit": {"hrm_fhir.register", "hrm_fhir.domain"},
        "hrm_fhir.sweep.run": {"hrm_fhir.workflow.actions"},
    }
    assert upward_imports(graph) == [
        ("hrm_fhir.rules.evaluate", "hrm_fhir.adapters.fhir.mapping"),
        ("hrm_fhir.sweep.run", "hrm_fhir.workflow.actions"),
        ("hrm_fhir.tasks.emit", "hrm_fhir.register"),
    ]
