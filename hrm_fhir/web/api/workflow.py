"""The programme workflow over HTTP: the worklist, the review queue, the patient card, and the
actions people take on Tasks, each on behalf of a named user.

Each request acts for a person (hrm_fhir/web/api/api_keys.py): the owner of a personal bearer token,
or the user an ``integration`` key names in ``X-Acting-User``. The workflow service then applies
their role and practice: a user (or key) tied to a practice sees and acts on that practice's
patients only, and another practice's patient or Task is a 404, as for none."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import orjson
from flask import Blueprint, Response, request, url_for

from hrm_fhir import clock, paging
from hrm_fhir.programme import Actor
from hrm_fhir.web.api.api_keys import acting_user, scoped_practice
from hrm_fhir.web.api.schemas import load_monitoring_query, load_patient_ref
from hrm_fhir.web.api.workflow_schemas import (
    Booking,
    BookingSchema,
    Contact,
    ContactSchema,
    MonitoredByPractice,
    MonitoredByPracticeSchema,
    MonitoredElsewhere,
    MonitoredElsewhereSchema,
    NonEngagement,
    NonEngagementSchema,
    Sample,
    SampleSchema,
    SignOff,
    SignOffSchema,
    Versioned,
    VersionedSchema,
    load_body,
    load_practice_query,
    load_worklist_query,
)
from hrm_fhir.web.request_scope import db_session, fhir_gateway
from hrm_fhir.web.state import service_state
from hrm_fhir.workflow import service

bp = Blueprint("workflow", __name__)


def _json(value: Any) -> Response:
    return Response(orjson.dumps(value), mimetype="application/json")


def _page(key: str, items: list[Any], offset: int, limit: int) -> Response:
    """One page of a list under ``key`` (as before paging), with the whole list's ``total`` and
    ``links`` to this page and the next and previous ones (null at either end)."""
    shown = paging.window(items, offset=offset, limit=limit)

    def link(at: int | None) -> str | None:
        if at is None:
            return None
        args: dict[str, Any] = {**request.args.to_dict(), "offset": at, "limit": limit}
        return url_for(str(request.endpoint), **args)

    return _json(
        {
            key: shown.items,
            "total": shown.total,
            "offset": shown.offset,
            "limit": shown.limit,
            "links": {
                "self": link(shown.offset),
                "next": link(shown.next_offset),
                "prev": link(shown.previous_offset),
            },
        }
    )


def _act(
    action: Callable[..., service.ActionResult],
    actor: Actor,
    task_id: str,
    body: Any,
    **extra: Any,
) -> Response:
    """Run one workflow action with the request's fields (named as the service names them) and
    commit its ledger rows."""
    gateway = fhir_gateway()
    result = action(gateway, db_session(), actor, task_id, **asdict(body), **extra)
    db_session().commit()
    return _json(asdict(result))


@bp.get("/worklist")
def worklist() -> Response:
    acting_user()
    query = load_worklist_query(request.args)
    settings = service_state().settings
    gateway = fhir_gateway()
    entries = service.worklist(
        gateway,
        db_session(),
        as_of=query.as_of or clock.today(),
        practice=scoped_practice(query.practice),
        drug_group=query.drug_group,
        stage=query.stage,
        chase_interval_days=settings.chase_interval_days,
        rules=service_state().rules,
    )
    return _page("entries", entries, query.offset, query.limit)


@bp.get("/review-queue")
def review_queue() -> Response:
    acting_user()
    query = load_practice_query(request.args)
    gateway = fhir_gateway()
    items = service.review_queue(
        gateway,
        db_session(),
        practice=scoped_practice(query.practice),
        rules=service_state().rules,
        as_of=clock.today(),
    )
    return _page("items", items, query.offset, query.limit)


@bp.get("/patients/<patient_id>/card")
def patient_card(patient_id: str) -> Response:
    actor = acting_user()
    patient = load_patient_ref(patient_id)
    query = load_monitoring_query(request.args)
    settings = service_state().settings
    gateway = fhir_gateway()
    card = service.patient_card(
        gateway,
        db_session(),
        patient,
        as_of=query.as_of or clock.today(),
        actor=actor,
        chase_interval_days=settings.chase_interval_days,
        rules=service_state().rules,
    )
    return _json(card)


@bp.post("/tasks/<task_id>/contacts")
def contacts(task_id: str) -> Response:
    actor = acting_user()
    body = load_body(ContactSchema(), request.get_json(), Contact)
    return _act(service.record_contact, actor, task_id, body, rules=service_state().rules)


@bp.post("/tasks/<task_id>/bookings")
def bookings(task_id: str) -> Response:
    actor = acting_user()
    body = load_body(BookingSchema(), request.get_json(), Booking)
    return _act(service.record_booking, actor, task_id, body)


@bp.post("/tasks/<task_id>/samples")
def samples(task_id: str) -> Response:
    actor = acting_user()
    body = load_body(SampleSchema(), request.get_json(), Sample)
    return _act(service.record_sample, actor, task_id, body)


@bp.post("/tasks/<task_id>/route-to-pharmacist")
def route(task_id: str) -> Response:
    actor = acting_user()
    body = load_body(VersionedSchema(), request.get_json(), Versioned)
    days = service_state().settings.chase_interval_days
    return _act(service.route_non_engagement, actor, task_id, body, chase_interval_days=days)


@bp.post("/tasks/<task_id>/signoff")
def signoff(task_id: str) -> Response:
    actor = acting_user()
    body = load_body(SignOffSchema(), request.get_json(), SignOff)
    return _act(service.sign_off, actor, task_id, body)


@bp.post("/tasks/<task_id>/non-engagement")
def non_engagement(task_id: str) -> Response:
    actor = acting_user()
    body = load_body(NonEngagementSchema(), request.get_json(), NonEngagement)
    return _act(service.decide_non_engagement, actor, task_id, body)


@bp.post("/escalations/<gp_task_id>/acknowledge")
def acknowledge(gp_task_id: str) -> Response:
    actor = acting_user()
    body = load_body(VersionedSchema(), request.get_json(), Versioned)
    return _act(service.acknowledge_escalation, actor, gp_task_id, body)


@bp.post("/patients/<patient_id>/monitored-elsewhere")
def monitored_elsewhere(patient_id: str) -> Response:
    actor = acting_user()
    patient = load_patient_ref(patient_id)
    body = load_body(MonitoredElsewhereSchema(), request.get_json(), MonitoredElsewhere)
    rules = service_state().rules
    return _act(service.record_monitored_elsewhere, actor, patient, body, rules=rules)


@bp.post("/patients/<patient_id>/monitored-by-practice")
def monitored_by_practice(patient_id: str) -> Response:
    actor = acting_user()
    patient = load_patient_ref(patient_id)
    body = load_body(MonitoredByPracticeSchema(), request.get_json(), MonitoredByPractice)
    rules = service_state().rules
    return _act(service.record_monitored_by_practice, actor, patient, body, rules=rules)
