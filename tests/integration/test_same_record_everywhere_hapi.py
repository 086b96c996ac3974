"""The patient card, the review queue, the API's monitoring and the evidence pack read a patient
as the sweep does (``fetch.read_rule_records``), against a real HAPI FHIR server (hazard H73).

Each patient's findings depend on one resource only the sweep's extra searches find: a
Condition coded "lithium level high - toxic", an INR target recorded as a Goal, a shared-care
Condition, another organisation's shared-care Flag, and the service's own arrangement Task. For
each, the API evaluates the same findings the sweep produced, the card lists the Tasks and Flags
the sweep left open, and every record a finding rests on is among the results the card, the
review queue and the evidence pack show.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from flask.testing import FlaskClient

from hrm_fhir.adapters.fhir.fetch import FetchReport, read_rule_records
from hrm_fhir.adapters.store import ledger
from hrm_fhir.audit.evidence import build_pack
from hrm_fhir.audit.evidence_source import read_evidence
from hrm_fhir.domain import PatientRef
from hrm_fhir.evaluation import map_records
from hrm_fhir.sweep.run import SweepSummary, run_sweep
from hrm_fhir.web.app import create_app
from hrm_fhir.web.state import service_state
from hrm_fhir.workflow import service
from hrm_fhir.workflow.chases import SweepChases
from hrm_fhir.workflow.views import PatientCard
from tests.builders import PRACTICE_CODES, rules_with_shared_care_entries
from tests.integration.harness import Harness
from tests.integration.practice import AS_OF, INR, LITHIUM, TOXIC_LITHIUM, Practice, Resource

pytestmark = pytest.mark.hapi
RULES = rules_with_shared_care_entries()
"""With coded shared-care entries, so that the sweep searches Conditions and Flags for them."""
SHARED_CARE = {"system": PRACTICE_CODES, "code": "shared-care"}
LITHIUM_BY_CMHT = {"system": PRACTICE_CODES, "code": "lithium-by-cmht"}
PATIENTS = ("toxic", "valve", "cmht", "flagged", "arranged")
LONG_AGO, RECENT = AS_OF - timedelta(days=700), AS_OF - timedelta(days=6)


def _lithium(p: Practice, name: str) -> list[Resource]:
    return [
        p.patient(name, born="1970-05-05"),
        *p.repeats(name, "Lithium carbonate 400mg MR tablets", LONG_AGO, RECENT),
        p.result(name, LITHIUM, 0.7, "mmol/L", AS_OF - timedelta(days=200)),
    ]


def _methotrexate(p: Practice, name: str) -> list[Resource]:
    return [
        p.patient(name),
        *p.repeats(name, "Methotrexate 2.5mg tablets", LONG_AGO, RECENT, dosage="10mg weekly"),
        *p.bloods(name, AS_OF - timedelta(days=120)),
    ]


def _practice(p: Practice) -> list[Resource]:
    """One patient per extra-searched type, each with the resource their findings turn on."""
    day = AS_OF - timedelta(days=3)
    return [
        p.organization(),
        *_lithium(p, "toxic"),
        p.condition("toxic", {"system": "http://snomed.info/sct", "code": TOXIC_LITHIUM}, day),
        *p.warfarin("valve", 3.6),
        p.inr_goal("valve", 3.0, 4.0),
        *_lithium(p, "cmht"),
        p.condition("cmht", LITHIUM_BY_CMHT, day),
        *_methotrexate(p, "flagged"),
        p.entry("Flag", "flagged", SHARED_CARE, status="active", period={"start": str(day)}),
        *_methotrexate(p, "arranged"),
        p.monitored_elsewhere(
            "arranged",
            "methotrexate",
            "Rheumatology, Oakfield Hospital",
            AS_OF + timedelta(days=90),
        ),
    ]


@pytest.fixture
def swept(
    fhir_base: str, run_id: str, tmp_path: Path
) -> Iterator[tuple[Harness, SweepSummary, FlaskClient]]:
    h = Harness(fhir_base, run_id, f"sqlite:///{tmp_path / 'ledger.db'}")
    h.upload(_practice(h.practice))
    chases = SweepChases.of(h.settings, h.gateway, RULES)
    summary = run_sweep(h.settings, h.sessions, h.gateway, RULES, as_of=AS_OF, chases=chases)
    assert summary.counts.errors == 0
    app = create_app(
        {
            "TESTING": True,
            "fhir_base_url": h.settings.fhir_base_url,
            "database_url": h.settings.database_url,
            "practice": h.practice.org,
            "api_keys": {"read-key": "read"},
            "SWEEP_BACKGROUND": False,
        }
    )
    service_state(app).rules = RULES
    yield h, summary, app.test_client()
    service_state(app).close(timeout=120)
    h.close()


def _card(h: Harness, ref: str) -> PatientCard:
    with h.sessions() as session:
        return service.patient_card(h.gateway, session, ref, as_of=AS_OF, rules=RULES)


def _snapshot(h: Harness, ref: str) -> list[Resource]:
    """The patient's resources as the sweep read them (the snapshot it keeps)."""
    with h.sessions() as session:
        resources: list[Resource] = orjson.loads(ledger.load_snapshots(session)[ref])
    return resources


def _rests_on(h: Harness, summary: SweepSummary, ref: str) -> set[str]:
    """The results (Observations, coded Conditions, Procedures) the sweep's findings cite."""
    assert summary.evaluation is not None
    mapped = map_records(RULES, _snapshot(h, ref), "snapshot").records[PatientRef(ref)]
    results = {str(result.ref) for result in mapped.results}
    cited = {str(e) for f in summary.evaluation.findings if f.patient == ref for e in f.evidence}
    return cited & results


@pytest.mark.parametrize("name", PATIENTS)
def test_a_patient_is_read_as_the_sweep_read_them(
    swept: tuple[Harness, SweepSummary, FlaskClient], name: str
) -> None:
    h, _, _ = swept
    ref = f"Patient/{h.practice.pid(name)}"
    read = read_rule_records(h.gateway, RULES, [ref], FetchReport())[ref]
    assert {_key(r) for r in read} == {_key(r) for r in _snapshot(h, ref)}


def _key(resource: Resource) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


@pytest.mark.parametrize("name", PATIENTS)
def test_the_api_evaluates_the_findings_the_sweep_produced(
    swept: tuple[Harness, SweepSummary, FlaskClient], name: str
) -> None:
    h, summary, client = swept
    ref = f"Patient/{h.practice.pid(name)}"
    assert summary.evaluation is not None
    by_sweep = {f.identifier for f in summary.evaluation.findings if f.patient == ref}
    response = client.get(
        f"/api/v1/patients/{h.practice.pid(name)}/monitoring?as_of={AS_OF}",
        headers={"X-API-Key": "read-key"},
    )
    assert response.status_code == 200, response.json
    assert isinstance(response.json, dict)
    assert {f["identifier"] for f in response.json["findings"]} == by_sweep


@pytest.mark.parametrize("name", PATIENTS)
def test_the_card_lists_the_tasks_and_flags_the_sweep_left_open_and_what_they_rest_on(
    swept: tuple[Harness, SweepSummary, FlaskClient], name: str
) -> None:
    h, summary, _ = swept
    ref = f"Patient/{h.practice.pid(name)}"
    with h.sessions() as session:
        written = {
            f"{r.resource_type.value}/{r.resource_id}"
            for r in ledger.open_findings(session, patient=ref)
        }
    card = _card(h, ref)
    assert {item.reference for item in card.findings} >= written
    shown = {point.observation for trend in card.results for point in trend.points}
    assert _rests_on(h, summary, ref) <= shown


@pytest.mark.parametrize("name", PATIENTS)
def test_the_evidence_pack_shows_every_result_the_sweep_acted_on(
    swept: tuple[Harness, SweepSummary, FlaskClient], name: str
) -> None:
    h, summary, _ = swept
    ref = f"Patient/{h.practice.pid(name)}"
    with h.sessions() as session:
        source = read_evidence(h.gateway, session, ref, RULES)
    assert source is not None
    pack = build_pack(source, RULES, as_of=AS_OF, generated_at=datetime.now(UTC))
    assert _rests_on(h, summary, ref) <= {result.observation for result in pack.results}


def test_each_patient_turns_on_the_resource_only_an_extra_search_finds(
    swept: tuple[Harness, SweepSummary, FlaskClient],
) -> None:
    """The practice tests what it means to: the toxic Condition raised an urgent Flag the card
    shows with the Condition among its results; the valve patient's own INR target kept their
    3.6 in range; the shared-care Condition, Flag and arrangement Task stopped routine Tasks."""
    h, summary, _ = swept
    assert summary.evaluation is not None

    def kinds(name: str) -> set[str]:
        ref = f"Patient/{h.practice.pid(name)}"
        assert summary.evaluation is not None
        return {str(f.kind) for f in summary.evaluation.findings if f.patient == ref}

    toxic = _card(h, f"Patient/{h.practice.pid('toxic')}")
    assert any(item.kind == "flag" and item.severity == "urgent" for item in toxic.findings)
    assert any(p.observation.startswith("Condition/") for t in toxic.results for p in t.points)
    assert "out_of_range" not in kinds("valve")
    for name in ("cmht", "flagged", "arranged"):
        assert "overdue" not in kinds(name), name
        assert "due" not in kinds(name), name
    elsewhere = {e.patient for e in summary.evaluation.monitored if e.monitored_elsewhere}
    assert elsewhere == {f"Patient/{h.practice.pid(n)}" for n in ("cmht", "flagged", "arranged")}
    valve_inr = [
        t for t in _card(h, f"Patient/{h.practice.pid('valve')}").results if t.analyte == "inr"
    ]
    assert valve_inr, f"the valve patient's INR ({INR}) is on the card"


def test_the_review_queue_shows_the_coded_finding_behind_the_urgent_flag(
    swept: tuple[Harness, SweepSummary, FlaskClient],
) -> None:
    h, _, _ = swept
    ref = f"Patient/{h.practice.pid('toxic')}"
    with h.sessions() as session:
        items = service.review_queue(
            h.gateway, session, practice=h.practice.org, rules=RULES, as_of=AS_OF
        )
    [flag] = [item for item in items if item.patient == ref and item.kind == "flag"]
    shown = {point.observation for trend in flag.trend for point in trend.points}
    assert any(observation.startswith("Condition/") for observation in shown)
