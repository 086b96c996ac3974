"""The OpenAPI document cannot drift from the routes the app registers."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask

from hrm_fhir.api.openapi import build_document

_CONVERTER = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


def _routes(app: Flask) -> set[tuple[str, str]]:
    """(OpenAPI path, lower-case method) for every registered route."""
    return {
        (_CONVERTER.sub(r"{\1}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static" and not rule.endpoint.startswith("pages.")  # HTML pages
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def _operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, item in document["paths"].items() for method in item}


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [
            ref for v in node.values() for ref in _refs(v)
        ]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def test_every_route_is_documented_and_every_documented_operation_exists(app: Flask) -> None:
    assert _routes(app) == _operations(build_document())


def test_path_parameters_match_the_route_placeholders() -> None:
    for path, item in build_document()["paths"].items():
        placeholders = set(re.findall(r"{([a-z_]+)}", path))
        for operation in item.values():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == placeholders, path


def test_every_reference_resolves() -> None:
    document = build_document()
    refs = _refs(document)
    assert refs
    for ref in refs:
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        assert isinstance(node, dict), ref


def test_only_the_probes_and_this_document_are_public(app: Flask) -> None:
    document = build_document()
    assert document["openapi"] == "3.1.0"
    assert document["security"] == [{"apiKey": []}, {"personalToken": []}]
    assert document["components"]["securitySchemes"]["personalToken"]["scheme"] == "bearer"
    assert document["components"]["securitySchemes"]["apiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
    }
    public = {
        path
        for path, item in document["paths"].items()
        for operation in item.values()
        if operation.get("security") == []
    }
    assert public == {"/health", "/ready", "/api/v1/openapi.json"}
    for path, item in document["paths"].items():
        for operation in item.values():
            assert operation["responses"]
            if path not in public:
                assert {"401", "403"} <= set(operation["responses"]), path
