"""``hrm-fhir worklist``: the technician's worklist (hrm_fhir/workflow, docs/workflow.md)."""

from __future__ import annotations

from datetime import datetime

import click

from hrm_fhir import clock
from hrm_fhir.cli.common import FHIR_BASE, as_of_option, configured, rule_set, write_json
from hrm_fhir.errors import HRMError


@click.command()
@FHIR_BASE
@click.option("--practice", default=None, help="Organization id (default HRM_PRACTICE).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="csv: NHS number, name, phone, preferred contact, tests needed, due date.",
)
@as_of_option("Overdue and chases as of this date (default: today in HRM_TIMEZONE).")
def worklist(fhir_base: str | None, practice: str | None, fmt: str, as_of: datetime | None) -> None:
    """Print the technician's worklist: one line per patient, most pressing first."""
    from hrm_fhir.adapters.fhir.gateway import FHIRGateway
    from hrm_fhir.adapters.store.database import init_db, make_session_factory
    from hrm_fhir.workflow import export, service

    settings = configured(fhir_base_url=fhir_base, practice=practice)
    day = as_of.date() if as_of else clock.today()
    engine = init_db(settings.database_url)
    gateway = FHIRGateway.from_settings(settings)
    try:
        with make_session_factory(engine)() as session:
            entries = service.worklist(
                gateway,
                session,
                as_of=day,
                practice=settings.practice or None,
                chase_interval_days=settings.chase_interval_days,
                rules=rule_set(),
            )
        details = export.patient_details(gateway, [entry.patient for entry in entries])
    except HRMError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        gateway.close()
        engine.dispose()
    if fmt == "csv":
        click.echo(export.to_csv(entries, details), nl=False)
    elif fmt == "json":
        write_json(export.to_json(entries, details, day))
    else:
        click.echo(export.to_table(entries, details))
