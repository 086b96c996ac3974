"""The programme workflow end to end against a real HAPI FHIR server: the technician's chase and
booking, the sweep closing the loop, the pharmacist's sign-off, non-engagement, GP escalation and
acknowledgement; and every refusal leaving the server and the ledger as they were."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
from sqlalchemy import select

from hrm_fhir.adapters.store.records import WorkflowEventRecord
from hrm_fhir.errors import (
    FHIRTemporaryError,
    WorkflowConflictError,
    WorkflowError,
    WorkflowNotFoundError,
    WorkflowPermissionError,
)
from hrm_fhir.programme import (
    Actor,
    ChaseStep,
    ContactOutcome,
    Decision,
    Medium,
    Priority,
    Role,
    Stage,
)
from hrm_fhir.workflow import service
from tests.databases import database_for
from tests.integration.harness import Harness
from tests.integration.practice import AS_OF, LITHIUM, Resource, starter

pytestmark = pytest.mark.hapi
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
T = TypeVar("T")


class Flow(Harness):
    """A Harness that also acts through the workflow service."""

    def actor(self, role: Role, practice: str | None = "") -> Actor:
        own = self.practice.org if practice == "" else practice
        return Actor(f"{role.value}-1", role, f"{role.value.title()} One", own)

    def call(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """Run a service function in a committed unit of work, as the API views do."""
        with self.sessions.begin() as session:
            return fn(self.gateway, session, *args, **kw)

    def monitoring_task(self, name: str) -> Resource:
        [task] = [
            t
            for t in self.ours("Task", name)
            if t["code"]["coding"][0]["code"] == "monitoring-due" and t["status"] != "cancelled"
        ]
        return task

    def read(self, kind: str, rid: str) -> Resource:
        found = self.gateway.read(kind, rid)
        assert found is not None
        return found

    def events(self) -> list[WorkflowEventRecord]:
        with self.sessions() as session:
            return list(
                session.scalars(select(WorkflowEventRecord).order_by(WorkflowEventRecord.id))
            )

    def search(self, kind: str, params: dict[str, str]) -> list[Resource]:
        return self.gateway.search(kind, params).resources

    def errors(self, resource: Resource) -> list[Any]:
        outcome = self.gateway.validate(resource)
        return [i for i in outcome.get("issue", []) if i["severity"] in ("error", "fatal")]


@pytest.fixture
def flow(
    fhir_base: str, run_id: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Flow]:
    h = Flow(fhir_base, run_id, database_for(request, tmp_path))
    yield h
    h.close()


def _stage(task: Resource) -> str:
    return str(task["businessStatus"]["coding"][0]["code"])


@pytest.mark.usefixtures("database_url")
def test_contacts_booking_sample_result_and_sign_off_close_the_loop(flow: Flow) -> None:
    p = flow.practice
    flow.upload(starter(p))
    flow.sweep(as_of=AS_OF)
    entries = flow.call(service.worklist, as_of=AS_OF, practice=p.org)
    [entry] = [e for e in entries if e.patient == f"Patient/{p.pid('mtx')}"]
    assert (entry.stage, entry.chase_due, entry.next_chase) == (
        Stage.TO_CONTACT,
        True,
        ChaseStep.INVITE,
    )
    assert set(entry.tests) == {"fbc", "lft", "renal"}
    assert entry.days_overdue > 0
    assert entry.drug_groups == ["methotrexate"]
    [summary] = entry.tasks
    task_id = summary.task_id

    tech = flow.actor(Role.TECHNICIAN)
    first = flow.call(
        service.record_contact,
        tech,
        task_id,
        version=summary.version,
        medium=Medium.SMS,
        outcome=ContactOutcome.NO_ANSWER,
        now=NOW,
    )
    assert first.stage is Stage.INVITED
    later = NOW + timedelta(days=14)
    second = flow.call(
        service.record_contact,
        tech,
        task_id,
        version=first.version,
        medium=Medium.PHONE,
        outcome=ContactOutcome.NUMBER_UNOBTAINABLE,
        note="landline dead",
        now=later,
    )
    assert second.stage is Stage.REMINDED
    booked = flow.call(
        service.record_booking,
        tech,
        task_id,
        version=second.version,
        booked_for=AS_OF + timedelta(days=17),
        now=later,
    )
    assert booked.stage is Stage.BOOKED
    task = flow.read("Task", task_id)
    assert (task["status"], _stage(task)) == ("in-progress", "booked")
    assert task["meta"]["versionId"] == booked.version
    assert [o["valueDate"] for o in task["output"]] == [(AS_OF + timedelta(days=17)).isoformat()]
    comms = flow.search("Communication", {"based-on": f"Task/{task_id}"})
    assert sorted(c["status"] for c in comms) == ["not-done", "not-done"]
    assert {c["statusReason"]["coding"][0]["code"] for c in comms} == {
        "no-answer",
        "number-unobtainable",
    }
    assert all(c["subject"]["reference"] == f"Patient/{p.pid('mtx')}" for c in comms)
    for resource in (*comms, task):
        assert flow.errors(resource) == [], resource["resourceType"]

    [entry] = [
        e
        for e in flow.call(service.worklist, as_of=AS_OF + timedelta(days=15), practice=p.org)
        if e.patient.endswith("-mtx")
    ]
    assert entry.stage is Stage.BOOKED
    assert (entry.chase_due, entry.tasks[0].booked_for) == (False, AS_OF + timedelta(days=17))
    assert [c.action for c in entry.contacts] == ["contact", "contact", "booking"]
    assert [c.outcome for c in entry.contacts[:2]] == ["no-answer", "number-unobtainable"]

    sampled = flow.call(
        service.record_sample,
        tech,
        task_id,
        version=booked.version,
        taken_on=AS_OF + timedelta(days=17),
        now=NOW + timedelta(days=17),
    )
    assert sampled.stage is Stage.SAMPLE_TAKEN
    fresh = p.bloods("mtx", AS_OF + timedelta(days=17))
    flow.upload(fresh)
    flow.sweep(as_of=AS_OF + timedelta(days=18))
    task = flow.read("Task", task_id)
    assert (task["status"], _stage(task)) == ("in-progress", "awaiting-pharmacist")
    results = {o["valueReference"]["reference"] for o in task["output"] if "valueReference" in o}
    assert results == {f"Observation/{r['id']}" for r in fresh}
    assert {o["valueDate"] for o in task["output"] if "valueDate" in o} == {
        (AS_OF + timedelta(days=17)).isoformat()
    }

    queue = flow.call(service.review_queue, practice=p.org)
    [item] = [i for i in queue if i.task_id == task_id]
    assert (item.kind, item.stage, item.drug_group) == (
        "result",
        Stage.AWAITING_PHARMACIST,
        "methotrexate",
    )
    assert item.rule.startswith("methotrexate@")
    assert item.source
    assert item.source.startswith("http")
    assert {tr.analyte for tr in item.trend} >= {"egfr"}
    assert [pt.value for tr in item.trend if tr.analyte == "egfr" for pt in tr.points] == [88, 88]

    with pytest.raises(WorkflowPermissionError):
        flow.call(
            service.sign_off,
            tech,
            task_id,
            version=task["meta"]["versionId"],
            decision=Decision.CONTINUE,
        )
    pharmacist = flow.actor(Role.PHARMACIST)
    signed = flow.call(
        service.sign_off,
        pharmacist,
        task_id,
        version=task["meta"]["versionId"],
        decision=Decision.CONTINUE,
        note="all in range",
        now=NOW + timedelta(days=19),
    )
    assert signed.stage is Stage.COMPLETED
    task = flow.read("Task", task_id)
    assert (task["status"], _stage(task)) == ("completed", "completed")
    assert task["executionPeriod"] == {
        "start": "2026-11-27T10:00:00Z",
        "end": "2026-12-16T10:00:00Z",
    }
    [prov] = flow.search("Provenance", {"target": f"Task/{task_id}", "agent-type": "attester"})
    assert prov["agent"][0]["who"]["identifier"]["value"] == pharmacist.username
    assert prov["target"][0]["reference"].startswith(f"Task/{task_id}")
    assert prov["target"][0]["extension"][0]["valueString"] == task["meta"]["versionId"]
    assert flow.errors(prov) == []
    assert f"Provenance/{prov['id']}/_history/1" in signed.written
    assert len(flow.search("Provenance", {"target": f"Task/{task_id}"})) == 5

    events = flow.events()
    assert [(e.action, e.stage_before, e.stage_after, e.role) for e in events] == [
        ("contact", "to-contact", "invited", "technician"),
        ("contact", "invited", "reminded", "technician"),
        ("booking", "reminded", "booked", "technician"),
        ("sample", "booked", "sample-taken", "technician"),
        ("signoff", "awaiting-pharmacist", "completed", "pharmacist"),
    ]
    assert {e.task_id for e in events} == {task_id}
    assert all(e.practice == f"Organization/{p.org}" for e in events)
    assert orjson.loads(events[1].detail)["note"] == "landline dead"
    assert f"Task/{task_id}/_history/{signed.version}" in events[-1].written

    flow.sweep(as_of=AS_OF + timedelta(days=19), full=True)
    again = flow.read("Task", task_id)
    assert again["status"] == "completed"
    assert again["meta"]["versionId"] == task["meta"]["versionId"], (
        "the sweep left the sign-off alone"
    )


def test_non_engagement_is_routed_after_the_second_reminder_and_decided(flow: Flow) -> None:
    p = flow.practice
    flow.upload(starter(p))
    flow.sweep()
    task = flow.monitoring_task("mtx")
    tech = flow.actor(Role.TECHNICIAN)
    version = task["meta"]["versionId"]
    for n, medium in enumerate((Medium.SMS, Medium.NHS_APP, Medium.LETTER)):
        done = flow.call(
            service.record_contact,
            tech,
            task["id"],
            version=version,
            medium=medium,
            outcome=ContactOutcome.MESSAGE_SENT
            if medium is Medium.LETTER
            else ContactOutcome.NO_ANSWER,
            now=NOW + timedelta(days=14 * n),
        )
        version = done.version
    assert done.stage is Stage.REMINDED_2
    [entry] = [
        e
        for e in flow.call(service.worklist, as_of=AS_OF + timedelta(days=42), practice=p.org)
        if e.patient.endswith("-mtx")
    ]
    assert (entry.next_chase, entry.chase_due) == (ChaseStep.ROUTE, True)
    assert entry.tasks[0].attempts == 3

    with pytest.raises(WorkflowError, match="due on 2027-01-08"):
        flow.call(
            service.route_non_engagement,
            tech,
            task["id"],
            version=version,
            now=NOW + timedelta(days=30),
        )
    routed = flow.call(
        service.route_non_engagement,
        tech,
        task["id"],
        version=version,
        now=NOW + timedelta(days=42),
    )
    assert routed.stage is Stage.NON_ENGAGEMENT
    task = flow.read("Task", task["id"])
    assert task["owner"] == {"display": "Practice pharmacist"}
    [item] = [i for i in flow.call(service.review_queue, practice=p.org) if i.task_id == task["id"]]
    assert (item.kind, item.version) == ("non-engagement", routed.version)

    pharmacist = flow.actor(Role.PHARMACIST)
    with pytest.raises(WorkflowError, match="non-engagement decision is one of"):
        flow.call(
            service.decide_non_engagement,
            pharmacist,
            task["id"],
            version=routed.version,
            decision=Decision.CONTINUE,
        )
    decided = flow.call(
        service.decide_non_engagement,
        pharmacist,
        task["id"],
        version=routed.version,
        decision=Decision.CONTINUE_WITH_CAVEATS,
        note="stable for years; 28-day supplies",
        now=NOW + timedelta(days=43),
    )
    assert decided.stage is Stage.COMPLETED
    task = flow.read("Task", task["id"])
    assert (task["status"], _stage(task)) == ("failed", "completed")
    assert task["statusReason"]["text"] == "non-engagement: continue with caveats"
    assert (
        task["output"][-1]["valueCodeableConcept"]["coding"][0]["code"] == "continue-with-caveats"
    )
    provs = flow.search("Provenance", {"target": f"Task/{task['id']}", "agent-type": "attester"})
    assert [p_["activity"]["coding"][1]["code"] for p_ in provs] == ["decision"]
    assert [(e.action, e.stage_after) for e in flow.events()] == [
        ("contact", "invited"),
        ("contact", "reminded"),
        ("contact", "reminded-2"),
        ("route", "non-engagement"),
        ("decision", "completed"),
    ]
    assert not [
        e
        for e in flow.call(service.worklist, as_of=AS_OF + timedelta(days=43), practice=p.org)
        if e.patient.endswith("-mtx")
    ]


_OTHER_TESTS = (
    ("1011481000000105", 80, "mL/min/{1.73_m2}"),  # eGFR
    ("1022791000000101", 2.1, "m[IU]/L"),  # TSH
    ("1000691000000101", 2.4, "mmol/L"),  # calcium
    ("27113001", 71, "kg"),  # weight
)
"""With the lithium level, every other test the lithium schedule asks for: the Task is done."""


def _lithium_patient(flow: Flow) -> list[Resource]:
    p = flow.practice
    long_ago = AS_OF - timedelta(days=700)
    return [
        p.organization(),
        p.patient("li", born="1970-05-05"),
        *p.repeats(
            "li",
            "Lithium carbonate 400mg MR tablets",
            long_ago,
            AS_OF - timedelta(days=6),
            dosage="800mg at night",
        ),
        p.result("li", LITHIUM, 0.6, "mmol/L", AS_OF - timedelta(days=200)),
        *p.bloods("li", AS_OF - timedelta(days=200)),
    ]


def test_an_out_of_range_result_is_escalated_to_the_gp_and_acknowledged(flow: Flow) -> None:
    p = flow.practice
    flow.upload(_lithium_patient(flow))
    flow.sweep(as_of=AS_OF)
    task_id = flow.monitoring_task("li")["id"]
    taken = AS_OF + timedelta(days=2)
    toxic = p.result("li", LITHIUM, 1.6, "mmol/L", taken)
    others = [p.result("li", code, value, unit, taken) for code, value, unit in _OTHER_TESTS]
    flow.upload([toxic, *others])
    flow.sweep(as_of=AS_OF + timedelta(days=3))
    task = flow.read("Task", task_id)
    assert _stage(task) == "awaiting-pharmacist"
    [flag] = flow.ours("Flag", "li")
    assert flag["status"] == "active"

    queue = flow.call(service.review_queue, practice=p.org)
    [item] = [i for i in queue if i.patient.endswith("-li")]
    assert (item.kind, item.task_id, item.severity) == ("result", task_id, "urgent")
    assert [f.flag_id for f in item.flags] == [flag["id"]]
    [trend] = [tr for tr in item.trend if tr.analyte == "lithium"]
    assert [pt.value for pt in trend.points] == [0.6, 1.6]
    assert any(th.rule == ">= 1.5 mmol/L" and th.severity == "urgent" for th in item.thresholds)

    pharmacist = flow.actor(Role.PHARMACIST)
    escalated = flow.call(
        service.sign_off,
        pharmacist,
        task_id,
        version=task["meta"]["versionId"],
        decision=Decision.ESCALATED_GP,
        note="toxic level: please see today",
        now=NOW + timedelta(days=3),
    )
    assert escalated.stage is Stage.ESCALATED_GP
    task = flow.read("Task", task_id)
    assert (task["status"], _stage(task), task["owner"]["display"]) == (
        "in-progress",
        "escalated-gp",
        "Practice GP team",
    )
    [gp_task] = flow.search("Task", {"part-of": f"Task/{task_id}"})
    assert (gp_task["status"], gp_task["priority"], gp_task["code"]["coding"][0]["code"]) == (
        "requested",
        "stat",
        "gp-escalation",
    )
    assert gp_task["focus"] == {"reference": f"Task/{task_id}"}
    assert {"reference": f"Flag/{flag['id']}"} in [
        i.get("valueReference") for i in gp_task["input"]
    ]
    assert flow.read("Flag", flag["id"])["status"] == "active", "the Flag waits for the GP"
    assert flow.errors(gp_task) == []
    [gp_item] = [
        i for i in flow.call(service.review_queue, practice=p.org) if i.patient.endswith("-li")
    ]
    assert (gp_item.kind, gp_item.task_id, gp_item.severity) == (
        "gp-escalation",
        gp_task["id"],
        "urgent",
    )

    with pytest.raises(WorkflowPermissionError):
        flow.call(
            service.acknowledge_escalation,
            pharmacist,
            gp_task["id"],
            version=gp_task["meta"]["versionId"],
        )
    gp = flow.actor(Role.GP)
    acked = flow.call(
        service.acknowledge_escalation,
        gp,
        gp_task["id"],
        version=gp_task["meta"]["versionId"],
        note="seen; lithium stopped",
        now=NOW + timedelta(days=3, hours=3),
    )
    assert acked.stage is Stage.COMPLETED
    gp_task = flow.read("Task", gp_task["id"])
    assert gp_task["status"] == "completed"
    [waited] = [o for o in gp_task["output"] if o["type"]["coding"][0]["code"] == "time-to-action"]
    # Result taken at 09:30 on AS_OF + 2; acknowledged at 13:00 the day after.
    assert waited["valueDuration"]["value"] == 27.5
    assert flow.read("Task", task_id)["status"] == "completed"
    flag = flow.read("Flag", flag["id"])
    assert (flag["status"], flag["period"]["end"]) == ("inactive", "2026-11-30")
    provs = flow.search("Provenance", {"target": f"Task/{gp_task['id']}"})
    assert sorted(x["activity"]["coding"][1]["code"] for x in provs) == ["acknowledge", "escalate"]
    [prov] = [x for x in provs if x["activity"]["coding"][1]["code"] == "acknowledge"]
    assert prov["agent"][0]["type"]["coding"][0]["code"] == "attester"
    assert prov["agent"][0]["role"][0]["coding"][0]["code"] == "gp"
    assert {t_["reference"].partition("/_history/")[0] for t_ in prov["target"]} == {
        f"Task/{gp_task['id']}",
        f"Task/{task_id}",
        f"Flag/{flag['id']}",
    }
    events = flow.events()
    assert [(e.action, e.role) for e in events] == [
        ("escalate", "pharmacist"),
        ("acknowledge", "gp"),
    ]
    assert orjson.loads(events[-1].detail)["result_to_action_hours"] == 27.5
    assert orjson.loads(events[0].detail)["gp_task"] == f"Task/{gp_task['id']}"

    flow.sweep(as_of=AS_OF + timedelta(days=3), full=True)
    assert flow.read("Flag", flag["id"])["status"] == "inactive", "the sweep does not reopen it"


def test_a_flag_no_task_covers_is_signed_off_on_its_own(flow: Flow) -> None:
    p = flow.practice
    flow.upload(starter(p))
    flow.sweep()
    [flag] = flow.ours("Flag", "lith")
    queue = flow.call(service.review_queue, practice=p.org)
    assert (queue[0].kind, queue[0].task_id) == ("flag", flag["id"]), "urgent Flags first"
    assert queue[0].severity == "urgent"
    pharmacist = flow.actor(Role.PHARMACIST)
    done = flow.call(
        service.sign_off,
        pharmacist,
        flag["id"],
        version=flag["meta"]["versionId"],
        decision=Decision.DOSE_WITHHELD,
        note="omit tonight, repeat level",
        now=NOW,
    )
    assert done.stage is Stage.COMPLETED
    assert flow.read("Flag", flag["id"])["status"] == "inactive"
    assert [
        i for i in flow.call(service.review_queue, practice=p.org) if i.task_id == flag["id"]
    ] == []
    [event] = flow.events()
    assert (event.action, event.task_id, event.stage_after) == ("signoff", flag["id"], "completed")


def test_refusals_write_nothing(flow: Flow) -> None:
    p = flow.practice
    flow.upload(starter(p))
    flow.sweep()
    task = flow.monitoring_task("mtx")
    version = task["meta"]["versionId"]
    tech = flow.actor(Role.TECHNICIAN)
    contact = {"medium": Medium.PHONE, "outcome": ContactOutcome.NO_ANSWER, "now": NOW}

    def unchanged() -> None:
        assert flow.read("Task", task["id"])["meta"]["versionId"] == version
        assert flow.search("Communication", {"based-on": f"Task/{task['id']}"}) == []
        assert flow.search("Provenance", {"target": f"Task/{task['id']}"}) == []
        assert flow.events() == []

    with pytest.raises(WorkflowPermissionError, match="a technician may not sign off"):
        flow.call(service.sign_off, tech, task["id"], version=version, decision=Decision.CONTINUE)
    with pytest.raises(WorkflowNotFoundError, match=f"no Task {task['id']}"):
        flow.call(
            service.record_contact,
            flow.actor(Role.TECHNICIAN, "another-org"),
            task["id"],
            version=version,
            **contact,
        )
    with pytest.raises(WorkflowConflictError, match="reload"):
        flow.call(service.record_contact, tech, task["id"], version="99", **contact)
    with pytest.raises(WorkflowNotFoundError):
        flow.call(service.record_contact, tech, f"{p.run}-nothing", version=version, **contact)
    with pytest.raises(WorkflowError, match="stage to-contact"):
        flow.call(
            service.sign_off,
            flow.actor(Role.PHARMACIST),
            task["id"],
            version=version,
            decision=Decision.CONTINUE,
        )
    with pytest.raises(WorkflowError, match="in the past"):
        flow.call(
            service.record_booking,
            tech,
            task["id"],
            version=version,
            booked_for=date(2026, 1, 1),
            now=NOW,
        )
    unchanged()

    real_read = flow.gateway.read

    def read_then_someone_edits(kind: str, rid: str) -> Resource | None:
        found = real_read(kind, rid)
        if kind == "Task" and rid == task["id"] and found and found["meta"]["versionId"] == version:
            edited = dict(task, note=[{"text": "Called by the practice nurse"}])
            edited.pop("meta")
            flow.gateway.update(edited, if_match=version)
        return found

    flow.gateway.read = read_then_someone_edits  # type: ignore[method-assign]
    with pytest.raises(WorkflowConflictError, match="has changed since it was loaded"):
        flow.call(service.record_contact, tech, task["id"], version=version, **contact)
    flow.gateway.read = real_read  # type: ignore[method-assign]
    after = flow.read("Task", task["id"])
    assert after["note"] == [{"text": "Called by the practice nurse"}], "the other edit is kept"
    assert _stage(after) == "to-contact"
    assert flow.search("Communication", {"based-on": f"Task/{task['id']}"}) == []
    assert flow.events() == []


def test_a_write_whose_answer_was_lost_is_not_repeated(flow: Flow) -> None:
    p = flow.practice
    flow.upload(starter(p))
    flow.sweep()
    task = flow.monitoring_task("mtx")
    real_transaction = flow.gateway.transaction
    calls = {"n": 0}

    def applied_then_timed_out(bundle: Resource) -> Resource:
        calls["n"] += 1
        reply = real_transaction(bundle)
        if calls["n"] == 1:
            raise FHIRTemporaryError("transaction Bundle: ReadTimeout")
        return reply

    flow.gateway.transaction = applied_then_timed_out  # type: ignore[method-assign]
    result = flow.call(
        service.record_contact,
        flow.actor(Role.TECHNICIAN),
        task["id"],
        version=task["meta"]["versionId"],
        medium=Medium.SMS,
        outcome=ContactOutcome.BOOKED,
        now=NOW,
    )
    assert calls["n"] == 1
    assert (result.stage, result.version) == (Stage.BOOKED, str(int(task["meta"]["versionId"]) + 1))
    assert len(flow.search("Communication", {"based-on": f"Task/{task['id']}"})) == 1
    [event] = flow.events()
    assert orjson.loads(event.detail) == {"recovered": True}


def test_the_worklist_puts_out_of_range_follow_ups_first_and_the_card_shows_sources(
    flow: Flow,
) -> None:
    p = flow.practice
    flow.upload(starter(p))
    flow.sweep()
    entries = flow.call(service.worklist, as_of=AS_OF, practice=p.org)
    assert entries[0].patient.endswith("-lith")
    assert entries[0].priority is Priority.OUT_OF_RANGE
    assert {e.patient.rsplit("-", 1)[1] for e in entries} >= {"lith", "mtx"}
    assert flow.call(service.worklist, as_of=AS_OF, practice=p.org, drug_group="lithium")[
        0
    ].drug_groups == ["lithium"]
    assert flow.call(service.worklist, as_of=AS_OF, practice=p.org, stage=Stage.BOOKED) == []
    card = flow.call(
        service.patient_card, f"Patient/{p.pid('lith')}", as_of=AS_OF, actor=flow.actor(Role.GP)
    )
    assert card.practice == f"Organization/{p.org}"
    assert next(f.kind for f in card.findings) == "flag"
    assert card.findings[0].severity == "urgent"
    assert all(f.source and f.rule for f in card.findings)
    assert [pt.value for tr in card.results if tr.analyte == "lithium" for pt in tr.points] == [1.6]
    assert card.tests_due
    assert card.tests_due[0].stage is Stage.TO_CONTACT
    with pytest.raises(WorkflowNotFoundError, match="no such Patient"):
        flow.call(
            service.patient_card,
            p.pid("lith"),
            as_of=AS_OF,
            actor=flow.actor(Role.GP, "another-org"),
        )
    with pytest.raises(WorkflowNotFoundError):
        flow.call(service.patient_card, p.pid("nobody"), as_of=AS_OF)


def test_the_weekly_sweep_routes_an_exhausted_chase_to_the_pharmacist(flow: Flow) -> None:
    flow.upload(starter(flow.practice))
    flow.sweep(as_of=AS_OF)
    task = flow.monitoring_task("mtx")
    version = task["meta"]["versionId"]
    for days_ago in (45, 31, 17):
        result = flow.call(
            service.record_contact,
            flow.actor(Role.TECHNICIAN),
            task["id"],
            version=version,
            medium=Medium.PHONE,
            outcome=ContactOutcome.NO_ANSWER,
            now=NOW - timedelta(days=days_ago),
        )
        version = result.version
    assert result.stage is Stage.REMINDED_2
    swept = flow.sweep(as_of=AS_OF)
    assert swept.routed == 1
    assert _stage(flow.read("Task", task["id"])) == "non-engagement"
    [event] = [e for e in flow.events() if e.action == "route"]
    assert (event.actor, event.task_id) == ("hrm-fhir", task["id"])
    assert flow.sweep(as_of=AS_OF).routed == 0, "routed once"
