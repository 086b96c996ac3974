"""Issue 11 on the pages: server-side sessions (sign-out ends every copy of the cookie, an absolute
lifetime besides the idle one, Secure cookies outside the sandbox), sign-in throttling with a
message that says nothing about which accounts exist, the sign-in log line, and password rules."""

from __future__ import annotations

import logging

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hrm_fhir.adapters.store import users
from hrm_fhir.adapters.store.users import UserError, check_password_rules, create_user
from hrm_fhir.config import Settings
from hrm_fhir.web.request_scope import db_session
from tests.web.pages.conftest import PASSWORD, AppFactory, Clock, add_users, sign_in, token_of

WRONG = "not the password at all"


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users, "HASH_METHOD", "scrypt:1024:8:1")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed(make_app: AppFactory, clock: Clock) -> Flask:
    app = make_app(CLOCK=clock)
    add_users(app)
    return app


def _try(client: FlaskClient, username: str, password: str, **environ: str) -> int:
    token = token_of(client.get("/sign-in").text)
    response = client.post(
        "/sign-in",
        data={"username": username, "password": password, "csrf_token": token},
        environ_base=environ,
    )
    return response.status_code


# ------------------------------------------------------------------ sessions


def test_signing_out_ends_a_copied_session_cookie(timed: Flask) -> None:
    client = timed.test_client()
    token = sign_in(client, "tech")
    cookie = client.get_cookie("hrm_fhir_session")
    assert cookie is not None
    thief = timed.test_client()
    thief.set_cookie("hrm_fhir_session", cookie.value)
    assert thief.get("/reports/monthly").status_code == 200, "the copy works while signed in"
    assert client.post("/sign-out", data={"csrf_token": token}).status_code == 302
    replay = thief.get("/reports/monthly")
    assert replay.status_code == 302
    assert replay.headers["Location"].startswith("/sign-in")


def test_a_session_used_every_few_minutes_still_ends_after_twelve_hours(
    timed: Flask, clock: Clock
) -> None:
    client = timed.test_client()
    sign_in(client, "tech")
    for _ in range(12 * 60 // 5 - 1):  # every five minutes, for just under twelve hours
        clock.advance(minutes=5)
        assert client.get("/reports/monthly").status_code == 200
    clock.advance(minutes=5)
    assert client.get("/reports/monthly").status_code == 302
    assert "signed out 12 hours after signing in" in client.get("/sign-in").text


def test_the_absolute_lifetime_is_configurable(make_app: AppFactory, clock: Clock) -> None:
    app = make_app(CLOCK=clock, session_max_hours=1.0)
    add_users(app)
    client = app.test_client()
    sign_in(client, "tech")
    for _ in range(5):
        clock.advance(minutes=11)
        assert client.get("/reports/monthly").status_code == 200
    clock.advance(minutes=5)
    assert client.get("/reports/monthly").status_code == 302


def test_disabling_an_account_ends_its_sessions_at_once(timed: Flask) -> None:
    client = timed.test_client()
    sign_in(client, "tech")
    with timed.app_context():
        users.disable_user(db_session(), "tech")
        db_session().commit()
    assert client.get("/reports/monthly").status_code == 302
    assert "not active" in client.get("/sign-in").text


@pytest.mark.parametrize(
    ("fhir_base", "secure_cookies", "secure"),
    [
        ("https://fhir.example.nhs.uk/fhir", None, True),
        ("http://10.1.2.3/fhir", None, True),
        ("http://127.0.0.1:8080/fhir", None, False),
        ("http://localhost:8080/fhir", None, False),
        ("http://[::1]:8080/fhir", None, False),
        ("http://127.0.0.1:8080/fhir", True, True),
        ("https://fhir.example.nhs.uk/fhir", False, False),
    ],
)
def test_the_cookie_is_secure_by_default_outside_the_sandbox(
    make_app: AppFactory, fhir_base: str, secure_cookies: bool | None, secure: bool
) -> None:
    settings = Settings(fhir_base_url=fhir_base, secure_cookies=secure_cookies)
    assert settings.cookies_secure is secure
    app = make_app(fhir_base_url=fhir_base, secure_cookies=secure_cookies)
    assert app.config["SESSION_COOKIE_SECURE"] is secure


def test_the_secure_cookie_is_set_with_the_secure_flag(make_app: AppFactory) -> None:
    app = make_app(fhir_base_url="https://fhir.example.nhs.uk/fhir")
    add_users(app)
    client = app.test_client()
    token = token_of(client.get("/sign-in", base_url="https://localhost").text)
    response = client.post(
        "/sign-in",
        data={"username": "tech", "password": PASSWORD, "csrf_token": token},
        base_url="https://localhost",
        headers={"Referer": "https://localhost/sign-in"},
    )
    assert response.status_code == 302
    assert "Secure" in response.headers["Set-Cookie"]


# ------------------------------------------------------------------ throttling


def test_fifty_wrong_passwords_then_the_right_one_is_refused(client: FlaskClient) -> None:
    statuses = [_try(client, "tech", WRONG) for _ in range(50)]
    assert statuses[:10] == [400] * 10
    assert set(statuses[10:]) == {429}
    assert _try(client, "tech", PASSWORD) == 429, "locked, even with the right password"
    page = client.post(
        "/sign-in",
        data={
            "username": "tech",
            "password": PASSWORD,
            "csrf_token": token_of(client.get("/sign-in").text),
        },
    )
    assert int(page.headers["Retry-After"]) > 0
    assert "Too many failed sign-ins" in page.text
    assert _try(client, "pharm", PASSWORD, REMOTE_ADDR="10.0.0.2") == 302, "others sign in"


def test_the_lockout_does_not_say_whether_the_account_exists(client: FlaskClient) -> None:
    pages = {}
    for username in ("tech", "nobody-here"):
        for _ in range(10):
            _try(client, username, WRONG, REMOTE_ADDR=f"10.1.0.{len(pages) + 1}")
        token = token_of(client.get("/sign-in").text)
        response = client.post(
            "/sign-in",
            data={"username": username, "password": WRONG, "csrf_token": token},
            environ_base={"REMOTE_ADDR": f"10.1.0.{len(pages) + 1}"},
        )
        assert response.status_code == 429
        page = response.text.replace(username, "NAME")
        pages[username] = page.replace(token_of(page), "TOKEN")  # signed with the second
    assert pages["tech"] == pages["nobody-here"]


def test_one_address_trying_many_usernames_is_throttled(client: FlaskClient) -> None:
    statuses = [_try(client, f"user{i}", WRONG) for i in range(31)]
    assert statuses[:30] == [400] * 30
    assert statuses[30] == 429
    assert _try(client, "tech", PASSWORD) == 429
    assert _try(client, "tech", PASSWORD, REMOTE_ADDR="10.0.0.9") == 302


def test_a_right_password_clears_the_account_s_failures(client: FlaskClient) -> None:
    for _ in range(9):
        assert _try(client, "tech", WRONG) == 400
    assert _try(client, "tech", PASSWORD) == 302
    client.delete_cookie("hrm_fhir_session")
    for _ in range(9):
        assert _try(client, "tech", WRONG) == 400


def test_the_limits_are_settings(make_app: AppFactory) -> None:
    app = make_app(sign_in_limit_account="2 per hour")
    add_users(app)
    client = app.test_client()
    assert [_try(client, "tech", WRONG) for _ in range(3)] == [400, 400, 429]


def test_the_sign_in_log_never_holds_what_was_typed(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    typed = "Hunter2-My-Secret-Password"
    with caplog.at_level(logging.INFO, logger="hrm_fhir"):
        _try(client, typed, WRONG)
        _try(client, "tech", WRONG)
        for _ in range(10):
            _try(client, typed, WRONG)
    refusals = [r for r in caplog.records if r.message.startswith("sign-in")]
    assert [r.message for r in refusals][:2] == ["sign-in refused", "sign-in refused"]
    assert refusals[-1].message == "sign-in locked"
    for record in refusals:
        text = " ".join(str(v) for v in vars(record).values())
        assert typed not in text
        assert typed.lower() not in text
    assert not hasattr(refusals[0], "user"), "an unknown name is not logged"
    assert refusals[1].user == "tech"  # type: ignore[attr-defined]
    assert refusals[0].attempt == refusals[-1].attempt  # type: ignore[attr-defined]


# ------------------------------------------------------------------ passwords


@pytest.mark.parametrize(
    "password",
    [
        "password1234",  # in the common-passwords list
        "qwertyuiopasdfgh",  # a keyboard run
        "aaaaaaaaaaaaaaaa",  # a repeat
        "123456789012",  # a sequence
        "iloveyou2026",  # a common password with a year
        "tesstechnician",  # the user's own name
    ],
)
def test_common_and_guessable_passwords_are_refused(password: str) -> None:
    with pytest.raises(UserError, match=r"common|guess"):
        check_password_rules(password, ("technician", "Tess Technician"))


def test_a_passphrase_of_unrelated_words_is_accepted(app: Flask) -> None:
    check_password_rules(PASSWORD)
    with app.app_context(), pytest.raises(UserError, match=r"common|guess"):
        create_user(db_session(), "sam", role="gp", password="sam-sam-sam-sam")  # noqa: S106


def test_behind_a_proxy_the_client_s_address_is_counted(make_app: AppFactory) -> None:
    app = make_app(proxy_hops=1, sign_in_limit_address="3 per hour")
    add_users(app)
    client = app.test_client()

    def attempt(forwarded_for: str) -> int:
        token = token_of(client.get("/sign-in").text)
        return client.post(
            "/sign-in",
            data={"username": f"u-{forwarded_for}", "password": WRONG, "csrf_token": token},
            headers={"X-Forwarded-For": forwarded_for},
        ).status_code

    assert [attempt("203.0.113.7") for _ in range(4)] == [400, 400, 400, 429]
    assert attempt("203.0.113.8") == 400, "another client behind the same proxy is not locked"
