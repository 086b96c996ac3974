"""The pages in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright), served
by werkzeug on 127.0.0.1 in a thread, over a tiny practice on a real HAPI server that one sweep
has turned into Tasks and Flags.

Playwright downloads nothing here: it launches the system Chromium by path (`make test` installs
it with apt-get when it is missing). Each test gets a fresh browser profile directory.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import BrowserContext, Page, Playwright, sync_playwright
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import BaseWSGIServer, make_server

from hrm_fhir import terminology
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.store.database import init_db, make_session_factory
from hrm_fhir.adapters.store.users import create_user
from hrm_fhir.config import Settings
from hrm_fhir.sweep.run import run_sweep
from hrm_fhir.web.app import create_app
from hrm_fhir.web.state import service_state
from hrm_fhir.workflow.chases import SweepChases
from tests.builders import rules
from tests.integration.practice import AS_OF, LITHIUM, Practice, Resource

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery staple"  # noqa: S105 - test accounts only
USERS = {
    "tech": "technician",
    "pharm": "pharmacist",
    "gp": "gp",
}


def named(
    patient: Resource, family: str, given: str, nhs_number: str, phone: str | None = None
) -> Resource:
    """A Patient with a name, an NHS number (synthetic 999 range) and a phone number."""
    patient["name"] = [{"family": family, "given": [given]}]
    patient["identifier"] = [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs_number}]
    if phone:
        patient["telecom"] = [{"system": "phone", "value": phone, "use": "mobile"}]
    return patient


def patients(practice: Practice) -> list[Resource]:
    """Three named patients: methotrexate bloods overdue (Mary Ashworth), and a toxic lithium
    level (Oliver Bennett, Ruth Carter)."""
    p = practice
    long_ago, recent = AS_OF - timedelta(days=700), AS_OF - timedelta(days=6)
    return [
        p.organization(),
        named(p.patient("mtx"), "Ashworth", "Mary", "9990000018", phone="07700 900001"),
        *p.repeats(
            "mtx", "Methotrexate 2.5mg tablets", long_ago, recent, dosage="10mg once weekly"
        ),
        *p.bloods("mtx", AS_OF - timedelta(days=120)),
        named(p.patient("lith", born="1970-05-05"), "Bennett", "Oliver", "9990000026"),
        *p.repeats(
            "lith", "Lithium carbonate 400mg MR tablets", long_ago, recent, dosage="800mg at night"
        ),
        p.result("lith", LITHIUM, 1.6, "mmol/L", AS_OF - timedelta(days=2)),
        *p.bloods("lith", AS_OF - timedelta(days=30)),
        named(p.patient("carter", born="1965-02-02"), "Carter", "Ruth", "9990000034"),
        *p.repeats(
            "carter",
            "Lithium carbonate 400mg MR tablets",
            long_ago,
            recent,
            dosage="800mg at night",
        ),
        p.result("carter", LITHIUM, 1.7, "mmol/L", AS_OF - timedelta(days=1)),
        *p.bloods("carter", AS_OF - timedelta(days=30)),
    ]


@dataclass
class Seeded:
    """A practice on the HAPI server, swept once into a database that holds the users."""

    base: str
    practice: Practice
    database_url: str

    def search(self, kind: str, params: dict[str, str]) -> list[Resource]:
        """Resources straight from the server (to check what a page wrote, or did not)."""
        gateway = FHIRGateway.from_settings(Settings(fhir_base_url=self.base))
        try:
            return gateway.search(kind, params).resources
        finally:
            gateway.close()

    def ours(self, kind: str, name: str) -> list[Resource]:
        """The service's Tasks or Flags (or every Communication) about one patient."""
        ref = f"Patient/{self.practice.pid(name)}"
        if kind == "Communication":
            return self.search(kind, {"subject": ref})
        param = "patient" if kind == "Task" else "subject"
        return self.search(kind, {param: ref, "_tag": f"{terminology.TAG}|hrm-fhir"})

    def app(self, **overrides: Any) -> Flask:
        return create_app(
            {
                "TESTING": True,
                "database_url": self.database_url,
                "fhir_base_url": self.base,
                "practice": self.practice.org,
                "PAGES_AS_OF": AS_OF,
                **overrides,
            }
        )


@pytest.fixture(scope="module")
def seeded(fhir_base: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    import uuid

    practice = Practice(f"b{uuid.uuid4().hex[:10]}")
    database_url = f"sqlite:///{tmp_path_factory.mktemp('pages') / 'hrm.db'}"
    settings = Settings(fhir_base_url=fhir_base, database_url=database_url, practice=practice.org)
    engine = init_db(database_url)
    sessions: sessionmaker[Session] = make_session_factory(engine)
    gateway = FHIRGateway.from_settings(settings)
    try:
        entries = [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in patients(practice)
        ]
        reply = gateway.transaction(
            {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        )
        assert all(e["response"]["status"].startswith("2") for e in reply["entry"])
        summary = run_sweep(
            settings,
            sessions,
            gateway,
            rules(),
            as_of=AS_OF,
            full=True,
            chases=SweepChases.of(settings, gateway, rules()),
        )
        assert summary.counts.errors == 0
        with sessions.begin() as session:
            for username, role in USERS.items():
                create_user(
                    session,
                    username,
                    role=role,
                    password=PASSWORD,
                    practice=practice.org,
                    display_name=f"Test {role}",
                )
        yield Seeded(fhir_base, practice, database_url)
    finally:
        gateway.close()
        engine.dispose()


class LiveServer:
    """An app served by werkzeug on 127.0.0.1 and a free port, in a thread."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="live-server")
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)
        service_state(self.app).close(timeout=10)


@pytest.fixture
def serve() -> Iterator[Callable[[Flask], LiveServer]]:
    started: list[LiveServer] = []

    def start(app: Flask) -> LiveServer:
        server = LiveServer(app)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def browser_context(playwright: Playwright, tmp_path: Path) -> Iterator[BrowserContext]:
    """A headless Chromium with a fresh profile directory."""
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"),
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1280, "height": 900},
        locale="en-GB",
    )
    context.set_default_timeout(15_000)
    yield context
    context.close()


@pytest.fixture
def page(browser_context: BrowserContext) -> Page:
    return browser_context.pages[0] if browser_context.pages else browser_context.new_page()


def sign_in(page: Page, url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{url}/sign-in")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def csrf_token(page: Page) -> str:
    """The CSRF token in the current page's forms."""
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token
    assert re.fullmatch(r"[\w.\-]+", token)
    return token
