"""The monthly audit summary and one patient's evidence pack (hrm_fhir/audit, docs/audit.md)."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from hrm_fhir import clock
from hrm_fhir.config import Settings
from hrm_fhir.errors import HRMError

if TYPE_CHECKING:
    from hrm_fhir.audit.model import MonthlyReport

from hrm_fhir.cli.common import FHIR_BASE, as_of_option, configured, rule_set


@click.group()
def report() -> None:
    """Audit reports for the practice and the PCN."""


@report.command("monthly")
@click.option(
    "--month",
    type=click.DateTime(formats=["%Y-%m"]),
    default=None,
    help="YYYY-MM (default: last month in HRM_TIMEZONE).",
)
@click.option("--practice", default=None, help="Organization id (default HRM_PRACTICE).")
@click.option("--pcn", default=None, help="A PCN named in HRM_PCNS: its practices together.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder for report.html, report.pdf, measure-report.json, report.json and csv/.",
)
@click.option("--post", is_flag=True, help="Also PUT the MeasureReport to the FHIR server.")
@FHIR_BASE
def report_monthly(
    month: datetime | None,
    practice: str | None,
    pcn: str | None,
    out: Path,
    post: bool,
    fhir_base: str | None,
) -> None:
    """Write the monthly audit summary of one practice or one PCN, from the ledger."""
    from hrm_fhir.adapters.store.database import init_db, make_session_factory
    from hrm_fhir.audit.outputs import previous_month, write_report
    from hrm_fhir.audit.service import monthly_report, resolve_scope

    if practice and pcn:
        raise click.UsageError("give --practice or --pcn, not both")
    settings = configured(fhir_base_url=fhir_base)
    first = month.date() if month else previous_month(clock.today())
    engine = init_db(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            scope = resolve_scope(settings, session, practice=practice, pcn=pcn)
            result = monthly_report(session, rule_set(), settings, first, scope)
    except HRMError as exc:
        click.echo(f"hrm-fhir: {exc}", err=True)
        sys.exit(2)
    finally:
        engine.dispose()
    for warning in result.warnings:
        click.echo(f"hrm-fhir: warning: {warning}", err=True)
    files = write_report(result, out)
    click.echo(f"{scope.label}, {first:%B %Y}: {len(files)} files in {out}")
    if post:
        _post_measure_report(settings, result)


def _post_measure_report(settings: Settings, result: MonthlyReport) -> None:
    from hrm_fhir.adapters.fhir.gateway import FHIRGateway
    from hrm_fhir.audit.outputs import post_measure_report

    gateway = FHIRGateway.from_settings(settings)
    try:
        written = post_measure_report(gateway, result)
    except HRMError as exc:
        raise click.ClickException(f"posting the MeasureReport failed: {exc}") from exc
    finally:
        gateway.close()
    click.echo(f"posted {written.location or 'MeasureReport'} (HTTP {written.status})")


@click.command()
@click.argument("patient")
@FHIR_BASE
@as_of_option("The schedule in force, and the record to the end of this day (default: today).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "html"]),
    default="text",
    show_default=True,
    help="html: printable.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the pack to this file (created readable by its owner only, with its folder).",
)
def evidence(
    patient: str, fhir_base: str | None, as_of: datetime | None, fmt: str, out: Path | None
) -> None:
    """Print one patient's evidence pack (PATIENT: an id or Patient/<id>): the schedule that
    applied, the results considered, every Task and Flag with its versions, contact attempts,
    decisions and sign-offs."""
    from hrm_fhir.adapters.fhir.gateway import FHIRGateway
    from hrm_fhir.adapters.store.database import init_db, make_session_factory
    from hrm_fhir.audit.evidence import build_pack
    from hrm_fhir.audit.evidence_render import render
    from hrm_fhir.audit.evidence_source import read_evidence

    settings = configured(fhir_base_url=fhir_base)
    engine = init_db(settings.database_url)
    gateway = FHIRGateway.from_settings(settings)
    try:
        with make_session_factory(engine)() as session:
            source = read_evidence(gateway, session, patient)
            if source is None:
                click.echo(f"hrm-fhir: the FHIR server has no Patient {patient!r}", err=True)
                sys.exit(2)
            pack = build_pack(
                source,
                rule_set(),
                as_of=as_of.date() if as_of else clock.today(),
                generated_at=clock.local_now(),
            )
    except HRMError as exc:
        raise click.ClickException(f"the FHIR server request failed: {exc}") from exc
    finally:
        gateway.close()
        engine.dispose()
    document = render(pack, fmt)
    if out is None:
        sys.stdout.buffer.write(document)
        sys.stdout.flush()
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.touch(mode=0o600)
        out.write_bytes(document)
