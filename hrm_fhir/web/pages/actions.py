"""The forms' posts: a contact attempt, a booking, a sample, routing to the pharmacist, a sign-off,
a non-engagement decision, a GP's acknowledgement, and who monitors a drug group (monitored
elsewhere, or by the practice again).

Each post checks the role (403), reads and checks its fields, and only then calls the workflow
service with the Task version the page was showing. Unusable input (400), a Task that moved on
since the page was loaded or whose stage does not allow the action (409) re-renders the page
with a message and changes nothing; success commits the ledger row and redirects back with a
confirmation (post/redirect/get).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue

from hrm_fhir.errors import (
    WorkflowConflictError,
    WorkflowError,
    WorkflowNotFoundError,
    WorkflowPermissionError,
)
from hrm_fhir.web.pages import forms
from hrm_fhir.web.pages.blueprint import bp
from hrm_fhir.web.pages.context import actor, as_of, chase_interval_days
from hrm_fhir.web.pages.forms import Posted
from hrm_fhir.web.pages.session import ACKNOWLEDGE_ROLES, CONTACT_ROLES, SIGN_OFF_ROLES, requires
from hrm_fhir.web.pages.views import check_id, render_card, render_escalations, render_review
from hrm_fhir.web.request_scope import db_session, fhir_gateway
from hrm_fhir.web.state import service_state
from hrm_fhir.workflow import service

logger = logging.getLogger(__name__)

CONFLICT = (
    "Someone else changed this task after you opened the page, so nothing was saved. "
    "The page now shows the latest; check it and enter your change again if it is still needed."
)

Renderer = Callable[..., ResponseReturnValue]


def _patient_page() -> Renderer:
    """The patient card the technician's form came from (its hidden ``patient`` field)."""
    patient_id = check_id(request.form.get("patient", ""), "patient")

    def render(**kwargs: object) -> ResponseReturnValue:
        return render_card(patient_id, **kwargs)  # type: ignore[arg-type]

    return render


def _run(
    posted: Posted,
    page: Renderer,
    call: Callable[[], service.ActionResult] | None,
    done: str,
    back: str,
) -> ResponseReturnValue:
    """Call the service unless the form had errors (``call`` is None when a field could not be
    read); re-render the page with the messages, or commit and redirect back."""
    if call is None or not posted.ok:
        return page(posted=posted, status=400)
    try:
        result = call()
    except WorkflowConflictError:
        db_session().rollback()
        return page(posted=None, message=CONFLICT, status=409)
    except (WorkflowPermissionError, WorkflowNotFoundError):
        db_session().rollback()
        raise
    except WorkflowError as exc:  # the Task's stage does not allow it (as the API's 409)
        db_session().rollback()
        text = str(exc)
        posted.fail("_form", text[0].upper() + text[1:] + ("" if text.endswith(".") else "."))
        return page(posted=posted, status=409)
    db_session().commit()
    flash(f"{done} Stage now: {result.stage.label}.", "success")
    return redirect(back, code=303)


def _card_url() -> str:
    return url_for("pages.card", patient_id=request.form.get("patient", ""))


@bp.post("/tasks/<task_id>/contact")
@requires(CONTACT_ROLES)
def contact(task_id: str) -> ResponseReturnValue:
    check_id(task_id)
    page = _patient_page()
    posted, medium, outcome = forms.contact(task_id, request.form)
    if medium is None or outcome is None:
        return _run(posted, page, None, "", "")
    return _run(
        posted,
        page,
        lambda: service.record_contact(
            fhir_gateway(),
            db_session(),
            actor(),
            task_id,
            version=posted.values["version"],
            medium=medium,
            outcome=outcome,
            note=posted.values["note"],
            rules=service_state().rules,
        ),
        f"Contact attempt recorded: {medium.label}, {outcome.label}.",
        _card_url(),
    )


@bp.post("/tasks/<task_id>/booking")
@requires(CONTACT_ROLES)
def booking(task_id: str) -> ResponseReturnValue:
    check_id(task_id)
    page = _patient_page()
    posted, booked_for = forms.booking(task_id, request.form, as_of())
    if booked_for is None:
        return _run(posted, page, None, "", "")
    return _run(
        posted,
        page,
        lambda: service.record_booking(
            fhir_gateway(),
            db_session(),
            actor(),
            task_id,
            version=posted.values["version"],
            booked_for=booked_for,
            note=posted.values["note"],
        ),
        f"Blood test booked for {booked_for:%d %b %Y}.",
        _card_url(),
    )


@bp.post("/tasks/<task_id>/sample")
@requires(CONTACT_ROLES)
def sample(task_id: str) -> ResponseReturnValue:
    check_id(task_id)
    page = _patient_page()
    posted, taken_on = forms.sample(task_id, request.form, as_of())
    if taken_on is None:
        return _run(posted, page, None, "", "")
    return _run(
        posted,
        page,
        lambda: service.record_sample(
            fhir_gateway(),
            db_session(),
            actor(),
            task_id,
            version=posted.values["version"],
            taken_on=taken_on,
        ),
        f"Sample taken on {taken_on:%d %b %Y} recorded.",
        _card_url(),
    )


@bp.post("/tasks/<task_id>/route")
@requires(CONTACT_ROLES)
def route(task_id: str) -> ResponseReturnValue:
    check_id(task_id)
    page = _patient_page()
    posted = forms.read(task_id, "route", request.form, ())
    return _run(
        posted,
        page,
        lambda: service.route_non_engagement(
            fhir_gateway(),
            db_session(),
            actor(),
            task_id,
            version=posted.values["version"],
            chase_interval_days=chase_interval_days(),
        ),
        "Routed to the pharmacist for a non-engagement decision.",
        _card_url(),
    )


@bp.post("/tasks/<task_id>/signoff")
@requires(SIGN_OFF_ROLES)
def sign_off(task_id: str) -> ResponseReturnValue:
    check_id(task_id)
    posted, decision = forms.sign_off(task_id, request.form)
    if decision is None:
        return _run(posted, render_review, None, "", "")
    return _run(
        posted,
        render_review,
        lambda: service.sign_off(
            fhir_gateway(),
            db_session(),
            actor(),
            task_id,
            version=posted.values["version"],
            decision=decision.decision,
            note=posted.values["note"],
            new_dose=decision.new_dose,
            repeat_on=decision.repeat_on,
        ),
        f"Signed off: {dict(forms.SIGN_OFF_CHOICES)[decision.decision.value]}.",
        url_for("pages.review"),
    )


@bp.post("/tasks/<task_id>/non-engagement")
@requires(SIGN_OFF_ROLES)
def non_engagement(task_id: str) -> ResponseReturnValue:
    check_id(task_id)
    posted, decision = forms.non_engagement(task_id, request.form)
    if decision is None:
        return _run(posted, render_review, None, "", "")
    return _run(
        posted,
        render_review,
        lambda: service.decide_non_engagement(
            fhir_gateway(),
            db_session(),
            actor(),
            task_id,
            version=posted.values["version"],
            decision=decision,
            note=posted.values["note"],
        ),
        f"Non-engagement decision recorded: {dict(forms.NON_ENGAGEMENT_CHOICES)[decision.value]}.",
        url_for("pages.review"),
    )


@bp.post("/tasks/<task_id>/acknowledge")
@requires(ACKNOWLEDGE_ROLES)
def acknowledge(task_id: str) -> ResponseReturnValue:
    check_id(task_id)
    posted = forms.acknowledge(task_id, request.form)
    return _run(
        posted,
        render_escalations,
        lambda: service.acknowledge_escalation(
            fhir_gateway(),
            db_session(),
            actor(),
            task_id,
            version=posted.values["version"],
            note=posted.values["note"],
        ),
        "Escalation acknowledged.",
        url_for("pages.escalations"),
    )


def _who_monitors(patient_id: str, *, elsewhere: bool) -> ResponseReturnValue:
    """Read the who-monitors form and record the decision; back to the review queue or the
    patient card, as the form's hidden ``back`` field says."""
    check_id(patient_id, "patient")
    if request.form.get("back") == "review":
        page, back = render_review, url_for("pages.review")
    else:
        page, back = _card_of(patient_id), url_for("pages.card", patient_id=patient_id)
    rules = service_state().rules
    groups = {pack.drug_group for pack in rules.packs}
    key = request.form.get("key") or "who"
    posted, chosen = forms.who_monitors(key, request.form, as_of(), groups, elsewhere=elsewhere)
    if chosen is None:
        return _run(posted, page, None, "", "")
    note, patient = posted.values["note"], f"Patient/{patient_id}"

    def call() -> service.ActionResult:
        assert chosen is not None  # noqa: S101 - checked above
        if chosen.review_on is None:
            return service.record_monitored_by_practice(
                fhir_gateway(),
                db_session(),
                actor(),
                patient,
                drug_group=chosen.drug_group,
                version=chosen.version,
                note=note,
                rules=rules,
            )
        return service.record_monitored_elsewhere(
            fhir_gateway(),
            db_session(),
            actor(),
            patient,
            drug_group=chosen.drug_group,
            monitored_by=chosen.monitored_by,
            review_on=chosen.review_on,
            version=chosen.version,
            note=note,
            rules=rules,
        )

    done = (
        "Recorded: the practice monitors this drug again; the next sweep raises its monitoring."
        if chosen.review_on is None
        else f"Recorded: monitored by {chosen.monitored_by}, review by "
        f"{chosen.review_on:%d %b %Y}; the practice's routine monitoring of this drug stops."
    )
    return _run(posted, page, call, done, back)


def _card_of(patient_id: str) -> Renderer:
    def render(**kwargs: object) -> ResponseReturnValue:
        return render_card(patient_id, **kwargs)  # type: ignore[arg-type]

    return render


@bp.post("/patients/<patient_id>/monitored-elsewhere")
@requires(SIGN_OFF_ROLES)
def monitored_elsewhere(patient_id: str) -> ResponseReturnValue:
    return _who_monitors(patient_id, elsewhere=True)


@bp.post("/patients/<patient_id>/monitored-by-practice")
@requires(SIGN_OFF_ROLES)
def monitored_by_practice(patient_id: str) -> ResponseReturnValue:
    return _who_monitors(patient_id, elsewhere=False)
