"""The audit definitions (``definitions.toml``): drug families, inspector findings and PINCER
indicators, validated at load like the rule packs and checked against the rule set."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from hrm_fhir.domain import Severity
from hrm_fhir.errors import RuleDefinitionError
from hrm_fhir.rules.durations import Duration
from hrm_fhir.rules.model import Citation
from hrm_fhir.rules.registry import RuleSet
from hrm_fhir.rules.schema import CitationSchema, DurationField

OVERDUE = "overdue"
UNESCALATED = "unescalated-result"


@dataclass(frozen=True, slots=True)
class InspectorFinding:
    """One of the findings inspectors raise most often, as a patient-level criterion."""

    id: str
    title: str
    kind: str
    """``overdue`` (monitoring overdue at month end) or ``unescalated-result``."""
    groups: tuple[str, ...]
    tests: tuple[str, ...]
    """Any of these tests overdue; empty means any test."""
    established_only: bool
    min_age: int | None
    without_contact: bool
    severities: tuple[Severity, ...]
    citation: Citation
    verified: bool
    note: str


@dataclass(frozen=True, slots=True)
class Indicator:
    """A PINCER-compatible monitoring indicator: issued in two windows, a test missing."""

    id: str
    pincer: str
    title: str
    drug_group: str
    issued_recent: Duration
    """Issued within this long before month end ..."""
    issued_earlier: Duration
    """... and also between ``issued_recent`` and this long before month end."""
    tests: tuple[str, ...]
    """Numerator: any of these tests has no result within ``lookback``."""
    lookback: Duration
    citation: Citation
    verified: bool
    note: str


@dataclass(frozen=True, slots=True)
class AuditDefinitions:
    id: str
    version: int
    title: str
    families: dict[str, tuple[str, ...]]
    inspector_findings: tuple[InspectorFinding, ...]
    indicators: tuple[Indicator, ...]

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.version}"


class _FindingSchema(Schema):
    id = fields.String(required=True, validate=validate.Length(min=1))
    title = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf([OVERDUE, UNESCALATED]))
    family = fields.String(load_default=None)
    groups = fields.List(fields.String(), load_default=list)
    tests = fields.List(fields.String(), load_default=list)
    established_only = fields.Boolean(load_default=False)
    min_age = fields.Integer(load_default=None, validate=validate.Range(min=0))
    without_contact = fields.Boolean(load_default=False)
    severities = fields.List(fields.Enum(Severity, by_value=True), load_default=list)
    citation = fields.String(required=True)
    verified = fields.Boolean(required=True)
    note = fields.String(load_default="")

    @validates_schema
    def _scope(self, data: dict[str, Any], **_: Any) -> None:
        if data["kind"] == OVERDUE and not (data["family"] or data["groups"]):
            raise ValidationError("an overdue finding names a family or groups")
        if data["kind"] == UNESCALATED and not data["severities"]:
            raise ValidationError("an unescalated-result finding names its severities")


class _IndicatorSchema(Schema):
    id = fields.String(required=True, validate=validate.Length(min=1))
    pincer = fields.String(required=True)
    title = fields.String(required=True)
    drug_group = fields.String(required=True)
    issued_recent = DurationField(required=True)
    issued_earlier = DurationField(required=True)
    tests = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    lookback = DurationField(required=True)
    citation = fields.String(required=True)
    verified = fields.Boolean(required=True)
    note = fields.String(load_default="")


class _DefinitionsSchema(Schema):
    id = fields.String(required=True)
    version = fields.Integer(required=True, validate=validate.Range(min=1))
    title = fields.String(required=True)
    citations = fields.Dict(keys=fields.String(), values=fields.Nested(CitationSchema))
    families = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
    inspector_findings = fields.List(fields.Nested(_FindingSchema), required=True)
    indicators = fields.List(fields.Nested(_IndicatorSchema), required=True)


def parse_definitions(text: str, rules: RuleSet) -> AuditDefinitions:
    """Validate the TOML text and every name in it against the rule set (RuleDefinitionError)."""
    try:
        data = _DefinitionsSchema().load(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise RuleDefinitionError(f"audit definitions: {exc}") from exc
    families = {name: tuple(groups) for name, groups in data["families"].items()}
    check = _NameCheck(rules, families, data["citations"])
    for name, groups in families.items():
        check.names(f"family {name}", groups, ())
    findings = [check.inspector_finding(raw) for raw in data["inspector_findings"]]
    indicators = [check.indicator(raw) for raw in data["indicators"]]
    ids = [f.id for f in findings] + [i.id for i in indicators]
    check.problems.extend(
        f"duplicate id {i!r}" for i in sorted({i for i in ids if ids.count(i) > 1})
    )
    if check.problems:
        raise RuleDefinitionError("audit definitions: " + "; ".join(check.problems))
    return AuditDefinitions(
        id=data["id"],
        version=data["version"],
        title=data["title"],
        families=families,
        inspector_findings=tuple(findings),
        indicators=tuple(indicators),
    )


class _NameCheck:
    """Builds the definitions' entries, collecting every name the rule set or the file does not
    know (drug groups, tests, families, citations) as a problem."""

    def __init__(
        self, rules: RuleSet, families: dict[str, tuple[str, ...]], citations: dict[str, Any]
    ) -> None:
        self._families = families
        self._citations = {key: Citation(key=key, **value) for key, value in citations.items()}
        self._groups = {pack.drug_group for pack in rules.packs}
        self._tests = set(rules.catalogue.tests)
        self.problems: list[str] = []

    def names(self, where: str, groups: tuple[str, ...], tests: tuple[str, ...]) -> None:
        self.problems.extend(
            f"{where}: unknown drug group {g!r}" for g in groups if g not in self._groups
        )
        self.problems.extend(f"{where}: unknown test {t!r}" for t in tests if t not in self._tests)

    def citation(self, where: str, key: str) -> Citation:
        if key not in self._citations:
            self.problems.append(f"{where}: unknown citation {key!r}")
        return self._citations.get(key) or Citation(key, "", "", "", "")

    def inspector_finding(self, raw: dict[str, Any]) -> InspectorFinding:
        family = raw["family"]
        if family is not None and family not in self._families:
            self.problems.append(f"{raw['id']}: unknown family {family!r}")
        groups = (*self._families.get(family or "", ()), *raw["groups"])
        tests = tuple(raw["tests"])
        self.names(raw["id"], groups, tests)
        return InspectorFinding(
            id=raw["id"],
            title=raw["title"],
            kind=raw["kind"],
            groups=groups,
            tests=tests,
            established_only=raw["established_only"],
            min_age=raw["min_age"],
            without_contact=raw["without_contact"],
            severities=tuple(raw["severities"]),
            citation=self.citation(raw["id"], raw["citation"]),
            verified=raw["verified"],
            note=raw["note"],
        )

    def indicator(self, raw: dict[str, Any]) -> Indicator:
        tests = tuple(raw["tests"])
        self.names(raw["id"], (raw["drug_group"],), tests)
        citation = self.citation(raw["id"], raw["citation"])
        return Indicator(**{**raw, "tests": tests, "citation": citation})


def load_definitions(rules: RuleSet) -> AuditDefinitions:
    """The definitions shipped in the package."""
    text = resources.files("hrm_fhir.audit").joinpath("definitions.toml").read_text("utf-8")
    return parse_definitions(text, rules)
