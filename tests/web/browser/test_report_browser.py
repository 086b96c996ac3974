"""The monthly report in a real headless Chromium, opened from a file as someone would open a
downloaded copy: the key numbers are on the page, the charts are named images, and a count's link
takes the reader to the patients behind it. No server is involved."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from hrm_fhir.audit.model import MonthlyReport
from hrm_fhir.audit.render import forecast_status, render_html
from tests.audit import conftest as history

# The synthetic practice's report and what it is built from, defined once in tests/audit.
rules = history.rules
definitions = history.definitions
history_db = history.history_db
history_sessions = history.history_sessions
audit_inputs = history.audit_inputs
report = history.report


@pytest.fixture
def opened(page: Page, report: MonthlyReport, tmp_path: Path) -> Page:
    path = tmp_path / "monthly.html"
    path.write_text(render_html(report), encoding="utf-8")
    page.goto(path.as_uri())
    return page


def test_the_key_numbers_are_on_the_page(opened: Page, report: MonthlyReport) -> None:
    totals = report.totals
    assert totals.in_date_pct is not None
    cells = opened.locator("#group-all td")
    expect(cells.nth(0)).to_have_text(str(totals.established.value))
    expect(cells.nth(1)).to_have_text(str(totals.in_date.value))
    expect(cells.nth(2)).to_have_text(f"{totals.in_date_pct:g}%")
    expect(cells.nth(0)).to_be_visible()

    amiodarone = next(i for i in report.indicators if i.pincer == "MO_P18")
    row = opened.get_by_role("row", name=re.compile("MO_P18"))
    expect(row.locator("td").nth(2)).to_have_text(str(amiodarone.numerator.value))

    expect(opened.locator("#backlog-count")).to_have_text(str(report.forecast.backlog))
    expect(opened.locator("#backlog-status")).to_have_text(forecast_status(report.forecast))
    expect(
        opened.get_by_role("img", name="Open overdue monitoring Tasks by week ending")
    ).to_be_visible()
    expect(
        opened.get_by_role("img", name="In-date and overdue monitoring by drug group")
    ).to_be_visible()


def test_a_count_links_to_the_patients_behind_it(opened: Page, report: MonthlyReport) -> None:
    figure = report.totals.established
    target = opened.locator(f"#list-{figure.list_id}")
    expect(target).not_to_be_in_viewport()

    opened.locator(f'#group-all a[href="#list-{figure.list_id}"]').click()

    expect(opened).to_have_url(re.compile(f"#list-{figure.list_id}$"))
    expect(target).to_be_in_viewport()
    assert opened.evaluate("document.querySelector(':target').id") == f"list-{figure.list_id}"
    expect(target.locator("tbody tr")).to_have_count(figure.value)
    expect(target.locator("tbody tr").first.locator("td").first).to_have_text(
        re.compile(r"^Patient/")
    )
