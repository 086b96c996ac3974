"""The pages' forms: what each posts, read into typed values or into messages a person can act on.

Each reader takes the posted fields and returns a ``Posted`` (with the typed values it could
read); ``Posted.errors`` maps a field's HTML id (``<task id>-<action>-<field>``) to its message,
and the key ``_form`` to a message about the form as a whole. With any error nothing is done.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import TypeVar

from hrm_fhir.errors import WorkflowError
from hrm_fhir.programme import (
    MAX_DOSE,
    MAX_NOTE,
    MAX_TEAM,
    NON_ENGAGEMENT_DECISIONS,
    SIGN_OFF_DECISIONS,
    ContactOutcome,
    Decision,
    Medium,
    check_arrangement,
    check_sign_off,
)

E = TypeVar("E", bound=StrEnum)

MEDIA: list[tuple[str, str]] = [(m.value, m.label[0].upper() + m.label[1:]) for m in Medium]
OUTCOMES: list[tuple[str, str]] = [(o.value, o.label.capitalize()) for o in ContactOutcome]
_SIGN_OFF_ORDER = (
    Decision.CONTINUE,
    Decision.DOSE_ADJUSTED,
    Decision.DOSE_WITHHELD,
    Decision.REPEAT_TEST_BOOKED,
    Decision.ADVICE_GIVEN,
    Decision.ESCALATED_GP,
)
SIGN_OFF_CHOICES: list[tuple[str, str]] = [
    (d.value, _text)
    for d, _text in zip(
        _SIGN_OFF_ORDER,
        (
            "In range: continue",
            "Dose adjusted within scope (give the new dose)",
            "Dose withheld",
            "Repeat test booked (give the date)",
            "Advice given",
            "Escalate to the GP",
        ),
        strict=True,
    )
    if d in SIGN_OFF_DECISIONS
]
NON_ENGAGEMENT_CHOICES: list[tuple[str, str]] = [
    (d.value, text)
    for d, text in (
        (Decision.CONTINUE_WITH_CAVEATS, "Continue with caveats"),
        (Decision.PAUSE, "Pause the medicine"),
        (Decision.REFER, "Refer"),
    )
    if d in NON_ENGAGEMENT_DECISIONS
]


@dataclass
class Posted:
    """One submitted form: which task and action, the raw values, and what was wrong."""

    task_id: str
    action: str
    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)

    def fail(self, name: str, message: str) -> None:
        key = "_form" if name == "_form" else f"{self.task_id}-{self.action}-{name}"
        self.errors.setdefault(key, message)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class FormState:
    """What one form on a page shows: its messages and the values to put back."""

    errors: dict[str, str]
    values: dict[str, str]

    def value(self, name: str) -> str:
        return self.values.get(name, "")


EMPTY = FormState({}, {})


def state(posted: Posted | None, task_id: str, action: str) -> FormState:
    """The state of the form for ``task_id`` and ``action``: the posted one, or an empty one."""
    if posted is None or posted.task_id != task_id or posted.action != action:
        return EMPTY
    return FormState(posted.errors, posted.values)


def read(task_id: str, action: str, form: Mapping[str, str], names: tuple[str, ...]) -> Posted:
    """The posted fields (stripped; only the ones this form has) and the version check."""
    values = {name: (form.get(name) or "").strip() for name in (*names, "version")}
    posted = Posted(task_id, action, values)
    if not values["version"]:
        posted.fail("_form", "The form did not say which version of the task it was for.")
    if len(values.get("note", "")) > MAX_NOTE:
        posted.fail("note", f"Keep the note to {MAX_NOTE} characters or fewer.")
    return posted


def choice(posted: Posted, name: str, kind: type[E], allowed: object, what: str) -> E | None:
    raw = posted.values.get(name, "")
    if not raw:
        posted.fail(name, f"Choose {what}.")
        return None
    try:
        value = kind(raw)
    except ValueError:
        posted.fail(name, f"Choose {what} from the list.")
        return None
    if value not in allowed:  # type: ignore[operator]
        posted.fail(name, f"Choose {what} from the list.")
        return None
    return value


def day(posted: Posted, name: str, what: str, *, required: bool = True) -> date | None:
    raw = posted.values.get(name, "")
    if not raw:
        if required:
            posted.fail(name, f"Enter {what}.")
        return None
    try:
        return _parse_day(raw)
    except ValueError:
        posted.fail(name, f"Enter {what} as a real date, for example 04/12/2026.")
        return None


def _parse_day(raw: str) -> date:
    """``YYYY-MM-DD`` (what a date input sends), or ``DD/MM/YYYY`` as typed on a UK PC whose
    browser shows a plain text box."""
    if "/" in raw:
        day_text, month_text, year_text = raw.split("/")
        if len(year_text) != 4:
            raise ValueError(raw)
        return date(int(year_text), int(month_text), int(day_text))
    return date.fromisoformat(raw)


def contact(
    task_id: str, form: Mapping[str, str]
) -> tuple[Posted, Medium | None, ContactOutcome | None]:
    posted = read(task_id, "contact", form, ("medium", "outcome", "note"))
    medium = choice(posted, "medium", Medium, set(Medium), "how the patient was contacted")
    outcome = choice(posted, "outcome", ContactOutcome, set(ContactOutcome), "the outcome")
    return posted, medium, outcome


def booking(task_id: str, form: Mapping[str, str], today: date) -> tuple[Posted, date | None]:
    posted = read(task_id, "booking", form, ("booked_for", "note"))
    booked = day(posted, "booked_for", "the date the blood test is booked for")
    if booked is not None and booked < today:
        posted.fail("booked_for", "The date the blood test is booked for cannot be in the past.")
    return posted, booked


def sample(task_id: str, form: Mapping[str, str], today: date) -> tuple[Posted, date | None]:
    posted = read(task_id, "sample", form, ("taken_on",))
    taken = day(posted, "taken_on", "the date the sample was taken")
    if taken is not None and taken > today:
        posted.fail("taken_on", "The date the sample was taken cannot be in the future.")
    return posted, taken


@dataclass(frozen=True)
class SignOff:
    decision: Decision
    new_dose: str
    repeat_on: date | None


def sign_off(task_id: str, form: Mapping[str, str]) -> tuple[Posted, SignOff | None]:
    posted = read(task_id, "signoff", form, ("decision", "new_dose", "repeat_on", "note"))
    decision = choice(posted, "decision", Decision, SIGN_OFF_DECISIONS, "a decision")
    repeat_on = day(posted, "repeat_on", "the date of the repeat test", required=False)
    new_dose = posted.values["new_dose"]
    if len(new_dose) > MAX_DOSE:
        posted.fail("new_dose", f"Keep the new dose to {MAX_DOSE} characters or fewer.")
    if decision is None or not posted.ok:
        return posted, None
    try:
        check_sign_off(decision, new_dose, repeat_on)
    except WorkflowError as exc:
        message = str(exc)
        target = "repeat_on" if "repeat" in message else "new_dose" if "dose" in message else ""
        posted.fail(target or "decision", message[0].upper() + message[1:] + ".")
        return posted, None
    return posted, SignOff(decision, new_dose, repeat_on)


def non_engagement(task_id: str, form: Mapping[str, str]) -> tuple[Posted, Decision | None]:
    posted = read(task_id, "decision", form, ("decision", "note"))
    decision = choice(posted, "decision", Decision, NON_ENGAGEMENT_DECISIONS, "a decision")
    return posted, decision


def acknowledge(task_id: str, form: Mapping[str, str]) -> Posted:
    return read(task_id, "acknowledge", form, ("note",))


@dataclass(frozen=True)
class WhoMonitors:
    """Who monitors a drug group: ``monitored_by`` and ``review_on`` are empty when the practice
    takes monitoring back; ``version`` None for a first decision about the group."""

    drug_group: str
    version: str | None
    monitored_by: str = ""
    review_on: date | None = None


def who_monitors(
    key: str, form: Mapping[str, str], today: date, groups: set[str], *, elsewhere: bool
) -> tuple[Posted, WhoMonitors | None]:
    """Monitored elsewhere (the team and the review date) or by the practice again, for one
    drug group. ``key`` tells the page's forms apart (field ids start with it)."""
    names = (
        ("drug_group", "monitored_by", "review_on", "note") if elsewhere else ("drug_group", "note")
    )
    values = {name: (form.get(name) or "").strip() for name in (*names, "version")}
    posted = Posted(key, "elsewhere" if elsewhere else "practice", values)
    if values["drug_group"] not in groups:
        posted.fail("drug_group", "Choose a drug group from the list.")
    if len(values["note"]) > MAX_NOTE:
        posted.fail("note", f"Keep the note to {MAX_NOTE} characters or fewer.")
    version = values["version"] or None
    if not elsewhere:
        return posted, WhoMonitors(values["drug_group"], version) if posted.ok else None
    by = values["monitored_by"]
    if len(by) > MAX_TEAM:
        posted.fail("monitored_by", f"Keep the name to {MAX_TEAM} characters or fewer.")
    review_on = day(posted, "review_on", "the date the practice reviews the arrangement")
    if review_on is not None:
        try:
            check_arrangement(by, review_on, today)
        except WorkflowError as exc:
            message = str(exc)
            target = "monitored_by" if "organisation" in message else "review_on"
            posted.fail(target, message[0].upper() + message[1:] + ".")
    elif not by:
        posted.fail("monitored_by", "Name the organisation or team that monitors.")
    if not posted.ok or review_on is None:
        return posted, None
    return posted, WhoMonitors(values["drug_group"], version, by, review_on)
