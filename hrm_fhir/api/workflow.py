"""The programme workflow over HTTP: the worklist, the review queue, the patient card, and the
actions people take on Tasks, each on behalf of a named user.

The API key says which client calls (``read`` for GET, ``operator`` for POST); the
``X-Acting-User`` header names the person, an active account in the ``users`` table whose role
and practice the workflow service then applies. A user tied to a practice sees and acts on that
practice's patients only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import orjson
from flask import Blueprint, Response, request
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Forbidden, Unauthorized

from hrm_fhir.adapters.fhir_gateway import FHIRGateway
from hrm_fhir.api.schemas import load_monitoring_query, load_patient_ref
from hrm_fhir.api.workflow_schemas import (
    ACTING_USER,
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
from hrm_fhir.app import db_session, service_state
from hrm_fhir.records import UserRecord
from hrm_fhir.sweep import default_as_of
from hrm_fhir.workflow import service
from hrm_fhir.workflow.model import Actor, Role

bp = Blueprint("workflow", __name__)


def acting_user() -> Actor:
    """The active user ``X-Acting-User`` names; 401 when it is missing, unknown or disabled."""
    username = request.headers.get(ACTING_USER, "")
    user = db_session().get(UserRecord, username) if username else None
    roles = {role.value: role for role in Role}
    if user is None or not user.active or user.role not in roles:
        raise Unauthorized(
            f"{ACTING_USER} must name an active user",
            www_authenticate=WWWAuthenticate("ApiKey", {"header": ACTING_USER}),
        )
    return Actor(user.username, roles[user.role], user.display_name, user.practice)


def _practice(actor: Actor, asked: str | None) -> str | None:
    """The practice a list covers: the user's own; asking for another is a 403."""
    if actor.organization is None:
        return asked
    if asked is not None and Actor("", actor.role, "", asked).organization != actor.organization:
        raise Forbidden("this user works for another practice")
    return actor.organization


@contextmanager
def _gateway() -> Iterator[FHIRGateway]:
    gateway = FHIRGateway.from_settings(service_state().settings)
    try:
        yield gateway
    finally:
        gateway.close()


def _json(value: Any) -> Response:
    return Response(orjson.dumps(value), mimetype="application/json")


def _act(
    action: Callable[..., service.ActionResult],
    actor: Actor,
    task_id: str,
    body: Any,
    **extra: Any,
) -> Response:
    """Run one workflow action with the request's fields (named as the service names them) and
    commit its ledger rows."""
    with _gateway() as gateway:
        result = action(gateway, db_session(), actor, task_id, **asdict(body), **extra)
    db_session().commit()
    return _json(asdict(result))


@bp.get("/worklist")
def worklist() -> Response:
    actor = acting_user()
    query = load_worklist_query(request.args)
    settings = service_state().settings
    with _gateway() as gateway:
        entries = service.worklist(
            gateway,
            db_session(),
            as_of=query.as_of or default_as_of(settings),
            practice=_practice(actor, query.practice),
            drug_group=query.drug_group,
            stage=query.stage,
            chase_interval_days=settings.chase_interval_days,
            rules=service_state().rules,
        )
    return _json({"entries": entries})


@bp.get("/review-queue")
def review_queue() -> Response:
    actor = acting_user()
    query = load_practice_query(request.args)
    with _gateway() as gateway:
        items = service.review_queue(
            gateway,
            db_session(),
            practice=_practice(actor, query.practice),
            rules=service_state().rules,
            as_of=default_as_of(service_state().settings),
        )
    return _json({"items": items})


@bp.get("/patients/<patient_id>/card")
def patient_card(patient_id: str) -> Response:
    actor = acting_user()
    patient = load_patient_ref(patient_id)
    query = load_monitoring_query(request.args)
    settings = service_state().settings
    with _gateway() as gateway:
        card = service.patient_card(
            gateway,
            db_session(),
            patient,
            as_of=query.as_of or default_as_of(settings),
            actor=actor,
            chase_interval_days=settings.chase_interval_days,
            rules=service_state().rules,
        )
    return _json(card)


@bp.post("/tasks/<task_id>/contacts")
def contacts(task_id: str) -> Response:
    actor = acting_user()
    body = load_body(ContactSchema(), request.get_json(), Contact)
    return _act(service.record_contact, actor, task_id, body)


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
