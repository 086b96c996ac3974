"""The OpenAPI 3.1 document of the HTTP API, written as data, and the blueprint serving it.

A test checks that every route the app registers appears here, so the two cannot drift.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from hrm_fhir.api.auth import HEADER
from hrm_fhir.api.schemas import FHIR_ID, MAX_FINDINGS, MAX_SWEEPS
from hrm_fhir.api.workflow_schemas import ACTING_USER, MAX_DOSE, MAX_NOTE, MAX_TEAM
from hrm_fhir.domain import FindingKind, Severity
from hrm_fhir.paging import API_LIMIT, API_MAX_LIMIT
from hrm_fhir.records import SweepMode, SweepStatus
from hrm_fhir.workflow.model import (
    NON_ENGAGEMENT_DECISIONS,
    SIGN_OFF_DECISIONS,
    ChaseStep,
    ContactOutcome,
    Medium,
    Priority,
    Stage,
)

bp = Blueprint("openapi", __name__)

JSON = "application/json"
Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **extra: Any) -> Schema:
    return {"type": [kind, "null"], **extra}


def _json_body(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(name: str) -> Schema:
    return {"$ref": f"#/components/responses/{name}"}


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_AS_OF = _query(
    "as_of",
    {"type": "string", "format": "date"},
    "Evaluate as of this date (default: today in Europe/London).",
)
_PROTECTED_ERRORS = {
    "400": _error("BadRequest"),
    "401": _error("Unauthorized"),
    "403": _error("Forbidden"),
    "500": _error("InternalError"),
}

_SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string"},
            "message": {"type": "string"},
            "messages": {
                "type": "object",
                "description": "Validation errors by field name (400 only).",
            },
        },
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"const": "ok"}},
    },
    "Readiness": {
        "type": "object",
        "required": ["database", "fhir"],
        "properties": {
            "database": {"enum": ["ok", "unavailable"]},
            "fhir": {"enum": ["ok", "unavailable"]},
        },
    },
    "SweepStart": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "as_of": {
                "type": "string",
                "format": "date",
                "description": "Evaluate as of this date (default: today in Europe/London).",
            },
            "dry_run": {
                "type": "boolean",
                "default": False,
                "description": "Plan only: write nothing to the FHIR server.",
            },
            "mode": {
                "enum": [mode.value for mode in SweepMode],
                "description": "Default: incremental once a watermark exists, else full.",
            },
        },
    },
    "SweepStarted": {
        "type": "object",
        "required": ["sweep", "status"],
        "properties": {
            "sweep": _nullable(
                "integer",
                description="The sweep's id when it ran inline; null when in the background.",
            ),
            "status": {"enum": ["started", "completed"]},
        },
    },
    "Sweep": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "status": {"enum": [status.value for status in SweepStatus]},
            "mode": {"enum": [mode.value for mode in SweepMode]},
            "dry_run": {"type": "boolean"},
            "scope": {"type": "string", "description": "all or Organization/<id>."},
            "fhir_base": {"type": "string"},
            "as_of": {"type": "string", "format": "date"},
            "started_at": {"type": "string", "format": "date-time"},
            "finished_at": _nullable("string", format="date-time"),
            "duration_seconds": _nullable("number"),
            "created": {"type": "integer"},
            "updated": {"type": "integer"},
            "closed": {"type": "integer"},
            "unchanged": {"type": "integer"},
            "repaired": {
                "type": "integer",
                "description": "Tasks and Flags the ledger held open that the server had lost.",
            },
            "skipped": {"type": "integer"},
            "errors": {"type": "integer"},
            "watermark": _nullable("string"),
            "error": _nullable("string"),
        },
    },
    "SweepList": {
        "type": "object",
        "required": ["sweeps"],
        "properties": {"sweeps": {"type": "array", "items": _ref("Sweep")}},
    },
    "LedgerFinding": {
        "type": "object",
        "properties": {
            "identifier": {"type": "string"},
            "patient": {"type": "string", "description": "Patient/<id>."},
            "practice": _nullable("string", description="Organization/<id>."),
            "kind": {"enum": [kind.value for kind in FindingKind]},
            "drug_group": {"type": "string"},
            "rule": {"type": "string", "description": "<rule-id>@<version>."},
            "check": {"type": "string"},
            "severity": {"enum": [*(s.value for s in Severity), None]},
            "due_date": _nullable("string", format="date"),
            "resource_type": {"enum": ["Task", "Flag"]},
            "resource_id": {"type": "string"},
            "status": {"type": "string", "description": "The FHIR status last written."},
            "opened_at": {"type": "string", "format": "date-time"},
            "closed_at": _nullable("string", format="date-time"),
            "close_reason": _nullable("string"),
            "reason": {"type": "string"},
        },
    },
    "LedgerFindingList": {
        "type": "object",
        "required": ["findings"],
        "properties": {"findings": {"type": "array", "items": _ref("LedgerFinding")}},
    },
    "Finding": {
        "type": "object",
        "description": "A finding as `hrm-fhir evaluate --format json` prints it.",
        "required": ["patient", "kind", "drug_group", "rule", "check", "reason", "identifier"],
        "properties": {
            "patient": {"type": "string"},
            "kind": {"enum": [kind.value for kind in FindingKind]},
            "drug_group": {"type": "string"},
            "medication": {"type": "string"},
            "rule": {"type": "string"},
            "check": {"type": "string"},
            "reason": {"type": "string"},
            "source": {"type": "string", "description": "Citation URL."},
            "verified": {"type": "boolean"},
            "evidence": {"type": "array", "items": {"type": "string"}},
            "identifier": {"type": "string"},
            "tests": {"type": "array", "items": {"type": "string"}},
            "due_date": _nullable("string", format="date"),
            "severely_overdue": {
                "type": "boolean",
                "description": "Due and overdue findings: a test has gone undone past its "
                "schedule's severely-overdue tolerance (rule packs).",
            },
            "analyte": _nullable("string"),
            "value": _nullable("number"),
            "unit": _nullable("string"),
            "observed_on": _nullable("string", format="date"),
            "severity": {"enum": [*(s.value for s in Severity), None]},
            "code": _nullable("string"),
            "missing": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Incomplete findings: the data that is missing or could not be read "
                "(e.g. `weight`, `unit`, `laboratory reference range`, `exact value`).",
            },
        },
    },
    "Therapy": {
        "type": "object",
        "properties": {
            "drug_group": {"type": "string"},
            "current": {"type": "boolean"},
            "start": {"type": "string", "format": "date"},
            "phase_anchor": {
                "type": "string",
                "format": "date",
                "description": "Where schedule phases are measured from: start or dose change.",
            },
            "medication": {
                "type": "string",
                "description": "The course's latest MedicationRequest.",
            },
        },
    },
    "Monitoring": {
        "type": "object",
        "required": ["patient", "as_of", "therapies", "findings", "open_tasks", "skipped"],
        "properties": {
            "patient": {"type": "string"},
            "as_of": {"type": "string", "format": "date"},
            "therapies": {"type": "array", "items": _ref("Therapy")},
            "findings": {"type": "array", "items": _ref("Finding")},
            "open_tasks": {
                "type": "array",
                "items": _ref("LedgerFinding"),
                "description": "The patient's open findings in the ledger.",
            },
            "skipped": {
                "type": "array",
                "description": "Resources that could not be read, and why.",
                "items": {
                    "type": "object",
                    "properties": {"source": {"type": "string"}, "reason": {"type": "string"}},
                },
            },
        },
    },
}

_RESPONSES: dict[str, Schema] = {
    "BadRequest": _json_body(_ref("Error"), "Invalid parameters or body."),
    "Unauthorized": _json_body(_ref("Error"), f"Missing or unknown {HEADER}."),
    "Forbidden": _json_body(_ref("Error"), "The key's role does not allow this method."),
    "NotFound": _json_body(_ref("Error"), "No such resource."),
    "Conflict": _json_body(_ref("Error"), "A sweep is already running."),
    "BadGateway": _json_body(_ref("Error"), "The FHIR server request failed."),
    "Unavailable": _json_body(_ref("Error"), "The FHIR server is unavailable; try later."),
    "InternalError": _json_body(_ref("Error"), "Unexpected error; nothing internal is revealed."),
}

_PATHS: dict[str, Schema] = {
    "/health": {
        "get": {
            "operationId": "health",
            "summary": "Liveness: the process answers.",
            "security": [],
            "responses": {"200": _json_body(_ref("Health"), "Alive.")},
        }
    },
    "/ready": {
        "get": {
            "operationId": "ready",
            "summary": "Readiness: the database and the FHIR server's /metadata answer.",
            "security": [],
            "responses": {
                "200": _json_body(_ref("Readiness"), "Both reachable."),
                "503": _json_body(_ref("Readiness"), "At least one part unavailable."),
            },
        }
    },
    "/api/v1/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document.",
            "security": [],
            "responses": {"200": _json_body({"type": "object"}, "The OpenAPI document.")},
        }
    },
    "/api/v1/sweeps": {
        "get": {
            "operationId": "listSweeps",
            "summary": "Recent sweeps from the ledger, newest first (read role).",
            "parameters": [
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": MAX_SWEEPS, "default": 50},
                    "How many sweeps to return.",
                )
            ],
            "responses": {"200": _json_body(_ref("SweepList"), "Sweeps."), **_PROTECTED_ERRORS},
        },
        "post": {
            "operationId": "startSweep",
            "summary": "Start one sweep in the background (operator key; one bound to a practice "
            "only when the sweep covers that practice alone).",
            "requestBody": {
                "required": False,
                "content": {JSON: {"schema": _ref("SweepStart")}},
            },
            "responses": {
                "202": _json_body(_ref("SweepStarted"), "Sweep started."),
                "409": _error("Conflict"),
                "413": _json_body(_ref("Error"), "The body is larger than HRM_MAX_REQUEST_BYTES."),
                "415": _json_body(_ref("Error"), "The body is not application/json."),
                "502": _error("BadGateway"),
                "503": _error("Unavailable"),
                **_PROTECTED_ERRORS,
            },
        },
    },
    "/api/v1/sweeps/{sweep_id}": {
        "get": {
            "operationId": "getSweep",
            "summary": "One sweep from the ledger (read role).",
            "parameters": [
                {"name": "sweep_id", "in": "path", "required": True, "schema": {"type": "integer"}}
            ],
            "responses": {
                "200": _json_body(_ref("Sweep"), "The sweep."),
                "404": _error("NotFound"),
                **_PROTECTED_ERRORS,
            },
        }
    },
    "/api/v1/findings": {
        "get": {
            "operationId": "listFindings",
            "summary": "Ledger findings matching every filter, most recently opened first.",
            "parameters": [
                _query(
                    "practice",
                    {"type": "string"},
                    "Organization id or Organization/<id> reference.",
                ),
                _query("drug_group", {"type": "string"}, "E.g. methotrexate, lithium."),
                _query("kind", {"enum": [k.value for k in FindingKind]}, "Finding kind."),
                _query("severity", {"enum": [s.value for s in Severity]}, "Severity."),
                _query("state", {"enum": ["open", "closed"]}, "Open or closed findings."),
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": MAX_FINDINGS, "default": 200},
                    "How many findings to return.",
                ),
            ],
            "responses": {
                "200": _json_body(_ref("LedgerFindingList"), "Findings."),
                **_PROTECTED_ERRORS,
            },
        }
    },
    "/api/v1/patients/{patient_id}/monitoring": {
        "get": {
            "operationId": "getPatientMonitoring",
            "summary": "One patient's therapies and findings, evaluated live (read role; a "
            "caller bound to a practice gets 404 for another practice's patient, as for none).",
            "parameters": [
                {
                    "name": "patient_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": f"^{FHIR_ID}$"},
                    "description": "The FHIR Patient id.",
                },
                _AS_OF,
            ],
            "responses": {
                "200": _json_body(_ref("Monitoring"), "The patient's monitoring."),
                "404": _error("NotFound"),
                "502": _error("BadGateway"),
                "503": _error("Unavailable"),
                **_PROTECTED_ERRORS,
            },
        }
    },
}


# ------------------------------------------------------------------ the programme workflow

_ACTING_USER = {
    "name": ACTING_USER,
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": (
        "With an integration key only (and then required): the username of the active user "
        "acting; their role and practice apply. A personal bearer token names its own user and "
        "takes no X-Acting-User; read and operator keys may not name anyone (403)."
    ),
}
_STAGE = {"enum": [stage.value for stage in Stage]}
_DATE = {"type": "string", "format": "date"}
_NULLABLE_DATE = _nullable("string", format="date")
_PAGE_FIELDS: dict[str, Schema] = {
    "total": {"type": "integer", "description": "Items in the whole list."},
    "offset": {"type": "integer", "description": "Where this page starts (0-based)."},
    "limit": {"type": "integer", "description": "Items a page holds."},
    "links": {
        "type": "object",
        "description": "This page, the next and the previous (null at either end).",
        "properties": {
            "self": {"type": "string"},
            "next": _nullable("string"),
            "prev": _nullable("string"),
        },
    },
}
_SEVERITY = {"enum": [*(s.value for s in Severity), None]}
_FHIR_ID_SCHEMA = {"type": "string", "pattern": f"^{FHIR_ID}$"}
_NOTE = {"type": "string", "maxLength": MAX_NOTE, "default": ""}
_VERSION = {
    "type": "string",
    "pattern": f"^{FHIR_ID}$",
    "description": "The Task's meta.versionId as it was loaded; a stale one is a 409.",
}
_ARRANGEMENT_VERSION = {
    **_nullable("string"),
    "description": "The arrangement Task's meta.versionId as loaded; null or absent for a first "
    "decision about this patient and drug group (a 409 if one exists).",
}
_WORKFLOW_ERRORS = {
    "404": _json_body(
        _ref("Error"),
        "No such Task (or Flag, or GP escalation; or Patient, for who monitors), or one of "
        "another practice: both are answered the same.",
    ),
    "413": _json_body(_ref("Error"), "The body is larger than HRM_MAX_REQUEST_BYTES."),
    "409": _json_body(
        _ref("Error"),
        "The Task changed since it was loaded (reload it), or its stage does not allow this.",
    ),
    "415": _json_body(_ref("Error"), "The body is not application/json."),
    "502": _error("BadGateway"),
    "503": _error("Unavailable"),
    **_PROTECTED_ERRORS,
}


def _object(required: list[str], properties: dict[str, Schema]) -> Schema:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": properties,
    }


_SCHEMAS.update(
    {
        "ActionResult": {
            "type": "object",
            "required": ["task_id", "version", "stage", "written"],
            "properties": {
                "task_id": {"type": "string"},
                "version": _nullable("string", description="Send it with the next action."),
                "stage": _STAGE,
                "written": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Versioned references written, e.g. Task/x/_history/4.",
                },
            },
        },
        "Contact": _object(
            ["version", "medium", "outcome"],
            {
                "version": _VERSION,
                "medium": {"enum": [m.value for m in Medium]},
                "outcome": {"enum": [o.value for o in ContactOutcome]},
                "note": _NOTE,
            },
        ),
        "Booking": _object(
            ["version", "booked_for"], {"version": _VERSION, "booked_for": _DATE, "note": _NOTE}
        ),
        "Sample": _object(["version", "taken_on"], {"version": _VERSION, "taken_on": _DATE}),
        "MonitoredElsewhere": _object(
            ["drug_group", "monitored_by", "review_on"],
            {
                "drug_group": {"type": "string", "description": "A rule pack's drug group."},
                "monitored_by": {
                    "type": "string",
                    "maxLength": MAX_TEAM,
                    "description": "The organisation or team that monitors.",
                },
                "review_on": {
                    **_DATE,
                    "description": "After today and within a year: the pharmacist reviews then.",
                },
                "version": _ARRANGEMENT_VERSION,
                "note": _NOTE,
            },
        ),
        "MonitoredByPractice": _object(
            ["drug_group"],
            {"drug_group": {"type": "string"}, "version": _ARRANGEMENT_VERSION, "note": _NOTE},
        ),
        "SignOff": _object(
            ["version", "decision"],
            {
                "version": _VERSION,
                "decision": {"enum": sorted(d.value for d in SIGN_OFF_DECISIONS)},
                "note": _NOTE,
                "new_dose": {
                    "type": "string",
                    "maxLength": MAX_DOSE,
                    "description": "Required with dose-adjusted, refused otherwise.",
                },
                "repeat_on": {
                    **_DATE,
                    "description": "Required with repeat-test-booked, refused otherwise.",
                },
            },
        ),
        "NonEngagement": _object(
            ["version", "decision"],
            {
                "version": _VERSION,
                "decision": {"enum": sorted(d.value for d in NON_ENGAGEMENT_DECISIONS)},
                "note": _NOTE,
            },
        ),
        "Versioned": _object(["version"], {"version": _VERSION, "note": _NOTE}),
        "HistoryItem": {
            "type": "object",
            "properties": {
                "at": {"type": "string", "format": "date-time"},
                "action": {"type": "string", "description": "contact, booking, sample..."},
                "summary": {"type": "string"},
                "by": {"type": "string"},
                "task_ids": {"type": "array", "items": {"type": "string"}},
                "medium": _nullable("string"),
                "outcome": _nullable("string"),
                "status": _nullable("string"),
                "note": {"type": "string"},
                "reference": _nullable("string"),
            },
        },
        "TaskSummary": {
            "type": "object",
            "properties": {
                "task_id": {"type": "string"},
                "version": _nullable("string"),
                "code": {"type": "string"},
                "stage": _STAGE,
                "status": {"type": "string"},
                "drug_group": {"type": "string"},
                "rule": {"type": "string"},
                "tests": {"type": "array", "items": {"type": "string"}},
                "test_titles": {"type": "array", "items": {"type": "string"}},
                "due_date": _NULLABLE_DATE,
                "days_overdue": {"type": "integer"},
                "severely_overdue": {"type": "boolean"},
                "description": {"type": "string"},
                "source": _nullable("string"),
                "attempts": {"type": "integer"},
                "last_attempt": _NULLABLE_DATE,
                "chase": {"enum": [*(c.value for c in ChaseStep), None]},
                "chase_due_on": _NULLABLE_DATE,
                "chase_due": {"type": "boolean"},
                "booked_for": _NULLABLE_DATE,
            },
        },
        "WorklistEntry": {
            "type": "object",
            "properties": {
                "patient": {"type": "string"},
                "practice": _nullable("string"),
                "tasks": {"type": "array", "items": _ref("TaskSummary")},
                "tests": {"type": "array", "items": {"type": "string"}},
                "test_titles": {"type": "array", "items": {"type": "string"}},
                "drug_groups": {"type": "array", "items": {"type": "string"}},
                "due_date": _NULLABLE_DATE,
                "days_overdue": {"type": "integer"},
                "stage": _STAGE,
                "chase_due": {"type": "boolean"},
                "next_chase": {"enum": [*(c.value for c in ChaseStep), None]},
                "contacts": {"type": "array", "items": _ref("HistoryItem")},
                "priority": {"enum": [p.value for p in Priority]},
                "out_of_range": {"type": "boolean"},
            },
        },
        "Worklist": {
            "type": "object",
            "required": ["entries", *_PAGE_FIELDS],
            "properties": {
                "entries": {"type": "array", "items": _ref("WorklistEntry")},
                **_PAGE_FIELDS,
            },
        },
        "Trend": {
            "type": "object",
            "properties": {
                "analyte": {"type": "string"},
                "title": {"type": "string"},
                "points": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "observation": {"type": "string"},
                            "on": _DATE,
                            "value": _nullable("number"),
                            "unit": _nullable("string"),
                        },
                    },
                },
            },
        },
        "ReviewItem": {
            "type": "object",
            "properties": {
                "kind": {
                    "enum": [
                        "flag",
                        "result",
                        "gp-escalation",
                        "prescribing",
                        "non-engagement",
                        "monitored-elsewhere",
                    ]
                },
                "task_id": {"type": "string", "description": "The Task (or Flag) to act on."},
                "version": _nullable("string"),
                "patient": {"type": "string"},
                "practice": _nullable("string"),
                "stage": _STAGE,
                "drug_group": {"type": "string"},
                "medication": _nullable("string"),
                "rule": {"type": "string"},
                "description": {"type": "string"},
                "severity": _SEVERITY,
                "source": _nullable("string"),
                "since": _NULLABLE_DATE,
                "flags": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "flag_id": {"type": "string"},
                            "version": _nullable("string"),
                            "severity": _SEVERITY,
                            "text": {"type": "string"},
                            "observation": _nullable("string"),
                            "since": _NULLABLE_DATE,
                        },
                    },
                },
                "results": {"type": "array", "items": {"type": "string"}},
                "trend": {"type": "array", "items": _ref("Trend")},
                "thresholds": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "analyte": {"type": "string"},
                            "rule": {"type": "string"},
                            "severity": _SEVERITY,
                            "advice": {"type": "string"},
                        },
                    },
                },
                "severely_overdue": {"type": "boolean"},
            },
        },
        "ReviewQueue": {
            "type": "object",
            "required": ["items", *_PAGE_FIELDS],
            "properties": {
                "items": {"type": "array", "items": _ref("ReviewItem")},
                **_PAGE_FIELDS,
            },
        },
        "PatientCard": {
            "type": "object",
            "properties": {
                "patient": {"type": "string"},
                "as_of": _DATE,
                "practice": _nullable("string"),
                "details": {
                    "type": "object",
                    "description": "Read from the Patient resource for this answer only.",
                    "properties": {
                        "name": {"type": "string"},
                        "nhs_number": {"type": "string"},
                        "phone": {"type": "string"},
                        "preferred_contact": {"type": "string"},
                    },
                },
                "tests_due": {"type": "array", "items": _ref("TaskSummary")},
                "contacts": {"type": "array", "items": _ref("HistoryItem")},
                "results": {"type": "array", "items": _ref("Trend")},
                "findings": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "reference": {"type": "string"},
                            "version": _nullable("string"),
                            "kind": {"type": "string"},
                            "description": {"type": "string"},
                            "rule": {"type": "string"},
                            "source": _nullable("string"),
                            "status": {"type": "string"},
                            "stage": {"enum": [*(s.value for s in Stage), None]},
                            "severity": _SEVERITY,
                        },
                    },
                },
            },
        },
    }
)


def _action(operation: str, summary: str, body: str, placeholder: str) -> Schema:
    return {
        "post": {
            "operationId": operation,
            "summary": summary,
            "parameters": [
                {"name": placeholder, "in": "path", "required": True, "schema": _FHIR_ID_SCHEMA},
                _ACTING_USER,
            ],
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref(body)}}},
            "responses": {
                "200": _json_body(_ref("ActionResult"), "Done: the new version and stage."),
                **_WORKFLOW_ERRORS,
            },
        }
    }


_PRACTICE = _query(
    "practice", {"type": "string"}, "Organization id or reference (default: the user's)."
)
_PAGE = [
    _query("offset", {"type": "integer", "minimum": 0}, "Where the page starts (default 0)."),
    _query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": API_MAX_LIMIT},
        f"Items on the page (default {API_LIMIT}, at most {API_MAX_LIMIT}).",
    ),
]
_PATHS.update(
    {
        "/api/v1/worklist": {
            "get": {
                "operationId": "getWorklist",
                "summary": "Open monitoring Tasks by patient, most pressing first (read role).",
                "parameters": [
                    _ACTING_USER,
                    _PRACTICE,
                    _query("drug_group", {"type": "string"}, "E.g. methotrexate, lithium."),
                    _query("stage", _STAGE, "One stage (default: the technician's stages)."),
                    _AS_OF,
                    *_PAGE,
                ],
                "responses": {
                    "200": _json_body(_ref("Worklist"), "The worklist."),
                    "502": _error("BadGateway"),
                    "503": _error("Unavailable"),
                    **_PROTECTED_ERRORS,
                },
            }
        },
        "/api/v1/review-queue": {
            "get": {
                "operationId": "getReviewQueue",
                "summary": "Results, out-of-range Flags, non-engagement decisions and GP "
                "escalations awaiting action, most severe first (read role).",
                "parameters": [_ACTING_USER, _PRACTICE, *_PAGE],
                "responses": {
                    "200": _json_body(_ref("ReviewQueue"), "The queue."),
                    "502": _error("BadGateway"),
                    "503": _error("Unavailable"),
                    **_PROTECTED_ERRORS,
                },
            }
        },
        "/api/v1/patients/{patient_id}/card": {
            "get": {
                "operationId": "getPatientCard",
                "summary": "Tests due, contact history, results and open findings (read role).",
                "parameters": [
                    {
                        "name": "patient_id",
                        "in": "path",
                        "required": True,
                        "schema": _FHIR_ID_SCHEMA,
                    },
                    _ACTING_USER,
                    _AS_OF,
                ],
                "responses": {
                    "200": _json_body(_ref("PatientCard"), "The card."),
                    "404": _error("NotFound"),
                    "502": _error("BadGateway"),
                    "503": _error("Unavailable"),
                    **_PROTECTED_ERRORS,
                },
            }
        },
        "/api/v1/tasks/{task_id}/contacts": _action(
            "recordContact",
            "Record a contact attempt (technician, pharmacist; operator key).",
            "Contact",
            "task_id",
        ),
        "/api/v1/tasks/{task_id}/bookings": _action(
            "recordBooking", "Record a booking (technician, pharmacist).", "Booking", "task_id"
        ),
        "/api/v1/tasks/{task_id}/samples": _action(
            "recordSample", "Record a sample taken (technician, pharmacist).", "Sample", "task_id"
        ),
        "/api/v1/tasks/{task_id}/route-to-pharmacist": _action(
            "routeNonEngagement",
            "After the second reminder and the chase interval, route to the pharmacist.",
            "Versioned",
            "task_id",
        ),
        "/api/v1/tasks/{task_id}/signoff": _action(
            "signOff",
            "Pharmacist sign-off of a result (a Task, or a Flag no Task covers) (pharmacist).",
            "SignOff",
            "task_id",
        ),
        "/api/v1/tasks/{task_id}/non-engagement": _action(
            "decideNonEngagement",
            "Pharmacist decision for a patient who did not engage (pharmacist).",
            "NonEngagement",
            "task_id",
        ),
        "/api/v1/escalations/{gp_task_id}/acknowledge": _action(
            "acknowledgeEscalation",
            "The GP acknowledges an escalation (GP).",
            "Versioned",
            "gp_task_id",
        ),
        "/api/v1/patients/{patient_id}/monitored-elsewhere": _action(
            "recordMonitoredElsewhere",
            "Another organisation monitors one of the patient's drug groups until a review date: "
            "the group's routine monitoring Tasks close (pharmacist).",
            "MonitoredElsewhere",
            "patient_id",
        ),
        "/api/v1/patients/{patient_id}/monitored-by-practice": _action(
            "recordMonitoredByPractice",
            "The practice monitors one of the patient's drug groups again (pharmacist).",
            "MonitoredByPractice",
            "patient_id",
        ),
    }
)


# ------------------------------------------------------------------ the evidence pack

_DATE_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_DATE_TIME = _nullable("string", format="date-time")
_STRINGS = {"type": "array", "items": {"type": "string"}}
_SCHEMAS.update(
    {
        "EvidenceStatement": {
            "type": "object",
            "description": "One part of a rule pack as a clinician reads it (rules/describe.py).",
            "properties": {
                "kind": {
                    "enum": [
                        "schedule",
                        "modifier",
                        "tolerance",
                        "baseline",
                        "threshold",
                        "prescribing",
                        "ome",
                        "target",
                    ]
                },
                "text": {"type": "string"},
                "verified": {"type": "boolean"},
                "citation": {
                    "type": "object",
                    "properties": {
                        "key": {"type": "string"},
                        "publisher": {"type": "string"},
                        "title": {"type": "string"},
                        "url": {"type": "string"},
                        "accessed": {"type": "string"},
                        "section": {"type": "string"},
                    },
                },
            },
        },
        "EvidenceVersion": {
            "type": "object",
            "description": "One stored version of a Task or Flag (from its _history).",
            "properties": {
                "version": _nullable("string"),
                "last_updated": _NULLABLE_DATE_TIME,
                "status": {"type": "string"},
                "business_status": _nullable("string"),
                "stage": {"enum": [*(s.value for s in Stage), None]},
                "owner": _nullable("string"),
                "notes": {**_STRINGS, "description": "Notes added in this version."},
            },
        },
        "EvidenceResource": {
            "type": "object",
            "description": "A Task or Flag the service wrote, as it stood at the cut-off.",
            "properties": {
                "reference": {"type": "string"},
                "kind": {"type": "string", "description": "The Task code, or flag."},
                "description": {"type": "string"},
                "rule": {"type": "string"},
                "source": _nullable("string"),
                "severity": _SEVERITY,
                "status": {"type": "string"},
                "stage": {"enum": [*(s.value for s in Stage), None]},
                "period_start": _nullable("string"),
                "period_end": _nullable("string"),
                "versions": {"type": "array", "items": _ref("EvidenceVersion")},
            },
        },
        "EvidencePack": {
            "type": "object",
            "description": "Sections in order: schedules, results, tasks and flags, contacts, "
            "decisions (provenance, events, findings). The record is cut off at the end of "
            "as_of in Europe/London.",
            "properties": {
                "patient": {
                    "type": "object",
                    "description": "Read from the Patient resource for this answer only.",
                    "properties": {
                        "reference": {"type": "string"},
                        "name": {"type": "string"},
                        "nhs_number": {"type": "string"},
                        "birth_date": _NULLABLE_DATE,
                        "practice": _nullable("string"),
                    },
                },
                "as_of": _DATE,
                "generated_at": _DATE_TIME,
                "schedules": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "drug_group": {"type": "string"},
                            "rule": {"type": "string", "description": "<rule-id>@<version>."},
                            "title": {"type": "string"},
                            "status": {"type": "string"},
                            "effective_from": _DATE,
                            "reviewed_by": {"type": "string"},
                            "approved_on": {
                                "type": "string",
                                "description": "Empty: not clinically signed off.",
                            },
                            "verified": {"type": "boolean"},
                            "current": {"type": "boolean"},
                            "therapy_start": _DATE,
                            "phase_anchor": _DATE,
                            "medication": {"type": "string"},
                            "ingredient": {"type": "string"},
                            "matched_by": {"enum": ["code", "text", "statement"]},
                            "statements": {"type": "array", "items": _ref("EvidenceStatement")},
                            "tests": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "test": {"type": "string"},
                                        "title": {"type": "string"},
                                        "last_done": _NULLABLE_DATE,
                                        "observation": _nullable("string"),
                                    },
                                },
                            },
                        },
                    },
                },
                "results": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "observation": {"type": "string"},
                            "on": _DATE,
                            "analyte": {"type": "string"},
                            "title": {"type": "string"},
                            "value": _nullable("number"),
                            "unit": _nullable("string"),
                            "normalised": {"type": "boolean"},
                            "ref_low": _nullable("number"),
                            "ref_high": _nullable("number"),
                        },
                    },
                },
                "skipped": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"source": {"type": "string"}, "reason": {"type": "string"}},
                    },
                },
                "tasks": {"type": "array", "items": _ref("EvidenceResource")},
                "flags": {"type": "array", "items": _ref("EvidenceResource")},
                "contacts": {"type": "array", "items": _ref("HistoryItem")},
                "provenance": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "reference": {"type": "string"},
                            "recorded": _NULLABLE_DATE_TIME,
                            "activity": {"type": "string"},
                            "action": _nullable("string"),
                            "agents": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "name": {"type": "string"},
                                        "username": _nullable("string"),
                                        "role": _nullable("string"),
                                        "type": _nullable("string"),
                                    },
                                },
                            },
                            "reason": {"type": "string"},
                            "targets": _STRINGS,
                            "sources": _STRINGS,
                        },
                    },
                },
                "events": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "at": _DATE_TIME,
                            "task_id": {"type": "string"},
                            "actor": {"type": "string"},
                            "role": {"type": "string"},
                            "action": {"type": "string"},
                            "stage_before": _nullable("string"),
                            "stage_after": _nullable("string"),
                            "detail": {"type": "object"},
                            "written": _STRINGS,
                        },
                    },
                },
                "findings": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "identifier": {"type": "string"},
                            "kind": {"enum": [kind.value for kind in FindingKind]},
                            "drug_group": {"type": "string"},
                            "rule": {"type": "string"},
                            "check": {"type": "string"},
                            "severity": _SEVERITY,
                            "due_date": _NULLABLE_DATE,
                            "resource": {"type": "string"},
                            "opened_at": _DATE_TIME,
                            "closed_at": _NULLABLE_DATE_TIME,
                            "close_reason": _nullable("string"),
                            "reason": {"type": "string"},
                        },
                    },
                },
            },
        },
    }
)
_PATHS["/api/v1/patients/{patient_id}/evidence"] = {
    "get": {
        "operationId": "getPatientEvidence",
        "summary": (
            "One patient's evidence pack for an inspector or reviewer (read role and an acting "
            "user of the patient's practice, as for the patient card)."
        ),
        "parameters": [
            _ACTING_USER,
            {"name": "patient_id", "in": "path", "required": True, "schema": _FHIR_ID_SCHEMA},
            _query(
                "as_of",
                _DATE,
                "The schedule in force, and the record to the end of this day in "
                "Europe/London (default: today).",
            ),
            _query(
                "format",
                {"enum": ["json", "html"], "default": "json"},
                "html: the printable page.",
            ),
        ],
        "responses": {
            "200": {
                "description": "The evidence pack.",
                "content": {
                    JSON: {"schema": _ref("EvidencePack")},
                    "text/html": {"schema": {"type": "string"}},
                },
            },
            "404": _error("NotFound"),
            "502": _error("BadGateway"),
            "503": _error("Unavailable"),
            **_PROTECTED_ERRORS,
        },
    }
}

_SCHEMAS["MonthlyReport"] = _object(
    ["scope", "practices", "month", "groups", "totals", "inspector_findings", "indicators"],
    {
        "scope": {"type": "string", "description": "Organization/<id> or PCN <id>."},
        "practices": {"type": "array", "items": {"type": "string"}},
        "month": _DATE,
        "period_start": _DATE,
        "period_end": _DATE,
        "definitions": {"type": "string", "description": "Audit definitions id@version."},
        "rule_packs": {"type": "array", "items": {"type": "string"}},
        "record_as_at": _NULLABLE_DATE_TIME,
        "groups": {"type": "array", "items": {"type": "object"}},
        "totals": {"type": "object"},
        "inspector_findings": {"type": "array", "items": {"type": "object"}},
        "indicators": {"type": "array", "items": {"type": "object"}},
        "workload": {"type": "object"},
        "backlog": {"type": "array", "items": {"type": "object"}},
        "forecast": {"type": "object"},
        "sweeps": {"type": "array", "items": {"type": "object"}},
        "practice_rows": {"type": "array", "items": {"type": "object"}},
        "cadence_gaps": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Stretches of 8 days or more in the month with no completed sweep.",
        },
        "lists": {
            "type": "object",
            "description": "Every patient list by id: each count's value and list_id point here.",
        },
    },
)
_PATHS["/api/v1/reports/monthly"] = {
    "get": {
        "operationId": "getMonthlyReport",
        "summary": "The monthly audit summary of a practice or PCN, from the ledger (read role).",
        "parameters": [
            _query(
                "month",
                {"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"},
                "YYYY-MM (default: last month, Europe/London).",
            ),
            _query("practice", {"type": "string"}, "Organization id (default HRM_PRACTICE)."),
            _query("pcn", {"type": "string"}, "A PCN configured in HRM_PCNS (not with practice)."),
            _query(
                "format",
                {"enum": ["json", "html", "measure-report"], "default": "json"},
                "html: the printable report; measure-report: the FHIR MeasureReport.",
            ),
        ],
        "responses": {
            "200": {
                "description": "The report.",
                "content": {
                    JSON: {"schema": _ref("MonthlyReport")},
                    "text/html": {"schema": {"type": "string"}},
                    "application/fhir+json": {"schema": {"type": "object"}},
                },
            },
            "404": _error("NotFound"),
            **_PROTECTED_ERRORS,
        },
    }
}


def build_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document; every operation needs an API key unless it says otherwise."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hrm-fhir",
            "version": "1",
            "description": (
                "High-risk drug monitoring on FHIR R4: sweeps, the findings ledger, live "
                "per-patient monitoring, the programme workflow and its monthly audit. An API key "
                "has the role read (GET), operator (GET, and POST /sweeps) or integration (GET, "
                "and the workflow operations for the user it names in X-Acting-User). A person's "
                "own token (Authorization: Bearer, from `hrm-fhir users token`) acts as them: GET "
                "and the workflow operations their role allows. A key bound to a practice, or a "
                "person of one, sees only that practice: another practice's patient or Task is a "
                "404, as for none, and a list or report of another practice a 403."
            ),
        },
        "security": [{"apiKey": []}, {"personalToken": []}],
        "paths": _PATHS,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": HEADER},
                "personalToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A person's own token (hrm-fhir users token NAME).",
                },
            },
            "schemas": _SCHEMAS,
            "responses": _RESPONSES,
        },
    }


@bp.get("/api/v1/openapi.json")
def document() -> Response:
    return jsonify(build_document())
