"""What every part of the monthly report shares: the month's local bounds, and the patient lists
each figure is counted from (a figure is the length of its list)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from statistics import median

from hrm_fhir import clock
from hrm_fhir.audit.model import Figure, ListRow, PatientList
from hrm_fhir.rules.durations import add_months


def month_bounds(month: date) -> tuple[date, date, datetime, datetime]:
    """First and last local day, and the UTC instants the month starts and the next one does."""
    first = month.replace(day=1)
    following = add_months(first, 1)
    start = clock.start_of(first).astimezone(UTC)
    end = clock.start_of(following).astimezone(UTC)
    return first, following - timedelta(days=1), start, end


def practice_id(reference: str | None) -> str | None:
    """``Organization/p1`` or ``p1`` -> ``p1``: the report names practices by Organization id."""
    return reference.removeprefix("Organization/") if reference else None


def local_day(moment: datetime) -> date:
    return clock.local_date(moment)


@dataclass
class Lists:
    """Collects the patient lists; each figure is the length of its list."""

    lists: dict[str, PatientList] = field(default_factory=dict)

    def figure(self, list_id: str, title: str, rows: Iterable[ListRow]) -> Figure:
        ordered = tuple(sorted(rows, key=lambda r: (r.patient, r.drug_group, r.detail)))
        self.lists[list_id] = PatientList(list_id, title, ordered)
        return Figure(len(ordered), list_id)


def pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def median_of(values: Sequence[float]) -> float | None:
    return round(float(median(values)), 1) if values else None


@dataclass(frozen=True)
class Month:
    first: date
    last: date
    start: datetime
    end: datetime

    def within(self, moment: datetime) -> bool:
        return self.start <= moment < self.end
