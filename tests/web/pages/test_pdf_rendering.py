"""Issue 11: four concurrent PDF requests stalled every other request for 20 s. The renderer now
renders each report once, at most ``pdf_workers`` at a time, and a request beyond that gets 503
with Retry-After at once. Checked on the renderer itself and on the service under waitress (the
server ``hrm-fhir serve`` runs, with its four threads), where the stall happened."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import waitress  # type: ignore[import-untyped]
from flask import Flask
from waitress import wasyncore  # type: ignore[import-untyped]

from hrm_fhir.adapters.store import users
from hrm_fhir.audit.pdf_renderer import PdfRenderer, RendererBusyError
from tests.web.pages.conftest import PASSWORD, AppFactory, add_users

PDF_URL = "/reports/monthly/document?month=2026-10&format=pdf"


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users, "HASH_METHOD", "scrypt:1024:8:1")


class GatedRender:
    """A renderer that holds until the test lets it go, counting its renders."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.gate = threading.Event()
        self.calls = 0

    def __call__(self, html: str) -> bytes:
        self.calls += 1
        self.started.set()
        assert self.gate.wait(30), "the test never opened the gate"
        return b"%PDF-1.7 " + str(len(html)).encode()


def test_a_report_is_rendered_once_and_then_served_from_the_cache() -> None:
    render = GatedRender()
    render.gate.set()
    renderer = PdfRenderer(render)
    assert renderer.pdf("<p>one</p>") == renderer.pdf("<p>one</p>")
    assert render.calls == 1
    renderer.pdf("<p>two</p>")
    assert render.calls == 2, "changed figures are a new report"


def test_a_busy_renderer_refuses_at_once_with_a_retry_time() -> None:
    render = GatedRender()
    renderer = PdfRenderer(render, workers=1)
    first = threading.Thread(target=renderer.pdf, args=("<p>one</p>",))
    first.start()
    assert render.started.wait(5)
    began = time.monotonic()
    with pytest.raises(RendererBusyError) as busy:
        renderer.pdf("<p>two</p>")
    assert time.monotonic() - began < 1
    assert busy.value.retry_after > 0
    render.gate.set()
    first.join(5)
    assert renderer.pdf("<p>two</p>")


def test_the_cache_keeps_to_its_size_dropping_the_oldest() -> None:
    render = GatedRender()
    render.gate.set()
    renderer = PdfRenderer(render, max_bytes=25)  # two 11-byte PDFs
    for text in ("a", "b", "c", "a"):
        renderer.pdf(text * 10)
    assert render.calls == 4, "'a' was dropped to make room for 'c'"


@pytest.fixture
def served(make_app: AppFactory) -> Iterator[tuple[str, GatedRender]]:
    """The app under waitress on a free local port, with four threads as ``serve`` has."""
    render = GatedRender()
    app: Flask = make_app(PDF_RENDER=render)
    add_users(app)
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}", render
    finally:
        render.gate.set()
        # closed from inside its own loop, which then ends; then its worker threads
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        thread.join(10)
        server.task_dispatcher.shutdown()


def _signed_in(base: str) -> requests.Session:
    browser = requests.Session()
    page = browser.get(f"{base}/sign-in", timeout=10).text
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    answer = browser.post(
        f"{base}/sign-in",
        data={"username": "tech", "password": PASSWORD, "csrf_token": found.group(1)},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302
    return browser


def test_concurrent_pdfs_never_hold_up_the_service(served: tuple[str, GatedRender]) -> None:
    base, render = served
    browsers = [_signed_in(base) for _ in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        first = pool.submit(browsers[0].get, f"{base}{PDF_URL}", timeout=30)
        assert render.started.wait(10)
        others = [pool.submit(b.get, f"{base}{PDF_URL}", timeout=10) for b in browsers[1:]]
        refused = [f.result() for f in others]
        assert [r.status_code for r in refused] == [503, 503, 503]
        assert all(int(r.headers["Retry-After"]) > 0 for r in refused)
        assert "being prepared" in refused[0].text
        began = time.monotonic()
        assert requests.get(f"{base}/health", timeout=5).status_code == 200
        page = browsers[1].get(f"{base}/reports/monthly?month=2026-10", timeout=5)
        assert page.status_code == 200
        assert time.monotonic() - began < 5, "other requests answer while a PDF renders"
        render.gate.set()
        done = first.result()
    assert done.status_code == 200
    assert done.content.startswith(b"%PDF")
    again = browsers[2].get(f"{base}{PDF_URL}", timeout=10)
    assert again.content == done.content
    assert render.calls == 1, "the same report is rendered once"
