"""marshmallow schemas of the answers no schema of ``schemas.py`` dumps: errors, the liveness
probe, the workflow's views, the evidence pack and the monthly report.

They are what the OpenAPI document (``openapi.py``) says of those answers. The answers themselves
are the views' dataclasses dumped by orjson, unchanged; a test holds each schema's fields to its
dataclass's, so the two cannot drift.
"""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from hrm_fhir.domain import FindingKind, MatchMethod, Severity
from hrm_fhir.programme import ChaseStep, Priority, Stage
from hrm_fhir.web.api.schemas import (
    Answer,
    FindingRecordSchema,
    SkippedSchema,
    SweepSchema,
    described,
)
from hrm_fhir.workflow.review import KIND_ORDER  # the review queue's kinds, in its order


def _nullable_text(description: str | None = None) -> fields.String:
    return fields.String(allow_none=True, metadata=described(description) if description else {})


def _texts() -> fields.List[Any]:
    return fields.List(fields.String())


def _severity() -> fields.Enum[Severity]:
    return fields.Enum(Severity, by_value=True, allow_none=True)


def _stage(*, allow_none: bool = False) -> fields.Enum[Stage]:
    return fields.Enum(Stage, by_value=True, allow_none=allow_none)


class ErrorSchema(Answer):
    error = fields.String(required=True)
    message = fields.String()
    messages = fields.Dict(metadata=described("Validation errors by field name (400 only)."))


class HealthSchema(Answer):
    status = fields.String(required=True, validate=validate.OneOf(["ok"]))


class SweepListSchema(Answer):
    sweeps = fields.List(fields.Nested(SweepSchema), required=True)


class FindingRecordListSchema(Answer):
    findings = fields.List(fields.Nested(FindingRecordSchema), required=True)


# ------------------------------------------------------------------ the programme workflow


class ActionResultSchema(Answer):
    task_id = fields.String(required=True)
    version = fields.String(
        required=True, allow_none=True, metadata=described("Send it with the next action.")
    )
    stage = fields.Enum(Stage, by_value=True, required=True)
    written = fields.List(
        fields.String(),
        required=True,
        metadata=described("Versioned references written, e.g. Task/x/_history/4."),
    )


class HistoryItemSchema(Answer):
    at = fields.DateTime()
    action = fields.String(metadata=described("contact, booking, sample..."))
    summary = fields.String()
    by = fields.String()
    task_ids = _texts()
    medium = _nullable_text()
    outcome = _nullable_text()
    status = _nullable_text()
    note = fields.String()
    reference = _nullable_text()


class TaskSummarySchema(Answer):
    task_id = fields.String()
    version = _nullable_text()
    code = fields.String()
    stage = _stage()
    status = fields.String()
    drug_group = fields.String()
    rule = fields.String()
    tests = _texts()
    test_titles = _texts()
    due_date = fields.Date(allow_none=True)
    days_overdue = fields.Integer()
    severely_overdue = fields.Boolean()
    description = fields.String()
    source = _nullable_text()
    attempts = fields.Integer()
    last_attempt = fields.Date(allow_none=True)
    chase = fields.Enum(ChaseStep, by_value=True, allow_none=True)
    chase_due_on = fields.Date(allow_none=True)
    chase_due = fields.Boolean()
    booked_for = fields.Date(allow_none=True)


class WorklistEntrySchema(Answer):
    patient = fields.String()
    practice = _nullable_text()
    tasks = fields.List(fields.Nested(TaskSummarySchema))
    tests = _texts()
    test_titles = _texts()
    drug_groups = _texts()
    due_date = fields.Date(allow_none=True)
    days_overdue = fields.Integer()
    stage = _stage()
    chase_due = fields.Boolean()
    next_chase = fields.Enum(ChaseStep, by_value=True, allow_none=True)
    contacts = fields.List(fields.Nested(HistoryItemSchema))
    priority = fields.Enum(Priority, by_value=True)
    out_of_range = fields.Boolean()


class PageLinksSchema(Answer):
    self = fields.String()
    next = _nullable_text()
    prev = _nullable_text()


class _PageSchema(Answer):
    """The fields every paged list has beside its items."""

    total = fields.Integer(required=True, metadata=described("Items in the whole list."))
    offset = fields.Integer(required=True, metadata=described("Where this page starts (0-based)."))
    limit = fields.Integer(required=True, metadata=described("Items a page holds."))
    links = fields.Nested(
        PageLinksSchema,
        required=True,
        metadata=described("This page, the next and the previous (null at either end)."),
    )


class WorklistSchema(_PageSchema):
    entries = fields.List(fields.Nested(WorklistEntrySchema), required=True)


class ResultPointSchema(Answer):
    observation = fields.String()
    on = fields.Date()
    value = fields.Float(allow_none=True)
    unit = _nullable_text()


class TrendSchema(Answer):
    analyte = fields.String()
    title = fields.String()
    points = fields.List(fields.Nested(ResultPointSchema))


class FlagSummarySchema(Answer):
    flag_id = fields.String()
    version = _nullable_text()
    severity = _severity()
    text = fields.String()
    observation = _nullable_text()
    since = fields.Date(allow_none=True)


class ThresholdInfoSchema(Answer):
    analyte = fields.String()
    rule = fields.String()
    severity = _severity()
    advice = fields.String()


class ReviewItemSchema(Answer):
    kind = fields.String(validate=validate.OneOf(KIND_ORDER))
    task_id = fields.String(metadata=described("The Task (or Flag) to act on."))
    version = _nullable_text()
    patient = fields.String()
    practice = _nullable_text()
    stage = _stage()
    drug_group = fields.String()
    medication = _nullable_text()
    rule = fields.String()
    description = fields.String()
    severity = _severity()
    source = _nullable_text()
    since = fields.Date(allow_none=True)
    flags = fields.List(fields.Nested(FlagSummarySchema))
    results = _texts()
    trend = fields.List(fields.Nested(TrendSchema))
    thresholds = fields.List(fields.Nested(ThresholdInfoSchema))
    severely_overdue = fields.Boolean()


class ReviewQueueSchema(_PageSchema):
    items = fields.List(fields.Nested(ReviewItemSchema), required=True)


class PatientDetailsSchema(Answer):
    name = fields.String()
    nhs_number = fields.String()
    phone = fields.String()
    preferred_contact = fields.String()


class OpenItemSchema(Answer):
    reference = fields.String()
    version = _nullable_text()
    kind = fields.String(metadata=described("The Task code, or flag."))
    description = fields.String()
    rule = fields.String()
    source = _nullable_text()
    status = fields.String()
    stage = _stage(allow_none=True)
    severity = _severity()
    drug_group = fields.String(metadata=described("The drug group of a Task; empty for a Flag."))


class PatientCardSchema(Answer):
    patient = fields.String()
    as_of = fields.Date()
    practice = _nullable_text()
    details = fields.Nested(
        PatientDetailsSchema,
        metadata=described("Read from the Patient resource for this answer only."),
    )
    tests_due = fields.List(fields.Nested(TaskSummarySchema))
    contacts = fields.List(fields.Nested(HistoryItemSchema))
    results = fields.List(fields.Nested(TrendSchema))
    findings = fields.List(fields.Nested(OpenItemSchema))


# ------------------------------------------------------------------ the evidence pack

STATEMENT_KINDS = [
    "schedule",
    "modifier",
    "tolerance",
    "baseline",
    "threshold",
    "prescribing",
    "ome",
    "target",
]


class CitationSchema(Answer):
    key = fields.String()
    publisher = fields.String()
    title = fields.String()
    url = fields.String()
    accessed = fields.String()
    section = fields.String()


class StatementSchema(Answer):
    class Meta(Answer.Meta):
        description = "One part of a rule pack as a clinician reads it (rules/describe.py)."

    kind = fields.String(validate=validate.OneOf(STATEMENT_KINDS))
    text = fields.String()
    verified = fields.Boolean()
    citation = fields.Nested(CitationSchema)


class VersionSchema(Answer):
    class Meta(Answer.Meta):
        description = "One stored version of a Task or Flag (from its _history)."

    version = _nullable_text()
    last_updated = fields.DateTime(allow_none=True)
    status = fields.String()
    business_status = _nullable_text()
    stage = _stage(allow_none=True)
    owner = _nullable_text()
    notes = fields.List(fields.String(), metadata=described("Notes added in this version."))


class WrittenResourceSchema(Answer):
    class Meta(Answer.Meta):
        description = "A Task or Flag the service wrote, as it stood at the cut-off."

    reference = fields.String()
    kind = fields.String(metadata=described("The Task code, or flag."))
    description = fields.String()
    rule = fields.String()
    source = _nullable_text()
    severity = _severity()
    status = fields.String()
    stage = _stage(allow_none=True)
    period_start = _nullable_text()
    period_end = _nullable_text()
    versions = fields.List(fields.Nested(VersionSchema))


class PatientIdentitySchema(Answer):
    reference = fields.String()
    name = fields.String()
    nhs_number = fields.String()
    birth_date = fields.Date(allow_none=True)
    practice = _nullable_text()


class TestDoneSchema(Answer):
    test = fields.String()
    title = fields.String()
    last_done = fields.Date(allow_none=True)
    observation = _nullable_text()


class ScheduleAppliedSchema(Answer):
    drug_group = fields.String()
    rule = fields.String(metadata=described("<rule-id>@<version>."))
    title = fields.String()
    status = fields.String()
    effective_from = fields.Date()
    reviewed_by = fields.String()
    approved_on = fields.String(metadata=described("Empty: not clinically signed off."))
    verified = fields.Boolean()
    current = fields.Boolean()
    therapy_start = fields.Date()
    phase_anchor = fields.Date()
    medication = fields.String()
    ingredient = fields.String()
    matched_by = fields.Enum(MatchMethod, by_value=True)
    statements = fields.List(fields.Nested(StatementSchema))
    tests = fields.List(fields.Nested(TestDoneSchema))


class ResultConsideredSchema(Answer):
    observation = fields.String()
    on = fields.Date()
    analyte = fields.String()
    title = fields.String()
    value = fields.Float(allow_none=True)
    unit = _nullable_text()
    normalised = fields.Boolean()
    ref_low = fields.Float(allow_none=True)
    ref_high = fields.Float(allow_none=True)


class AgentSchema(Answer):
    name = fields.String()
    username = _nullable_text()
    role = _nullable_text()
    type = _nullable_text()


class AttestationSchema(Answer):
    reference = fields.String()
    recorded = fields.DateTime(allow_none=True)
    activity = fields.String()
    action = _nullable_text()
    agents = fields.List(fields.Nested(AgentSchema))
    reason = fields.String()
    targets = _texts()
    sources = _texts()


class LedgerEventSchema(Answer):
    at = fields.DateTime()
    task_id = fields.String()
    actor = fields.String()
    role = fields.String()
    action = fields.String()
    stage_before = _nullable_text()
    stage_after = _nullable_text()
    detail = fields.Dict()
    written = _texts()


class LedgerFindingSchema(Answer):
    identifier = fields.String()
    kind = fields.Enum(FindingKind, by_value=True)
    drug_group = fields.String()
    rule = fields.String()
    check = fields.String()
    severity = _severity()
    due_date = fields.Date(allow_none=True)
    resource = fields.String()
    opened_at = fields.DateTime()
    closed_at = fields.DateTime(allow_none=True)
    close_reason = _nullable_text()
    reason = fields.String()


class EvidencePackSchema(Answer):
    class Meta(Answer.Meta):
        description = (
            "Sections in order: schedules, results, tasks and flags, contacts, decisions "
            "(provenance, events, findings). The record is cut off at the end of as_of in the "
            "service's time zone."
        )

    patient = fields.Nested(
        PatientIdentitySchema,
        metadata=described("Read from the Patient resource for this answer only."),
    )
    as_of = fields.Date()
    generated_at = fields.DateTime()
    schedules = fields.List(fields.Nested(ScheduleAppliedSchema))
    results = fields.List(fields.Nested(ResultConsideredSchema))
    skipped = fields.List(fields.Nested(SkippedSchema))
    tasks = fields.List(fields.Nested(WrittenResourceSchema))
    flags = fields.List(fields.Nested(WrittenResourceSchema))
    contacts = fields.List(fields.Nested(HistoryItemSchema))
    provenance = fields.List(fields.Nested(AttestationSchema))
    events = fields.List(fields.Nested(LedgerEventSchema))
    findings = fields.List(fields.Nested(LedgerFindingSchema))


# ------------------------------------------------------------------ the monthly report


def _objects() -> fields.List[Any]:
    return fields.List(fields.Dict())


class MonthlyReportSchema(Answer):
    scope = fields.String(required=True, metadata=described("Organization/<id> or PCN <id>."))
    practices = fields.List(fields.String(), required=True)
    month = fields.Date(required=True)
    period_start = fields.Date()
    period_end = fields.Date()
    definitions = fields.String(metadata=described("Audit definitions id@version."))
    rule_packs = _texts()
    record_as_at = fields.DateTime(allow_none=True)
    groups = fields.List(fields.Dict(), required=True)
    totals = fields.Dict(required=True)
    inspector_findings = fields.List(fields.Dict(), required=True)
    indicators = fields.List(fields.Dict(), required=True)
    workload = fields.Dict()
    backlog = _objects()
    forecast = fields.Dict()
    sweeps = _objects()
    practice_rows = _objects()
    cadence_gaps = fields.List(
        fields.String(),
        metadata=described("Stretches of 8 days or more in the month with no completed sweep."),
    )
    lists = fields.Dict(
        metadata=described("Every patient list by id: each count's value and list_id point here.")
    )
    warnings = fields.List(
        fields.String(),
        metadata=described("What limits the whole report, e.g. rule packs no version covers."),
    )
