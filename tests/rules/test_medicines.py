"""Products as a sceptical pharmacist would write them: brands, dm+d codes, combinations, US
RxNorm names and MedicationStatements are recognised, and a combination's strength is the
monitored ingredient's own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pytest

from hrm_fhir.domain import MatchMethod
from hrm_fhir.errors import RuleDefinitionError
from hrm_fhir.rules.products import is_sctid
from hrm_fhir.rules.registry import _package_files, build_rule_set
from hrm_fhir.rules.therapy import MedicationMatch
from tests.builders import AS_OF, evaluate, of_kind, patient, prescription, records, rules

SNOMED = "http://snomed.info/sct"
CATALOGUE, PACKS = _package_files()


@dataclass(frozen=True)
class _Product:
    codings: tuple[tuple[str, str], ...]
    text: str


def recognise(text: str, *codes: str) -> MedicationMatch | None:
    index = rules().medicines()
    return index.match(_Product(tuple((SNOMED, c) for c in codes), text.lower()))


@pytest.mark.parametrize(
    ("text", "group", "ingredient"),
    [
        ("Eliquis 5mg tablets", "doac", "apixaban"),
        ("Li-Liquid 509mg/5ml oral solution", "lithium", "lithium"),
        ("Durogesic DTrans 25micrograms/hour transdermal patches", "opioid", "fentanyl"),
        ("Zomorph 30mg modified-release capsules", "opioid", "morphine"),
        ("Co-codamol 30mg/500mg tablets", "opioid", "codeine"),
        ("Septrin Forte 160mg/800mg tablets", "trimethoprim", "co-trimoxazole"),
        ("Depixol 100mg/1ml solution for injection ampoules", "antipsychotic", "flupentixol"),
        (
            "Hydrocodone Bitartrate 10 MG / Acetaminophen 325 MG Oral Tablet",
            "opioid",
            "hydrocodone",
        ),
        ("Meperidine Hydrochloride 50 MG Oral Tablet", "opioid", "pethidine"),
        ("Pethidine 50mg tablets", "opioid", "pethidine"),
        ("Diamorphine 5mg powder for solution for injection ampoules", "opioid", "diamorphine"),
        ("Nurofen Plus tablets", "opioid", "codeine"),
    ],
)
def test_brand_dmd_and_us_names_are_recognised(text: str, group: str, ingredient: str) -> None:
    found = recognise(text)
    assert found is not None, f"{text!r} was not recognised"
    assert (found.group, found.ingredient) == (group, ingredient)


def test_a_dmd_amp_code_alone_is_recognised_as_its_ingredient() -> None:
    found = recognise("", "21677511000001105")  # Eliquis 5mg tablets (Bristol-Myers Squibb)
    assert found is not None
    assert (found.group, found.ingredient, found.method) == ("doac", "apixaban", MatchMethod.CODE)


def test_unmonitored_products_are_not_recognised() -> None:
    assert recognise("Paracetamol 500mg tablets") is None
    assert recognise("Simvastatin 20 MG Oral Tablet") is None


@pytest.mark.parametrize(
    ("text", "strength"),
    [
        ("Co-codamol 30mg/500mg tablets", (30.0, "mg")),
        ("Co-codamol 8mg/500mg effervescent tablets", (8.0, "mg")),
        ("co-codamol 30/500 tablets", (30.0, "mg")),
        ("Acetaminophen 325 MG / Oxycodone Hydrochloride 10 MG Oral Tablet", (10.0, "mg")),
        ("Hydrocodone Bitartrate 7.5 MG / Acetaminophen 325 MG Oral Tablet", (7.5, "mg")),
        ("72 HR Fentanyl 0.025 MG/HR Transdermal System", (25.0, "ug/h")),
        ("Oxycodone 10mg / Naloxone 5mg modified-release tablets", (10.0, "mg")),
        ("Septrin Forte 160mg/800mg tablets", (160.0, "mg")),
    ],
)
def test_a_combination_gives_the_strength_of_the_monitored_ingredient(
    text: str, strength: tuple[float, str]
) -> None:
    found = recognise(text)
    assert found is not None
    assert found.strength == strength


def test_a_combination_that_puts_no_strength_beside_the_ingredient_has_no_strength() -> None:
    found = recognise("Nurofen Plus tablets")
    assert found is not None
    assert found.strength is None


def _ome_findings(text: str, times_a_day: int, tablets: int) -> list[str]:
    started = AS_OF - timedelta(days=10)
    resources = [
        patient(),
        prescription(
            text,
            started,
            timing={"frequency": times_a_day, "period": 1, "periodUnit": "d"},
            dose={"value": tablets, "unit": "tablet"},
        ),
    ]
    return [f.reason for f in of_kind(evaluate(resources), "prescribing", "opioid")]


def test_acetaminophen_oxycodone_ome_counts_the_oxycodone_only() -> None:
    reasons = _ome_findings(
        "Acetaminophen 325 MG / Oxycodone Hydrochloride 10 MG Oral Tablet", 4, 2
    )
    # 2 tablets 4 times a day = 80 mg oxycodone a day x 1.5 = 120 mg OME (not 325 mg a tablet)
    assert any(
        "Oral morphine equivalent 120 mg/day" in r and "oxycodone 80 mg/day" in r for r in reasons
    )


def test_acetaminophen_oxycodone_below_the_threshold_raises_nothing() -> None:
    reasons = _ome_findings(
        "Acetaminophen 325 MG / Oxycodone Hydrochloride 10 MG Oral Tablet", 4, 1
    )
    assert not any("Oral morphine equivalent" in r for r in reasons)


def test_co_codamol_strength_is_the_codeine() -> None:
    (prescribed,) = records([patient(), prescription("Co-codamol 30mg/500mg tablets", AS_OF)])[
        "Patient/p1"
    ].prescriptions
    assert (prescribed.strength, prescribed.strength_unit) == (30.0, "mg")


def test_septrin_with_methotrexate_raises_the_interaction() -> None:
    started = AS_OF - timedelta(days=30)
    resources = [
        patient(),
        prescription("Methotrexate 2.5mg tablets", started, dosage="7.5mg once weekly"),
        prescription("Septrin Forte 160mg/800mg tablets", AS_OF - timedelta(days=3)),
    ]
    codes = {f.code for f in of_kind(evaluate(resources), "prescribing", "methotrexate")}
    assert "methotrexate-with-trimethoprim" in codes


@pytest.mark.parametrize(
    ("text", "group"),
    [
        ("Eliquis 5mg tablets", "doac"),
        ("Li-Liquid 509mg/5ml oral solution", "lithium"),
        ("Durogesic DTrans 50micrograms/hour transdermal patches", "opioid"),
        ("Zomorph 60mg modified-release capsules", "opioid"),
        ("Depixol 100mg/1ml solution for injection ampoules", "antipsychotic"),
        ("Hydrocodone Bitartrate 10 MG / Acetaminophen 325 MG Oral Tablet", "opioid"),
        ("Meperidine Hydrochloride 50 MG Oral Tablet", "opioid"),
    ],
)
def test_a_patient_on_a_brand_or_us_product_gets_monitored(text: str, group: str) -> None:
    resources = [patient(), prescription(text, AS_OF - timedelta(days=400))]
    assert {f.drug_group for f in evaluate(resources)} >= {group}


def _statement(status: str, start: date, **extra: object) -> dict[str, object]:
    return {
        "resourceType": "MedicationStatement",
        "id": f"ms-{status}",
        "status": status,
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": start.isoformat()},
        "medicationCodeableConcept": {"text": "Lithium carbonate 400mg modified-release tablets"},
        **extra,
    }


def test_an_active_medication_statement_is_evidence_of_therapy_labelled_statement() -> None:
    findings = evaluate([patient(), _statement("active", date(2016, 3, 1))])
    lithium = [f for f in findings if f.drug_group == "lithium"]
    assert lithium, "an active MedicationStatement must put the patient on lithium monitoring"
    assert {f.matched_by for f in lithium} == {MatchMethod.STATEMENT}


@pytest.mark.parametrize(
    "status", ["not-taken", "entered-in-error", "intended", "stopped", "completed"]
)
def test_a_statement_that_says_the_patient_is_not_taking_it_is_not_current(status: str) -> None:
    assert not [
        f
        for f in evaluate([patient(), _statement(status, date(2016, 3, 1))])
        if f.drug_group == "lithium"
    ]


def test_an_active_statement_with_an_ended_period_is_not_current() -> None:
    ended = _statement("active", date(2016, 3, 1))
    ended["effectivePeriod"] = {"start": "2016-03-01", "end": "2020-01-01"}
    assert not [f for f in evaluate([patient(), ended]) if f.drug_group == "lithium"]


def test_a_statement_through_a_contained_medication_is_read() -> None:
    statement = _statement("active", date(2016, 3, 1))
    del statement["medicationCodeableConcept"]
    statement["contained"] = [
        {
            "resourceType": "Medication",
            "id": "m",
            "code": {"text": "Priadel 400mg modified-release tablets"},
        }
    ]
    statement["medicationReference"] = {"reference": "#m"}
    assert [f for f in evaluate([patient(), statement]) if f.drug_group == "lithium"]


def test_diamorphine_is_monitored_and_its_ome_is_reported_as_not_counted() -> None:
    started = AS_OF - timedelta(days=10)
    daily = {"frequency": 4, "period": 1, "periodUnit": "d"}
    resources = [
        patient(),
        prescription(
            "Morphine sulfate 30mg modified-release tablets",
            started,
            timing=daily,
            dose={"value": 1, "unit": "tablet"},
        ),
        prescription(
            "Diamorphine 10mg tablets", started, timing=daily, dose={"value": 1, "unit": "tablet"}
        ),
    ]
    reasons = [f.reason for f in of_kind(evaluate(resources), "prescribing", "opioid")]
    assert any("no cited OME factor: diamorphine" in r for r in reasons)


# ---------------------------------------------------------------- code lists: validated at load


def test_every_shipped_code_resolves_to_one_ingredient_of_a_pack_or_class() -> None:
    products = rules().catalogue.products
    assert len(products) > 15000  # distinct codes across the lists (15,731 shipped)
    ingredients = {i.name for p in rules().packs for i in p.ingredients}
    ingredients |= {i.name for c in rules().catalogue.classes.values() for i in c.ingredients}
    assert {p.ingredient for p in products.values()} <= ingredients
    assert all(is_sctid(code) for _, code in products)


def test_every_code_list_is_cited_with_an_address_and_a_date() -> None:
    for code_list in rules().catalogue.code_lists.values():
        assert code_list.citation.url.startswith("https://")
        assert code_list.citation.accessed


def _lists(**changes: str) -> dict[str, str]:
    from hrm_fhir.rules.registry import _code_list_files

    return {**_code_list_files(), **changes}


def test_a_spreadsheet_mangled_id_refuses_to_load() -> None:
    lists = _lists()
    lists["lithium.csv"] += "1.2E+16,Priadel 400mg modified-release tablets,lithium,\n"
    with pytest.raises(RuleDefinitionError, match="not a SNOMED CT id"):
        build_rule_set(CATALOGUE, PACKS, lists)


def test_a_code_with_a_wrong_check_digit_refuses_to_load() -> None:
    lists = _lists()
    lists["lithium.csv"] += "36128311000001109,Morphine sulfate 10mg/5ml oral solution,lithium,\n"
    with pytest.raises(RuleDefinitionError, match="not a SNOMED CT id"):
        build_rule_set(CATALOGUE, PACKS, lists)


def test_a_code_in_two_lists_as_two_ingredients_refuses_to_load() -> None:
    lists = _lists()
    lists["lithium.csv"] += "21677511000001105,Eliquis 5mg tablets,lithium,\n"
    with pytest.raises(
        RuleDefinitionError, match=r"21677511000001105 is (lithium|apixaban) here but"
    ):
        build_rule_set(CATALOGUE, PACKS, lists)


def test_an_uncited_list_refuses_to_load() -> None:
    lists = _lists(**{"stray.csv": "code,term,ingredient,brand\n"})
    with pytest.raises(RuleDefinitionError, match=r"stray\.csv is not cited"):
        build_rule_set(CATALOGUE, PACKS, lists)


def test_an_unknown_ingredient_refuses_to_load() -> None:
    lists = _lists()
    lists["lithium.csv"] += "321730000,Lithium carbonate 250mg tablets,unobtainium,\n"
    with pytest.raises(RuleDefinitionError, match="unobtainium"):
        build_rule_set(CATALOGUE, PACKS, lists)


# ---------------------------------------------------------------- code lists: one probe per list

# A product sent with only its dm+d code (mostly a brand's AMP) is recognised into the right
# group and ingredient; the code must be in that list's file (so each list is probed).
PROBES = [
    ("lithium", "13947411000001104", "lithium", "lithium"),  # Priadel 400mg m/r (DE Pharma)
    ("amiodarone", "5534411000001109", "amiodarone", "amiodarone"),  # Cordarone X 200
    ("anticoagulants", "18614511000001103", "anticoagulant", "acenocoumarol"),  # Sinthrome 1mg
    ("doacs", "29902111000001100", "doac", "edoxaban"),  # Lixiana 15mg
    ("warfarin", "933311000001105", "warfarin", "warfarin"),  # Marevan 1mg (Advanz)
    ("methotrexate", "15513411000001100", "methotrexate", "methotrexate"),  # Metoject 10mg
    ("azathioprine", "906711000001106", "azathioprine", "azathioprine"),  # Imuran injection
    ("sulfasalazine", "198211000001102", "sulfasalazine", "sulfasalazine"),  # Salazopyrin EN
    ("leflunomide", "499111000001102", "leflunomide", "leflunomide"),  # Arava 10mg
    ("mycophenolate", "8077811000001106", "mycophenolate", "mycophenolate"),  # Myfortic 360mg
    ("gabapentinoids", "37517711000001103", "gabapentinoid", "pregabalin"),  # Lyrica 75mg
    ("antipsychotics-first", "152111000001103", "antipsychotic", "haloperidol"),  # Haldol 5mg
    ("antipsychotics-second", "486611000001101", "antipsychotic", "olanzapine"),  # Zyprexa 10mg
    ("antipsychotics-depot", "19210611000001106", "antipsychotic", "paliperidone"),  # Xeplion
    ("antipsychotics-depot", "3748011000001101", "antipsychotic", "haloperidol"),  # Haldol Dec
    ("antipsychotics-depot", "178611000001106", "antipsychotic", "zuclopenthixol"),  # Clopixol
    ("flupentixol", "2093211000001101", "antipsychotic", "flupentixol"),  # Fluanxol 500mcg
    ("opioids-oral", "2891711000001108", "opioid", "oxycodone"),  # OxyContin 10mg
    ("opioids-parenteral", "11590911000001102", "opioid", "diamorphine"),  # Diamorphine 10mg inj
    ("opioids-rectal", "18511211000001109", "opioid", "codeine"),  # Codeine 10mg suppositories
    ("opioids-buccal-nasal", "14948311000001105", "opioid", "fentanyl"),  # Abstral 100mcg
    ("opioids-inhalation", "12237411000001109", "opioid", "diamorphine"),  # cigarettes
    ("opioids-transdermal", "9089711000001102", "opioid", "fentanyl"),  # Durogesic DTrans 25
    ("morphine", "3164311000001109", "opioid", "morphine"),  # Oramorph 10mg/5ml (Glenwood)
    ("codeine", "232711000001100", "opioid", "codeine"),  # Kapake 30mg/500mg (Galen)
    ("benzodiazepines", "4658511000001101", "benzodiazepine", "alprazolam"),  # Xanax 250mcg
    ("benzodiazepines-gmsde", "32518811000001108", "benzodiazepine", "midazolam"),  # Buccolam
    ("benzodiazepines-gmsde", "233611000001104", "benzodiazepine", "clonazepam"),  # Rivotril
    ("benzodiazepines-gmsde", "929911000001107", "benzodiazepine", "clobazam"),  # Frisium
    ("z-drugs", "3206111000001102", "z-drug", "zolpidem"),  # Stilnoct 5mg
    ("trimethoprim", "426411000001109", "trimethoprim", "trimethoprim"),  # Monotrim 100mg
    ("co-trimoxazole", "764411000001104", "trimethoprim", "co-trimoxazole"),  # Septrin Forte
    ("verapamil", "540111000001108", "verapamil", "verapamil"),  # Securon SR 240mg (Mylan)
    ("nsaids", "2911000001100", "nsaid", "diclofenac"),  # Voltarol 25mg (Novartis)
    ("ace-inhibitors-arbs", "802311000001101", "ace-inhibitor", "ramipril"),  # Tritace 5mg
    ("ace-inhibitors-arbs", "37361911000001105", "arb", "losartan"),  # Cozaar 50mg (CST)
    ("diuretics", "930511000001105", "diuretic", "spironolactone"),  # Aldactone 25mg (Pfizer)
    ("thiazides", "321811000001109", "diuretic", "indapamide"),  # Natrilix 2.5mg (Servier)
]


def _list_codes(list_id: str) -> set[str]:
    from hrm_fhir.rules.registry import _code_list_files

    code_list = rules().catalogue.code_lists[list_id]
    lines = _code_list_files()[code_list.file].splitlines()[1:]
    return {line.split(",", 1)[0] for line in lines if line}


@pytest.mark.parametrize(("list_id", "code", "group", "ingredient"), PROBES)
def test_a_product_known_only_by_its_dmd_code_is_recognised(
    list_id: str, code: str, group: str, ingredient: str
) -> None:
    assert code in _list_codes(list_id)
    found = recognise("", code)
    assert found is not None, f"{code} ({list_id}) was not recognised"
    assert (found.group, found.ingredient, found.method) == (group, ingredient, MatchMethod.CODE)


def test_every_code_list_has_a_probe() -> None:
    assert {p[0] for p in PROBES} == set(rules().catalogue.code_lists)


def test_a_two_class_combination_is_recognised_as_the_first_class_in_catalogue_order() -> None:
    # Tarka (verapamil + trandolapril) is in the PINCER ACE-inhibitor list: one code, one
    # ingredient (docs/design.md), and verapamil's class comes before the ACE inhibitors.
    found = recognise("", "3691211000001101")  # Tarka m/r capsules (Abbott)
    assert found is not None
    assert (found.group, found.ingredient) == ("verapamil", "verapamil")


# Rows shipped per list: the source's rows less those rejected (each rejection is named in the
# list's citation and in rules/README.md "Code lists"). A refresh that changes a count must say
# why.
ROWS = {
    "lithium": 41,
    "amiodarone": 170,
    "anticoagulants": 217,
    "doacs": 74,
    "warfarin": 137,
    "methotrexate": 330,
    "azathioprine": 173,
    "sulfasalazine": 53,
    "leflunomide": 41,
    "mycophenolate": 69,
    "gabapentinoids": 675,
    "antipsychotics-first": 502,
    "antipsychotics-second": 1060,
    "antipsychotics-depot": 87,
    "flupentixol": 22,
    "opioids-oral": 1302,
    "opioids-parenteral": 375,
    "opioids-rectal": 72,
    "opioids-buccal-nasal": 93,
    "opioids-inhalation": 22,
    "opioids-transdermal": 159,
    "morphine": 1446,
    "codeine": 951,
    "benzodiazepines": 488,
    "benzodiazepines-gmsde": 3213,
    "z-drugs": 96,
    "trimethoprim": 83,
    "co-trimoxazole": 44,
    "verapamil": 94,
    "nsaids": 1569,
    "ace-inhibitors-arbs": 2498,
    "diuretics": 802,
    "thiazides": 226,
}


def test_each_code_list_ships_the_rows_counted_from_its_source() -> None:
    assert {list_id: len(_list_codes(list_id)) for list_id in ROWS} == ROWS
    assert set(ROWS) == set(rules().catalogue.code_lists)
