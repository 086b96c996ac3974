"""marshmallow schemas for the workflow API: query strings and action bodies, strict (unknown
fields, wrong types and repeated parameters are a 400), loaded into typed values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from marshmallow import ValidationError, fields, post_load, validate, validates_schema
from werkzeug.datastructures import MultiDict

from hrm_fhir.errors import WorkflowError
from hrm_fhir.paging import API_LIMIT, API_MAX_LIMIT
from hrm_fhir.programme import (
    MAX_DOSE,
    MAX_NOTE,
    MAX_TEAM,
    NON_ENGAGEMENT_DECISIONS,
    SIGN_OFF_DECISIONS,
    ContactOutcome,
    Decision,
    Medium,
    Stage,
    check_sign_off,
)
from hrm_fhir.web.api.schemas import FHIR_ID, _as_of, _load, _Strict, described, query_args

T = TypeVar("T")
ACTING_USER = "X-Acting-User"
"""The header naming the user an API request acts for."""


def _version() -> fields.String:
    return fields.String(
        required=True,
        validate=validate.Regexp(FHIR_ID + r"\Z", error="A FHIR versionId such as 3."),
        metadata=described("The Task's meta.versionId as it was loaded; a stale one is a 409."),
    )


def _note() -> fields.String:
    return fields.String(validate=validate.Length(max=MAX_NOTE), load_default="")


def _decision(allowed: frozenset[Decision]) -> fields.Enum[Decision]:
    return fields.Enum(
        Decision,
        by_value=True,
        required=True,
        validate=validate.OneOf(sorted(allowed)),
    )


def _offset() -> fields.Integer:
    return fields.Integer(
        validate=validate.Range(min=0),
        load_default=0,
        metadata=described("Where the page starts (default 0)."),
    )


def _limit() -> fields.Integer:
    return fields.Integer(
        validate=validate.Range(min=1, max=API_MAX_LIMIT),
        load_default=API_LIMIT,
        metadata=described(f"Items on the page (default {API_LIMIT}, at most {API_MAX_LIMIT})."),
    )


def _practice() -> fields.String:
    return fields.String(
        validate=validate.Length(min=1, max=128),
        load_default=None,
        metadata=described("Organization id or reference (default: the user's)."),
    )


@dataclass(frozen=True)
class WorklistQuery:
    practice: str | None
    drug_group: str | None
    stage: Stage | None
    as_of: date | None
    offset: int
    limit: int


class WorklistQuerySchema(_Strict):
    practice = _practice()
    drug_group = fields.String(
        validate=validate.Length(min=1, max=64),
        load_default=None,
        metadata=described("E.g. methotrexate, lithium."),
    )
    stage = fields.Enum(
        Stage,
        by_value=True,
        load_default=None,
        metadata=described("One stage (default: the technician's stages)."),
    )
    as_of = _as_of()
    offset = _offset()
    limit = _limit()

    @post_load
    def _query(self, data: dict[str, Any], **_: Any) -> WorklistQuery:
        return WorklistQuery(**data)


@dataclass(frozen=True)
class PracticeQuery:
    practice: str | None
    offset: int
    limit: int


class PracticeQuerySchema(_Strict):
    practice = _practice()
    offset = _offset()
    limit = _limit()

    @post_load
    def _query(self, data: dict[str, Any], **_: Any) -> PracticeQuery:
        return PracticeQuery(**data)


@dataclass(frozen=True)
class Contact:
    version: str
    medium: Medium
    outcome: ContactOutcome
    note: str


class ContactSchema(_Strict):
    version = _version()
    medium = fields.Enum(Medium, by_value=True, required=True)
    outcome = fields.Enum(ContactOutcome, by_value=True, required=True)
    note = _note()

    @post_load
    def _body(self, data: dict[str, Any], **_: Any) -> Contact:
        return Contact(**data)


@dataclass(frozen=True)
class Booking:
    version: str
    booked_for: date
    note: str


class BookingSchema(_Strict):
    version = _version()
    booked_for = fields.Date(required=True)
    note = _note()

    @post_load
    def _body(self, data: dict[str, Any], **_: Any) -> Booking:
        return Booking(**data)


@dataclass(frozen=True)
class Sample:
    version: str
    taken_on: date


class SampleSchema(_Strict):
    version = _version()
    taken_on = fields.Date(required=True)

    @post_load
    def _body(self, data: dict[str, Any], **_: Any) -> Sample:
        return Sample(**data)


@dataclass(frozen=True)
class SignOff:
    version: str
    decision: Decision
    note: str
    new_dose: str
    repeat_on: date | None


class SignOffSchema(_Strict):
    version = _version()
    decision = _decision(SIGN_OFF_DECISIONS)
    note = _note()
    new_dose = fields.String(
        validate=validate.Length(max=MAX_DOSE),
        load_default="",
        metadata=described("Required with dose-adjusted, refused otherwise."),
    )
    repeat_on = fields.Date(
        load_default=None,
        metadata=described("Required with repeat-test-booked, refused otherwise."),
    )

    @validates_schema
    def _details(self, data: dict[str, Any], **_: Any) -> None:
        if "decision" in data:
            try:
                check_sign_off(data["decision"], data.get("new_dose", ""), data.get("repeat_on"))
            except WorkflowError as exc:
                raise ValidationError(str(exc)) from exc

    @post_load
    def _body(self, data: dict[str, Any], **_: Any) -> SignOff:
        return SignOff(**data)


@dataclass(frozen=True)
class NonEngagement:
    version: str
    decision: Decision
    note: str


class NonEngagementSchema(_Strict):
    version = _version()
    decision = _decision(NON_ENGAGEMENT_DECISIONS)
    note = _note()

    @post_load
    def _body(self, data: dict[str, Any], **_: Any) -> NonEngagement:
        return NonEngagement(**data)


@dataclass(frozen=True)
class Versioned:
    version: str
    note: str


class VersionedSchema(_Strict):
    """Routing and acknowledgement: the version, and (acknowledgement only) a note."""

    version = _version()
    note = _note()

    @post_load
    def _body(self, data: dict[str, Any], **_: Any) -> Versioned:
        return Versioned(**data)


def _optional_version() -> fields.String:
    return fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(FHIR_ID + r"\Z", error="A FHIR versionId such as 3."),
        metadata={
            "description": "The arrangement Task's meta.versionId as loaded; null or absent "
            "for a first decision about this patient and drug group (a 409 if one exists)."
        },
    )


def _drug_group() -> fields.String:
    return fields.String(
        required=True,
        validate=validate.Regexp(r"^[a-z0-9-]{1,64}\Z"),
        metadata=described("A rule pack's drug group."),
    )


@dataclass(frozen=True)
class MonitoredElsewhere:
    drug_group: str
    monitored_by: str
    review_on: date
    version: str | None
    note: str


class MonitoredElsewhereSchema(_Strict):
    drug_group = _drug_group()
    monitored_by = fields.String(
        required=True,
        validate=validate.Length(min=1, max=MAX_TEAM),
        metadata=described("The organisation or team that monitors."),
    )
    review_on = fields.Date(
        required=True,
        metadata=described("After today and within a year: the pharmacist reviews then."),
    )
    version = _optional_version()
    note = _note()

    @post_load
    def _body(self, data: dict[str, Any], **_: Any) -> MonitoredElsewhere:
        return MonitoredElsewhere(**data)


@dataclass(frozen=True)
class MonitoredByPractice:
    drug_group: str
    version: str | None
    note: str


class MonitoredByPracticeSchema(_Strict):
    drug_group = _drug_group()
    version = _optional_version()
    note = _note()

    @post_load
    def _body(self, data: dict[str, Any], **_: Any) -> MonitoredByPractice:
        return MonitoredByPractice(**data)


def load_worklist_query(args: MultiDict[str, str]) -> WorklistQuery:
    return _load(WorklistQuerySchema(), query_args(args), WorklistQuery)


def load_practice_query(args: MultiDict[str, str]) -> PracticeQuery:
    return _load(PracticeQuerySchema(), query_args(args), PracticeQuery)


def load_body(schema: _Strict, body: object, kind: type[T]) -> T:
    """An action's JSON object body, loaded by ``schema`` into ``kind``."""
    if not isinstance(body, Mapping):
        raise ValidationError({"_schema": ["The body must be a JSON object."]})
    return _load(schema, body, kind)
