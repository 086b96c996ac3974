"""marshmallow schemas for the HTTP API, and typed ``load_*`` wrappers so no ``Any`` leaks out.

Query strings are loaded from a plain dict: a parameter given twice is a 400, not first-wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, TypeVar

from marshmallow import (
    EXCLUDE,
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)
from werkzeug.datastructures import MultiDict

from hrm_fhir.adapters.store.records import SweepMode, SweepStatus
from hrm_fhir.domain import FindingKind, MatchMethod, PatientRef, Severity
from hrm_fhir.rules.therapy import Therapy
from hrm_fhir.sweep.launcher import SweepRequest

FHIR_ID = r"[A-Za-z0-9\-.]{1,64}"
"""The FHIR ``id`` datatype's pattern."""
_PRACTICE = validate.Regexp(
    r"(Organization/)?" + FHIR_ID + r"\Z", error="Give an Organization id (or Organization/<id>)."
)
MAX_FINDINGS = 1000
MAX_SWEEPS = 500
_FINDING_KINDS = [kind.value for kind in FindingKind]
_SEVERITIES = [severity.value for severity in Severity]

T = TypeVar("T")


def described(description: str) -> dict[str, str]:
    """A field's ``metadata``: its description in the OpenAPI document."""
    return {"description": description}


class Documented(fields.Nested):
    """Documented as its nested schema, dumped as it is: for values already JSON-ready (a
    finding's ``to_json``), so the document gets the shape and the answer stays byte for byte."""

    # marshmallow's Nested names its first parameter unlike Field's: mypy cannot match both.
    def _serialize(self, nested_obj: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return nested_obj


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class Answer(Schema):
    """A schema of an answer: it dumps (or documents) what the API sends, and since it is never
    loaded it claims nothing about fields it does not name (no ``additionalProperties``)."""

    class Meta:
        unknown = EXCLUDE


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
    practice = fields.String(
        validate=_PRACTICE,
        load_default=None,
        metadata=described("Organization id or Organization/<id> reference."),
    )
    drug_group = fields.String(
        validate=validate.Length(min=1, max=64),
        load_default=None,
        metadata=described("E.g. methotrexate, lithium."),
    )
    kind = fields.Enum(
        FindingKind, by_value=True, load_default=None, metadata=described("Finding kind.")
    )
    severity = fields.Enum(
        Severity, by_value=True, load_default=None, metadata=described("Severity.")
    )
    state = fields.String(
        validate=validate.OneOf(["open", "closed"]),
        load_default=None,
        metadata=described("Open or closed findings."),
    )
    limit = fields.Integer(
        validate=validate.Range(min=1, max=MAX_FINDINGS),
        load_default=200,
        metadata=described("How many findings to return."),
    )

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
    limit = fields.Integer(
        validate=validate.Range(min=1, max=MAX_SWEEPS),
        load_default=50,
        metadata=described("How many sweeps to return."),
    )

    @post_load
    def _query(self, data: dict[str, Any], **_: Any) -> SweepListQuery:
        return SweepListQuery(**data)


class SweepStartSchema(_Strict):
    as_of = fields.Date(
        load_default=None,
        metadata=described("Evaluate as of this date (default: today, service time zone)."),
    )
    dry_run = fields.Boolean(
        load_default=False, metadata=described("Plan only: write nothing to the FHIR server.")
    )
    mode = fields.String(
        validate=validate.OneOf([mode.value for mode in SweepMode]),
        load_default=None,
        metadata=described("Default: incremental once a watermark exists, else full."),
    )

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


def _as_of(description: str = "") -> fields.Date:
    return fields.Date(
        load_default=None,
        metadata=described(
            description or "Evaluate as of this date (default: today in the service's time zone)."
        ),
    )


class MonitoringQuerySchema(_Strict):
    as_of = _as_of()

    @post_load
    def _query(self, data: dict[str, Any], **_: Any) -> MonitoringQuery:
        return MonitoringQuery(**data)


@dataclass(frozen=True)
class EvidenceQuery:
    as_of: date | None
    format: Literal["json", "html"]


class EvidenceQuerySchema(_Strict):
    as_of = _as_of(
        "The schedule in force, and the record to the end of this day in the service's time "
        "zone (default: today)."
    )
    format = fields.String(
        validate=validate.OneOf(["json", "html"]),
        load_default="json",
        metadata=described("html: the printable page."),
    )

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
        metadata=described("YYYY-MM (default: last month in the service's time zone)."),
    )
    practice = fields.String(
        validate=_PRACTICE,
        load_default=None,
        metadata=described("Organization id (default HRM_PRACTICE)."),
    )
    pcn = fields.String(
        validate=validate.Length(min=1, max=128),
        load_default=None,
        metadata=described("A PCN configured in HRM_PCNS (not with practice)."),
    )
    format = fields.String(
        validate=validate.OneOf(["json", "html", "measure-report"]),
        load_default="json",
        metadata=described("html: the printable report; measure-report: the FHIR MeasureReport."),
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


class SweepSchema(Answer):
    id = fields.Integer()
    status = fields.String(validate=validate.OneOf([status.value for status in SweepStatus]))
    mode = fields.String(validate=validate.OneOf([mode.value for mode in SweepMode]))
    dry_run = fields.Boolean()
    scope = fields.String(metadata=described("all or Organization/<id>."))
    fhir_base = fields.String()
    as_of = fields.Date()
    started_at = fields.AwareDateTime()
    finished_at = fields.AwareDateTime(allow_none=True)
    duration_seconds = fields.Float(allow_none=True)
    created = fields.Integer()
    updated = fields.Integer()
    closed = fields.Integer()
    unchanged = fields.Integer()
    repaired = fields.Integer(
        metadata=described("Tasks and Flags the ledger held open that the server had lost.")
    )
    skipped = fields.Integer()
    errors = fields.Integer()
    watermark = fields.String(allow_none=True)
    error = fields.String(allow_none=True)


class FindingRecordSchema(Answer):
    identifier = fields.String()
    patient = fields.String(metadata=described("Patient/<id>."))
    practice = fields.String(allow_none=True, metadata=described("Organization/<id>."))
    kind = fields.String(validate=validate.OneOf(_FINDING_KINDS))
    drug_group = fields.String()
    rule = fields.String(metadata=described("<rule-id>@<version>."))
    check = fields.String()
    severity = fields.String(allow_none=True, validate=validate.OneOf(_SEVERITIES))
    due_date = fields.Date(allow_none=True)
    resource_type = fields.String(validate=validate.OneOf(["Task", "Flag"]))
    resource_id = fields.String()
    status = fields.String(metadata=described("The FHIR status last written."))
    opened_at = fields.AwareDateTime()
    closed_at = fields.AwareDateTime(allow_none=True)
    close_reason = fields.String(allow_none=True)
    reason = fields.String()


class SweepStartedSchema(Answer):
    sweep = fields.Integer(
        required=True,
        allow_none=True,
        metadata=described("The sweep's id when it ran inline; null when in the background."),
    )
    status = fields.String(required=True, validate=validate.OneOf(["started", "completed"]))


_REACHABLE = validate.OneOf(["ok", "unavailable"])


class ReadinessSchema(Answer):
    database = fields.String(required=True, validate=_REACHABLE)
    fhir = fields.String(required=True, validate=_REACHABLE)


def _medication(therapy: Therapy) -> str:
    return therapy.latest.ref


class TherapySchema(Answer):
    drug_group = fields.String(attribute="group")
    current = fields.Boolean()
    start = fields.Date()
    phase_anchor = fields.Date(
        attribute="anchor",
        metadata=described("Where schedule phases are measured from: start or dose change."),
    )
    medication = fields.Function(
        _medication,
        metadata={"type": "string", **described("The course's latest MedicationRequest.")},
    )


class SkippedSchema(Answer):
    source = fields.String()
    reason = fields.String()


class FindingSchema(Answer):
    class Meta(Answer.Meta):
        description = "A finding as `hrm-fhir evaluate --format json` prints it."

    patient = fields.String(required=True)
    kind = fields.Enum(FindingKind, by_value=True, required=True)
    drug_group = fields.String(required=True)
    medication = fields.String()
    rule = fields.String(required=True)
    check = fields.String(required=True)
    reason = fields.String(required=True)
    source = fields.String(metadata=described("Citation URL."))
    verified = fields.Boolean()
    evidence = fields.List(fields.String())
    identifier = fields.String(required=True)
    matched_by = fields.Enum(
        MatchMethod,
        by_value=True,
        metadata=described("How the prescription was recognised: code, text or a statement."),
    )
    tests = fields.List(fields.String())
    due_date = fields.Date(allow_none=True)
    severely_overdue = fields.Boolean(
        metadata=described(
            "Due and overdue findings: a test has gone undone past its schedule's "
            "severely-overdue tolerance (rule packs)."
        )
    )
    analyte = fields.String(allow_none=True)
    value = fields.Float(allow_none=True)
    unit = fields.String(allow_none=True)
    observed_on = fields.Date(allow_none=True)
    severity = fields.Enum(Severity, by_value=True, allow_none=True)
    code = fields.String(allow_none=True)
    missing = fields.List(
        fields.String(),
        metadata=described(
            "Incomplete findings: the data that is missing or could not be read "
            "(e.g. `weight`, `unit`, `laboratory reference range`, `exact value`)."
        ),
    )


class MonitoringSchema(Answer):
    patient = fields.String(required=True)
    as_of = fields.Date(required=True)
    therapies = fields.List(fields.Nested(TherapySchema), required=True)
    findings = fields.List(Documented(FindingSchema), required=True)
    open_tasks = fields.List(
        fields.Nested(FindingRecordSchema),
        required=True,
        metadata=described("The patient's open findings in the ledger."),
    )
    skipped = fields.List(
        fields.Nested(SkippedSchema),
        required=True,
        metadata=described("Resources that could not be read, and why."),
    )


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
