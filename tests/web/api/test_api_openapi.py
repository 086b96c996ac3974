"""The OpenAPI document cannot drift from the routes the app registers, nor from the answers."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from flask import Flask
from marshmallow import Schema
from openapi_spec_validator import validate

from hrm_fhir.audit import evidence
from hrm_fhir.audit.model import MonthlyReport
from hrm_fhir.domain import Finding, Skipped
from hrm_fhir.rules.describe import Statement
from hrm_fhir.rules.model import Citation
from hrm_fhir.web.api import response_schemas as answers
from hrm_fhir.web.api import schemas
from hrm_fhir.web.api.openapi import build_document
from hrm_fhir.workflow import service

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


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(build_document())


def test_a_broken_document_is_refused_by_the_validator() -> None:
    document = build_document()
    document["paths"]["/health"]["get"]["responses"] = "none"
    with pytest.raises(Exception, match="is not of type 'object'"):
        validate(document)


_ANSWERS: list[tuple[type[Schema], type]] = [
    (schemas.FindingSchema, Finding),
    (schemas.SkippedSchema, Skipped),
    (answers.ActionResultSchema, service.ActionResult),
    (answers.HistoryItemSchema, service.HistoryItem),
    (answers.TaskSummarySchema, service.TaskSummary),
    (answers.WorklistEntrySchema, service.WorklistEntry),
    (answers.ResultPointSchema, service.ResultPoint),
    (answers.TrendSchema, service.Trend),
    (answers.FlagSummarySchema, service.FlagSummary),
    (answers.ThresholdInfoSchema, service.ThresholdInfo),
    (answers.ReviewItemSchema, service.ReviewItem),
    (answers.PatientDetailsSchema, service.PatientDetails),
    (answers.OpenItemSchema, service.OpenItem),
    (answers.PatientCardSchema, service.PatientCard),
    (answers.CitationSchema, Citation),
    (answers.StatementSchema, Statement),
    (answers.VersionSchema, evidence.Version),
    (answers.WrittenResourceSchema, evidence.WrittenResource),
    (answers.PatientIdentitySchema, evidence.PatientIdentity),
    (answers.TestDoneSchema, evidence.TestDone),
    (answers.ScheduleAppliedSchema, evidence.ScheduleApplied),
    (answers.ResultConsideredSchema, evidence.ResultConsidered),
    (answers.AgentSchema, evidence.Agent),
    (answers.AttestationSchema, evidence.Attestation),
    (answers.LedgerEventSchema, evidence.LedgerEvent),
    (answers.LedgerFindingSchema, evidence.LedgerFinding),
    (answers.EvidencePackSchema, evidence.EvidencePack),
    (answers.MonthlyReportSchema, MonthlyReport),
]


@pytest.mark.parametrize(("schema", "kind"), _ANSWERS, ids=[s.__name__ for s, _ in _ANSWERS])
def test_each_documented_answer_names_the_fields_its_dataclass_sends(
    schema: type[Schema], kind: type
) -> None:
    """The answers are these dataclasses dumped by orjson (every field, by name): a field added
    to one and not to its schema, or the reverse, fails here."""
    assert set(schema().fields) == {field.name for field in dataclasses.fields(kind)}


def test_the_paged_lists_name_the_fields_the_pages_send() -> None:
    page = {"total", "offset", "limit", "links"}
    assert set(answers.WorklistSchema().fields) == page | {"entries"}
    assert set(answers.ReviewQueueSchema().fields) == page | {"items"}
