"""A stand-in for the workflow service, so the pages render and post without a FHIR server."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pytest

from hrm_fhir.domain import Severity
from hrm_fhir.errors import WorkflowError
from hrm_fhir.programme import ChaseStep, Priority, Stage
from hrm_fhir.web.pages import context, views
from hrm_fhir.workflow import service

AS_OF = date(2026, 11, 27)
MTX = "Patient/p-mtx"
LITH = "Patient/p-lith"


def task_summary(task_id: str = "task-1", **changes: Any) -> service.TaskSummary:
    values: dict[str, Any] = {
        "task_id": task_id,
        "version": "3",
        "code": "monitoring-due",
        "stage": Stage.TO_CONTACT,
        "status": "requested",
        "drug_group": "methotrexate",
        "rule": "methotrexate@1#established",
        "tests": ("fbc", "lft"),
        "test_titles": ("Full blood count", "Liver function tests"),
        "due_date": date(2026, 10, 22),
        "days_overdue": 36,
        "severely_overdue": True,
        "description": "Methotrexate monitoring overdue since 2026-10-22",
        "source": "https://www.sps.nhs.uk/monitorings/methotrexate-monitoring/",
        "attempts": 0,
        "last_attempt": None,
        "chase": ChaseStep.INVITE,
        "chase_due_on": AS_OF,
        "chase_due": True,
        "booked_for": None,
    }
    values.update(changes)
    return service.TaskSummary(**values)


def worklist_entry(**changes: Any) -> service.WorklistEntry:
    task = task_summary()
    values: dict[str, Any] = {
        "patient": MTX,
        "practice": "Organization/org-1",
        "tasks": [task],
        "tests": list(task.tests),
        "test_titles": list(task.test_titles),
        "drug_groups": ["methotrexate"],
        "due_date": task.due_date,
        "days_overdue": 36,
        "stage": Stage.TO_CONTACT,
        "chase_due": True,
        "next_chase": ChaseStep.INVITE,
        "contacts": [],
        "priority": Priority.SEVERELY_OVERDUE,
        "out_of_range": False,
    }
    values.update(changes)
    return service.WorklistEntry(**values)


def details(name: str = "Mary Ashworth", nhs: str = "9990000018") -> service.PatientDetails:
    return service.PatientDetails(
        name=name, nhs_number=nhs, phone="07700 900001", preferred_contact="phone"
    )


def review_item(kind: str = "flag", task_id: str = "flag-1", **changes: Any) -> service.ReviewItem:
    values: dict[str, Any] = {
        "kind": kind,
        "task_id": task_id,
        "version": "1",
        "patient": LITH,
        "practice": "Organization/org-1",
        "stage": Stage.NON_ENGAGEMENT if kind == "non-engagement" else Stage.AWAITING_PHARMACIST,
        "drug_group": "lithium",
        "medication": None,
        "rule": "lithium@1#lithium-toxic",
        "description": "[URGENT] Serum lithium 1.6 mmol/L",
        "severity": Severity.URGENT,
        "source": None,
        "since": date(2026, 11, 25),
        "flags": [],
        "results": ["Observation/o1"],
        "trend": [
            service.Trend(
                "lithium",
                "Serum lithium",
                [service.ResultPoint("Observation/o1", date(2026, 11, 25), 1.6, "mmol/L")],
            )
        ],
        "thresholds": [
            service.ThresholdInfo("lithium", ">= 1.5 mmol/L", Severity.URGENT, "stop lithium")
        ],
    }
    values.update(changes)
    return service.ReviewItem(**values)


def card(**changes: Any) -> service.PatientCard:
    values: dict[str, Any] = {
        "patient": MTX,
        "as_of": AS_OF,
        "practice": "Organization/org-1",
        "details": details(),
        "tests_due": [task_summary()],
        "contacts": [
            service.HistoryItem(
                at=datetime(2026, 11, 20, 10, tzinfo=UTC),
                action="contact",
                summary="phone no-answer",
                by="Test technician",
                task_ids=("task-1",),
                medium="phone",
                outcome="no-answer",
                status="not-done",
                note="left a voicemail",
            )
        ],
        "results": [],
        "findings": [
            service.OpenItem(
                reference="Task/task-1",
                version="3",
                kind="monitoring-due",
                description="Methotrexate monitoring overdue",
                rule="methotrexate@1#established",
                source=None,
                status="requested",
                stage=Stage.TO_CONTACT,
                severity=None,
            )
        ],
    }
    values.update(changes)
    return service.PatientCard(**values)


@dataclass
class FakeService:
    """Records the calls the pages make; ``fail`` makes the next action raise."""

    entries: list[service.WorklistEntry] = field(default_factory=lambda: [worklist_entry()])
    queue: list[service.ReviewItem] = field(default_factory=lambda: [review_item()])
    card: service.PatientCard = field(default_factory=card)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail: WorkflowError | None = None

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(service, "worklist", self.worklist)
        monkeypatch.setattr(service, "patient_card", self.patient_card)
        monkeypatch.setattr(service, "review_queue", self.review_queue)
        for name in (
            "record_contact",
            "record_booking",
            "record_sample",
            "route_non_engagement",
            "sign_off",
            "decide_non_engagement",
            "acknowledge_escalation",
            "record_monitored_elsewhere",
            "record_monitored_by_practice",
        ):
            monkeypatch.setattr(service, name, self._action(name))
        names = {MTX: details(), LITH: details("Oliver Bennett", "9990000026")}
        monkeypatch.setattr(views, "patient_details", lambda patients: names)
        monkeypatch.setattr(context, "patient_details", lambda patients: names)

    def worklist(self, gateway: object, session: object, **kwargs: Any) -> list[Any]:
        self.calls.append(("worklist", kwargs))
        return self.entries

    def patient_card(
        self, gateway: object, session: object, patient: str, **kwargs: Any
    ) -> service.PatientCard:
        self.calls.append(("patient_card", {"patient": patient, **kwargs}))
        return self.card

    def review_queue(self, gateway: object, session: object, **kwargs: Any) -> list[Any]:
        self.calls.append(("review_queue", kwargs))
        return self.queue

    def _action(self, name: str) -> Any:
        def act(
            gateway: object, session: object, actor: object, task_id: str, **kwargs: Any
        ) -> service.ActionResult:
            self.calls.append((name, {"actor": actor, "task_id": task_id, **kwargs}))
            if self.fail is not None:
                raise self.fail
            return service.ActionResult(task_id, "4", Stage.INVITED, [f"Task/{task_id}"])

        return act

    def actions(self) -> list[tuple[str, dict[str, Any]]]:
        return [
            call
            for call in self.calls
            if call[0] not in ("worklist", "patient_card", "review_queue")
        ]
