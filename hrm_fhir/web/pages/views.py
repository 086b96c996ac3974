"""The pages people read: the technician worklist, the patient card, the pharmacist review queue and
the GP's escalations. Each ``render_*`` also serves the form posts (hrm_fhir/web/pages/actions.py),
which re-render the page with their messages when the input was unusable."""

from __future__ import annotations

import re
from collections.abc import Mapping

from flask import render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import NotFound

from hrm_fhir import paging
from hrm_fhir.domain import Severity
from hrm_fhir.errors import WorkflowError, WorkflowNotFoundError, WorkflowPermissionError
from hrm_fhir.programme import CONTACT_STAGES, TECHNICIAN_STAGES, ChaseStep, Stage
from hrm_fhir.web.pages import forms
from hrm_fhir.web.pages.blueprint import bp
from hrm_fhir.web.pages.context import actor, as_of, chase_interval_days, patient_details
from hrm_fhir.web.pages.forms import Posted
from hrm_fhir.web.pages.session import (
    ACKNOWLEDGE_ROLES,
    CONTACT_ROLES,
    SIGN_OFF_ROLES,
    current_user,
    requires,
)
from hrm_fhir.web.request_scope import db_session, fhir_gateway
from hrm_fhir.web.state import service_state
from hrm_fhir.workflow import service

FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
WORKLIST_PAGE = 25
"""Patients a worklist page shows."""
REVIEW_PAGE = 10
"""Items a review queue or escalations page shows (each a panel with its trend and forms)."""
TABLE_PAGE = 25
"""Rows of a plain table (the escalations waiting for the GP, under the review queue)."""
ALL_ROLES = CONTACT_ROLES | SIGN_OFF_ROLES | ACKNOWLEDGE_ROLES
_REVIEW_KINDS = {
    "flag": "Out-of-range result",
    "result": "Result to review",
    "prescribing": "Prescribing review",
    "non-engagement": "Non-engagement decision",
    "gp-escalation": "Escalated to the GP",
    "monitored-elsewhere": "Monitored elsewhere",
}
_PRIORITY_TAGS = {
    "out-of-range follow-up": ("tag-urgent", "Out-of-range follow-up"),
    "severely overdue": ("tag-overdue", "Severely overdue"),
    "overdue": ("tag-overdue", "Overdue"),
    "due": ("tag-grey", "Due"),
}
_CHASE_TEXT = {
    ChaseStep.INVITE: "send the first invitation",
    ChaseStep.REMIND: "send a reminder",
    ChaseStep.REMIND_2: "send the second reminder",
    ChaseStep.ROUTE: "route to the pharmacist",
}


def check_id(value: str, what: str = "task") -> str:
    """A FHIR id from the URL, or 404 (nothing by another shape can exist)."""
    if not FHIR_ID.fullmatch(value):
        raise NotFound(f"there is no {what} {value[:70]!r}")
    return value


@bp.errorhandler(WorkflowPermissionError)
def _not_permitted(exc: WorkflowPermissionError) -> ResponseReturnValue:
    return render_template(
        "pages/error.html",
        title="You may not do this",
        message=f"{_sentence(exc)} Nothing was changed.",
    ), 403


@bp.errorhandler(WorkflowNotFoundError)
def _not_found(exc: WorkflowNotFoundError) -> ResponseReturnValue:
    return render_template(
        "pages/error.html", title="Not found", message=f"{_sentence(exc)} Nothing was changed."
    ), 404


@bp.errorhandler(WorkflowError)
def _workflow_error(exc: WorkflowError) -> ResponseReturnValue:
    return render_template(
        "pages/error.html",
        title="This cannot be done",
        message=f"{_sentence(exc)} Nothing was changed.",
    ), 400


def _sentence(exc: Exception) -> str:
    text = str(exc).strip() or "The request could not be carried out"
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")


# ------------------------------------------------------------------ the worklist


def _worklist_filters(args: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The filters asked for and any messages about them (keyed by the field's id)."""
    rules = service_state().rules
    values = {name: (args.get(name) or "").strip() for name in ("practice", "drug_group", "stage")}
    errors: dict[str, str] = {}
    user = current_user()
    if user.practice is not None:
        values["practice"] = user.practice
    elif values["practice"] and not FHIR_ID.fullmatch(
        values["practice"].removeprefix("Organization/")
    ):
        errors["practice"] = "Enter a practice as its Organization id, for example org-1."
    groups = {p.drug_group for p in rules.packs}
    if values["drug_group"] and values["drug_group"] not in groups:
        errors["drug_group"] = "Choose a drug group from the list."
    if values["stage"] and values["stage"] not in {s.value for s in Stage}:
        errors["stage"] = "Choose a stage from the list."
    return values, errors


@bp.get("/worklist")
@requires(CONTACT_ROLES)
def worklist() -> ResponseReturnValue:
    values, errors = _worklist_filters(request.args)
    day = as_of()
    entries: list[service.WorklistEntry] = []
    if not errors:
        entries = service.worklist(
            fhir_gateway(),
            db_session(),
            as_of=day,
            practice=values["practice"] or None,
            drug_group=values["drug_group"] or None,
            stage=Stage(values["stage"]) if values["stage"] else None,
            chase_interval_days=chase_interval_days(),
        )
    shown = paging.page(entries, request.args.get("page"), WORKLIST_PAGE)
    page = render_template(
        "pages/worklist.html",
        title="Worklist",
        entries=shown,
        chasing=sum(1 for e in entries if e.chase_due),
        details=patient_details(e.patient for e in shown.items),
        filters=values,
        errors=errors,
        as_of=day,
        drug_groups=sorted({p.drug_group for p in service_state().rules.packs}),
        stages=[(s.value, s.label) for s in Stage if not s.is_terminal],
        priority_tags=_PRIORITY_TAGS,
        chase_text=_CHASE_TEXT,
        default_stages=", ".join(s.label for s in TECHNICIAN_STAGES),
    )
    return page, 400 if errors else 200


# ------------------------------------------------------------------ the patient card


def render_card(
    patient_id: str, *, posted: Posted | None = None, message: str = "", status: int = 200
) -> ResponseReturnValue:
    day = as_of()
    card = service.patient_card(
        fhir_gateway(),
        db_session(),
        f"Patient/{check_id(patient_id, 'patient')}",
        as_of=day,
        actor=actor(),
        chase_interval_days=chase_interval_days(),
    )
    escalated = any(
        item.kind == "gp-escalation" and item.stage is Stage.ESCALATED_GP for item in card.findings
    )
    page = render_template(
        "pages/card.html",
        title=card.details.name or card.patient,
        card=card,
        patient_id=patient_id,
        posted=posted,
        message=message,
        as_of=day,
        escalated=escalated,
        contact_stages=set(CONTACT_STAGES),
        bookable=set(CONTACT_STAGES) | {Stage.BOOKED},
        media=forms.MEDIA,
        outcomes=forms.OUTCOMES,
        kinds=_REVIEW_KINDS,
        chase_text=_CHASE_TEXT,
        drug_groups=_drug_groups(),
    )
    return page, status


@bp.get("/patients/<patient_id>")
@requires(ALL_ROLES)
def card(patient_id: str) -> ResponseReturnValue:
    return render_card(patient_id)


# ------------------------------------------------------------------ the review queue


def _queue() -> list[service.ReviewItem]:
    return service.review_queue(
        fhir_gateway(), db_session(), practice=current_user().practice, as_of=as_of()
    )


def _drug_groups() -> list[tuple[str, str]]:
    """(drug group, pack title) of the packs in force, for the who-monitors forms."""
    rules = service_state().rules
    return sorted({(p.drug_group, p.title) for p in rules.in_force(as_of())}, key=lambda g: g[1])


def render_review(
    *, posted: Posted | None = None, message: str = "", status: int = 200
) -> ResponseReturnValue:
    items = _queue()
    waiting = [i for i in items if i.kind != "gp-escalation"]
    shown = paging.page(waiting, request.args.get("page"), REVIEW_PAGE)
    with_gp = paging.page(
        [i for i in items if i.kind == "gp-escalation"], request.args.get("gp_page"), TABLE_PAGE
    )
    page = render_template(
        "pages/review.html",
        title="Review queue",
        items=shown,
        urgent=sum(1 for i in waiting if i.severity is Severity.URGENT),
        with_gp=with_gp,
        details=patient_details(i.patient for i in [*shown.items, *with_gp.items]),
        posted=posted,
        message=message,
        kinds=_REVIEW_KINDS,
        sign_off_choices=forms.SIGN_OFF_CHOICES,
        non_engagement_choices=forms.NON_ENGAGEMENT_CHOICES,
        as_of=as_of(),
    )
    return page, status


@bp.get("/review")
@requires(SIGN_OFF_ROLES)
def review() -> ResponseReturnValue:
    return render_review()


def render_escalations(
    *, posted: Posted | None = None, message: str = "", status: int = 200
) -> ResponseReturnValue:
    items = paging.page(
        [i for i in _queue() if i.kind == "gp-escalation"], request.args.get("page"), REVIEW_PAGE
    )
    page = render_template(
        "pages/escalations.html",
        title="GP escalations",
        items=items,
        details=patient_details(i.patient for i in items.items),
        posted=posted,
        message=message,
        as_of=as_of(),
    )
    return page, status


@bp.get("/escalations")
@requires(ACKNOWLEDGE_ROLES)
def escalations() -> ResponseReturnValue:
    return render_escalations()
