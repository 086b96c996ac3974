"""``hrm-fhir evidence`` and ``GET /api/v1/patients/<id>/evidence`` against a real HAPI FHIR
server: a synthetic patient swept, contacted, sampled, swept again and signed off, then the pack
shows each Task version's stage, the contact attempts, the sign-off with the pharmacist's name
and time, and the schedule with its citation."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from hrm_fhir import terminology as t
from hrm_fhir.adapters.store.credentials import issue_token
from hrm_fhir.adapters.store.users import create_user
from hrm_fhir.cli.main import main
from hrm_fhir.programme import Actor, ContactOutcome, Decision, Medium, Role, Stage
from hrm_fhir.web.app import create_app
from hrm_fhir.web.request_scope import db_session
from hrm_fhir.web.state import service_state
from hrm_fhir.workflow import service
from tests.builders import rules
from tests.databases import database_for
from tests.integration.practice import AS_OF, starter
from tests.integration.test_workflow_hapi import Flow
from tests.web.pages.conftest import PASSWORD, sign_in

pytestmark = pytest.mark.hapi
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
SIGNED = NOW + timedelta(days=3)
NHS = "9990002223"
SPS_MTX = "https://www.sps.nhs.uk/monitorings/methotrexate-monitoring/"
MTX_RULE = rules().get("methotrexate").ref


@pytest.fixture
def flow(
    fhir_base: str, run_id: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Flow]:
    h = Flow(fhir_base, run_id, database_for(request, tmp_path))
    yield h
    h.close()


def _work_the_task(flow: Flow) -> str:
    """Sweep, two contact attempts, a sample, the result swept in, and the sign-off."""
    p = flow.practice
    resources = starter(p)
    for resource in resources:
        if resource.get("id") == p.pid("mtx"):
            resource["name"] = [{"use": "official", "family": "Testpatient", "given": ["Evie"]}]
            resource["identifier"] = [{"system": t.NHS_NUMBER, "value": NHS}]
    flow.upload(resources)
    flow.sweep(as_of=AS_OF)
    task = flow.monitoring_task("mtx")
    task_id = task["id"]
    tech = Actor("tess", Role.TECHNICIAN, "Tess Tech", p.org)
    pharmacist = Actor("phil", Role.PHARMACIST, "Phil Pharmacist", p.org)
    version = task["meta"]["versionId"]
    for n, (medium, outcome) in enumerate(
        [(Medium.SMS, ContactOutcome.NO_ANSWER), (Medium.PHONE, ContactOutcome.BOOKED)]
    ):
        done = flow.call(
            service.record_contact,
            tech,
            task_id,
            version=version,
            medium=medium,
            outcome=outcome,
            now=NOW + timedelta(days=n),
        )
        version = done.version
    sampled = flow.call(
        service.record_sample,
        tech,
        task_id,
        version=version,
        taken_on=AS_OF + timedelta(days=2),
        now=NOW + timedelta(days=2),
    )
    assert sampled.stage is Stage.SAMPLE_TAKEN
    flow.upload(p.bloods("mtx", AS_OF + timedelta(days=2)))
    flow.sweep(as_of=AS_OF + timedelta(days=3))
    awaiting = flow.read("Task", task_id)
    signed = flow.call(
        service.sign_off,
        pharmacist,
        task_id,
        version=awaiting["meta"]["versionId"],
        decision=Decision.CONTINUE,
        note="bloods fine",
        now=SIGNED,
    )
    assert signed.stage is Stage.COMPLETED
    return str(task_id)


def _as_of() -> str:
    """After every action; the server stamps versions with its own clock, so never before today."""
    return max(AS_OF + timedelta(days=3), datetime.now(UTC).date()).isoformat()


@pytest.mark.usefixtures("database_url")
def test_the_evidence_pack_shows_task_history_contacts_sign_off_and_schedule(
    flow: Flow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    task_id = _work_the_task(flow)
    pid = flow.practice.pid("mtx")
    monkeypatch.setenv("HRM_FHIR_BASE_URL", flow.settings.fhir_base_url)
    monkeypatch.setenv("HRM_DATABASE_URL", flow.settings.database_url)
    caplog.set_level(logging.DEBUG)
    args = ["evidence", f"Patient/{pid}", "--as-of", _as_of()]

    result = CliRunner().invoke(main, [*args, "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    pack = orjson.loads(result.stdout)
    assert (pack["patient"]["name"], pack["patient"]["nhs_number"]) == ("Evie Testpatient", NHS)

    [schedule] = pack["schedules"]
    assert (schedule["drug_group"], schedule["rule"]) == ("methotrexate", MTX_RULE)
    [bloods] = [s for s in schedule["statements"] if s["kind"] == "schedule"]
    assert "every 2 weeks until 6 weeks" in bloods["text"]
    assert (bloods["citation"]["url"], bloods["verified"]) == (SPS_MTX, True)
    done = {d["test"]: d["last_done"] for d in schedule["tests"]}
    assert done["renal"] == (AS_OF + timedelta(days=2)).isoformat()
    assert any(r["analyte"] == "egfr" and r["normalised"] for r in pack["results"])

    [task] = [x for x in pack["tasks"] if x["reference"] == f"Task/{task_id}"]
    stages = [v["stage"] for v in task["versions"]]
    assert stages == [
        "to-contact",
        "invited",
        "booked",
        "sample-taken",
        "awaiting-pharmacist",
        "completed",
    ]
    assert [v["version"] for v in task["versions"]] == [str(n) for n in range(1, len(stages) + 1)]
    assert [v["status"] for v in task["versions"]][-1] == "completed"
    assert any("Phil Pharmacist" in note for note in task["versions"][-1]["notes"])
    assert task["source"] == SPS_MTX

    contacts = [(c["medium"], c["outcome"], c["by"]) for c in pack["contacts"]]
    assert contacts == [("sms", "no-answer", "Tess Tech"), ("phone", "booked", "Tess Tech")]

    [sign_off] = [a for a in pack["provenance"] if a["action"] == "signoff"]
    assert sign_off["recorded"] == SIGNED.isoformat()
    [agent] = sign_off["agents"]
    assert (agent["name"], agent["username"], agent["role"], agent["type"]) == (
        "Phil Pharmacist",
        "phil",
        "pharmacist",
        "attester",
    )
    assert f"Task/{task_id}/_history/{task['versions'][-1]['version']}" in sign_off["targets"]
    assert sign_off["reason"] == f"{MTX_RULE}#bloods"
    assert [a["action"] for a in pack["provenance"]] == ["contact", "contact", "sample", "signoff"]

    events = [
        (e["action"], e["actor"], e["stage_before"], e["stage_after"]) for e in pack["events"]
    ]
    assert events == [
        ("contact", "tess", "to-contact", "invited"),
        ("contact", "tess", "invited", "booked"),
        ("sample", "tess", "booked", "sample-taken"),
        ("signoff", "phil", "awaiting-pharmacist", "completed"),
    ]
    [finding] = [f for f in pack["findings"] if f["resource"] == f"Task/{task_id}"]
    assert finding["close_reason"] == "result received"

    text = CliRunner().invoke(main, args, catch_exceptions=False)
    assert text.exit_code == 0
    assert "2026-11-30 10:00 GMT  Pharmacist sign-off: continue" in text.stdout
    assert "by: Phil Pharmacist (phil), pharmacist, attester" in text.stdout
    assert f"<{SPS_MTX}>" in text.stdout

    page = tmp_path / "reports" / "evidence.html"  # a folder that does not exist yet
    html = CliRunner().invoke(main, [*args, "--format", "html", "--out", str(page)])
    assert (html.exit_code, html.stdout) == (0, "")
    assert "Phil Pharmacist" in page.read_text()
    assert page.stat().st_mode & 0o077 == 0, "readable by its owner only"

    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (NHS, "Evie", "Testpatient"):
        assert secret not in logged


def test_an_unknown_patient_or_an_unreachable_server_is_a_clear_error(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HRM_DATABASE_URL", flow.settings.database_url)
    monkeypatch.setenv("HRM_FHIR_MAX_RETRIES", "0")
    base = ["--fhir-base", flow.settings.fhir_base_url]
    for missing in (flow.practice.pid("nobody"), "not an id"):
        result = CliRunner().invoke(main, ["evidence", missing, *base])
        assert result.exit_code == 2
        assert "the FHIR server has no Patient" in result.stderr
    down = CliRunner().invoke(main, ["evidence", "p1", "--fhir-base", "http://127.0.0.1:9/fhir"])
    assert down.exit_code == 1
    assert "the FHIR server request failed" in down.stderr
    assert "Traceback" not in down.output


def test_the_api_serves_the_pack_as_json_and_html(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_id = _work_the_task(flow)
    pid = flow.practice.pid("mtx")
    app = create_app(
        {
            "TESTING": True,
            "fhir_base_url": flow.settings.fhir_base_url,
            "database_url": flow.settings.database_url,
            "api_keys": {"read-key": "read"},
        }
    )
    with app.app_context():
        session = db_session()
        create_user(
            session, "phil", role="pharmacist", password=PASSWORD, practice=flow.practice.org
        )
        create_user(session, "olga", role="pharmacist", password=PASSWORD, practice="elsewhere")
        phil, _ = issue_token(session, "phil", days=1)
        olga, _ = issue_token(session, "olga", days=1)
        session.commit()
    client = app.test_client()
    read = {"Authorization": f"Bearer {phil}"}
    try:
        url = f"/api/v1/patients/{pid}/evidence?as_of={_as_of()}"
        answer = client.get(url, headers=read)
        assert answer.status_code == 200, answer.json
        body: Any = answer.json
        [task] = [x for x in body["tasks"] if x["reference"] == f"Task/{task_id}"]
        assert task["versions"][-1]["stage"] == "completed"
        page = client.get(f"{url}&format=html", headers=read)
        assert (page.status_code, page.mimetype) == (200, "text/html")
        assert "Phil Pharmacist" in page.get_data(as_text=True)
        assert page.headers["Cache-Control"] == "no-store"
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert "default-src 'none'" in page.headers["Content-Security-Policy"]
        assert answer.headers["Cache-Control"] == "no-store"
        unknown = client.get(
            f"/api/v1/patients/{flow.practice.pid('nobody')}/evidence?as_of={_as_of()}",
            headers=read,
        )
        assert unknown.status_code == 404
        assert client.get(url).status_code == 401
        assert client.get(url, headers={"X-API-Key": "read-key"}).status_code == 401
        assert (
            client.get(url, headers={"X-API-Key": "read-key", "X-Acting-User": "phil"}).status_code
            == 403
        )
        other = client.get(url, headers={"Authorization": f"Bearer {olga}"})
        assert other.status_code == 404, "another practice's patient is answered as none"
        assert other.json == unknown.json
        assert client.get(f"{url}&format=pdf", headers=read).status_code == 400
    finally:
        service_state(app).close(timeout=30)


def test_the_patient_card_links_a_printable_evidence_pack(flow: Flow) -> None:
    _work_the_task(flow)
    pid = flow.practice.pid("mtx")
    app = create_app(
        {
            "TESTING": True,
            "fhir_base_url": flow.settings.fhir_base_url,
            "database_url": flow.settings.database_url,
            "PAGES_AS_OF": date.fromisoformat(_as_of()),
        }
    )
    with app.app_context():
        session = db_session()
        create_user(
            session, "phil", role="pharmacist", password=PASSWORD, practice=flow.practice.org
        )
        create_user(session, "olga", role="pharmacist", password=PASSWORD, practice="elsewhere")
        session.commit()
    try:
        client = app.test_client()
        sign_in(client, "phil")
        card = client.get(f"/patients/{pid}")
        assert f'href="/patients/{pid}/evidence"' in card.text
        pack = client.get(f"/patients/{pid}/evidence")
        assert (pack.status_code, pack.mimetype) == (200, "text/html")
        assert "Phil Pharmacist" in pack.text
        assert MTX_RULE in pack.text
        other = app.test_client()
        sign_in(other, "olga")
        hidden = other.get(f"/patients/{pid}/evidence")
        assert hidden.status_code == 404, "another practice's patient is answered as none"
        assert other.get(f"/patients/{pid}").status_code == 404
    finally:
        service_state(app).close(timeout=30)
