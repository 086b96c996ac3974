"""Load and validate every rule pack and the catalogue shipped in the package.

A validated rule set is cached (pickled) in the user's cache directory under a hash of every
TOML text and of the code that validates and defines rules, so a run with unchanged packs skips
parsing, validation and the import of marshmallow; an unusable cache is ignored.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from hrm_fhir.config import cache_dir
from hrm_fhir.errors import RuleDefinitionError
from hrm_fhir.rules.catalogue import Analyte, Catalogue
from hrm_fhir.rules.model import RANGE_OPS, Condition, RulePack
from hrm_fhir.rules.therapy import MedicationIndex

_MEDICINES: dict[int, tuple[RuleSet, MedicationIndex]] = {}
"""``RuleSet.medicines()`` by rule set (a frozen, slotted dataclass cannot cache on itself)."""
DERIVED_MEASURES = frozenset({"age", "crcl", "daily_dose_mg", "strength_mg", "ome"})


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Every pack version and the catalogue, validated together."""

    catalogue: Catalogue
    packs: tuple[RulePack, ...]

    def in_force(self, day: date) -> tuple[RulePack, ...]:
        """The highest in-force version of each rule id on ``day``."""
        best: dict[str, RulePack] = {}
        for pack in self.packs:
            if pack.is_in_force(day) and (
                pack.id not in best or pack.version > best[pack.id].version
            ):
                best[pack.id] = pack
        return tuple(sorted(best.values(), key=lambda p: p.id))

    def medicines(self) -> MedicationIndex:
        """What recognises products and reads their strength, over every pack version: built
        once per rule set (it indexes every code list, thousands of products)."""
        held = _MEDICINES.get(id(self))
        if held is None or held[0] is not self:
            held = _MEDICINES[id(self)] = (self, MedicationIndex(self.packs, self.catalogue))
        return held[1]

    def uncovered(self, day: date) -> list[str]:
        """The rule ids no version covers on ``day`` (before the first took effect, or after
        the last was retired): their drug groups cannot be evaluated that day."""
        covered = {pack.id for pack in self.in_force(day)}
        return sorted({pack.id for pack in self.packs} - covered)

    def coverage_warning(self, day: date) -> str | None:
        """The sentence a run on ``day`` reports when some rule ids are not covered."""
        missing = self.uncovered(day)
        if not missing:
            return None
        starts = [p.effective_from for p in self.packs if p.status == "active"]
        since = (
            f" (the first versions take effect from {min(starts).isoformat()})" if starts else ""
        )
        return (
            f"no version of the rule pack(s) {', '.join(missing)} is in force on "
            f"{day.isoformat()}{since}: those drug groups were not evaluated"
        )

    def get(self, rule_id: str, version: int | None = None) -> RulePack:
        """One pack by id, the highest version unless ``version`` is given."""
        matches = [p for p in self.packs if p.id == rule_id and version in (None, p.version)]
        if not matches:
            raise KeyError(rule_id if version is None else f"{rule_id}@{version}")
        return max(matches, key=lambda p: p.version)


def _read_toml(name: str, text: str) -> dict[str, Any]:
    import tomllib  # here: a run that finds its rule set in the cache never parses TOML

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleDefinitionError(f"{name}: not valid TOML: {exc}") from exc


def build_rule_set(
    catalogue_text: str, packs: Mapping[str, str], code_lists: Mapping[str, str] | None = None
) -> RuleSet:
    """Validate a catalogue, pack files (name -> TOML) and code lists (file name -> CSV, the
    package's own when None) given as text; raise on any problem."""
    from marshmallow import ValidationError

    from hrm_fhir.rules.catalogue_schema import load_catalogue
    from hrm_fhir.rules.products import read_code_lists
    from hrm_fhir.rules.schema import load_pack

    try:
        catalogue = load_catalogue(_read_toml("catalogue.toml", catalogue_text))
    except ValidationError as exc:
        raise RuleDefinitionError(f"catalogue.toml: {exc.messages}") from exc
    loaded: list[RulePack] = []
    seen: dict[tuple[str, int], str] = {}
    for name, text in sorted(packs.items()):
        try:
            pack = load_pack(_read_toml(name, text))
        except ValidationError as exc:
            raise RuleDefinitionError(f"{name}: {exc.messages}") from exc
        key = (pack.id, pack.version)
        if key in seen:
            raise RuleDefinitionError(
                f"{name}: duplicate rule {pack.id} version {pack.version} (also in {seen[key]})"
            )
        seen[key] = name
        problems = list(_reference_problems(pack, catalogue))
        if problems:
            raise RuleDefinitionError(f"{name}: " + "; ".join(problems))
        loaded.append(pack)
    groups = {p.drug_group for p in loaded}
    for group in _shared_care_groups(catalogue):
        if group not in groups:
            raise RuleDefinitionError(f"catalogue.toml: shared_care names unknown group {group!r}")
    for pack in loaded:
        for cond in _conditions(pack):
            target = cond.co_prescribed
            if target is not None and target not in groups and target not in catalogue.classes:
                raise RuleDefinitionError(
                    f"{pack.ref}: co_prescribed names unknown group or class {target!r}"
                )
    ingredients = {i.name for p in loaded for i in p.ingredients}
    ingredients.update(i.name for c in catalogue.classes.values() for i in c.ingredients)
    lists = _code_list_files() if code_lists is None else code_lists
    products = read_code_lists(catalogue, lists, ingredients)
    return RuleSet(catalogue=replace(catalogue, products=products), packs=tuple(loaded))


def _shared_care_groups(catalogue: Catalogue) -> Iterable[str]:
    shared = catalogue.shared_care
    if shared is None:
        return
    yield from shared.generic_groups
    for code in (*shared.prescribed, *shared.entries):
        yield from code.groups


def _conditions(pack: RulePack) -> Iterable[Condition]:
    for s in pack.schedules:
        for m in s.modifiers:
            yield from m.when
    for t in pack.thresholds:
        yield from t.also
    yield from _check_conditions(pack)


def _check_conditions(pack: RulePack) -> Iterable[Condition]:
    for c in pack.prescribing:
        yield from c.requires
        yield from c.criteria


def _reference_problems(pack: RulePack, catalogue: Catalogue) -> Iterable[str]:
    """What the pack names that the catalogue or the pack does not define, and conditions that
    stand where they cannot be read."""
    yield from _unknown_tests(pack, catalogue)
    yield from _misplaced_fires(pack)
    yield from _threshold_problems(pack, catalogue.analytes)
    yield from _condition_problems(pack, catalogue.analytes)


def _unknown_tests(pack: RulePack, catalogue: Catalogue) -> Iterable[str]:
    for s in pack.schedules:
        for test in s.tests:
            if test not in catalogue.tests:
                yield f"schedule {s.id} asks for unknown test {test!r}"
    for b in pack.baselines:
        for test in b.tests:
            if test not in catalogue.tests:
                yield f"baseline {b.id} asks for unknown test {test!r}"


def _misplaced_fires(pack: RulePack) -> Iterable[str]:
    """A ``fires`` condition on an unknown threshold or outside a schedule modifier, and
    ``together_less_than`` in a threshold."""
    thresholds = {t.id for t in pack.thresholds}
    for s in pack.schedules:
        for m in s.modifiers:
            for cond in m.when:
                if cond.fires is not None and cond.fires not in thresholds:
                    yield f"schedule {s.id} modifier fires on unknown threshold {cond.fires!r}"
    for cond in (*(c for t in pack.thresholds for c in t.also), *_check_conditions(pack)):
        if cond.fires is not None:
            yield "a fires condition belongs in a schedule modifier only"
    for cond in (c for t in pack.thresholds for c in t.also):
        if cond.together_less_than is not None:
            yield "together_less_than belongs in a schedule modifier or prescribing check"


def _threshold_problems(pack: RulePack, analytes: Mapping[str, Analyte]) -> Iterable[str]:
    for t in pack.thresholds:
        if t.analyte not in analytes:
            yield f"threshold {t.id} names unknown analyte {t.analyte!r}"
        elif t.unit != analytes[t.analyte].unit:
            yield (
                f"threshold {t.id} is in {t.unit!r} but {t.analyte} is compared in "
                f"{analytes[t.analyte].unit!r}"
            )
        elif (t.op == "recorded") != (t.unit == "1"):
            yield f"threshold {t.id}: op recorded goes with a coded (unit 1) analyte, and only it"
        for cond in t.also:
            if cond.ingredients_at_least or cond.no_other_ingredient_before:
                yield f"threshold {t.id}: {cond.describe()} belongs in a prescribing check"
    for analyte in pack.targets:
        if analyte not in analytes:
            yield f"targets name unknown analyte {analyte!r}"


def _condition_problems(pack: RulePack, analytes: Mapping[str, Analyte]) -> Iterable[str]:
    for cond in _conditions(pack):
        in_also = any(cond in t.also for t in pack.thresholds)
        if cond.op in RANGE_OPS and (not in_also or cond.measure not in analytes):
            yield (
                "a range condition (below_ref_low, above_ref_high) names an analyte and belongs "
                "in a threshold's also"
            )
    for s in pack.schedules:
        for m in s.modifiers:
            for cond in m.when:
                if cond.ingredients_at_least or cond.no_other_ingredient_before:
                    yield f"schedule {s.id}: {cond.describe()} belongs in a prescribing check"
    ingredient_names = {i.name for i in pack.ingredients}
    for c in pack.prescribing:
        if c.ingredient is not None and c.ingredient not in ingredient_names:
            yield f"check {c.id} names ingredient {c.ingredient!r} the pack does not cover"
        if c.check == "ome_at_least" and not any(i.ome for i in pack.ingredients):
            yield f"check {c.id} needs OME factors on the pack's ingredients"
        if c.ingredient is None and any(
            x.no_other_ingredient_before for x in (*c.requires, *c.criteria)
        ):
            yield f"check {c.id}: no_other_ingredient_before needs the check's ingredient"
    if any(cond.measure == "ome" for cond in _conditions(pack)) and not any(
        i.ome for i in pack.ingredients
    ):
        yield "a condition on ome needs OME factors on the pack's ingredients"
    for cond in _conditions(pack):
        for name in (cond.measure, cond.falling):
            if name is not None and name not in analytes and name not in DERIVED_MEASURES:
                yield f"condition names unknown measure {name!r}"


def _package_files() -> tuple[str, dict[str, str]]:
    root = resources.files("hrm_fhir.rules")
    catalogue = root.joinpath("catalogue.toml").read_text(encoding="utf-8")
    packs = {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in root.joinpath("definitions").iterdir()
        if entry.name.endswith(".toml")
    }
    return catalogue, packs


def _code_list_files() -> dict[str, str]:
    folder = resources.files("hrm_fhir.rules").joinpath("codelists")
    return {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".csv")
    }


def load_rule_set(extra_dir: Path | None = None) -> RuleSet:
    """The packs shipped in the package (plus ``extra_dir/*.toml`` when given), validated."""
    catalogue, packs = _package_files()
    if extra_dir is not None:
        packs.update(
            {p.name: p.read_text(encoding="utf-8") for p in sorted(extra_dir.glob("*.toml"))}
        )
    return _cached(catalogue, packs, _code_list_files())


_DEFINED_BY = (
    "rules/registry.py",
    "rules/schema.py",
    "rules/catalogue_schema.py",
    "rules/model.py",
    "rules/catalogue.py",
    "rules/durations.py",
    "rules/products.py",
    "domain.py",
)
"""The code a cached rule set depends on, besides the TOML texts."""


def _cached(catalogue: str, packs: Mapping[str, str], code_lists: Mapping[str, str]) -> RuleSet:
    """The rule set from the cache when one was built from the same texts by the same code."""
    cache = _cache_file(
        catalogue, {**packs, **{f"codelists/{k}": v for k, v in code_lists.items()}}
    )
    cached = None if cache is None else _read_cache(cache)
    if cached is not None:
        return cached
    rule_set = build_rule_set(catalogue, packs, code_lists)
    if cache is not None:
        _write_cache(cache, rule_set)
    return rule_set


def _cache_file(catalogue: str, texts: Mapping[str, str]) -> Path | None:
    """Where a rule set from these texts (packs and code lists) is cached; None when the code
    cannot be read to hash."""
    digest = hashlib.sha256(sys.version.encode())
    for name, text in [("", catalogue), *sorted(texts.items())]:
        digest.update(f"\0{name}\0{len(text)}\0{text}".encode())
    root = resources.files("hrm_fhir")
    try:
        for module in _DEFINED_BY:
            digest.update(root.joinpath(module).read_bytes())
    except OSError:
        return None
    return cache_dir() / f"rules-{digest.hexdigest()[:32]}.pickle"


def _read_cache(path: Path) -> RuleSet | None:
    """The cached rule set, or None. The file is the user's own (written by this function into
    a directory it creates private), trusted as the interpreter's bytecode cache is."""
    try:
        cached = pickle.loads(path.read_bytes())  # noqa: S301 - see the docstring
    except Exception:  # a missing or damaged cache means validating again
        return None
    return cached if isinstance(cached, RuleSet) else None


def _write_cache(path: Path, rule_set: RuleSet) -> None:
    """Replace the cache whole (a finished file renamed over it); where it cannot be written
    there is just no cache."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        temporary.write_bytes(pickle.dumps(rule_set, protocol=pickle.HIGHEST_PROTOCOL))
        temporary.replace(path)
    except OSError:
        temporary.unlink(missing_ok=True)
