"""Who monitors each drug group a patient is on: the practice, or another organisation (shared
care). Pure: the statements come with the record (``PatientRecord.arrangements``), read from
the GP record or from the pharmacist's decision; the latest statement in force wins.

A statement is scoped to drug groups by, in order: the groups it names (the workflow, a
drug-specific code); the prescriptions it is about (a prescription's own prescribing
organisation: only while that prescription is current therapy; an entry's focus); the medicine
it names by code or by ingredient name in its text. A statement that names no medicine at all
applies to the catalogue's ``generic_groups`` (Ardens: one code for every high-risk drug).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from hrm_fhir.domain import (
    Arrangement,
    ArrangementSource,
    MonitoredElsewhere,
    PatientRecord,
    Prescription,
    ResourceRef,
)
from hrm_fhir.rules.catalogue import SharedCare
from hrm_fhir.rules.therapy import Currency, MedicationIndex, Therapy

ANOTHER_ORGANISATION = "another organisation"
"""Who monitors, when the record does not name them."""


def monitored_elsewhere(
    record: PatientRecord,
    therapies: Mapping[str, Therapy],
    index: MedicationIndex,
    shared_care: SharedCare | None,
    currency: Currency,
) -> dict[str, MonitoredElsewhere]:
    """Per drug group on current therapy that another organisation monitors on the as-of date,
    who and since when (a lapsed arrangement, its review date passed, is included and marked)."""
    as_of = currency.as_of
    current = {group for group, therapy in therapies.items() if therapy.current}
    requests = {p.ref: p for p in record.prescriptions}
    generic = frozenset(shared_care.generic_groups) if shared_care else frozenset()
    latest: dict[str, Arrangement] = {}
    for statement in record.arrangements:
        if not _in_force(statement, requests, currency):
            continue
        for group in _groups(statement, requests, index, generic) & current:
            held = latest.get(group)
            if held is None or _order(statement) > _order(held):
                latest[group] = statement
    return {
        group: MonitoredElsewhere(
            by=statement.by or ANOTHER_ORGANISATION,
            since=statement.recorded_on,
            source=statement.source,
            evidence=statement.ref,
            review_on=statement.review_on,
            lapsed=statement.review_on is not None and statement.review_on < as_of,
        )
        for group, statement in latest.items()
        if statement.elsewhere
    }


def _order(statement: Arrangement) -> tuple[date, bool, str]:
    """Latest first; on the same day the pharmacist's decision wins over the record."""
    return (
        statement.recorded_on,
        statement.source is ArrangementSource.WORKFLOW,
        statement.ref,
    )


def _in_force(
    statement: Arrangement,
    requests: Mapping[ResourceRef, Prescription],
    currency: Currency,
) -> bool:
    as_of = currency.as_of
    if statement.recorded_on > as_of:
        return False
    if statement.ended_on is not None and statement.ended_on <= as_of:
        return False
    own = requests.get(statement.ref)
    return own is None or currency.is_current(own)


def _groups(
    statement: Arrangement,
    requests: Mapping[ResourceRef, Prescription],
    index: MedicationIndex,
    generic: frozenset[str],
) -> frozenset[str]:
    if statement.groups:
        return frozenset(statement.groups)
    named = {
        match.group
        for ref in statement.about
        if (request := requests.get(ref)) is not None and (match := index.match(request))
    }
    if not named and (statement.codings or statement.text):
        match = index.match(statement)
        if match is not None:
            named.add(match.group)
    if named or statement.about or statement.codings:
        return frozenset(named)
    return generic
