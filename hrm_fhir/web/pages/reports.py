"""The audit as pages. The monthly summary: pick a month and a practice (or PCN), read the
headline figures, open the full printable report or download its PDF. Everyone signed in may
read it; a user who works for one practice sees only that practice's report, and PCN reports are
for users who work across practices. The evidence pack of one patient, printable, linked from the
patient card (the same practice rule as the card).

The PDF goes through the service's renderer (hrm_fhir/audit/pdf_renderer.py): rendered once per
report and kept, at most ``HRM_PDF_WORKERS`` at a time; when it is busy the page answers 503 with
Retry-After at once instead of holding up the service."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime

from flask import Response, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import Forbidden, NotFound

from hrm_fhir.audit.evidence import build_pack
from hrm_fhir.audit.evidence_render import to_html
from hrm_fhir.audit.evidence_source import read_evidence
from hrm_fhir.audit.model import MonthlyReport
from hrm_fhir.audit.outputs import previous_month
from hrm_fhir.audit.pdf_renderer import RendererBusyError
from hrm_fhir.audit.render import pdf_html, render_html
from hrm_fhir.audit.service import ReportScopeError, Scope, monthly_report, resolve_scope
from hrm_fhir.programme import require_practice
from hrm_fhir.web.pages.blueprint import bp
from hrm_fhir.web.pages.context import actor, as_of
from hrm_fhir.web.pages.hooks import error_page
from hrm_fhir.web.pages.session import (
    ACKNOWLEDGE_ROLES,
    CONTACT_ROLES,
    SIGN_OFF_ROLES,
    current_user,
    requires,
)
from hrm_fhir.web.pages.views import FHIR_ID, check_id
from hrm_fhir.web.request_scope import db_session, fhir_gateway
from hrm_fhir.web.state import service_state
from hrm_fhir.workflow.fields import NO_PATIENT, general_practitioners_of

READERS = CONTACT_ROLES | SIGN_OFF_ROLES | ACKNOWLEDGE_ROLES
MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


def _choice(args: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The form's values (defaults filled in) and its errors, by field."""
    user = current_user()
    values = {
        "month": args.get("month", "").strip() or f"{previous_month(as_of()):%Y-%m}",
        "practice": args.get("practice", "").strip(),
        "pcn": args.get("pcn", "").strip(),
    }
    errors = {}
    if not MONTH.fullmatch(values["month"]):
        errors["month"] = "Enter the month as YYYY-MM, for example 2027-04."
    if values["practice"] and values["pcn"]:
        errors["pcn"] = "Choose a practice or a PCN, not both."
    if user.practice:
        if values["pcn"] or values["practice"] not in ("", user.practice):
            raise Forbidden("you can read your own practice's report only")
        values["practice"] = user.practice
    elif values["practice"] and not FHIR_ID.fullmatch(
        values["practice"].removeprefix("Organization/")
    ):
        errors["practice"] = "Enter a practice as its Organization id, for example practice-1."
    return values, errors


def _report(values: Mapping[str, str]) -> tuple[MonthlyReport, Scope]:
    state = service_state()
    session = db_session()
    scope = resolve_scope(
        state.settings,
        session,
        practice=values["practice"] or None,
        pcn=values["pcn"] or None,
    )
    month = date.fromisoformat(f"{values['month']}-01")
    return monthly_report(session, state.rules, state.settings, month, scope), scope


@bp.get("/reports/monthly")
@requires(READERS)
def monthly_report_page() -> ResponseReturnValue:
    values, errors = _choice(request.args)
    report = None
    if not errors:
        try:
            report, _ = _report(values)
        except ReportScopeError as exc:
            errors["practice"] = str(exc)
    page = render_template(
        "pages/report.html",
        title="Monthly audit",
        values=values,
        errors=errors,
        report=report,
        pcns=sorted(service_state().settings.pcns),
    )
    return page, 400 if errors else 200


@bp.get("/reports/monthly/document")
@requires(READERS)
def monthly_report_document() -> ResponseReturnValue:
    """The full printable report, or its PDF with ``?format=pdf``."""
    values, errors = _choice(request.args)
    if errors:
        return monthly_report_page()
    try:
        report, scope = _report(values)
    except ReportScopeError:
        return monthly_report_page()
    if request.args.get("format") == "pdf":
        name = f"hrm-audit-{scope.slug}-{values['month']}.pdf"
        try:
            pdf = service_state().pdfs.pdf(pdf_html(report))
        except RendererBusyError as busy:
            page, status = error_page(
                503,
                "The PDF is being prepared",
                "Other reports are being turned into PDFs just now. Try again in "
                f"{busy.retry_after} seconds; the full report opens at once.",
            )
            return page, status, {"Retry-After": str(busy.retry_after)}
        return Response(
            pdf,
            mimetype="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return Response(render_html(report), mimetype="text/html")


@bp.get("/patients/<patient_id>/evidence")
@requires(READERS)
def evidence_pack(patient_id: str) -> ResponseReturnValue:
    """The patient's evidence pack as one printable page (``hrm-fhir evidence`` in HTML)."""
    patient = f"Patient/{check_id(patient_id, 'patient')}"
    source = read_evidence(fhir_gateway(), db_session(), patient)
    if source is None:
        raise NotFound(NO_PATIENT)
    require_practice(actor(), general_practitioners_of(source.patient), NO_PATIENT)
    pack = build_pack(
        source,
        service_state().rules,
        as_of=as_of(),
        generated_at=datetime.now(UTC),
    )
    return Response(to_html(pack), mimetype="text/html")
