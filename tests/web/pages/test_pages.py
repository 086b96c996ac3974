"""The pages through Flask's test client: sign-in, the session, CSRF, the role checks, rendering,
and form posts (with a stand-in workflow service: see fakes.py)."""

from __future__ import annotations

import re
from datetime import date

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hrm_fhir.adapters.store import users
from hrm_fhir.adapters.store.users import disable_user
from hrm_fhir.domain import Severity
from hrm_fhir.errors import (
    WorkflowConflictError,
    WorkflowError,
    WorkflowNotFoundError,
    WorkflowPermissionError,
)
from hrm_fhir.programme import ContactOutcome, Decision, Medium, Role, Stage
from hrm_fhir.web.app import create_app
from hrm_fhir.web.request_scope import db_session
from hrm_fhir.web.state import service_state
from hrm_fhir.workflow import service
from tests.web.pages.conftest import PASSWORD, AppFactory, Clock, sign_in, token_of
from tests.web.pages.fakes import (
    AS_OF,
    MTX,
    FakeService,
    card,
    review_item,
    task_summary,
    worklist_entry,
)


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hash test passwords with a low scrypt cost (the real cost is tested in test_users.py)."""
    monkeypatch.setattr(users, "HASH_METHOD", "scrypt:1024:8:1")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeService:
    stand_in = FakeService()
    stand_in.install(monkeypatch)
    return stand_in


@pytest.fixture
def pinned(make_app: AppFactory) -> Flask:
    """An app whose pages work as of a fixed day, with the test users."""
    from tests.web.pages.conftest import add_users

    app = make_app(PAGES_AS_OF=AS_OF)
    add_users(app)
    return app


# ------------------------------------------------------------------ sign-in and the session


def test_the_sign_in_page_has_labelled_fields_and_a_csrf_token(client: FlaskClient) -> None:
    page = client.get("/sign-in")
    assert page.status_code == 200
    html = page.text
    assert '<html lang="en-GB">' in html
    assert '<label for="username">Username</label>' in html
    assert 'id="username"' in html
    assert '<label for="password">Password</label>' in html
    assert 'autocomplete="current-password"' in html
    assert token_of(html)
    assert page.headers["Cache-Control"] == "no-store"
    assert "script-src 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"


def test_pages_need_a_user(client: FlaskClient) -> None:
    for path in ("/", "/worklist", "/review", "/escalations", "/patients/p1"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"] == f"/sign-in?next={path}"


@pytest.mark.usefixtures("database_url")
@pytest.mark.parametrize(
    ("username", "home"),
    [("tech", "/worklist"), ("pharm", "/review"), ("gp", "/escalations"), ("boss", "/worklist")],
)
def test_signing_in_lands_on_the_role_s_page(client: FlaskClient, username: str, home: str) -> None:
    token = token_of(client.get("/sign-in").text)
    response = client.post(
        "/sign-in", data={"username": username, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == home


def test_a_wrong_password_or_unknown_user_gets_one_message_and_no_session(
    client: FlaskClient,
) -> None:
    token = token_of(client.get("/sign-in").text)
    for username, password in (("tech", "wrong password!!"), ("nobody", PASSWORD), ("tech", "")):
        response = client.post(
            "/sign-in", data={"username": username, "password": password, "csrf_token": token}
        )
        assert response.status_code == 400
        assert "You are not signed in" in response.text
        assert client.get("/worklist").status_code == 302


def test_sign_in_returns_to_a_local_page_only(client: FlaskClient) -> None:
    for target, expected in (
        ("/review", "/review"),
        ("//evil.example/x", "/review"),
        ("https://evil.example/", "/review"),
        ("/\\evil.example", "/review"),
    ):
        with client.session_transaction() as session:
            session.clear()
        token = token_of(client.get("/sign-in").text)
        response = client.post(
            "/sign-in",
            data={"username": "pharm", "password": PASSWORD, "csrf_token": token, "next": target},
        )
        assert response.headers["Location"] == expected


def test_sign_out_ends_the_session(client: FlaskClient) -> None:
    token = sign_in(client, "tech")
    response = client.post("/sign-out", data={"csrf_token": token})
    assert response.status_code == 302
    assert client.get("/worklist").status_code == 302
    assert "You have signed out" in client.get("/sign-in").text


def test_an_idle_session_ends_with_a_message(pinned: Flask, fake: FakeService) -> None:
    clock = Clock()
    pinned.config["CLOCK"] = clock
    client = pinned.test_client()
    sign_in(client, "tech")
    assert client.get("/worklist").status_code == 200
    clock.advance(minutes=31)
    response = client.get("/worklist")
    assert response.status_code == 302
    assert "signed out after 30 minutes without activity" in client.get("/sign-in").text


def test_the_session_lasts_thirty_minutes_by_default(app: Flask) -> None:
    assert app.permanent_session_lifetime.total_seconds() == 30 * 60
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


@pytest.mark.usefixtures("database_url")
def test_a_disabled_user_is_signed_out_at_the_next_request(app: Flask) -> None:
    client = app.test_client()
    sign_in(client, "boss")
    with app.app_context():
        session = db_session()
        disable_user(session, "boss")
        session.commit()
    assert client.get("/worklist").status_code == 302
    assert "not active" in client.get("/sign-in").text


# ------------------------------------------------------------------ the secret key


def test_without_a_secret_key_the_pages_refuse_to_run_but_the_api_runs(
    make_app: AppFactory,
) -> None:
    app = make_app(TESTING=False, secret_key="")
    client = app.test_client()
    response = client.get("/sign-in")
    assert response.status_code == 503
    assert "HRM_SECRET_KEY is not set" in response.text
    assert "set HRM_SECRET_KEY to a random value of at least 32 characters" in response.text
    assert "secrets.token_hex(32)" in response.text
    assert client.get("/health").status_code == 200
    with client.get("/static/pages.css") as stylesheet:
        assert (stylesheet.status_code, stylesheet.mimetype) == (200, "text/css")


def test_a_short_secret_key_is_refused(make_app: AppFactory) -> None:
    app = make_app(TESTING=False, secret_key="too-short")  # noqa: S106 - a test value
    assert app.test_client().get("/sign-in").status_code == 503


def test_the_secret_key_comes_from_the_settings(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "k" * 40
    monkeypatch.setenv("HRM_SECRET_KEY", key)
    monkeypatch.setenv("HRM_SESSION_MINUTES", "15")
    app = make_app(TESTING=False)
    assert app.secret_key == key
    assert app.permanent_session_lifetime.total_seconds() == 15 * 60
    assert app.test_client().get("/sign-in").status_code == 200
    assert repr(key) not in repr(service_state(app).settings)


# ------------------------------------------------------------------ CSRF


def test_a_post_without_a_valid_csrf_token_is_refused(pinned: Flask, fake: FakeService) -> None:
    client = pinned.test_client()
    sign_in(client, "pharm")
    for token in (None, "forged-token", ""):
        data = {"version": "1", "decision": "continue"}
        if token is not None:
            data["csrf_token"] = token
        response = client.post("/tasks/flag-1/signoff", data=data)
        assert response.status_code == 400
        assert "The form was refused" in response.text
    assert fake.actions() == []


def test_sign_in_itself_needs_the_token(client: FlaskClient) -> None:
    client.get("/sign-in")
    response = client.post("/sign-in", data={"username": "tech", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/worklist").status_code == 302


def test_a_token_from_another_session_is_refused(pinned: Flask, fake: FakeService) -> None:
    other = pinned.test_client()
    stolen = sign_in(other, "pharm")
    client = pinned.test_client()
    sign_in(client, "pharm")
    response = client.post(
        "/tasks/flag-1/signoff", data={"csrf_token": stolen, "version": "1", "decision": "continue"}
    )
    assert response.status_code == 400
    assert fake.actions() == []


def test_the_api_does_not_ask_for_a_csrf_token(make_app: AppFactory) -> None:
    app = make_app(api_keys={"operator-key-0123456789": "operator"}, SWEEP_BACKGROUND=False)
    response = app.test_client().post(
        "/api/v1/sweeps", json={"dry_run": True}, headers={"X-API-Key": "operator-key-0123456789"}
    )
    assert response.is_json
    assert response.status_code != 400
    assert "CSRF" not in response.text


# ------------------------------------------------------------------ roles


@pytest.mark.parametrize(
    ("username", "path"),
    [
        ("tech", "/review"),
        ("tech", "/escalations"),
        ("gp", "/worklist"),
        ("gp", "/review"),
        ("pharm", "/escalations"),
    ],
)
def test_pages_of_other_roles_are_forbidden(
    pinned: Flask, fake: FakeService, username: str, path: str
) -> None:
    client = pinned.test_client()
    sign_in(client, username)
    response = client.get(path)
    assert response.status_code == 403
    assert "You may not do this" in response.text


@pytest.mark.parametrize(
    ("username", "action", "fields"),
    [
        ("tech", "signoff", {"decision": "continue"}),
        ("tech", "non-engagement", {"decision": "pause"}),
        ("tech", "acknowledge", {}),
        ("gp", "signoff", {"decision": "continue"}),
        ("gp", "contact", {"medium": "sms", "outcome": "message-sent", "patient": "p-mtx"}),
        ("pharm", "acknowledge", {}),
    ],
)
def test_forged_posts_for_another_role_are_refused_and_change_nothing(
    pinned: Flask, fake: FakeService, username: str, action: str, fields: dict[str, str]
) -> None:
    client = pinned.test_client()
    token = sign_in(client, username)
    response = client.post(
        f"/tasks/task-1/{action}", data={"csrf_token": token, "version": "1", **fields}
    )
    assert response.status_code == 403
    assert fake.actions() == []


def test_a_technician_sees_no_sign_off_controls(pinned: Flask, fake: FakeService) -> None:
    client = pinned.test_client()
    sign_in(client, "tech")
    for path in ("/worklist", "/patients/p-mtx"):
        html = client.get(path).text
        assert "Sign off" not in html
        assert "/signoff" not in html
        assert "Review queue" not in html
    assert "Record contact" in client.get("/patients/p-mtx").text


def test_a_pharmacist_sees_sign_off_controls(pinned: Flask, fake: FakeService) -> None:
    client = pinned.test_client()
    sign_in(client, "pharm")
    html = client.get("/review").text
    assert 'action="/tasks/flag-1/signoff"' in html
    assert '<label for="flag-1-signoff-decision">Decision</label>' in html


# ------------------------------------------------------------------ rendering


def test_the_worklist_highlights_overdue_in_words_and_shows_sources(
    pinned: Flask, fake: FakeService
) -> None:
    client = pinned.test_client()
    sign_in(client, "tech")
    html = client.get("/worklist").text
    assert "Mary Ashworth" in html
    assert "NHS 999 000 0018" in html
    assert "36 days overdue" in html
    assert "Severely overdue" in html
    assert "Due this week" in html
    assert '<th scope="col">Patient</th>' in html
    assert '<th scope="row">' in html
    assert "methotrexate@1" in html
    assert 'href="https://www.sps.nhs.uk/monitorings/methotrexate-monitoring/"' in html
    call = [c for name, c in fake.calls if name == "worklist"][-1]
    assert call["as_of"] == AS_OF
    assert call["practice"] == "org-1"  # the user's practice, whatever the URL asks


def test_worklist_filters_are_checked(pinned: Flask, fake: FakeService) -> None:
    client = pinned.test_client()
    sign_in(client, "tech")
    response = client.get("/worklist?drug_group=nonsense&stage=nowhere")
    assert response.status_code == 400
    assert "Choose a drug group from the list." in response.text
    assert "Choose a stage from the list." in response.text
    assert "There is a problem with the filters" in response.text
    fake.calls.clear()
    response = client.get("/worklist?drug_group=nonsense&stage=nowhere")
    assert not [c for c in fake.calls if c[0] == "worklist"]
    assert client.get("/worklist?drug_group=lithium&stage=booked").status_code == 200
    [(_, call)] = [c for c in fake.calls if c[0] == "worklist"]
    assert (call["drug_group"], call["stage"].value) == ("lithium", "booked")


def test_the_patient_card_shows_history_findings_and_forms(
    pinned: Flask, fake: FakeService
) -> None:
    client = pinned.test_client()
    sign_in(client, "tech")
    html = client.get("/patients/p-mtx").text
    assert "<h1>Mary Ashworth</h1>" in html
    assert "left a voicemail" in html
    assert "not reached" in html
    assert "Findings and their sources" in html
    assert '<label for="task-1-contact-medium">How</label>' in html
    assert 'name="version" value="3"' in html
    [(_, call)] = [c for c in fake.calls if c[0] == "patient_card"]
    assert call["patient"] == "Patient/p-mtx"
    assert call["actor"].role is Role.TECHNICIAN


def test_a_malformed_patient_id_is_not_found(pinned: Flask, fake: FakeService) -> None:
    client = pinned.test_client()
    sign_in(client, "tech")
    assert client.get("/patients/a%20b").status_code == 404


def test_the_review_queue_lists_urgent_items_with_trend_and_thresholds(
    pinned: Flask, fake: FakeService
) -> None:
    fake.queue = [review_item(), review_item("non-engagement", "task-9", severity=None)]
    client = pinned.test_client()
    sign_in(client, "pharm")
    html = client.get("/review").text
    assert "1 urgent" in html
    assert "URGENT" in html
    assert "Oliver Bennett" in html
    assert "&gt;= 1.5 mmol/L" in html
    assert "1.6 mmol/L" in html
    assert "lithium@1" in html
    assert 'action="/tasks/task-9/non-engagement"' in html
    assert "Continue with caveats" in html


def test_the_pages_write_units_and_dates_as_people_read_them_and_the_age_of_a_result(
    pinned: Flask, fake: FakeService
) -> None:
    inr = service.Trend(
        "inr", "INR", [service.ResultPoint("Observation/o2", date(2025, 11, 7), 8.4, "{INR}")]
    )
    neutrophils = service.Trend(
        "neutrophils",
        "Neutrophil count",
        [service.ResultPoint("Observation/o3", date(2026, 11, 13), 0.8, "10*9/L")],
    )
    fake.queue = [
        review_item(
            description="INR 8.4 {INR} on 2025-11-07 is at or above 8 {INR}: stop warfarin",
            since=date(2025, 11, 7),
            trend=[inr, neutrophils],
            thresholds=[service.ThresholdInfo("inr", ">= 8 {INR}", Severity.URGENT, "stop")],
        )
    ]
    fake.card = card(results=[inr, neutrophils])
    client = pinned.test_client()
    sign_in(client, "pharm")
    for html in (client.get("/review").text, client.get("/patients/p-mtx").text):
        assert "{INR}" not in html
        assert "10*9/L" not in html
        assert "0.8 ×10⁹/L" in html
        assert '<td class="numeric">8.4</td>' in html
        assert "<td>12 months ago</td>" in html
        assert "<td>2 weeks ago</td>" in html
    review = client.get("/review").text
    assert "INR 8.4 on 7 Nov 2025 is at or above 8: stop warfarin" in review
    assert "2025-11-07" not in review
    assert "7 Nov 2025 (12 months ago)" in review
    assert "<td>&gt;= 8</td>" in review


def test_a_long_worklist_is_paged_and_its_links_keep_the_filters(
    pinned: Flask, fake: FakeService
) -> None:
    fake.entries = [worklist_entry(chase_due=n % 2 == 0) for n in range(30)]
    client = pinned.test_client()
    sign_in(client, "tech")
    first = client.get("/worklist?drug_group=methotrexate").text
    assert "<strong>30</strong> patients on the list; <strong>15</strong> due a contact" in first
    assert first.count('<tr class="row-overdue">') == 25
    assert "Showing 1 to 25 of 30 patients: page 1 of 2." in first
    assert 'href="/worklist?drug_group=methotrexate&amp;page=2" rel="next"' in first
    second = client.get("/worklist?drug_group=methotrexate&page=2").text
    assert second.count('<tr class="row-overdue">') == 5
    assert "Showing 26 to 30 of 30 patients: page 2 of 2." in second
    assert 'href="/worklist?drug_group=methotrexate&amp;page=1" rel="prev"' in second
    assert 'rel="next"' not in second


def test_the_review_queue_shows_ten_items_a_page_and_counts_all_of_them(
    pinned: Flask, fake: FakeService
) -> None:
    fake.queue = [review_item(task_id=f"flag-{n:02}") for n in range(12)]
    client = pinned.test_client()
    sign_in(client, "pharm")
    first = client.get("/review").text
    assert "<strong>12</strong> items to review, <strong>12 urgent</strong>." in first
    assert first.count('<article class="panel panel-urgent"') == 10
    assert "Showing 1 to 10 of 12 items to review: page 1 of 2." in first
    second = client.get("/review?page=2").text
    assert second.count('<article class="panel panel-urgent"') == 2
    assert 'id="item-flag-11"' in second
    assert 'id="item-flag-00"' not in second


# ------------------------------------------------------------------ form posts


def _post(client: FlaskClient, token: str, path: str, **fields: str) -> tuple[int, str, str]:
    response = client.post(path, data={"csrf_token": token, **fields})
    return response.status_code, response.headers.get("Location", ""), response.text


def test_a_contact_attempt_calls_the_service_and_redirects_with_a_confirmation(
    pinned: Flask, fake: FakeService
) -> None:
    client = pinned.test_client()
    token = sign_in(client, "tech")
    status, location, _ = _post(
        client,
        token,
        "/tasks/task-1/contact",
        version="3",
        patient="p-mtx",
        medium="phone",
        outcome="no-answer",
        note=" rang twice ",
    )
    assert (status, location) == (303, "/patients/p-mtx")
    [(name, call)] = fake.actions()
    assert name == "record_contact"
    assert (call["task_id"], call["version"], call["note"]) == ("task-1", "3", "rang twice")
    assert (call["medium"], call["outcome"]) == (Medium.PHONE, ContactOutcome.NO_ANSWER)
    assert call["actor"].username == "tech"
    assert (
        "Contact attempt recorded: phone, no answer. Stage now: invited."
        in client.get(location).text
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"medium": "", "outcome": "no-answer"}, "Choose how the patient was contacted."),
        (
            {"medium": "pigeon", "outcome": "no-answer"},
            "Choose how the patient was contacted from the list.",
        ),
        ({"medium": "sms", "outcome": "lost"}, "Choose the outcome from the list."),
        ({"medium": "sms", "outcome": "booked", "version": ""}, "did not say which version"),
        ({"medium": "sms", "outcome": "booked", "note": "x" * 2001}, "2000 characters or fewer"),
    ],
)
def test_bad_contact_input_gets_a_message_and_changes_nothing(
    pinned: Flask, fake: FakeService, fields: dict[str, str], message: str
) -> None:
    client = pinned.test_client()
    token = sign_in(client, "tech")
    status, _, html = _post(
        client, token, "/tasks/task-1/contact", **{"version": "3", "patient": "p-mtx", **fields}
    )
    assert status == 400
    assert "There is a problem: nothing was saved" in html
    assert message in html
    assert 'aria-invalid="true"' in html or "version" in message
    assert fake.actions() == []


def test_dates_are_read_in_iso_or_uk_order_and_checked(pinned: Flask, fake: FakeService) -> None:
    client = pinned.test_client()
    token = sign_in(client, "tech")
    base = {"version": "3", "patient": "p-mtx"}
    assert _post(client, token, "/tasks/task-1/booking", booked_for="04/12/2026", **base)[0] == 303
    assert _post(client, token, "/tasks/task-1/booking", booked_for="2026-12-05", **base)[0] == 303
    assert [c["booked_for"] for _, c in fake.actions()] == [date(2026, 12, 4), date(2026, 12, 5)]
    status, _, html = _post(client, token, "/tasks/task-1/booking", booked_for="2026-11-26", **base)
    assert status == 400
    assert "cannot be in the past" in html
    for bad in ("31/02/2026", "tomorrow", "2026-13-01", ""):
        status, _, html = _post(client, token, "/tasks/task-1/booking", booked_for=bad, **base)
        assert status == 400
        assert "the date the blood test is booked for" in html
    status, _, html = _post(client, token, "/tasks/task-1/sample", taken_on="2026-11-28", **base)
    assert status == 400
    assert "cannot be in the future" in html
    assert len(fake.actions()) == 2


def test_a_sign_off_passes_the_decision_and_its_details(pinned: Flask, fake: FakeService) -> None:
    client = pinned.test_client()
    token = sign_in(client, "pharm")
    status, location, _ = _post(
        client,
        token,
        "/tasks/flag-1/signoff",
        version="1",
        decision="dose-adjusted",
        new_dose="600mg at night",
        repeat_on="",
        note="discussed",
    )
    assert (status, location) == (303, "/review")
    [(name, call)] = fake.actions()
    assert name == "sign_off"
    assert call["decision"] is Decision.DOSE_ADJUSTED
    assert (call["new_dose"], call["repeat_on"], call["note"]) == (
        "600mg at night",
        None,
        "discussed",
    )
    assert "Signed off: Dose adjusted within scope" in client.get("/review").text


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"decision": ""}, "Choose a decision."),
        ({"decision": "pause"}, "Choose a decision from the list."),
        ({"decision": "dose-adjusted"}, "A dose adjustment needs the new dose."),
        ({"decision": "repeat-test-booked"}, "A repeat test needs its date."),
        ({"decision": "continue", "new_dose": "5mg"}, "A new dose is given only with"),
        ({"decision": "continue", "repeat_on": "2026-12-01"}, "A repeat date is given only with"),
    ],
)
def test_bad_sign_off_input_gets_a_message_and_changes_nothing(
    pinned: Flask, fake: FakeService, fields: dict[str, str], message: str
) -> None:
    client = pinned.test_client()
    token = sign_in(client, "pharm")
    status, _, html = _post(client, token, "/tasks/flag-1/signoff", version="1", **fields)
    assert status == 400
    assert message in html
    assert fake.actions() == []


def test_a_non_engagement_decision_and_an_acknowledgement(pinned: Flask, fake: FakeService) -> None:
    client = pinned.test_client()
    token = sign_in(client, "pharm")
    assert _post(client, token, "/tasks/task-9/non-engagement", version="2", decision="refer")[
        :2
    ] == (303, "/review")
    gp = pinned.test_client()
    gp_token = sign_in(gp, "gp")
    assert _post(gp, gp_token, "/tasks/gp-1/acknowledge", version="1", note="seen")[:2] == (
        303,
        "/escalations",
    )
    assert [
        (name, call["decision"] if "decision" in call else call["note"])
        for name, call in fake.actions()
    ] == [
        ("decide_non_engagement", Decision.REFER),
        ("acknowledge_escalation", "seen"),
    ]


@pytest.mark.parametrize(
    ("error", "status", "text"),
    [
        (WorkflowConflictError("Task/flag-1 has changed"), 409, "Someone else changed this task"),
        (
            WorkflowError("cannot sign off on a Task at stage completed"),
            409,
            "Cannot sign off on a Task at stage completed.",
        ),
        (WorkflowNotFoundError("no Task or Flag flag-1"), 404, "No Task or Flag flag-1."),
        (
            WorkflowPermissionError("a technician may not sign off (allowed: admin, pharmacist)"),
            403,
            "A technician may not sign off",
        ),
    ],
)
def test_service_refusals_become_clear_messages(
    pinned: Flask, fake: FakeService, error: WorkflowError, status: int, text: str
) -> None:
    fake.fail = error
    client = pinned.test_client()
    token = sign_in(client, "pharm")
    response = client.post(
        "/tasks/flag-1/signoff", data={"csrf_token": token, "version": "1", "decision": "continue"}
    )
    assert response.status_code == status
    assert text in response.text
    assert "Nothing was" in response.text or "nothing was saved" in response.text


def test_a_malformed_task_id_is_an_html_404(pinned: Flask, fake: FakeService) -> None:
    client = pinned.test_client()
    token = sign_in(client, "tech")
    response = client.post("/tasks/bad%20id/contact", data={"csrf_token": token})
    assert response.status_code == 404
    assert "<h1>Not found</h1>" in response.text


def test_every_page_form_carries_a_csrf_token(pinned: Flask, fake: FakeService) -> None:
    fake.queue = [review_item(), review_item("gp-escalation", "gp-1")]
    for username, paths in (
        ("tech", ["/worklist", "/patients/p-mtx"]),
        ("pharm", ["/review", "/patients/p-mtx"]),
        ("gp", ["/escalations"]),
    ):
        client = pinned.test_client()
        sign_in(client, username)
        for path in paths:
            html = client.get(path).text
            posts = re.findall(r'<form method="post".*?</form>', html, flags=re.S)
            assert posts, path
            assert all('name="csrf_token"' in form for form in posts), path


def test_app_without_overrides_keeps_flask_default_secret_off(tmp_path: object) -> None:
    """create_app() with TESTING and no key makes a random key for the run (never a fixed one)."""
    first = create_app({"TESTING": True, "database_url": "sqlite://"})
    second = create_app({"TESTING": True, "database_url": "sqlite://"})
    assert first.secret_key
    assert second.secret_key
    assert first.secret_key != second.secret_key


# ------------------------------------------------------------------ who monitors (shared care)


ARRANGEMENT = service.OpenItem(
    reference="Task/arr-1",
    version="2",
    kind="monitored-elsewhere",
    description="Lithium: monitored by Oakfield CMHT; practice review by 2027-02-01",
    rule="",
    source=None,
    status="on-hold",
    stage=Stage.MONITORED_ELSEWHERE,
    severity=None,
    drug_group="lithium",
)


def test_the_pharmacist_sees_who_monitors_and_the_technician_does_not(
    pinned: Flask, fake: FakeService
) -> None:
    fake.card = card(findings=[*card().findings, ARRANGEMENT])
    client = pinned.test_client()
    sign_in(client, "pharm")
    html = client.get("/patients/p-mtx").text
    assert '<h2 id="who-monitors">Who monitors</h2>' in html
    assert "Lithium: monitored by Oakfield CMHT" in html
    assert 'action="/patients/p-mtx/monitored-elsewhere"' in html
    assert 'action="/patients/p-mtx/monitored-by-practice"' in html
    assert '<option value="methotrexate">Methotrexate (DMARD)</option>' in html
    assert 'name="drug_group" value="lithium"' in html
    other = pinned.test_client()
    sign_in(other, "tech")
    assert "Who monitors" not in other.get("/patients/p-mtx").text


def test_recording_monitored_elsewhere_calls_the_service_and_returns_to_the_card(
    pinned: Flask, fake: FakeService
) -> None:
    client = pinned.test_client()
    token = sign_in(client, "pharm")
    status, location, _ = _post(
        client,
        token,
        "/patients/p-mtx/monitored-elsewhere",
        key="who",
        version="",
        drug_group="methotrexate",
        monitored_by=" Rheumatology, Oakfield Hospital ",
        review_on="01/02/2027",
        note="letter of 20 Nov",
    )
    assert (status, location) == (303, "/patients/p-mtx")
    [(name, call)] = fake.actions()
    assert name == "record_monitored_elsewhere"
    assert call["task_id"] == MTX
    assert (call["drug_group"], call["monitored_by"], call["review_on"], call["version"]) == (
        "methotrexate",
        "Rheumatology, Oakfield Hospital",
        date(2027, 2, 1),
        None,
    )
    assert call["actor"].role is Role.PHARMACIST
    assert "routine monitoring of this drug stops" in client.get(location).text


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"monitored_by": ""}, "Name the organisation or team that monitors."),
        ({"review_on": ""}, "Enter the date the practice reviews the arrangement."),
        ({"review_on": AS_OF.isoformat()}, "The review date must be after today."),
        ({"review_on": "2028-01-01"}, "The review date must be within 366 days."),
        ({"drug_group": "aspirin"}, "Choose a drug group from the list."),
        ({"monitored_by": "x" * 201}, "200 characters or fewer"),
    ],
)
def test_bad_input_gets_a_message_and_nothing_is_called(
    pinned: Flask, fake: FakeService, fields: dict[str, str], message: str
) -> None:
    client = pinned.test_client()
    token = sign_in(client, "pharm")
    values = {
        "key": "who",
        "version": "",
        "drug_group": "lithium",
        "monitored_by": "Oakfield CMHT",
        "review_on": "2027-02-01",
        **fields,
    }
    status, _, html = _post(client, token, "/patients/p-mtx/monitored-elsewhere", **values)
    assert status == 400
    assert message in html
    assert fake.actions() == []


def test_a_technician_may_not_decide_who_monitors(pinned: Flask, fake: FakeService) -> None:
    client = pinned.test_client()
    token = sign_in(client, "tech")
    for path in ("/patients/p-mtx/monitored-elsewhere", "/patients/p-mtx/monitored-by-practice"):
        status, _, _ = _post(client, token, path, drug_group="lithium", version="")
        assert status == 403
    assert fake.actions() == []


def test_an_arrangement_due_for_review_is_renewed_or_ended_from_the_queue(
    pinned: Flask, fake: FakeService
) -> None:
    fake.queue = [
        review_item(
            "monitored-elsewhere",
            "arr-1",
            stage=Stage.MONITORED_ELSEWHERE,
            severity=None,
            description="Lithium: monitored by Oakfield CMHT; practice review by 2026-11-27",
            since=AS_OF,
            trend=[],
            thresholds=[],
        )
    ]
    client = pinned.test_client()
    token = sign_in(client, "pharm")
    html = client.get("/review").text
    assert "Monitored elsewhere" in html
    assert "Review due" in html
    assert "resumes the day after the review date" in html
    status, location, _ = _post(
        client,
        token,
        "/patients/p-lith/monitored-by-practice",
        key="who-arr-1",
        back="review",
        version="2",
        drug_group="lithium",
    )
    assert (status, location) == (303, "/review")
    [(name, call)] = fake.actions()
    assert name == "record_monitored_by_practice"
    assert (call["task_id"], call["drug_group"], call["version"]) == (
        "Patient/p-lith",
        "lithium",
        "2",
    )
    [(_, queue_call)] = [c for c in fake.calls if c[0] == "review_queue"][:1]
    assert queue_call["as_of"] == AS_OF


def test_severely_overdue_shows_in_words_on_the_card_and_the_queue(
    pinned: Flask, fake: FakeService
) -> None:
    fake.card = card(tests_due=[task_summary(severely_overdue=True)])
    fake.queue = [review_item("non-engagement", "task-9", severity=None, severely_overdue=True)]
    client = pinned.test_client()
    sign_in(client, "pharm")
    assert "Severely overdue" in client.get("/patients/p-mtx").text
    assert "Severely overdue" in client.get("/review").text
    plain = pinned.test_client()
    fake.card = card(tests_due=[task_summary(severely_overdue=False)])
    sign_in(plain, "pharm")
    assert "Severely overdue" not in plain.get("/patients/p-mtx").text
