"""marshmallow schemas for the HTTP API, and typed ``load_*`` wrappers so no ``Any`` leaks out.

Query strings are loaded from a plain dict: a parameter given twice is a 400, not first-wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, TypeVar

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)
from werkzeug.datastructures import MultiDict

from hrm_fhir.app import SweepRequest
from hrm_fhir.domain import FindingKind, PatientRef, Severity
from hrm_fhir.rules.therapy import Therapy

FHIR_ID = r"[A-Za-z0-9\-.]{1,64}"
"""The FHIR ``id`` datatype's pattern."""
_PRACTICE = validate.Regexp(
    r"(Organization/)?" + FHIR_ID + r"\Z", error="Give an Organization id (or Organization/<id>)."
)
MAX_FINDINGS = 1000
MAX_SWEEPS = 500

T = TypeVar("T")


class _Strict(Schema):
    class Meta:
        unknown = RAISE


@dataclass(frozen=True)
class FindingQuery:
    practice: str | None
    """``Organization/<id>``; a bare id is given the prefix."""
    drug_group: str | None
    kind: FindingKind | None
    severity: Severity | None
    state: Literal["open", "closed"] | None
    limit: int


class FindingQuerySchema(_Strict):
    practice = fields.String(validate=_PRACTICE, load_default=None)
    drug_group = fields.String(validate=validate.Length(min=1, max=64), load_default=None)
    kind = fields.Enum(FindingKind, by_value=True, load_default=None)
    severity = fields.Enum(Severity, by_value=True, load_default=None)
    state = fields.String(validate=validate.OneOf(["open", "closed"]), load_default=None)
    limit = fields.Integer(validate=validate.Range(min=1, max=MAX_FINDINGS), load_default=200)

    @post_load
    def _query(self, data: dict[str, Any], **_: Any) -> FindingQuery:
        practice = data["practice"]
        if practice is not None and "/" not in practice:
            data["practice"] = f"Organization/{practice}"
        return FindingQuery(**data)


@dataclass(frozen=True)
class SweepListQuery:
    limit: int


class SweepListQuerySchema(_Strict):
    limit = fields.Integer(validate=validate.Range(min=1, max=MAX_SWEEPS), load_default=50)

    @post_load
    def _query(self, data: dict[str, Any], **_: Any) -> SweepListQuery:
        return SweepListQuery(**data)


class SweepStartSchema(_Strict):
    as_of = fields.Date(load_default=None)
    dry_run = fields.Boolean(load_default=False)
    mode = fields.String(validate=validate.OneOf(["full", "incremental"]), load_default=None)

    @post_load
    def _request(self, data: dict[str, Any], **_: Any) -> SweepRequest:
        mode = data["mode"]
        return SweepRequest(
            as_of=data["as_of"],
            dry_run=data["dry_run"],
            full=None if mode is None else mode == "full",
        )


class PatientIdSchema(_Strict):
    id = fields.String(required=True, validate=validate.Regexp(FHIR_ID + r"\Z"))

    @post_load
    def _reference(self, data: dict[str, Any], **_: Any) -> str:
        return f"Patient/{data['id']}"


@dataclass(frozen=True)
class MonitoringQuery:
    as_of: date | None


class MonitoringQuerySchema(_Strict):
    as_of = fields.Date(load_default=None)

    @post_load
    def _query(self, data: dict[str, Any], **_: Any) -> MonitoringQuery:
        return MonitoringQuery(**data)


@dataclass(frozen=True)
class EvidenceQuery:
    as_of: date | None
    format: Literal["json", "html"]


class EvidenceQuerySchema(_Strict):
    as_of = fields.Date(load_default=None)
    format = fields.String(validate=validate.OneOf(["json", "html"]), load_default="json")

    @post_load
    def _query(self, data: dict[str, Any], **_: Any) -> EvidenceQuery:
        return EvidenceQuery(**data)


@dataclass(frozen=True)
class ReportQuery:
    month: date | None
    """The first day of the month; None means last month."""
    practice: str | None
    pcn: str | None
    format: Literal["json", "html", "measure-report"]


class ReportQuerySchema(_Strict):
    month = fields.String(
        validate=validate.Regexp(r"^\d{4}-(0[1-9]|1[0-2])$", error="Give the month as YYYY-MM."),
        load_default=None,
    )
    practice = fields.String(validate=_PRACTICE, load_default=None)
    pcn = fields.String(validate=validate.Length(min=1, max=128), load_default=None)
    format = fields.String(
        validate=validate.OneOf(["json", "html", "measure-report"]), load_default="json"
    )

    @validates_schema
    def _one_scope(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("practice") and data.get("pcn"):
            raise ValidationError("Give practice or pcn, not both.", "pcn")

    @post_load
    def _query(self, data: dict[str, Any], **_: Any) -> ReportQuery:
        month = data.pop("month")
        first = date.fromisoformat(f"{month}-01") if month else None
        return ReportQuery(month=first, **data)


class SweepSchema(Schema):
    id = fields.Integer()
    status = fields.String()
    mode = fields.String()
    dry_run = fields.Boolean()
    scope = fields.String()
    fhir_base = fields.String()
    as_of = fields.Date()
    started_at = fields.AwareDateTime()
    finished_at = fields.AwareDateTime()
    duration_seconds = fields.Float()
    created = fields.Integer()
    updated = fields.Integer()
    closed = fields.Integer()
    unchanged = fields.Integer()
    repaired = fields.Integer()
    skipped = fields.Integer()
    errors = fields.Integer()
    watermark = fields.String()
    error = fields.String()


class FindingRecordSchema(Schema):
    identifier = fields.String()
    patient = fields.String()
    practice = fields.String()
    kind = fields.String()
    drug_group = fields.String()
    rule = fields.String()
    check = fields.String()
    severity = fields.String()
    due_date = fields.Date()
    resource_type = fields.String()
    resource_id = fields.String()
    status = fields.String()
    opened_at = fields.AwareDateTime()
    closed_at = fields.AwareDateTime()
    close_reason = fields.String()
    reason = fields.String()


class SweepStartedSchema(Schema):
    sweep = fields.Integer(allow_none=True)
    status = fields.String()


class ReadinessSchema(Schema):
    database = fields.String()
    fhir = fields.String()


def _medication(therapy: Therapy) -> str:
    return therapy.latest.ref


class TherapySchema(Schema):
    drug_group = fields.String(attribute="group")
    current = fields.Boolean()
    start = fields.Date()
    phase_anchor = fields.Date(attribute="anchor")
    medication = fields.Function(_medication)


class SkippedSchema(Schema):
    source = fields.String()
    reason = fields.String()


class MonitoringSchema(Schema):
    patient = fields.String()
    as_of = fields.Date()
    therapies = fields.List(fields.Nested(TherapySchema))
    findings = fields.List(fields.Dict())
    open_tasks = fields.List(fields.Nested(FindingRecordSchema))
    skipped = fields.List(fields.Nested(SkippedSchema))


def query_args(args: MultiDict[str, str]) -> dict[str, str]:
    """The query string as a dict; ValidationError when a parameter is repeated."""
    repeated = {name: ["Give this parameter once."] for name in args if len(args.getlist(name)) > 1}
    if repeated:
        raise ValidationError(repeated)
    return args.to_dict()


def _load(schema: Schema, data: Mapping[str, Any], kind: type[T]) -> T:
    loaded = schema.load(data)
    if not isinstance(loaded, kind):
        raise TypeError(f"{type(schema).__name__} loaded {type(loaded).__name__}")
    return loaded


def load_finding_query(args: MultiDict[str, str]) -> FindingQuery:
    return _load(FindingQuerySchema(), query_args(args), FindingQuery)


def load_sweep_list_query(args: MultiDict[str, str]) -> SweepListQuery:
    return _load(SweepListQuerySchema(), query_args(args), SweepListQuery)


def load_sweep_request(body: object) -> SweepRequest:
    """The body of ``POST /api/v1/sweeps``: a JSON object (an empty body means ``{}``)."""
    if not isinstance(body, Mapping):
        raise ValidationError({"_schema": ["The body must be a JSON object."]})
    return _load(SweepStartSchema(), body, SweepRequest)


def load_patient_ref(patient_id: str) -> PatientRef:
    """``Patient/<id>`` once the id matches the FHIR id pattern."""
    return PatientRef(_load(PatientIdSchema(), {"id": patient_id}, str))


def load_monitoring_query(args: MultiDict[str, str]) -> MonitoringQuery:
    return _load(MonitoringQuerySchema(), query_args(args), MonitoringQuery)


def load_report_query(args: MultiDict[str, str]) -> ReportQuery:
    return _load(ReportQuerySchema(), query_args(args), ReportQuery)


def load_evidence_query(args: MultiDict[str, str]) -> EvidenceQuery:
    return _load(EvidenceQuerySchema(), query_args(args), EvidenceQuery)
