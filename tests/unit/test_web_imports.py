"""The blueprints import down: no module under api/ or pages/ imports the app factory's module.

``hrm_fhir/app.py`` only assembles the app; what blueprints share lives in ``hrm_fhir/web/``.
The walk reads every import statement, including those inside functions and ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hrm_fhir

PACKAGE = Path(hrm_fhir.__file__).parent
APP = "hrm_fhir.app"


def imported(source: str, package: str) -> set[str]:
    """The modules ``source`` (a module of ``package``) imports, as absolute names;
    ``from X import y`` counts as both X and X.y, since y may be a module."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = parts[: len(parts) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
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


@pytest.mark.parametrize("folder", ["api", "pages"])
def test_no_module_under_the_blueprints_imports_the_app_module(folder: str) -> None:
    assert list((PACKAGE / folder).glob("*.py"))
    assert _importers_of_app(folder) == []


@pytest.mark.parametrize(
    "source",
    [
        "from hrm_fhir.app import create_app",
        "import hrm_fhir.app",
        "from hrm_fhir import app",
        "def f():\n    from .. import app",
        "from ..app import service_state",
    ],
)
def test_the_walk_sees_an_import_of_the_app_module_in_any_form(source: str) -> None:
    assert APP in imported(source, "hrm_fhir.api")


def test_the_walk_does_not_mistake_the_web_modules_for_the_app() -> None:
    source = "from hrm_fhir.web.state import service_state\nfrom hrm_fhir.web import db"
    assert APP not in imported(source, "hrm_fhir.pages")
