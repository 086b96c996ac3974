"""marshmallow schemas that turn rule-pack TOML into frozen definitions (``model``); the fields
and schemas the catalogue's (``catalogue_schema``) share with them.

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


def load_pack(raw: dict[str, Any]) -> model.RulePack:
    """Validate one parsed rule-pack file; raises marshmallow ValidationError."""
    pack = RulePackSchema().load(_dates_as_text(raw))
    assert isinstance(pack, model.RulePack)  # noqa: S101 - post_load guarantees it
    return pack


def _dates_as_text(raw: dict[str, Any]) -> dict[str, Any]:
    """TOML gives native dates; marshmallow's Date field reads ISO text."""
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in raw.items()}
