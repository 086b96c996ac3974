"""The monthly report's two charts as inline SVG: the weekly backlog trend and the drug groups'
in-date and overdue breakdown.

Each chart has a ``<title>`` and ``<desc>`` for screen readers and a ``<title>`` on every bar;
the report prints the same figures in a table beside it. Colours are presentation attributes,
so the charts look the same on screen, printed and in the PDF. Every value is escaped.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import count
from math import ceil

from markupsafe import Markup

from hrm_fhir.audit.model import GroupRow, WeekPoint

WIDTH = 720
BAR = "#005eb8"
GRID = "#d8dde0"
BANDS = (
    ("in_date", "In date", "#005eb8"),
    ("overdue_up_to_4w", "Overdue up to 4 weeks", "#ffb81c"),
    ("overdue_4_to_12w", "Overdue 4 to 12 weeks", "#ed8b00"),
    ("overdue_over_12w", "Overdue over 12 weeks", "#d5281b"),
)
"""The stacked segments of a drug group's bar: together, its patients on established therapy."""


def _svg(chart_id: str, title: str, desc: str, height: float, body: Sequence[Markup]) -> Markup:
    return Markup(
        '<svg class="chart" role="img" aria-labelledby="{id}-title {id}-desc" '
        'viewBox="0 0 {w} {h:.0f}" width="{w}" height="{h:.0f}" '
        'font-family="Arial, Helvetica, sans-serif" font-size="11" fill="#212b32">'
        '<title id="{id}-title">{title}</title><desc id="{id}-desc">{desc}</desc>{body}</svg>'
    ).format(id=chart_id, w=WIDTH, h=height, title=title, desc=desc, body=Markup("").join(body))


def _rect(x: float, y: float, width: float, height: float, fill: str, tip: str = "") -> Markup:
    return Markup(
        '<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}">'
        "<title>{}</title></rect>"
    ).format(x, y, width, height, fill, tip)


def _text(x: float, y: float, text: str, anchor: str = "start") -> Markup:
    return Markup('<text x="{:.1f}" y="{:.1f}" text-anchor="{}">{}</text>').format(
        x, y, anchor, text
    )


def _steps() -> Iterator[int]:
    for power in count():
        for multiple in (1, 2, 5):
            yield multiple * 10**power


def _axis(top: int) -> list[int]:
    """Round tick values from 0 to at least ``top``, at most six of them."""
    step = next(s for s in _steps() if s * 5 >= max(top, 1))
    return list(range(0, step * ceil(max(top, 1) / step) + 1, step))


def backlog_chart(points: Sequence[WeekPoint]) -> Markup:
    """Open overdue monitoring Tasks at the end of each week, one bar per week."""
    if not points:
        return Markup('<p class="muted">No weeks to chart.</p>')
    left, right, top, bottom, height = 44, 12, 12, 34, 260
    plot_h = height - top - bottom
    slot = (WIDTH - left - right) / len(points)
    ticks = _axis(max(p.open_overdue for p in points))

    def y(value: int) -> float:
        return top + plot_h * (1 - value / ticks[-1])

    body = []
    for tick in ticks:
        body.append(_rect(left, y(tick), WIDTH - left - right, 0.8, GRID))
        body.append(_text(left - 6, y(tick) + 4, str(tick), "end"))
    label_every = ceil(len(points) / 8)
    for i, point in enumerate(points):
        x, bar_top = left + i * slot, y(point.open_overdue)
        tip = f"Week ending {point.week_ending.isoformat()}: {point.open_overdue} open overdue"
        body.append(_rect(x + slot * 0.15, bar_top, slot * 0.7, y(0) - bar_top, BAR, tip))
        if i % label_every == 0 or i == len(points) - 1:
            day = f"{point.week_ending.day} {point.week_ending:%b}"
            body.append(_text(x + slot / 2, height - bottom + 16, day, "middle"))
    first, last = points[0], points[-1]
    desc = (
        f"Bar chart of {len(points)} weeks from {first.week_ending.isoformat()} to "
        f"{last.week_ending.isoformat()}: {first.open_overdue} open overdue Tasks at the start, "
        f"{max(p.open_overdue for p in points)} at most, {last.open_overdue} at the end. "
        "The weekly figures are in the table below."
    )
    return _svg("backlog-chart", "Open overdue monitoring Tasks by week ending", desc, height, body)


def _short(title: str) -> str:
    """A drug group's title without its parenthesis: ``Opioids (long-term use)`` -> ``Opioids``."""
    return title.split(" (")[0]


def _legend(y: float) -> list[Markup]:
    parts, x = [], 0.0
    for _, label, colour in BANDS:
        parts += [_rect(x, y - 10, 12, 12, colour, label), _text(x + 16, y, label)]
        x += 24 + 6.2 * len(label)
    return parts


def groups_chart(rows: Sequence[GroupRow]) -> Markup:
    """One stacked horizontal bar per drug group: in date and the three overdue bands."""
    if not rows:
        return Markup('<p class="muted">No drug groups to chart.</p>')
    label_w, row_h, top = 250, 22, 30
    scale = (WIDTH - label_w - 40) / max(max(r.established.value for r in rows), 1)
    body = _legend(14)
    for i, row in enumerate(rows):
        y, x = top + i * row_h, float(label_w)
        body.append(_text(label_w - 8, y + 15, _short(row.title), "end"))
        for name, label, colour in BANDS:
            value = getattr(row, name).value
            if value:
                tip = f"{_short(row.title)}: {value} {label.lower()}"
                body.append(_rect(x, y + 3, scale * value, row_h - 6, colour, tip))
            x += scale * value
        body.append(_text(x + 6, y + 15, str(row.established.value)))
    desc = (
        "Stacked bars, one per drug group, of the patients on established therapy: in date, "
        "and overdue up to 4 weeks, 4 to 12 weeks and over 12 weeks at month end. "
        "The figures are in the table above."
    )
    title = "In-date and overdue monitoring by drug group"
    return _svg("groups-chart", title, desc, top + len(rows) * row_h + 6, body)
