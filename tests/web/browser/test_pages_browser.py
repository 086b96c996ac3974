"""The pages in a real headless Chromium: sign-in, the worklist, a contact attempt and a sign-off
through the forms, a GP's acknowledgement, role and CSRF refusals, the idle timeout, and a
screenshot. What the forms wrote is checked on the HAPI server itself."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from tests.web.browser.conftest import LiveServer, Seeded, csrf_token, sign_in

pytestmark = pytest.mark.hapi

Serve = Callable[[Flask], LiveServer]


def _monitoring_task(seeded: Seeded, name: str) -> dict[str, object]:
    [task] = [
        t for t in seeded.ours("Task", name) if t["code"]["coding"][0]["code"] == "monitoring-due"
    ]
    return task


def test_sign_in_with_a_wrong_password_is_refused_and_the_right_one_works(
    seeded: Seeded, serve: Serve, page: Page
) -> None:
    server = serve(seeded.app())
    sign_in(page, server.url, "tech", "not the password at all")
    expect(page.get_by_role("alert")).to_contain_text("username or password is wrong")
    expect(page).to_have_url(f"{server.url}/sign-in")

    sign_in(page, server.url, "tech")
    expect(page).to_have_url(f"{server.url}/worklist")
    expect(page.get_by_text("Signed in as")).to_contain_text("Test technician")


def test_the_worklist_shows_the_patients_most_pressing_first(
    seeded: Seeded, serve: Serve, page: Page
) -> None:
    server = serve(seeded.app())
    sign_in(page, server.url, "tech")
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(3)
    first, last = rows.nth(0), rows.nth(2)
    expect(first.get_by_text("Out-of-range follow-up")).to_be_visible()
    expect(last).to_contain_text("Mary Ashworth")
    expect(last).to_contain_text("NHS 999 000 0018")
    expect(last).to_contain_text("Full blood count")
    expect(last).to_contain_text("days overdue")
    expect(
        last.get_by_role("link", name="Specialist Pharmacy Service: Methotrexate")
    ).to_be_visible()
    expect(last).to_contain_text("methotrexate@")
    expect(page.get_by_role("columnheader", name="Patient")).to_have_attribute("scope", "col")


def test_a_contact_attempt_recorded_through_the_form_reaches_the_server(
    seeded: Seeded, serve: Serve, page: Page
) -> None:
    server = serve(seeded.app())
    task = _monitoring_task(seeded, "mtx")
    before = len(seeded.ours("Communication", "mtx"))
    sign_in(page, server.url, "tech")
    page.get_by_role("link", name="Mary Ashworth").click()
    expect(page.get_by_role("heading", name="Mary Ashworth", level=1)).to_be_visible()

    page.get_by_role("button", name="Record contact").click()  # nothing chosen: refused
    expect(page.get_by_role("alert")).to_contain_text("Choose how the patient was contacted")
    assert len(seeded.ours("Communication", "mtx")) == before

    page.get_by_label("How").select_option(label="Phone")
    page.get_by_label("Outcome").select_option(label="No answer")
    page.get_by_label("Note (optional)").first.fill("left a voicemail")
    page.get_by_role("button", name="Record contact").click()
    expect(page.get_by_role("status")).to_contain_text("Contact attempt recorded: phone, no answer")
    history = page.locator("#history + table")
    expect(history).to_contain_text("left a voicemail")
    expect(history).to_contain_text("Test technician")

    messages = seeded.ours("Communication", "mtx")
    assert len(messages) == before + 1
    assert any(m["basedOn"][0]["reference"] == f"Task/{task['id']}" for m in messages)
    updated = _monitoring_task(seeded, "mtx")
    assert updated["meta"]["versionId"] != task["meta"]["versionId"]


def test_a_pharmacist_signs_off_an_urgent_result_through_the_form(
    seeded: Seeded, serve: Serve, page: Page
) -> None:
    server = serve(seeded.app())
    [flag] = seeded.ours("Flag", "lith")
    assert flag["status"] == "active"
    sign_in(page, server.url, "pharm")
    expect(page).to_have_url(f"{server.url}/review")
    item = page.locator("article", has_text="Oliver Bennett")
    expect(item.get_by_role("heading", level=2)).to_contain_text("URGENT Out-of-range result")
    expect(item).to_contain_text("lithium@")

    item.get_by_label("Decision").select_option("dose-adjusted")
    item.get_by_role("button", name="Sign off").click()  # no new dose: refused
    expect(page.get_by_role("alert")).to_contain_text("needs the new dose")
    assert seeded.ours("Flag", "lith")[0]["status"] == "active"

    item = page.locator("article", has_text="Oliver Bennett")
    item.get_by_label("Decision").select_option("dose-withheld")
    item.get_by_label("Note for the record (optional)").fill("Patient told to stop; GP informed")
    item.get_by_role("button", name="Sign off").click()
    expect(page.get_by_role("status")).to_contain_text("Signed off: Dose withheld")
    expect(page.locator("article", has_text="Oliver Bennett")).to_have_count(0)
    assert seeded.ours("Flag", "lith")[0]["status"] == "inactive"


def test_a_pharmacist_escalates_and_the_gp_acknowledges(
    seeded: Seeded, serve: Serve, page: Page
) -> None:
    server = serve(seeded.app())
    sign_in(page, server.url, "pharm")
    item = page.locator("article", has_text="Ruth Carter")
    item.get_by_label("Decision").select_option("escalated-gp")
    item.get_by_role("button", name="Sign off").click()
    expect(page.get_by_role("status")).to_contain_text("Escalate to the GP")
    expect(page.get_by_role("heading", name="Waiting for the GP")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, server.url, "gp")
    expect(page).to_have_url(f"{server.url}/escalations")
    item = page.locator("article", has_text="Ruth Carter")
    expect(item.get_by_role("button", name="Sign off")).to_have_count(0)
    item.get_by_label("What the GP will do (optional)").fill("Seen today; lithium stopped")
    item.get_by_role("button", name="Acknowledge escalation").click()
    expect(page.get_by_role("status")).to_contain_text("Escalation acknowledged")
    assert seeded.ours("Flag", "carter")[0]["status"] == "inactive"


def test_a_technician_sees_no_sign_off_and_a_forged_post_is_refused(
    seeded: Seeded, serve: Serve, page: Page
) -> None:
    server = serve(seeded.app())
    sign_in(page, server.url, "tech")
    expect(page.get_by_role("link", name="Review queue")).to_have_count(0)
    page.get_by_role("link", name="Oliver Bennett").click()
    expect(page.get_by_role("heading", name="Findings and their sources")).to_be_visible()
    expect(page.get_by_role("button", name="Sign off")).to_have_count(0)
    expect(page.get_by_label("Decision")).to_have_count(0)

    assert page.goto(f"{server.url}/review").status == 403  # type: ignore[union-attr]
    expect(page.get_by_role("heading", name="You may not do this")).to_be_visible()

    page.goto(f"{server.url}/worklist")
    flags = seeded.ours("Flag", "carter") + seeded.ours("Flag", "lith")
    target = flags[0]
    forged = page.request.post(
        f"{server.url}/tasks/{target['id']}/signoff",
        form={
            "csrf_token": csrf_token(page),
            "version": target["meta"]["versionId"],
            "decision": "continue",
        },
        max_redirects=0,
    )
    assert forged.status == 403
    after = next(f for f in seeded.search("Flag", {"_id": target["id"]}))
    assert after["meta"]["versionId"] == target["meta"]["versionId"]


def test_a_form_post_without_the_csrf_token_is_refused_and_changes_nothing(
    seeded: Seeded, serve: Serve, page: Page
) -> None:
    server = serve(seeded.app())
    task = _monitoring_task(seeded, "mtx")
    before = len(seeded.ours("Communication", "mtx"))
    sign_in(page, server.url, "tech")
    form = {
        "version": task["meta"]["versionId"],
        "patient": seeded.practice.pid("mtx"),
        "medium": "sms",
        "outcome": "message-sent",
    }
    refused = page.request.post(f"{server.url}/tasks/{task['id']}/contact", form=form)
    assert refused.status == 400
    assert "The form was refused" in refused.text()
    assert len(seeded.ours("Communication", "mtx")) == before
    assert _monitoring_task(seeded, "mtx")["meta"]["versionId"] == task["meta"]["versionId"]

    page.reload()
    expect(page.get_by_text("Signed in as")).to_be_visible()  # still signed in


def test_an_idle_session_times_out(seeded: Seeded, serve: Serve, page: Page) -> None:
    server = serve(seeded.app(PERMANENT_SESSION_LIFETIME=timedelta(seconds=2)))
    sign_in(page, server.url, "tech")
    expect(page).to_have_url(f"{server.url}/worklist")
    time.sleep(3)
    page.goto(f"{server.url}/worklist")
    expect(page).to_have_url(f"{server.url}/sign-in?next=/worklist")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_screenshot_of_the_worklist_is_a_png(
    seeded: Seeded, serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = serve(seeded.app())
    sign_in(page, server.url, "tech")
    expect(page.get_by_role("heading", name="Worklist")).to_be_visible()
    shot = tmp_path / "worklist.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000
