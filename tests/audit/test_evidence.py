"""The evidence pack's pure assembly and its renderers, from synthetic resources and ledger rows:
what each section holds, the as-of cut-off, and text, JSON and HTML output."""

from __future__ import annotations

import html.parser
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest

from hrm_fhir import terminology as t
from hrm_fhir.adapters.store.records import FindingRecord, ResourceType, WorkflowEventRecord
from hrm_fhir.audit.evidence import EvidencePack, EvidenceSource, build_pack
from hrm_fhir.audit.evidence_render import to_html, to_json, to_text
from hrm_fhir.domain import FindingKind, MatchMethod, Severity
from hrm_fhir.programme import Stage
from tests.builders import AS_OF, observation, patient, repeats, rules

FBC, EGFR, NEUT = "1022441000000101", "1011481000000105", "1022551000000104"
PID = "p1"
TASK = "hrm-task1"
LATE_TASK = "hrm-task2"
FLAG = "hrm-flag1"
DAY1 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
AFTER = datetime(2026, 11, 28, 0, 30, tzinfo=UTC)
"""After the end of AS_OF in Europe/London (midnight GMT): outside the pack."""
SPS_MTX = "https://www.sps.nhs.uk/monitorings/methotrexate-monitoring/"
Resource = dict[str, Any]


def _stamp(resource: Resource, version: int, at: datetime) -> Resource:
    meta = {"versionId": str(version), "lastUpdated": at.isoformat()}
    return {**resource, "meta": {**meta, "tag": [{"system": t.TAG, "code": "hrm-fhir"}]}}


def _task(version: int, at: datetime, status: str, stage: str, **extra: Any) -> Resource:
    body: Resource = {
        "resourceType": "Task",
        "id": TASK,
        "extension": [
            {"url": t.RULE_EXTENSION, "valueString": "methotrexate@1#bloods"},
            {"url": t.SOURCE_EXTENSION, "valueUri": SPS_MTX},
        ],
        "status": status,
        "businessStatus": {"coding": [{"system": t.BUSINESS_STATUS, "code": stage}]},
        "intent": "order",
        "code": {"coding": [{"system": t.TASK_CODE, "code": "monitoring-due"}]},
        "description": "FBC, LFT and renal function overdue",
        "for": {"reference": f"Patient/{PID}"},
        "restriction": {"period": {"start": "2026-11-06", "end": "2026-11-20"}},
        "owner": {"display": "Practice monitoring technicians"},
        **extra,
    }
    return _stamp(body, version, at)


NOTE_1 = {"authorString": "Tess Tech", "time": "2026-11-21T10:00:00Z", "text": "Contact by SMS."}
NOTE_2 = {"authorString": "Tess Tech", "time": "2026-11-24T10:00:00Z", "text": "Booked."}


def _task_history() -> list[Resource]:
    """Newest first, as HAPI returns it; version 4 is after the cut-off."""
    return [
        _task(4, AFTER, "completed", "completed", note=[NOTE_1, NOTE_2]),
        _task(3, DAY1 + timedelta(days=4), "in-progress", "booked", note=[NOTE_1, NOTE_2]),
        _task(2, DAY1 + timedelta(days=1), "in-progress", "invited", note=[NOTE_1]),
        _task(1, DAY1, "requested", "to-contact"),
    ]


def _flag(version: int, at: datetime, status: str, end: str | None = None) -> Resource:
    period = {"start": "2026-11-22", **({"end": end} if end else {})}
    body = {
        "resourceType": "Flag",
        "id": FLAG,
        "extension": [{"url": t.RULE_EXTENSION, "valueString": "methotrexate@1#neut-urgent"}],
        "status": status,
        "code": {
            "coding": [{"system": t.FLAG_CODE, "code": "out-of-range-urgent"}],
            "text": "URGENT: neutrophils 0.8",
        },
        "subject": {"reference": f"Patient/{PID}"},
        "period": period,
    }
    return _stamp(body, version, at)


def _communication(cid: str, sent: datetime, medium: str, outcome: str, note: str = "") -> Resource:
    body: Resource = {
        "resourceType": "Communication",
        "id": cid,
        "basedOn": [{"reference": f"Task/{TASK}"}],
        "status": "not-done",
        "statusReason": {"coding": [{"system": t.CONTACT_OUTCOME, "code": outcome}]},
        "medium": [{"coding": [{"system": t.CONTACT_MEDIUM, "code": medium}]}],
        "subject": {"reference": f"Patient/{PID}"},
        "sent": sent.isoformat(),
        "sender": {
            "display": "Tess Tech",
            "identifier": {"system": t.USER_IDENTIFIER, "value": "tess"},
        },
    }
    if note:
        body["note"] = [{"text": note}]
    return body


def _provenance(pid: str, recorded: datetime, version: str) -> Resource:
    return {
        "resourceType": "Provenance",
        "id": pid,
        "target": [
            {
                "reference": f"Task/{TASK}",
                "extension": [{"url": t.TARGET_VERSION_EXTENSION, "valueString": version}],
            },
            {"reference": f"Flag/{FLAG}"},
        ],
        "recorded": recorded.isoformat(),
        "activity": {
            "coding": [{"system": t.WORKFLOW_ACTION, "code": "signoff"}],
            "text": "Pharmacist sign-off: Continue",
        },
        "agent": [
            {
                "type": {"coding": [{"system": t.PROVENANCE_AGENT_TYPE, "code": "attester"}]},
                "role": [{"coding": [{"system": t.USER_ROLE, "code": "pharmacist"}]}],
                "who": {
                    "display": "Phil Pharmacist",
                    "identifier": {"system": t.USER_IDENTIFIER, "value": "phil"},
                },
            }
        ],
        "reason": [{"text": "methotrexate@1#bloods"}],
        "entity": [{"role": "source", "what": {"reference": "Observation/fbc-recent"}}],
    }


def _event(
    at: datetime, action: str, before: str, after: str, **detail: Any
) -> WorkflowEventRecord:
    return WorkflowEventRecord(
        id=int(at.timestamp()),
        at=at,
        task_id=TASK,
        patient=f"Patient/{PID}",
        practice="Organization/org1",
        actor="tess" if action == "contact" else "phil",
        role="technician" if action == "contact" else "pharmacist",
        action=action,
        stage_before=before,
        stage_after=after,
        detail=orjson.dumps(detail).decode(),
        written=f"Task/{TASK}/_history/2 Communication/c1",
    )


def _finding(
    identifier: str, closed_at: datetime | None, reason: str | None, opened_at: datetime = DAY1
) -> FindingRecord:
    return FindingRecord(
        identifier=identifier,
        patient=f"Patient/{PID}",
        kind=FindingKind.OVERDUE,
        drug_group="methotrexate",
        rule="methotrexate@2",
        check="bloods",
        severity=None,
        due_date=date(2026, 11, 20),
        practice="Organization/org1",
        resource_type=ResourceType.TASK,
        resource_id=identifier,
        opened_at=opened_at,
        opened_sweep_id=1,
        closed_at=closed_at,
        closed_sweep_id=None,
        close_reason=reason,
        status="requested",
        content_hash="x",
        version_id="1",
        reason="bloods overdue",
    )


def _record() -> list[Resource]:
    person = patient(
        PID,
        born="1958-03-04",
        name=[{"use": "official", "family": "Testpatient", "given": ["Ada"]}],
        identifier=[{"system": t.NHS_NUMBER, "value": "9990001112"}],
        generalPractitioner=[{"reference": "Organization/org1"}],
    )
    chain = repeats(
        "Methotrexate 2.5mg tablets",
        AS_OF - timedelta(days=400),
        AS_OF - timedelta(days=6),
        dosage="10mg once weekly",
    )
    return [
        person,
        *chain,
        observation(FBC, None, "1", AS_OF - timedelta(days=30), rid="fbc-recent"),
        observation(EGFR, 88, "mL/min/{1.73_m2}", AS_OF - timedelta(days=30), rid="egfr-recent"),
        observation(NEUT, 1.2, "furlongs", AS_OF - timedelta(days=2), rid="neut-odd"),
        observation(EGFR, 40, "mL/min/{1.73_m2}", AS_OF + timedelta(days=1), rid="egfr-later"),
    ]


def _source(**changes: Any) -> EvidenceSource:
    fields: dict[str, Any] = {
        "patient": _record()[0],
        "record": _record(),
        "tasks": [
            _task_history(),
            [_stamp({**_task(1, AFTER, "requested", "to-contact"), "id": LATE_TASK}, 1, AFTER)],
        ],
        "flags": [
            [
                _flag(2, DAY1 + timedelta(days=5), "inactive", end="2026-11-25"),
                _flag(1, DAY1 + timedelta(days=2), "active"),
            ]
        ],
        "communications": [
            _communication("c2", DAY1 + timedelta(days=1), "sms", "no-answer", note="<b>tried</b>"),
            _communication("c3", AFTER, "phone", "booked"),
        ],
        "provenance": [
            _provenance("prov-late", AFTER, "4"),
            _provenance("prov-1", DAY1 + timedelta(days=5), "3"),
        ],
        "events": [
            _event(
                DAY1 + timedelta(days=5),
                "signoff",
                "awaiting-pharmacist",
                "completed",
                decision="continue",
                note="all in range",
                new_dose="",
            ),
            _event(
                DAY1 + timedelta(days=1),
                "contact",
                "to-contact",
                "invited",
                medium="sms",
                outcome="no-answer",
            ),
            _event(AFTER, "contact", "invited", "reminded", medium="phone", outcome="booked"),
        ],
        "findings": [
            _finding("hrm-closed-before", DAY1 + timedelta(days=5), "result received"),
            _finding("hrm-closed-after", AFTER, "drug stopped"),
            _finding("hrm-opened-after", None, None, opened_at=AFTER),
        ],
    }
    fields.update(changes)
    return EvidenceSource(**fields)


def _pack(**changes: Any) -> EvidencePack:
    return build_pack(
        _source(**changes),
        rules(),
        as_of=AS_OF,
        generated_at=datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
    )


@pytest.fixture(scope="module")
def pack() -> EvidencePack:
    return _pack()


def test_the_patient_is_identified_from_the_patient_resource(pack: EvidencePack) -> None:
    who = pack.patient
    assert (who.reference, who.name, who.nhs_number) == (
        "Patient/p1",
        "Ada Testpatient",
        "9990001112",
    )
    assert (who.birth_date, who.practice) == (date(1958, 3, 4), "Organization/org1")


def test_the_schedule_names_the_pack_its_citations_the_therapy_and_the_tests(
    pack: EvidencePack,
) -> None:
    [applied] = pack.schedules
    assert (applied.drug_group, applied.rule, applied.current) == (
        "methotrexate",
        rules().get("methotrexate").ref,
        True,
    )
    assert applied.approved_on == "", "the shipped packs are not clinically signed off"
    assert applied.therapy_start == applied.phase_anchor == AS_OF - timedelta(days=400)
    assert (applied.ingredient, applied.matched_by) == ("methotrexate", MatchMethod.TEXT)
    assert applied.medication.startswith("MedicationRequest/")
    [schedule] = [s for s in applied.statements if s.kind == "schedule"]
    assert "every 2 weeks until 6 weeks" in schedule.text
    assert (schedule.verified, schedule.citation.url) == (True, SPS_MTX)
    unverified = [s for s in applied.statements if not s.verified]
    assert unverified
    assert all(s.citation.url.startswith("https://") for s in applied.statements)
    done = {d.test: (d.last_done, d.observation) for d in applied.tests}
    assert done["fbc"] == (AS_OF - timedelta(days=30), "Observation/fbc-recent"), (
        "a value whose unit cannot be read does not show the test done"
    )
    assert done["renal"] == (AS_OF - timedelta(days=30), "Observation/egfr-recent"), (
        "the result after as-of does not count"
    )


def test_results_are_those_on_or_before_as_of_with_their_normalisation(
    pack: EvidencePack,
) -> None:
    rows = [(r.observation, r.on, r.analyte, r.value, r.unit, r.normalised) for r in pack.results]
    assert rows == [
        (
            "Observation/egfr-recent",
            AS_OF - timedelta(days=30),
            "egfr",
            88,
            "mL/min/{1.73_m2}",
            True,
        ),
        ("Observation/fbc-recent", AS_OF - timedelta(days=30), "fbc_panel", None, None, False),
        ("Observation/neut-odd", AS_OF - timedelta(days=2), "neutrophils", 1.2, "furlongs", False),
    ]
    assert any(s.source == "Observation/neut-odd" and "furlongs" in s.reason for s in pack.skipped)


def test_tasks_carry_every_version_up_to_the_cut_off_oldest_first(pack: EvidencePack) -> None:
    [task] = pack.tasks
    assert task.reference == f"Task/{TASK}"
    assert [(v.version, v.status, v.stage) for v in task.versions] == [
        ("1", "requested", Stage.TO_CONTACT),
        ("2", "in-progress", Stage.INVITED),
        ("3", "in-progress", Stage.BOOKED),
    ]
    assert [v.notes for v in task.versions] == [
        [],
        ["Tess Tech: Contact by SMS."],
        ["Tess Tech: Booked."],
    ]
    assert (task.status, task.stage, task.rule, task.source) == (
        "in-progress",
        Stage.BOOKED,
        "methotrexate@1#bloods",
        SPS_MTX,
    ), "the Task as it stood at the cut-off, not as it is now"
    assert (task.period_start, task.period_end) == ("2026-11-06", "2026-11-20")
    assert task.versions[0].owner == "Practice monitoring technicians"
    assert task.versions[0].last_updated == DAY1


def test_flags_carry_their_status_period_and_versions(pack: EvidencePack) -> None:
    [flag] = pack.flags
    assert (flag.reference, flag.kind, flag.status, flag.severity) == (
        f"Flag/{FLAG}",
        "flag",
        "inactive",
        Severity.URGENT,
    )
    assert (flag.period_start, flag.period_end) == ("2026-11-22", "2026-11-25")
    assert [(v.version, v.status, v.stage) for v in flag.versions] == [
        ("1", "active", None),
        ("2", "inactive", None),
    ]


def test_contacts_decisions_and_ledger_rows_stop_at_the_cut_off(pack: EvidencePack) -> None:
    [contact] = pack.contacts
    assert (contact.medium, contact.outcome, contact.by, contact.task_ids) == (
        "sms",
        "no-answer",
        "Tess Tech",
        (TASK,),
    )
    [attestation] = pack.provenance
    assert attestation.recorded == DAY1 + timedelta(days=5)
    assert (attestation.activity, attestation.action, attestation.reason) == (
        "Pharmacist sign-off: Continue",
        "signoff",
        "methotrexate@1#bloods",
    )
    [agent] = attestation.agents
    assert (agent.name, agent.username, agent.role, agent.type) == (
        "Phil Pharmacist",
        "phil",
        "pharmacist",
        "attester",
    )
    assert attestation.targets == [f"Task/{TASK}/_history/3", f"Flag/{FLAG}"]
    assert attestation.sources == ["Observation/fbc-recent"]
    assert [(e.action, e.actor, e.stage_before, e.stage_after) for e in pack.events] == [
        ("contact", "tess", "to-contact", "invited"),
        ("signoff", "phil", "awaiting-pharmacist", "completed"),
    ]
    assert pack.events[1].detail["note"] == "all in range"
    assert pack.events[0].written == [f"Task/{TASK}/_history/2", "Communication/c1"]


def test_findings_show_their_state_at_the_cut_off(pack: EvidencePack) -> None:
    states = {f.identifier: (f.closed_at, f.close_reason) for f in pack.findings}
    assert states == {
        "hrm-closed-before": (DAY1 + timedelta(days=5), "result received"),
        "hrm-closed-after": (None, None),
    }


def test_a_later_as_of_keeps_everything(pack: EvidencePack) -> None:
    later = build_pack(
        _source(), rules(), as_of=AS_OF + timedelta(days=1), generated_at=pack.generated_at
    )
    assert [t.reference for t in later.tasks] == [f"Task/{TASK}", f"Task/{LATE_TASK}"]
    assert later.tasks[0].status == "completed"
    assert len(later.contacts) == len(later.provenance) == 2
    assert len(later.events) == 3
    assert {f.identifier for f in later.findings} == {
        "hrm-closed-before",
        "hrm-closed-after",
        "hrm-opened-after",
    }


def test_no_prescription_means_no_schedule() -> None:
    record = [r for r in _record() if r["resourceType"] != "MedicationRequest"]
    assert _pack(record=record).schedules == []


def test_text_has_the_sections_in_order_with_who_and_when(pack: EvidencePack) -> None:
    text = to_text(pack)
    headings = [
        "1. MONITORING SCHEDULE THAT APPLIED",
        "2. TEST RESULTS CONSIDERED",
        "3. TASKS AND FLAGS THE SERVICE WROTE",
        "4. CONTACT ATTEMPTS",
        "5. DECISIONS AND SIGN-OFFS",
    ]
    positions = [text.index(h) for h in headings]
    assert positions == sorted(positions)
    assert "Ada Testpatient" in text
    assert "9990001112" in text
    assert "NOT CLINICALLY SIGNED OFF" in text
    assert f"<{SPS_MTX}>" in text
    assert "[UNVERIFIED]" in text
    assert "NOT normalised" in text
    assert "2026-11-25 09:00 GMT  Pharmacist sign-off: Continue" in text
    assert "by: Phil Pharmacist (phil), pharmacist, attester" in text
    assert "- v2  2026-11-21 09:00 GMT  in-progress  stage invited (invited)" in text


def test_json_is_stable_in_section_order_with_sorted_detail_keys(pack: EvidencePack) -> None:
    source = _source()
    first = to_json(build_pack(source, rules(), as_of=AS_OF, generated_at=pack.generated_at))
    again = to_json(build_pack(source, rules(), as_of=AS_OF, generated_at=pack.generated_at))
    assert first == again
    document = orjson.loads(first)
    assert list(document) == [
        "patient",
        "as_of",
        "generated_at",
        "schedules",
        "results",
        "skipped",
        "tasks",
        "flags",
        "contacts",
        "provenance",
        "events",
        "findings",
    ]
    assert list(document["events"][1]["detail"]) == ["decision", "new_dose", "note"]
    assert document["tasks"][0]["versions"][1]["stage"] == "invited"
    assert document["schedules"][0]["statements"][0]["citation"]["url"] == SPS_MTX
    assert document["provenance"][0]["recorded"] == "2026-11-25T09:00:00+00:00"


class _Page(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.lang = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "html":
            self.lang = dict(attrs).get("lang") or ""

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_escaped_printable_and_structured(pack: EvidencePack) -> None:
    page = to_html(pack)
    assert "<b>tried</b>" not in page
    assert "&lt;b&gt;tried&lt;/b&gt;" in page
    assert "@media print" in page
    parsed = _Page()
    parsed.feed(page)
    assert parsed.lang == "en-GB"
    assert parsed.tags.count("h1") == 1
    assert parsed.tags.count("h2") == 5
    assert parsed.tags.count("caption") == parsed.tags.count("table")
    text = " ".join(parsed.text)
    for words in ("Ada Testpatient", "Phil Pharmacist", "no: never compared", "NOT CLINICALLY"):
        assert words in text


def test_a_javascript_url_from_a_task_extension_is_shown_not_linked() -> None:
    """Issue 11: a ``javascript:`` URL in a Task's source extension became a link."""
    evil = "javascript:alert(document.cookie)"
    extension = [
        {"url": t.RULE_EXTENSION, "valueString": "methotrexate@1#bloods"},
        {"url": t.SOURCE_EXTENSION, "valueUri": evil},
    ]
    tasks = [[_task(1, DAY1, "requested", "to-contact", extension=extension)]]
    page = to_html(_pack(tasks=tasks))
    assert evil in page, "the value is still shown, as text"
    assert f'href="{evil}"' not in page
    assert "javascript:" not in "".join(re.findall(r'href="([^"]*)"', page))
    assert f'href="{SPS_MTX}"' in to_html(_pack()), "an https source is still a link"
