"""The month's workload and responsiveness: contact attempts, completed tests, non-responders,
sign-offs, and out-of-range results by severity with the time from result to action."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from hrm_fhir.audit.figures import Lists, Month, local_day, median_of
from hrm_fhir.audit.model import EventFact, ListRow, SeverityRow, TaskFact, Workload
from hrm_fhir.domain import Severity

PHARMACIST_ACTIONS = frozenset({"signoff", "escalate"})
RESULT_RECEIVED = "result received"
NON_ENGAGEMENT = "non-engagement"


def event_order(event: EventFact) -> tuple[datetime, str, str, str, str]:
    """Events in time order, ties broken by content, so input order never matters."""
    return (event.at, event.task_id, event.action, event.actor, event.patient)


def actions_by_finding(events: Iterable[EventFact]) -> dict[str, list[EventFact]]:
    """Pharmacist actions (sign-off, escalation) per Task or Flag id they concern, oldest first."""
    out: dict[str, list[EventFact]] = defaultdict(list)
    for event in events:
        if event.action not in PHARMACIST_ACTIONS:
            continue
        concerned = {event.task_id, *(str(f) for f in event.detail.get("flags") or ())}
        for resource_id in concerned:
            out[resource_id].append(event)
    return out


def _hours(event: EventFact, fallback_from: datetime) -> float:
    hours = event.detail.get("result_to_action_hours")
    if isinstance(hours, int | float):
        return float(hours)
    return round((event.at - fallback_from).total_seconds() / 3600, 1)


def workload(
    findings: Sequence[TaskFact],
    events: Sequence[EventFact],
    results: Sequence[TaskFact],
    actions: Mapping[str, list[EventFact]],
    month: Month,
    lists: Lists,
) -> Workload:
    group_of = {f.resource_id: f.drug_group for f in findings}

    def event_rows(items: Iterable[EventFact]) -> list[ListRow]:
        return [
            ListRow(
                e.patient,
                group_of.get(e.task_id, ""),
                f"Task/{e.task_id} {e.action} {local_day(e.at)}",
            )
            for e in items
        ]

    contacts = [e for e in events if e.action == "contact" and month.within(e.at)]
    completed = _completed_by_result(findings, month)
    live, decided = _non_responders(events, month)
    sign_offs = [e for e in events if e.action in PHARMACIST_ACTIONS and month.within(e.at)]
    patients_contacted = {e.patient: e for e in reversed(contacts)}  # each patient's first
    attempts = len(contacts)
    return Workload(
        contact_attempts=attempts,
        patients_contacted=lists.figure(
            "patients-contacted",
            "Patients contacted in the month",
            event_rows(patients_contacted.values()),
        ),
        tests_completed=lists.figure(
            "tests-completed",
            "Monitoring Tasks completed by a result in the month",
            [
                ListRow(f.patient, f.drug_group, f"Task/{f.resource_id} due {f.due_date}")
                for f in completed
            ],
        ),
        attempts_per_completed_test=round(attempts / len(completed), 2) if completed else None,
        non_responders=lists.figure(
            "non-responders", "Non-responders routed for a decision", event_rows(live)
        ),
        non_responders_decided=lists.figure(
            "non-responders-decided",
            "Non-responders with a documented decision",
            event_rows(decided[e.task_id] for e in live if e.task_id in decided),
        ),
        sign_offs=len(sign_offs),
        signed_off_patients=lists.figure(
            "signed-off", "Pharmacist sign-offs and escalations in the month", event_rows(sign_offs)
        ),
        by_severity=tuple(
            _severity_row(severity, results, actions, findings, events, month, lists)
            for severity in sorted(Severity, key=lambda s: -s.rank)
        ),
    )


def _completed_by_result(findings: Sequence[TaskFact], month: Month) -> list[TaskFact]:
    """Monitoring Tasks closed in the month because a result arrived."""
    return [
        f
        for f in findings
        if f.is_monitoring
        and f.closed_at is not None
        and month.within(f.closed_at)
        and f.close_reason == RESULT_RECEIVED
    ]


def _non_responders(
    events: Sequence[EventFact], month: Month
) -> tuple[list[EventFact], dict[str, EventFact]]:
    """The routings to a non-engagement decision still live in the month (undecided, or
    decided in it), and the first decision on each Task."""
    routed: dict[str, EventFact] = {}
    decided: dict[str, EventFact] = {}
    for e in events:
        if e.stage_after == NON_ENGAGEMENT:
            routed.setdefault(e.task_id, e)
        elif e.action == "decision":
            decided.setdefault(e.task_id, e)
    live = [
        e for task, e in routed.items() if task not in decided or decided[task].at >= month.start
    ]
    return live, decided


def _severity_row(
    severity: Severity,
    results: Sequence[TaskFact],
    actions: Mapping[str, list[EventFact]],
    findings: Sequence[TaskFact],
    events: Sequence[EventFact],
    month: Month,
    lists: Lists,
) -> SeverityRow:
    raised = [f for f in results if f.severity is severity and month.within(f.opened_at)]
    acknowledged = {e.task_id: e for e in reversed(events) if e.action == "acknowledge"}
    to_pharmacist: list[float] = []
    to_gp: list[float] = []
    pharmacist_rows, gp_rows, none_rows = [], [], []
    for f in raised:
        taken = actions.get(f.resource_id)
        row = ListRow(f.patient, f.drug_group, f"{f.resource_type}/{f.resource_id}")
        if not taken:
            none_rows.append(row)
            continue
        to_pharmacist.append(_hours(taken[0], f.opened_at))
        pharmacist_rows.append(row)
        gp_tasks = {str(e.detail.get("gp_task", "")).removeprefix("Task/") for e in taken}
        ack = next((acknowledged[t] for t in sorted(gp_tasks) if t in acknowledged), None)
        if ack is not None:
            to_gp.append(_hours(ack, f.opened_at))
            gp_rows.append(row)
    name = severity.value
    return SeverityRow(
        severity=name,
        results=lists.figure(
            f"results-{name}",
            f"Out-of-range results ({name}) raised in the month",
            [
                ListRow(f.patient, f.drug_group, f"{f.resource_type}/{f.resource_id}")
                for f in raised
            ],
        ),
        pharmacist_actioned=lists.figure(
            f"results-{name}-pharmacist",
            f"{name} results actioned by a pharmacist",
            pharmacist_rows,
        ),
        median_hours_to_pharmacist=median_of(to_pharmacist),
        gp_actioned=lists.figure(
            f"results-{name}-gp", f"{name} results acknowledged by a GP", gp_rows
        ),
        median_hours_to_gp=median_of(to_gp),
        no_escalation=lists.figure(
            f"results-{name}-no-action", f"{name} results with no documented action", none_rows
        ),
    )
