"""The backlog of open overdue monitoring Tasks: its weekly trend and how long it takes to clear.

A monitoring Task is *overdue* from the day after its due date, or from the day the service
first wrote it if that was later, until the local day it closed. Pure functions of the facts.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from hrm_fhir.audit.model import Forecast, WeekPoint

EXPECTED_WEEKS = (8, 12)
"""What practices expect: most of a backlog closed in 8-12 weeks with one technician day a week
and weekly pharmacist sign-off (the programme specification; a planning figure, not clinical)."""
RATE_WEEKS = 4
"""The current rates are the averages over this many weeks up to month end."""


@dataclass(frozen=True, slots=True)
class OverdueSpan:
    """The local days a monitoring Task was overdue: ``start`` up to, not including, ``end``."""

    start: date
    end: date | None
    closed_overdue: bool
    """Closed while overdue (``end`` is the closing day)."""
    inherited: bool = False
    """Already overdue when the programme's first sweep found it: the backlog the programme
    started with, not part of the weekly inflow."""


def week_endings(first: date, last: date) -> list[date]:
    """Every Sunday from ``first`` to ``last``, then ``last`` itself if it is not a Sunday."""
    sunday = first + timedelta(days=(6 - first.weekday()) % 7)
    days = []
    while sunday <= last:
        days.append(sunday)
        sunday += timedelta(weeks=1)
    if not days or days[-1] != last:
        days.append(last)
    return days


def weekly_trend(spans: Sequence[OverdueSpan], days: Sequence[date]) -> list[WeekPoint]:
    """Open overdue Tasks at the end of each day in ``days`` (sorted), by a difference array."""
    delta = [0] * (len(days) + 1)
    for span in spans:
        first = bisect_left(days, span.start)
        stop = len(days) if span.end is None else bisect_left(days, span.end)
        if first < stop:
            delta[first] += 1
            delta[stop] -= 1
    points, running = [], 0
    for day, change in zip(days, delta, strict=False):
        running += change
        points.append(WeekPoint(week_ending=day, open_overdue=running))
    return points


def forecast(spans: Sequence[OverdueSpan], month_end: date, capacity_per_week: float) -> Forecast:
    """Weeks to clear the backlog at month end, at the recent net closure rate and at capacity.

    Net rate = overdue closures per week minus newly overdue per week, both averaged over the
    ``RATE_WEEKS`` weeks up to month end; the backlog the programme inherited at its first sweep
    is backlog, not inflow. A backlog that does not shrink gives None.
    """
    since = month_end - timedelta(weeks=RATE_WEEKS)
    backlog = sum(1 for s in spans if s.start <= month_end and (s.end is None or s.end > month_end))
    closed = sum(
        1 for s in spans if s.closed_overdue and s.end is not None and since < s.end <= month_end
    )
    arrived = sum(1 for s in spans if since < s.start <= month_end and not s.inherited)
    closures, inflow = closed / RATE_WEEKS, arrived / RATE_WEEKS
    at_current = _weeks(backlog, closures - inflow)
    at_capacity = _weeks(backlog, capacity_per_week - inflow)
    return Forecast(
        backlog=backlog,
        closures_per_week=closures,
        new_overdue_per_week=inflow,
        weeks_at_current_rate=at_current,
        capacity_per_week=capacity_per_week,
        weeks_at_capacity=at_capacity,
        expected_weeks=EXPECTED_WEEKS,
        on_track=None
        if backlog == 0
        else at_current is not None and at_current <= EXPECTED_WEEKS[1],
    )


def _weeks(backlog: int, net_per_week: float) -> float | None:
    if backlog == 0:
        return 0.0
    return round(backlog / net_per_week, 1) if net_per_week > 0 else None
