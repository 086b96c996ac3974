"""The OpenAPI 3.1 document of the HTTP API, and the blueprint serving it.

Every body, answer and query string is described by apispec from the marshmallow schemas that
load or dump it (``schemas.py``, ``workflow_schemas.py``, ``response_schemas.py``), so a field's
name, type and limits are written once. What only a person can say is here, in one table: each
operation's summary, its path parameters, the answers it can give, and the security schemes.
A test holds the document to the app's routes and validates it.
"""

from __future__ import annotations

import functools
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Response, jsonify
from marshmallow import Schema, fields, validate

from hrm_fhir.web.api import response_schemas as answers
from hrm_fhir.web.api import schemas, workflow_schemas
from hrm_fhir.web.api.api_keys import HEADER
from hrm_fhir.web.api.schemas import FHIR_ID
from hrm_fhir.web.api.workflow_schemas import ACTING_USER

bp = Blueprint("openapi", __name__)

JSON = "application/json"
Spec = dict[str, Any]

COMPONENTS: dict[str, type[Schema]] = {
    "Error": answers.ErrorSchema,
    "Health": answers.HealthSchema,
    "Readiness": schemas.ReadinessSchema,
    "SweepStart": schemas.SweepStartSchema,
    "SweepStarted": schemas.SweepStartedSchema,
    "Sweep": schemas.SweepSchema,
    "SweepList": answers.SweepListSchema,
    "LedgerFinding": schemas.FindingRecordSchema,
    "LedgerFindingList": answers.FindingRecordListSchema,
    "Finding": schemas.FindingSchema,
    "Therapy": schemas.TherapySchema,
    "Monitoring": schemas.MonitoringSchema,
    "ActionResult": answers.ActionResultSchema,
    "Contact": workflow_schemas.ContactSchema,
    "Booking": workflow_schemas.BookingSchema,
    "Sample": workflow_schemas.SampleSchema,
    "MonitoredElsewhere": workflow_schemas.MonitoredElsewhereSchema,
    "MonitoredByPractice": workflow_schemas.MonitoredByPracticeSchema,
    "SignOff": workflow_schemas.SignOffSchema,
    "NonEngagement": workflow_schemas.NonEngagementSchema,
    "Versioned": workflow_schemas.VersionedSchema,
    "HistoryItem": answers.HistoryItemSchema,
    "TaskSummary": answers.TaskSummarySchema,
    "WorklistEntry": answers.WorklistEntrySchema,
    "Worklist": answers.WorklistSchema,
    "Trend": answers.TrendSchema,
    "ReviewItem": answers.ReviewItemSchema,
    "ReviewQueue": answers.ReviewQueueSchema,
    "PatientCard": answers.PatientCardSchema,
    "EvidenceStatement": answers.StatementSchema,
    "EvidenceVersion": answers.VersionSchema,
    "EvidenceResource": answers.WrittenResourceSchema,
    "EvidencePack": answers.EvidencePackSchema,
    "MonthlyReport": answers.MonthlyReportSchema,
}
"""The named schemas of ``#/components/schemas``; any other nested schema is written inline."""

_ERRORS: dict[str, str] = {
    "BadRequest": "Invalid parameters or body.",
    "Unauthorized": f"Missing or unknown {HEADER}.",
    "Forbidden": "The key's role does not allow this method.",
    "NotFound": "No such resource.",
    "Conflict": "A sweep is already running.",
    "BadGateway": "The FHIR server request failed.",
    "Unavailable": "The FHIR server is unavailable; try later.",
    "InternalError": "Unexpected error; nothing internal is revealed.",
}
"""``#/components/responses``: the error answers, all with an ``Error`` body."""

_PROTECTED = {
    "400": "BadRequest",
    "401": "Unauthorized",
    "403": "Forbidden",
    "500": "InternalError",
}
_FHIR = {"502": "BadGateway", "503": "Unavailable"}
_TOO_LARGE = "The body is larger than HRM_MAX_REQUEST_BYTES."
_NOT_JSON = "The body is not application/json."
_FHIR_ID = {"type": "string", "pattern": f"^{FHIR_ID}$"}
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


def _path_id(name: str, description: str | None = None) -> Spec:
    parameter: Spec = {"name": name, "in": "path", "required": True, "schema": _FHIR_ID}
    return parameter | ({"description": description} if description else {})


def _query(schema: type[Schema]) -> Spec:
    """One parameter per field of a query-string schema (apispec expands it)."""
    return {"in": "query", "schema": schema}


def _body(name: str, description: str, *, also: Spec | None = None) -> Spec:
    content = {JSON: {"schema": name}} | (also or {})
    return {"description": description, "content": content}


def _answers(ok: dict[str, Spec], errors: dict[str, str]) -> Spec:
    """An operation's own answers, the shared error answers it names (by component name), and
    those every protected operation can give."""
    return ok | errors | _PROTECTED


def _action(operation: str, summary: str, body: str, placeholder: str = "task_id") -> Spec:
    """A workflow action: a versioned JSON body in, the new version and stage out."""
    not_found = (
        "No such Task (or Flag, or GP escalation; or Patient, for who monitors), or one of "
        "another practice: both are answered the same."
    )
    conflict = "The Task changed since it was loaded (reload it), or its stage does not allow this."
    return {
        "post": {
            "operationId": operation,
            "summary": summary,
            "parameters": [_path_id(placeholder), _ACTING_USER],
            "requestBody": {"required": True, "content": {JSON: {"schema": body}}},
            "responses": _answers(
                {
                    "200": _body("ActionResult", "Done: the new version and stage."),
                    "404": _body("Error", not_found),
                    "409": _body("Error", conflict),
                    "413": _body("Error", _TOO_LARGE),
                    "415": _body("Error", _NOT_JSON),
                },
                _FHIR,
            ),
        }
    }


PATHS: dict[str, Spec] = {
    "/health": {
        "get": {
            "operationId": "health",
            "summary": "Liveness: the process answers.",
            "security": [],
            "responses": {"200": _body("Health", "Alive.")},
        }
    },
    "/ready": {
        "get": {
            "operationId": "ready",
            "summary": "Readiness: the database and the FHIR server's /metadata answer.",
            "security": [],
            "responses": {
                "200": _body("Readiness", "Both reachable."),
                "503": _body("Readiness", "At least one part unavailable."),
            },
        }
    },
    "/api/v1/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document.",
            "security": [],
            "responses": {
                "200": {
                    "description": "The OpenAPI document.",
                    "content": {JSON: {"schema": {"type": "object"}}},
                }
            },
        }
    },
    "/api/v1/sweeps": {
        "get": {
            "operationId": "listSweeps",
            "summary": "Recent sweeps from the ledger, newest first (read role).",
            "parameters": [_query(schemas.SweepListQuerySchema)],
            "responses": _answers({"200": _body("SweepList", "Sweeps.")}, {}),
        },
        "post": {
            "operationId": "startSweep",
            "summary": "Start one sweep in the background (operator key; one bound to a practice "
            "only when the sweep covers that practice alone).",
            "requestBody": {"required": False, "content": {JSON: {"schema": "SweepStart"}}},
            "responses": _answers(
                {
                    "202": _body("SweepStarted", "Sweep started."),
                    "413": _body("Error", _TOO_LARGE),
                    "415": _body("Error", _NOT_JSON),
                },
                {"409": "Conflict", **_FHIR},
            ),
        },
    },
    "/api/v1/sweeps/{sweep_id}": {
        "get": {
            "operationId": "getSweep",
            "summary": "One sweep from the ledger (read role).",
            "parameters": [
                {"name": "sweep_id", "in": "path", "required": True, "schema": {"type": "integer"}}
            ],
            "responses": _answers({"200": _body("Sweep", "The sweep.")}, {"404": "NotFound"}),
        }
    },
    "/api/v1/findings": {
        "get": {
            "operationId": "listFindings",
            "summary": "Ledger findings matching every filter, most recently opened first.",
            "parameters": [_query(schemas.FindingQuerySchema)],
            "responses": _answers({"200": _body("LedgerFindingList", "Findings.")}, {}),
        }
    },
    "/api/v1/patients/{patient_id}/monitoring": {
        "get": {
            "operationId": "getPatientMonitoring",
            "summary": "One patient's therapies and findings, evaluated live (read role; a "
            "caller bound to a practice gets 404 for another practice's patient, as for none).",
            "parameters": [
                _path_id("patient_id", "The FHIR Patient id."),
                _query(schemas.MonitoringQuerySchema),
            ],
            "responses": _answers(
                {"200": _body("Monitoring", "The patient's monitoring.")},
                {"404": "NotFound", **_FHIR},
            ),
        }
    },
    "/api/v1/worklist": {
        "get": {
            "operationId": "getWorklist",
            "summary": "Open monitoring Tasks by patient, most pressing first (read role).",
            "parameters": [_ACTING_USER, _query(workflow_schemas.WorklistQuerySchema)],
            "responses": _answers({"200": _body("Worklist", "The worklist.")}, _FHIR),
        }
    },
    "/api/v1/review-queue": {
        "get": {
            "operationId": "getReviewQueue",
            "summary": "Results, out-of-range Flags, non-engagement decisions and GP "
            "escalations awaiting action, most severe first (read role).",
            "parameters": [_ACTING_USER, _query(workflow_schemas.PracticeQuerySchema)],
            "responses": _answers({"200": _body("ReviewQueue", "The queue.")}, _FHIR),
        }
    },
    "/api/v1/patients/{patient_id}/card": {
        "get": {
            "operationId": "getPatientCard",
            "summary": "Tests due, contact history, results and open findings (read role).",
            "parameters": [
                _path_id("patient_id"),
                _ACTING_USER,
                _query(schemas.MonitoringQuerySchema),
            ],
            "responses": _answers(
                {"200": _body("PatientCard", "The card.")}, {"404": "NotFound", **_FHIR}
            ),
        }
    },
    "/api/v1/tasks/{task_id}/contacts": _action(
        "recordContact",
        "Record a contact attempt (technician, pharmacist; operator key).",
        "Contact",
    ),
    "/api/v1/tasks/{task_id}/bookings": _action(
        "recordBooking", "Record a booking (technician, pharmacist).", "Booking"
    ),
    "/api/v1/tasks/{task_id}/samples": _action(
        "recordSample", "Record a sample taken (technician, pharmacist).", "Sample"
    ),
    "/api/v1/tasks/{task_id}/route-to-pharmacist": _action(
        "routeNonEngagement",
        "After the second reminder and the chase interval, route to the pharmacist.",
        "Versioned",
    ),
    "/api/v1/tasks/{task_id}/signoff": _action(
        "signOff",
        "Pharmacist sign-off of a result (a Task, or a Flag no Task covers) (pharmacist).",
        "SignOff",
    ),
    "/api/v1/tasks/{task_id}/non-engagement": _action(
        "decideNonEngagement",
        "Pharmacist decision for a patient who did not engage (pharmacist).",
        "NonEngagement",
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
    "/api/v1/patients/{patient_id}/evidence": {
        "get": {
            "operationId": "getPatientEvidence",
            "summary": (
                "One patient's evidence pack for an inspector or reviewer (read role and an "
                "acting user of the patient's practice, as for the patient card)."
            ),
            "parameters": [
                _ACTING_USER,
                _path_id("patient_id"),
                _query(schemas.EvidenceQuerySchema),
            ],
            "responses": _answers(
                {
                    "200": _body(
                        "EvidencePack",
                        "The evidence pack.",
                        also={"text/html": {"schema": {"type": "string"}}},
                    )
                },
                {"404": "NotFound", **_FHIR},
            ),
        }
    },
    "/api/v1/reports/monthly": {
        "get": {
            "operationId": "getMonthlyReport",
            "summary": "The monthly audit summary of a practice or PCN, from the ledger "
            "(read role).",
            "parameters": [_query(schemas.ReportQuerySchema)],
            "responses": _answers(
                {
                    "200": _body(
                        "MonthlyReport",
                        "The report.",
                        also={
                            "text/html": {"schema": {"type": "string"}},
                            "application/fhir+json": {"schema": {"type": "object"}},
                        },
                    )
                },
                {"404": "NotFound"},
            ),
        }
    },
}
"""Every operation: what it does, its path parameters and answers; bodies by component name."""

DESCRIPTION = (
    "High-risk drug monitoring on FHIR R4: sweeps, the findings ledger, live "
    "per-patient monitoring, the programme workflow and its monthly audit. An API key "
    "has the role read (GET), operator (GET, and POST /sweeps) or integration (GET, "
    "and the workflow operations for the user it names in X-Acting-User). A person's "
    "own token (Authorization: Bearer, from `hrm-fhir users token`) acts as them: GET "
    "and the workflow operations their role allows. A key bound to a practice, or a "
    "person of one, sees only that practice: another practice's patient or Task is a "
    "404, as for none, and a list or report of another practice a 403."
)


def _ecma_pattern(_converter: object, _field: fields.Field[Any], ret: Spec, **_: Any) -> Spec:
    """A marshmallow ``Regexp`` is matched at the start and may end in Python's ``\\Z``: the
    document says it as JSON Schema (ECMA-262) reads it, anchored at both ends."""
    pattern = ret.get("pattern")
    if pattern is None:
        return {}
    pattern = pattern if pattern.startswith("^") else f"^{pattern}"
    return {"pattern": pattern.removesuffix("\\Z").removesuffix("$") + "$"}


def build_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document; every operation needs an API key unless it says otherwise."""
    names = {schema: name for name, schema in COMPONENTS.items()}

    def component(schema: type[Schema]) -> str:
        # apispec writes a nested schema inline when this returns None (its documented use),
        # although its annotation says str.
        return names.get(schema)  # type: ignore[return-value]

    marshmallow = MarshmallowPlugin(schema_name_resolver=component)
    spec = APISpec(
        title="hrm-fhir",
        version="1",
        openapi_version="3.1.0",
        plugins=[marshmallow],
        info={"description": DESCRIPTION},
        security=[{"apiKey": []}, {"personalToken": []}],
    )
    for attribute in (_ecma_pattern, _narrowed_enum):
        marshmallow.converter.add_attribute_function(attribute)  # type: ignore[union-attr]
    spec.components.security_scheme("apiKey", {"type": "apiKey", "in": "header", "name": HEADER})
    spec.components.security_scheme(
        "personalToken",
        {
            "type": "http",
            "scheme": "bearer",
            "description": "A person's own token (hrm-fhir users token NAME).",
        },
    )
    for name, schema in COMPONENTS.items():
        if name not in spec.components.schemas:
            spec.components.schema(name, schema=schema)
    for name, description in _ERRORS.items():
        spec.components.response(name, _body("Error", description))
    for path, operations in PATHS.items():
        spec.path(path=path, operations=operations)
    document = spec.to_dict()
    for item in document["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                _not_null(parameter["schema"])
    return document


def _not_null(schema: Spec) -> None:
    """A query string cannot carry null: a parameter whose field loads None when absent
    (marshmallow then allows None) is optional, not nullable."""
    if "default" in schema and schema["default"] is None:
        del schema["default"]
    if isinstance(schema.get("type"), list):
        kinds = [kind for kind in schema["type"] if kind != "null"]
        schema["type"] = kinds[0] if len(kinds) == 1 else kinds
    if "enum" in schema:
        schema["enum"] = [value for value in schema["enum"] if value is not None]


def _narrowed_enum(_converter: object, field: fields.Field[Any], ret: Spec, **_: Any) -> Spec:
    """An ``Enum`` field narrowed by a ``OneOf`` (a sign-off's decisions among all decisions)
    accepts the narrowed values only; apispec would list every member of the enum."""
    if not isinstance(field, fields.Enum):
        return {}
    for validator in field.validators:
        if isinstance(validator, validate.OneOf):
            allowed = [getattr(choice, "value", choice) for choice in validator.choices]
            return {"enum": [value for value in ret["enum"] if value in allowed]}
    return {}


@bp.get("/api/v1/openapi.json")
def document() -> Response:
    return Response(_served(), mimetype="application/json")


@functools.cache
def _served() -> bytes:
    """The document as served, built once per process (about 30 ms: the route needs no key)."""
    return jsonify(build_document()).get_data()
