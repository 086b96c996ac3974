"""marshmallow schemas that turn the catalogue TOML into its frozen definitions (``catalogue``).

Unknown keys raise; every citation the catalogue names must be one it defines; a code belongs to
one analyte only.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from hrm_fhir.domain import Severity
from hrm_fhir.rules.catalogue import (
    Analyte,
    ArrangementCode,
    BaselineRules,
    Catalogue,
    CockcroftGault,
    CodeList,
    Combination,
    Freshness,
    MedicationClass,
    ReferenceRange,
    ResultsNotSeen,
    SharedCare,
    Test,
    UnissuedActive,
    UnitConversion,
)
from hrm_fhir.rules.model import Citation
from hrm_fhir.rules.schema import (
    CitationSchema,
    CodeSchema,
    DurationField,
    IngredientSchema,
)

SNOMED = "http://snomed.info/sct"


class UnitConversionSchema(Schema):
    unit = fields.String(required=True)
    factor = fields.Float(required=True)
    offset = fields.Float(load_default=0.0)
    citation = fields.String(load_default="")
    verified = fields.Boolean(load_default=True)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> UnitConversion:
        return UnitConversion(**data)


class ReferenceRangeSchema(Schema):
    low = fields.Float(load_default=None)
    high = fields.Float(load_default=None)
    sex = fields.String(load_default=None, validate=validate.OneOf(["male", "female"]))
    citation = fields.String(required=True)
    verified = fields.Boolean(required=True)

    @validates_schema
    def bounded(self, data: dict[str, Any], **_: Any) -> None:
        low, high = data.get("low"), data.get("high")
        if low is None and high is None:
            raise ValidationError("a reference range needs low, high or both")
        if low is not None and high is not None and low >= high:
            raise ValidationError("a reference range needs low below high")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> ReferenceRange:
        return ReferenceRange(**data)


class AnalyteSchema(Schema):
    title = fields.String(required=True)
    unit = fields.String(required=True)
    codes = fields.List(fields.Nested(CodeSchema), required=True, validate=validate.Length(min=1))
    conversions = fields.List(fields.Nested(UnitConversionSchema), load_default=list)
    reference_ranges = fields.List(fields.Nested(ReferenceRangeSchema), load_default=list)
    monitored_with = fields.String(load_default=None)


class TestSchema(Schema):
    title = fields.String(required=True)
    analytes = fields.List(fields.String(), required=True, validate=validate.Length(min=1))


class MedicationClassSchema(Schema):
    title = fields.String(required=True)
    ingredients = fields.List(fields.Nested(IngredientSchema), required=True)


class CombinationSchema(Schema):
    ingredients = fields.List(
        fields.String(validate=validate.Length(min=3)),
        required=True,
        validate=validate.Length(min=2),
    )
    citation = fields.String(required=True)


class CodeListSchema(Schema):
    file = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9-]+\.csv$"))
    system = fields.String(required=True, validate=validate.OneOf([SNOMED]))
    citation = fields.String(required=True)
    source = fields.String(load_default="")


class FreshnessSchema(Schema):
    within = DurationField(required=True)
    citation = fields.String(required=True)
    verified = fields.Boolean(required=True)
    note = fields.String(load_default="")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> Freshness:
        return Freshness(**data)


class CockcroftGaultSchema(Schema):
    age_offset = fields.Float(required=True)
    factor_male = fields.Float(required=True)
    factor_female = fields.Float(required=True)
    citation = fields.String(required=True)
    verified = fields.Boolean(required=True)
    weight_within = fields.Nested(FreshnessSchema, load_default=None)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> CockcroftGault:
        return CockcroftGault(**data)


class UnissuedActiveSchema(Schema):
    after = DurationField(required=True)
    severity = fields.Enum(Severity, by_value=True, required=True)
    citation = fields.String(required=True)
    verified = fields.Boolean(required=True)
    note = fields.String(load_default="")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> UnissuedActive:
        return UnissuedActive(**data)


class BaselineRulesSchema(Schema):
    before_start = DurationField(required=True)
    new_start_for = DurationField(required=True)
    citation = fields.String(required=True)
    verified = fields.Boolean(required=True)
    note = fields.String(load_default="")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> BaselineRules:
        return BaselineRules(**data)


class ProgrammeSchema(Schema):
    due_window_days = fields.Integer(required=True, validate=validate.Range(min=0))
    current_issue_lookback = DurationField(required=True)
    course_gap = DurationField(required=True)
    long_dosing_interval = DurationField(required=True)
    result_lookback = DurationField(required=True)
    note = fields.String(load_default="")


class ArrangementCodeSchema(Schema):
    system = fields.String(required=True, validate=validate.Length(min=1))
    code = fields.String(required=True, validate=validate.Length(min=1))
    elsewhere = fields.Boolean(required=True)
    display = fields.String(load_default="")
    verified = fields.Boolean(required=True)
    groups = fields.List(fields.String(), load_default=list)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> ArrangementCode:
        return ArrangementCode(**{**data, "groups": tuple(data["groups"])})


class ResultsNotSeenSchema(Schema):
    severity = fields.Enum(Severity, by_value=True, required=True)
    advice = fields.String(required=True, validate=validate.Length(min=5))
    citation = fields.String(required=True)
    verified = fields.Boolean(required=True)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> ResultsNotSeen:
        return ResultsNotSeen(**data)


class SharedCareSchema(Schema):
    citation = fields.String(required=True)
    generic_groups = fields.List(fields.String(), required=True)
    extensions = fields.List(fields.Url(schemes={"http", "https"}), required=True)
    prescribed = fields.List(fields.Nested(ArrangementCodeSchema), required=True)
    entries = fields.List(fields.Nested(ArrangementCodeSchema), required=True)
    results_not_seen = fields.Nested(ResultsNotSeenSchema, required=True)
    note = fields.String(load_default="")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> SharedCare:
        return SharedCare(
            **{
                **data,
                "generic_groups": tuple(data["generic_groups"]),
                "extensions": tuple(data["extensions"]),
                "prescribed": tuple(data["prescribed"]),
                "entries": tuple(data["entries"]),
            }
        )


class CatalogueSchema(Schema):
    version = fields.Integer(required=True, strict=True)
    citations = fields.Dict(
        keys=fields.String(), values=fields.Nested(CitationSchema), required=True
    )
    programme = fields.Nested(ProgrammeSchema, required=True)
    tests = fields.Dict(keys=fields.String(), values=fields.Nested(TestSchema), required=True)
    analytes = fields.Dict(keys=fields.String(), values=fields.Nested(AnalyteSchema), required=True)
    classes = fields.Dict(
        keys=fields.String(), values=fields.Nested(MedicationClassSchema), load_default=dict
    )
    cockcroft_gault = fields.Nested(CockcroftGaultSchema, required=True)
    combinations = fields.Dict(
        keys=fields.String(), values=fields.Nested(CombinationSchema), load_default=dict
    )
    code_lists = fields.Dict(
        keys=fields.String(), values=fields.Nested(CodeListSchema), load_default=dict
    )
    unissued_active = fields.Nested(UnissuedActiveSchema, required=True)
    baseline = fields.Nested(BaselineRulesSchema, required=True)
    shared_care = fields.Nested(SharedCareSchema, load_default=None)

    @validates_schema
    def consistent(self, data: dict[str, Any], **_: Any) -> None:
        analytes = data.get("analytes") or {}
        problems = [
            f"test {tid} names unknown analyte {a!r}"
            for tid, t in (data.get("tests") or {}).items()
            for a in t["analytes"]
            if a not in analytes
        ]
        keys = set((data.get("citations") or {}).keys())
        cg = data.get("cockcroft_gault")
        if cg is not None and cg.citation not in keys:
            problems.append(f"cockcroft_gault cites unknown {cg.citation!r}")
        if cg is not None and cg.weight_within and cg.weight_within.citation not in keys:
            problems.append(
                f"cockcroft_gault.weight_within cites unknown {cg.weight_within.citation!r}"
            )
        baseline = data.get("baseline")
        if baseline is not None and baseline.citation not in keys:
            problems.append(f"baseline cites unknown {baseline.citation!r}")
        tests = data.get("tests") or {}
        unissued = data.get("unissued_active")
        if unissued is not None and unissued.citation not in keys:
            problems.append(f"unissued_active cites unknown {unissued.citation!r}")
        shared = data.get("shared_care")
        if shared is not None:
            problems.extend(
                f"shared_care{where} cites unknown {key!r}"
                for where, key in (
                    ("", shared.citation),
                    (".results_not_seen", shared.results_not_seen.citation),
                )
                if key not in keys
            )
        for aid, a in analytes.items():
            problems.extend(
                f"analyte {aid} conversion from {c.unit} cites unknown {c.citation!r}"
                for c in a["conversions"]
                if c.citation and c.citation not in keys
            )
            problems.extend(
                f"analyte {aid} reference range cites unknown {r.citation!r}"
                for r in a["reference_ranges"]
                if r.citation not in keys
            )
            sexes = [r.sex for r in a["reference_ranges"]]
            if len(sexes) != len(set(sexes)) or (None in sexes and len(sexes) > 1):
                problems.append(f"analyte {aid} has overlapping reference ranges")
            if a["monitored_with"] is not None and a["monitored_with"] not in tests:
                problems.append(
                    f"analyte {aid} is monitored with unknown test {a['monitored_with']!r}"
                )
        for kind in ("combinations", "code_lists"):
            problems.extend(
                f"{kind} {name} cites unknown {entry['citation']!r}"
                for name, entry in (data.get(kind) or {}).items()
                if entry["citation"] not in keys
            )
        if problems:
            raise ValidationError(problems)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> Catalogue:
        analytes, index = _analytes(data["analytes"])
        programme = data["programme"]
        citations = {k: Citation(key=k, **v) for k, v in data["citations"].items()}
        return Catalogue(
            version=data["version"],
            citations=citations,
            tests={
                tid: Test(id=tid, title=t["title"], analytes=tuple(t["analytes"]))
                for tid, t in data["tests"].items()
            },
            analytes=analytes,
            classes={
                cid: MedicationClass(id=cid, title=c["title"], ingredients=tuple(c["ingredients"]))
                for cid, c in data["classes"].items()
            },
            cockcroft_gault=data["cockcroft_gault"],
            due_window_days=programme["due_window_days"],
            current_issue_lookback=programme["current_issue_lookback"],
            course_gap=programme["course_gap"],
            long_dosing_interval=programme["long_dosing_interval"],
            result_lookback=programme["result_lookback"],
            unissued_active=data["unissued_active"],
            baseline=data["baseline"],
            code_index=index,
            combinations={
                name.lower(): Combination(
                    name=name.lower(),
                    ingredients=tuple(i.lower() for i in c["ingredients"]),
                    citation=c["citation"],
                )
                for name, c in data["combinations"].items()
            },
            code_lists={
                lid: CodeList(
                    id=lid,
                    file=c["file"],
                    system=c["system"],
                    citation=citations[c["citation"]],
                    source=c["source"],
                )
                for lid, c in data["code_lists"].items()
            },
            shared_care=data["shared_care"],
        )


def _analytes(raw: dict[str, Any]) -> tuple[dict[str, Analyte], dict[tuple[str, str], str]]:
    """The analytes, and the index of their codes: (system, code) -> analyte id; a code that
    belongs to two analytes raises."""
    analytes = {
        aid: Analyte(
            id=aid,
            title=a["title"],
            unit=a["unit"],
            codes=tuple(a["codes"]),
            conversions=tuple(a["conversions"]),
            reference_ranges=tuple(a["reference_ranges"]),
            monitored_with=a["monitored_with"],
        )
        for aid, a in raw.items()
    }
    index: dict[tuple[str, str], str] = {}
    for analyte in analytes.values():
        for code in analyte.codes:
            key = (code.system, code.code)
            if key in index and index[key] != analyte.id:
                raise ValidationError(f"code {key} belongs to {index[key]} and {analyte.id}")
            index[key] = analyte.id
    return analytes, index


def load_catalogue(raw: dict[str, Any]) -> Catalogue:
    """Validate the parsed catalogue file; raises marshmallow ValidationError."""
    catalogue = CatalogueSchema().load(raw)
    assert isinstance(catalogue, Catalogue)  # noqa: S101 - post_load guarantees it
    return catalogue
