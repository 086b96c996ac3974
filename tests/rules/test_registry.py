"""Rule packs load only when complete, cited and unambiguous."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hrm_fhir.errors import RuleDefinitionError
from hrm_fhir.rules.registry import _package_files, build_rule_set, load_rule_set

CATALOGUE, PACKS = _package_files()
MTX = PACKS["methotrexate.toml"]
NEXT = 1 + max(
    int(name.removeprefix("methotrexate.v").removesuffix(".toml"))
    for name in PACKS
    if name.startswith("methotrexate.v")
)
"""The methotrexate version after the highest shipped one."""
GROUPS = {
    "methotrexate",
    "azathioprine",
    "sulfasalazine",
    "leflunomide",
    "mycophenolate",
    "lithium",
    "amiodarone",
    "warfarin",
    "doac",
    "antipsychotic",
    "opioid",
    "gabapentinoid",
}


def _with(name: str, text: str) -> dict[str, str]:
    return {**PACKS, name: text}


def test_shipped_packs_cover_every_drug_group_and_load() -> None:
    rule_set = load_rule_set()
    assert {p.drug_group for p in rule_set.packs} == GROUPS
    for pack in rule_set.packs:
        assert pack.citations, pack.id
        assert pack.reviewed_by == "", "no pack is clinically signed off yet"


def test_unknown_key_refuses_to_load() -> None:
    text = MTX.replace('status = "active"', 'status = "active"\ncolour = "blue"', 1)
    with pytest.raises(RuleDefinitionError, match="colour"):
        build_rule_set(CATALOGUE, _with("methotrexate.toml", text))


def test_missing_citation_refuses_to_load() -> None:
    text = MTX.replace('citation = "sps-lef"', 'citation = "nowhere"', 1)
    with pytest.raises(RuleDefinitionError, match="nowhere"):
        build_rule_set(CATALOGUE, _with("methotrexate.toml", text))


def test_threshold_without_citation_refuses_to_load() -> None:
    text = MTX.replace('citation = "sps-lef"\nverified = true', "verified = true", 1)
    with pytest.raises(RuleDefinitionError, match="citation"):
        build_rule_set(CATALOGUE, _with("methotrexate.toml", text))


def test_duplicate_id_and_version_refuses_to_load() -> None:
    with pytest.raises(RuleDefinitionError, match="duplicate rule methotrexate version 1"):
        build_rule_set(CATALOGUE, _with("methotrexate-copy.toml", MTX))


def test_new_version_supersedes_and_old_version_stays_traceable() -> None:
    newer = MTX.replace("version = 1", f"version = {NEXT}", 1).replace(
        "value = 1.6", "value = 1.5", 1
    )
    rule_set = build_rule_set(CATALOGUE, _with(f"methotrexate.v{NEXT}.toml", newer))
    assert rule_set.get("methotrexate").version == NEXT
    assert rule_set.get("methotrexate", 1).version == 1
    in_force = {
        p.id: p.version for p in rule_set.in_force(rule_set.get("methotrexate").effective_from)
    }
    assert in_force["methotrexate"] == NEXT


def test_retired_pack_is_not_in_force() -> None:
    retired = {
        name: text.replace('status = "active"', 'status = "retired"', 1)
        for name, text in PACKS.items()
        if name.startswith("methotrexate")
    }
    rule_set = build_rule_set(CATALOGUE, {**PACKS, **retired})
    assert "methotrexate" not in {
        p.id for p in rule_set.in_force(rule_set.get("methotrexate").effective_from)
    }


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('tests = ["fbc", "lft", "renal"]', 'tests = ["fbc", "xray"]', "unknown test"),
        ('analyte = "wbc"', 'analyte = "unobtainium"', "unknown analyte"),
        ('unit = "10*9/L"', 'unit = "10*3/uL"', r"is compared in"),
        ('op = "lt"', 'op = "roughly"', "op"),
        ('interval = "P12W"', 'interval = "12 weeks"', "duration"),
        ('severity = "action"', 'severity = "critical"', "severity"),
        ('co_prescribed = "trimethoprim"', 'co_prescribed = "unicorn"', "unknown group or class"),
    ],
)
def test_malformed_definitions_refuse_to_load(old: str, new: str, message: str) -> None:
    assert old in MTX
    with pytest.raises(RuleDefinitionError, match=message):
        build_rule_set(CATALOGUE, _with("methotrexate.toml", MTX.replace(old, new, 1)))


def test_invalid_toml_names_the_file() -> None:
    with pytest.raises(RuleDefinitionError, match=r"broken\.toml"):
        build_rule_set(CATALOGUE, _with("broken.toml", "id = "))


def test_validated_rule_set_is_cached_and_a_damaged_cache_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    built = load_rule_set()
    [cache] = (tmp_path / "hrm-fhir").glob("rules-*.pickle")
    assert built == build_rule_set(CATALOGUE, PACKS)
    assert load_rule_set() == built
    cache.write_bytes(b"damaged")
    assert load_rule_set() == built
    assert cache.read_bytes() != b"damaged", "rewritten"


def test_extra_packs_are_cached_under_their_own_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    extra = tmp_path / "extra"
    extra.mkdir()
    shipped = load_rule_set().get("methotrexate").version
    newer = MTX.replace("version = 1", f"version = {shipped + 1}", 1)
    (extra / f"methotrexate.v{shipped + 1}.toml").write_text(newer)
    assert load_rule_set().get("methotrexate").version == shipped
    assert load_rule_set(extra).get("methotrexate").version == shipped + 1
    assert len(list((tmp_path / "cache" / "hrm-fhir").glob("rules-*.pickle"))) == 2


def test_unwritable_cache_directory_still_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(not_a_directory))
    assert load_rule_set() == build_rule_set(CATALOGUE, PACKS)


LATEST_MTX = PACKS["methotrexate.v2.toml"]


def test_a_tolerance_citing_an_unknown_source_refuses_to_load() -> None:
    text = LATEST_MTX.replace('after = "P3M", citation = "pincer"', 'after = "P3M", citation = "x"')
    assert text != LATEST_MTX
    with pytest.raises(RuleDefinitionError, match="tolerance cites unknown 'x'"):
        build_rule_set(CATALOGUE, _with("methotrexate.v2.toml", text))


def test_a_tolerance_needs_a_duration() -> None:
    text = LATEST_MTX.replace('after = "P3M", ', "")
    with pytest.raises(RuleDefinitionError, match="after"):
        build_rule_set(CATALOGUE, _with("methotrexate.v2.toml", text))


@pytest.mark.parametrize("tolerance_verified", [True, False])
def test_a_pack_is_verified_only_when_its_tolerances_are(tolerance_verified: bool) -> None:
    pack = load_rule_set().get("sulfasalazine")
    [schedule] = pack.schedules
    assert schedule.severely_overdue is not None
    tolerance = replace(schedule.severely_overdue, verified=tolerance_verified)
    verified_schedule = replace(schedule, verified=True, severely_overdue=tolerance)
    bare = replace(
        pack, schedules=(verified_schedule,), thresholds=(), prescribing=(), baselines=()
    )
    assert bare.verified is tolerance_verified


def test_one_version_carries_every_change_made_to_a_pack_at_once() -> None:
    """Antipsychotic version 2 was made twice side by side (issue 9's ingredients, issue 10's
    tolerances): that version has both, and version 1 neither; version 3 (issue 10's schedule
    side) is a superset of version 2. Opioid version 2 (ingredients only) and version 3 (issue
    10's checks) keep their reviews ungraded: the reference gives no tolerance."""
    rule_set = load_rule_set()
    first = rule_set.get("antipsychotic", 1)
    for version in (rule_set.get("antipsychotic", 2), rule_set.get("antipsychotic")):
        assert version.effective_from == first.effective_from
        added = {i.name for i in version.ingredients} - {i.name for i in first.ingredients}
        assert {"flupentixol", "zuclopenthixol", "fluphenazine"} <= added
        assert all(s.severely_overdue is not None for s in version.schedules)
    assert all(s.severely_overdue is None for s in first.schedules)
    for opioid in (p for p in rule_set.packs if p.id == "opioid" and p.version >= 2):
        assert all(s.severely_overdue is None for s in opioid.schedules)
