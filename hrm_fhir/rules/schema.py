"""marshmallow schemas that turn rule-pack and catalogue TOML into frozen definitions.

Unknown keys raise (marshmallow's default ``RAISE``); every schedule, modifier, threshold and
check must name a citation the file defines; references to tests, analytes and groups are
checked against the catalogue by the registry.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from hrm_fhir.domain import Severity
from hrm_fhir.rules import model
from hrm_fhir.rules.durations import Duration
from hrm_fhir.rules.model import RISE_OPERATORS

OPERATORS = ("lt", "le", "gt", "ge")
BASELINE_OPERATORS = (*RISE_OPERATORS, "fall_from_baseline")
TARGET_OPERATORS = ("above_target", "below_target")
THRESHOLD_OPERATORS = (
    *OPERATORS,
    "below_ref_low",
    "above_ref_high",
    "above_ref_high_times",
    *BASELINE_OPERATORS,
    "falling",
    "recorded",
    *TARGET_OPERATORS,
)
CHECKS = ("max_frequency", "ome_at_least", "criteria")
SNOMED = "http://snomed.info/sct"


class DurationField(fields.Field[Duration]):
    """An ISO 8601 duration string such as ``P12W``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Duration:
        if not isinstance(value, str):
            raise ValidationError("expected a duration string such as P12W")
        try:
            return Duration.parse(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc

    def _serialize(self, value: Duration | None, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else str(value)


class CitationSchema(Schema):
    publisher = fields.String(required=True, validate=validate.Length(min=1))
    title = fields.String(required=True, validate=validate.Length(min=1))
    url = fields.Url(required=True, schemes={"http", "https"})
    accessed = fields.String(required=True)
    section = fields.String(load_default="")


class CodeSchema(Schema):
    system = fields.String(required=True)
    code = fields.String(required=True)
    display = fields.String(load_default="")
    verified = fields.Boolean(required=True)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> model.Code:
        return model.Code(**data)


class OMESchema(Schema):
    factor = fields.Float(required=True, validate=validate.Range(min=0, min_inclusive=False))
    per = fields.String(required=True, validate=validate.OneOf(["mg", "ug/h"]))
    citation = fields.String(required=True)
    verified = fields.Boolean(required=True)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> model.OMEFactor:
        return model.OMEFactor(**data)


class IngredientSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=3))
    synonyms = fields.List(fields.String(), load_default=list)
    codes = fields.List(fields.Nested(CodeSchema), load_default=list)
    ome = fields.Nested(OMESchema, load_default=None)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> model.Ingredient:
        return model.Ingredient(
            name=data["name"].lower(),
            synonyms=tuple(s.lower() for s in data["synonyms"]),
            codes=tuple(data["codes"]),
            ome=data["ome"],
        )


_CONDITION_KINDS = (
    "measure",
    "co_prescribed",
    "on_therapy_less_than",
    "falling",
    "fires",
    "ingredients_at_least",
    "no_other_ingredient_before",
)


class ConditionSchema(Schema):
    measure = fields.String()
    op = fields.String(validate=validate.OneOf([*OPERATORS, *sorted(model.RANGE_OPS)]))
    value = fields.Float()
    co_prescribed = fields.String()
    on_therapy_less_than = DurationField()
    falling = fields.String()
    count = fields.Integer(validate=validate.Range(min=2))
    together_less_than = DurationField()
    fires = fields.String(validate=validate.Regexp(r"^[a-z0-9-]+$"))
    ingredients_at_least = fields.Integer(validate=validate.Range(min=2))
    issued_together = fields.Boolean()
    no_other_ingredient_before = DurationField()

    @validates_schema
    def one_kind(self, data: dict[str, Any], **_: Any) -> None:
        kinds = [k for k in _CONDITION_KINDS if k in data]
        if len(kinds) != 1:
            raise ValidationError(
                f"a condition needs exactly one of {', '.join(_CONDITION_KINDS)} "
                f"(got {kinds or 'none'})"
            )
        if "measure" in data:
            ranged = data.get("op") in model.RANGE_OPS
            if "op" not in data or ("value" in data) == ranged:
                raise ValidationError(
                    "a measure condition needs op and value (a range op takes no value)"
                )
        if "together_less_than" in data and "co_prescribed" not in data:
            raise ValidationError("together_less_than goes with co_prescribed only")
        if "issued_together" in data and kinds[0] not in (
            "co_prescribed",
            "ingredients_at_least",
        ):
            raise ValidationError("issued_together goes with co_prescribed or ingredients_at_least")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> model.Condition:
        return model.Condition(**data)


class PhaseSchema(Schema):
    until = DurationField(load_default=None)
    interval = DurationField(load_default=None)

    @validates_schema
    def bounded(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("until") is None and data.get("interval") is None:
            raise ValidationError("an open-ended phase needs an interval")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> model.Phase:
        return model.Phase(**data)


class IntervalFromMeasureSchema(Schema):
    measure = fields.String(required=True)
    divisor = fields.Float(required=True, validate=validate.Range(min=0, min_inclusive=False))

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> model.IntervalFromMeasure:
        return model.IntervalFromMeasure(**data)


class ModifierSchema(Schema):
    when = fields.List(
        fields.Nested(ConditionSchema), required=True, validate=validate.Length(min=1)
    )
    interval = DurationField(load_default=None)
    interval_months_from = fields.Nested(IntervalFromMeasureSchema, load_default=None)
    citation = fields.String(required=True)
    verified = fields.Boolean(required=True)
    note = fields.String(load_default="")

    @validates_schema
    def one_interval(self, data: dict[str, Any], **_: Any) -> None:
        if (data.get("interval") is None) == (data.get("interval_months_from") is None):
            raise ValidationError("a modifier needs exactly one of interval, interval_months_from")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> model.Modifier:
        return model.Modifier(**{**data, "when": tuple(data["when"])})


class ToleranceSchema(Schema):
    after = DurationField(required=True)
    citation = fields.String(required=True)
    verified = fields.Boolean(required=True)
    note = fields.String(load_default="")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> model.Tolerance:
        return model.Tolerance(**data)


class ScheduleSchema(Schema):
    id = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9-]+$"))
    title = fields.String(required=True)
    tests = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    phases = fields.List(fields.Nested(PhaseSchema), required=True, validate=validate.Length(min=1))
    modifiers = fields.List(fields.Nested(ModifierSchema), load_default=list)
    ends_after = DurationField(load_default=None)
    continues_after_stop = DurationField(load_default=None)
    citation = fields.String(required=True)
    verified = fields.Boolean(required=True)
    note = fields.String(load_default="")
    severely_overdue = fields.Nested(ToleranceSchema, load_default=None)

    @validates_schema
    def last_phase_open(self, data: dict[str, Any], **_: Any) -> None:
        phases = data.get("phases") or []
        if phases and (phases[-1].until is not None or phases[-1].interval is None):
            raise ValidationError("the last phase must be open-ended with an interval")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> model.Schedule:
        return model.Schedule(
            **{
                **data,
                "tests": tuple(data["tests"]),
                "phases": tuple(data["phases"]),
                "modifiers": tuple(data["modifiers"]),
            }
        )


class BaselineSchema(Schema):
    id = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9-]+$"))
    title = fields.String(required=True)
    tests = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    once = fields.Boolean(load_default=False)
    citation = fields.String(required=True)
    verified = fields.Boolean(required=True)
    note = fields.String(load_default="")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> model.Baseline:
        return model.Baseline(**{**data, "tests": tuple(data["tests"])})


class ThresholdSchema(Schema):
    id = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9-]+$"))
    analyte = fields.String(required=True)
    op = fields.String(required=True, validate=validate.OneOf(THRESHOLD_OPERATORS))
    value = fields.Float(required=True)
    unit = fields.String(required=True)
    severity = fields.Enum(Severity, by_value=True, required=True)
    advice = fields.String(required=True, validate=validate.Length(min=5))
    citation = fields.String(required=True)
    verified = fields.Boolean(required=True)
    also = fields.List(fields.Nested(ConditionSchema), load_default=list)
    baseline_window = DurationField(load_default=None)
    count = fields.Integer(load_default=None, validate=validate.Range(min=1))

    @validates_schema
    def baseline(self, data: dict[str, Any], **_: Any) -> None:
        op = data.get("op")
        if (op in BASELINE_OPERATORS) != (data.get("baseline_window") is not None):
            raise ValidationError(
                f"baseline_window goes with op {', '.join(BASELINE_OPERATORS)}, and only them"
            )
        if (op == "falling") != (data.get("count") is not None):
            raise ValidationError("count goes with op falling, and only it")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> model.Threshold:
        count = data.pop("count")
        return model.Threshold(
            **{
                **data,
                "also": tuple(data["also"]),
                **({"count": count} if count is not None else {}),
            }
        )


class TargetDefaultSchema(Schema):
    low = fields.Float(required=True)
    high = fields.Float(required=True)
    half_width = fields.Float(required=True, validate=validate.Range(min=0, min_inclusive=False))
    names = fields.List(
        fields.String(validate=validate.Length(min=2)),
        required=True,
        validate=validate.Length(min=1),
    )
    citation = fields.String(required=True)
    verified = fields.Boolean(required=True)
    note = fields.String(load_default="")

    @validates_schema
    def ordered(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("low", 0) >= data.get("high", 0):
            raise ValidationError("a target range needs low below high")


class PrescribingSchema(Schema):
    id = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9-]+$"))
    code = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9-]+$"))
    check = fields.String(required=True, validate=validate.OneOf(CHECKS))
    severity = fields.Enum(Severity, by_value=True, required=True)
    advice = fields.String(required=True, validate=validate.Length(min=5))
    citation = fields.String(required=True)
    verified = fields.Boolean(required=True)
    value = fields.Float(load_default=None)
    ingredient = fields.String(load_default=None)
    requires = fields.List(fields.Nested(ConditionSchema), load_default=list)
    criteria = fields.List(fields.Nested(ConditionSchema), load_default=list)
    min_match = fields.Integer(load_default=None, validate=validate.Range(min=1))

    @validates_schema
    def shape(self, data: dict[str, Any], **_: Any) -> None:
        check = data.get("check")
        if check in ("max_frequency", "ome_at_least") and data.get("value") is None:
            raise ValidationError(f"check {check} needs a value")
        if check == "criteria" and not data.get("criteria"):
            raise ValidationError("check criteria needs at least one criterion")
        if (data.get("min_match") or 0) > len(data.get("criteria") or []):
            raise ValidationError("min_match is larger than the number of criteria")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> model.PrescribingCheck:
        return model.PrescribingCheck(
            **{**data, "requires": tuple(data["requires"]), "criteria": tuple(data["criteria"])}
        )


class RulePackSchema(Schema):
    id = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9-]+$"))
    version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    status = fields.String(required=True, validate=validate.OneOf(["draft", "active", "retired"]))
    drug_group = fields.String(required=True)
    title = fields.String(required=True)
    summary = fields.String(required=True)
    effective_from = fields.Date(required=True)
    effective_until = fields.Date(load_default=None)
    authored_by = fields.String(required=True)
    reviewed_by = fields.String(load_default="")
    approved_on = fields.String(load_default="")
    escalation = fields.String(load_default="")
    restart_on_dose_change = fields.Boolean(load_default=True)
    citations = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(CitationSchema),
        required=True,
        validate=validate.Length(min=1),
    )
    ingredients = fields.List(
        fields.Nested(IngredientSchema), required=True, validate=validate.Length(min=1)
    )
    schedules = fields.List(fields.Nested(ScheduleSchema), load_default=list)
    thresholds = fields.List(fields.Nested(ThresholdSchema), load_default=list)
    prescribing = fields.List(fields.Nested(PrescribingSchema), load_default=list)
    baselines = fields.List(fields.Nested(BaselineSchema), load_default=list)
    targets = fields.Dict(
        keys=fields.String(), values=fields.Nested(TargetDefaultSchema), load_default=dict
    )

    @validates_schema
    def targeted(self, data: dict[str, Any], **_: Any) -> None:
        targets = data.get("targets") or {}
        missing = [
            f"threshold {t.id} needs [targets.{t.analyte}]"
            for t in data.get("thresholds") or []
            if t.op in TARGET_OPERATORS and t.analyte not in targets
        ]
        if missing:
            raise ValidationError(missing, "targets")

    @validates_schema
    def cited(self, data: dict[str, Any], **_: Any) -> None:
        keys = set((data.get("citations") or {}).keys())
        cited: list[tuple[str, str]] = []
        cited.extend(
            (f"target for {analyte}", t["citation"])
            for analyte, t in (data.get("targets") or {}).items()
        )
        for s in data.get("schedules") or []:
            cited.append((f"schedule {s.id}", s.citation))
            cited.extend((f"schedule {s.id} modifier", m.citation) for m in s.modifiers)
            if s.severely_overdue is not None:
                cited.append((f"schedule {s.id} tolerance", s.severely_overdue.citation))
        cited.extend((f"threshold {t.id}", t.citation) for t in data.get("thresholds") or [])
        cited.extend((f"check {c.id}", c.citation) for c in data.get("prescribing") or [])
        cited.extend((f"baseline {b.id}", b.citation) for b in data.get("baselines") or [])
        for ing in data.get("ingredients") or []:
            if ing.ome is not None:
                cited.append((f"OME factor for {ing.name}", ing.ome.citation))
        missing = [f"{where} cites unknown {key!r}" for where, key in cited if key not in keys]
        if missing:
            raise ValidationError(missing, "citations")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> model.RulePack:
        citations = {
            key: model.Citation(key=key, **value) for key, value in data.pop("citations").items()
        }
        return model.RulePack(
            **{
                **data,
                "citations": citations,
                "ingredients": tuple(data["ingredients"]),
                "schedules": tuple(data["schedules"]),
                "thresholds": tuple(data["thresholds"]),
                "prescribing": tuple(data["prescribing"]),
                "baselines": tuple(data["baselines"]),
                "targets": {
                    analyte: model.TargetDefault(
                        analyte=analyte,
                        **{**t, "names": tuple(n.lower() for n in t["names"])},
                    )
                    for analyte, t in data["targets"].items()
                },
            }
        )


class UnitConversionSchema(Schema):
    unit = fields.String(required=True)
    factor = fields.Float(required=True)
    offset = fields.Float(load_default=0.0)
    citation = fields.String(load_default="")
    verified = fields.Boolean(load_default=True)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> model.UnitConversion:
        return model.UnitConversion(**data)


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
    def make(self, data: dict[str, Any], **_: Any) -> model.ReferenceRange:
        return model.ReferenceRange(**data)


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
    def make(self, data: dict[str, Any], **_: Any) -> model.Freshness:
        return model.Freshness(**data)


class CockcroftGaultSchema(Schema):
    age_offset = fields.Float(required=True)
    factor_male = fields.Float(required=True)
    factor_female = fields.Float(required=True)
    citation = fields.String(required=True)
    verified = fields.Boolean(required=True)
    weight_within = fields.Nested(FreshnessSchema, load_default=None)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> model.CockcroftGault:
        return model.CockcroftGault(**data)


class UnissuedActiveSchema(Schema):
    after = DurationField(required=True)
    severity = fields.Enum(Severity, by_value=True, required=True)
    citation = fields.String(required=True)
    verified = fields.Boolean(required=True)
    note = fields.String(load_default="")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> model.UnissuedActive:
        return model.UnissuedActive(**data)


class BaselineRulesSchema(Schema):
    before_start = DurationField(required=True)
    new_start_for = DurationField(required=True)
    citation = fields.String(required=True)
    verified = fields.Boolean(required=True)
    note = fields.String(load_default="")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> model.BaselineRules:
        return model.BaselineRules(**data)


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
    def make(self, data: dict[str, Any], **_: Any) -> model.ArrangementCode:
        return model.ArrangementCode(**{**data, "groups": tuple(data["groups"])})


class ResultsNotSeenSchema(Schema):
    severity = fields.Enum(Severity, by_value=True, required=True)
    advice = fields.String(required=True, validate=validate.Length(min=5))
    citation = fields.String(required=True)
    verified = fields.Boolean(required=True)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> model.ResultsNotSeen:
        return model.ResultsNotSeen(**data)


class SharedCareSchema(Schema):
    citation = fields.String(required=True)
    generic_groups = fields.List(fields.String(), required=True)
    extensions = fields.List(fields.Url(schemes={"http", "https"}), required=True)
    prescribed = fields.List(fields.Nested(ArrangementCodeSchema), required=True)
    entries = fields.List(fields.Nested(ArrangementCodeSchema), required=True)
    results_not_seen = fields.Nested(ResultsNotSeenSchema, required=True)
    note = fields.String(load_default="")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> model.SharedCare:
        return model.SharedCare(
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
    def make(self, data: dict[str, Any], **_: Any) -> model.Catalogue:
        analytes = {
            aid: model.Analyte(
                id=aid,
                title=a["title"],
                unit=a["unit"],
                codes=tuple(a["codes"]),
                conversions=tuple(a["conversions"]),
                reference_ranges=tuple(a["reference_ranges"]),
                monitored_with=a["monitored_with"],
            )
            for aid, a in data["analytes"].items()
        }
        index: dict[tuple[str, str], str] = {}
        for analyte in analytes.values():
            for code in analyte.codes:
                key = (code.system, code.code)
                if key in index and index[key] != analyte.id:
                    raise ValidationError(f"code {key} belongs to {index[key]} and {analyte.id}")
                index[key] = analyte.id
        programme = data["programme"]
        citations = {k: model.Citation(key=k, **v) for k, v in data["citations"].items()}
        return model.Catalogue(
            version=data["version"],
            citations=citations,
            tests={
                tid: model.Test(id=tid, title=t["title"], analytes=tuple(t["analytes"]))
                for tid, t in data["tests"].items()
            },
            analytes=analytes,
            classes={
                cid: model.MedicationClass(
                    id=cid, title=c["title"], ingredients=tuple(c["ingredients"])
                )
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
                name.lower(): model.Combination(
                    name=name.lower(),
                    ingredients=tuple(i.lower() for i in c["ingredients"]),
                    citation=c["citation"],
                )
                for name, c in data["combinations"].items()
            },
            code_lists={
                lid: model.CodeList(
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


def load_pack(raw: dict[str, Any]) -> model.RulePack:
    """Validate one parsed rule-pack file; raises marshmallow ValidationError."""
    pack = RulePackSchema().load(_dates_as_text(raw))
    assert isinstance(pack, model.RulePack)  # noqa: S101 - post_load guarantees it
    return pack


def load_catalogue(raw: dict[str, Any]) -> model.Catalogue:
    """Validate the parsed catalogue file; raises marshmallow ValidationError."""
    catalogue = CatalogueSchema().load(raw)
    assert isinstance(catalogue, model.Catalogue)  # noqa: S101 - post_load guarantees it
    return catalogue


def _dates_as_text(raw: dict[str, Any]) -> dict[str, Any]:
    """TOML gives native dates; marshmallow's Date field reads ISO text."""
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in raw.items()}
