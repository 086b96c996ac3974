"""The clinical position at month end, from the patients' records: who is on which drug, who
is established, what is overdue (the engine run as of the month's last day), and who falls in
each PINCER indicator. Pure: records in, statuses out."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from hrm_fhir.audit.definitions import AuditDefinitions, Indicator
from hrm_fhir.audit.figures import practice_id
from hrm_fhir.audit.model import GroupStatus, IndicatorStatus
from hrm_fhir.domain import FindingKind, PatientRecord
from hrm_fhir.evaluation import Evaluation
from hrm_fhir.rules.evaluate import Assessment, Evaluator
from hrm_fhir.rules.model import RulePack
from hrm_fhir.rules.therapy import Therapy, counts


def is_established(pack: RulePack, therapy: Therapy, day: date) -> bool:
    """Past every bounded (initiation or titration) phase of the pack's schedules on ``day``.

    Phases are measured from the therapy's anchor (start, or last dose change where the pack
    restarts on one), as the engine measures them; a pack with only open-ended phases has no
    initiation period.
    """
    ends = [
        phase.until.after(therapy.anchor)
        for schedule in pack.schedules
        for phase in schedule.phases
        if phase.until is not None
    ]
    return all(end <= day for end in ends)


def group_statuses(
    record: PatientRecord, assessment: Assessment, evaluator: Evaluator, packs: dict[str, RulePack]
) -> list[GroupStatus]:
    """One status per drug group the patient is monitored for at ``evaluator.as_of`` (from the
    record and its ``assessment``): on current therapy, or stopped within a schedule that
    continues after stopping (``Evaluator.followed``: their overdue thyroid function is the
    practice's work too)."""
    patient = record.patient
    if patient is None or not patient.is_alive_on(evaluator.as_of):
        return []
    every = evaluator.therapies(record)
    followed = evaluator.followed(every)
    therapies = {g: t for g, t in every.items() if g in followed and g in packs}
    if not therapies:
        return []
    overdue = {f.drug_group: f for f in assessment.findings if f.kind is FindingKind.OVERDUE}
    elsewhere = {
        e.drug_group: e.monitored_elsewhere.by
        for e in assessment.register
        if e.monitored_elsewhere is not None and not e.monitored_elsewhere.lapsed
    }
    age = patient.age_on(evaluator.as_of)
    out = []
    for group in sorted(therapies):
        finding = overdue.get(group)
        out.append(
            GroupStatus(
                patient=patient.ref,
                practice=practice_id(patient.practice),
                drug_group=group,
                established=is_established(packs[group], therapies[group], evaluator.as_of),
                age=age,
                overdue_identifier=finding.identifier if finding else None,
                due_date=finding.due_date if finding else None,
                tests=finding.tests if finding else (),
                severely_overdue=finding.severely_overdue if finding else False,
                monitored_elsewhere=elsewhere.get(group),
            )
        )
    return out


def indicator_statuses(
    record: PatientRecord, evaluator: Evaluator, indicators: Iterable[Indicator]
) -> list[IndicatorStatus]:
    """The patient's place in each indicator whose initial population they are in.

    Initial population: the drug issued within ``issued_earlier`` of month end. Denominator:
    issued both within ``issued_recent`` and between ``issued_recent`` and ``issued_earlier``.
    Numerator: in the denominator, and any of the indicator's tests has no result within
    ``lookback``. Windows are half-open: (month end - duration, month end].
    """
    patient = record.patient
    end = evaluator.as_of
    if patient is None or not patient.is_alive_on(end):
        return []
    issued: dict[str, list[date]] = {}
    for prescription in record.prescriptions:
        if not counts(prescription, end):
            continue
        match = evaluator.index.match(prescription)
        if match is not None:
            issued.setdefault(match.group, []).append(prescription.authored_on)
    latest = evaluator.latest_by_test(record)
    out = []
    for indicator in indicators:
        recent_from = indicator.issued_recent.before(end)
        earlier_from = indicator.issued_earlier.before(end)
        days = issued.get(indicator.drug_group, [])
        recent = any(recent_from < day <= end for day in days)
        earlier = any(earlier_from < day <= recent_from for day in days)
        if not (recent or earlier):
            continue
        denominator = recent and earlier
        since = indicator.lookback.before(end)
        missing = any(test not in latest or latest[test][0] <= since for test in indicator.tests)
        out.append(
            IndicatorStatus(
                indicator=indicator.id,
                patient=patient.ref,
                practice=practice_id(patient.practice),
                denominator=denominator,
                numerator=denominator and missing,
            )
        )
    return out


def clinical_position(
    evaluation: Evaluation, definitions: AuditDefinitions
) -> tuple[list[GroupStatus], list[IndicatorStatus]]:
    """Group and indicator statuses of every patient evaluated, as of the evaluation's date."""
    evaluator = evaluation.evaluator
    packs = {pack.drug_group: pack for pack in evaluator.packs}
    groups: list[GroupStatus] = []
    indicators: list[IndicatorStatus] = []
    for ref, assessment in evaluation.assessments.items():
        record = evaluation.records[ref]
        if not record.prescriptions:
            continue
        groups.extend(group_statuses(record, assessment, evaluator, packs))
        indicators.extend(indicator_statuses(record, evaluator, definitions.indicators))
    return groups, indicators
