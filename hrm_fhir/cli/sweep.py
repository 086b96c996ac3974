"""``hrm-fhir sweep``: one sweep of the FHIR server (hrm_fhir/sweep)."""

from __future__ import annotations

from datetime import datetime

import click

from hrm_fhir import clock
from hrm_fhir.cli.common import FHIR_BASE, as_of_option, configured, rule_set, write_json
from hrm_fhir.errors import HRMError


@click.command()
@FHIR_BASE
@as_of_option("Evaluate as of this date (default: today in HRM_TIMEZONE).")
@click.option("--dry-run", is_flag=True, help="Print the plan; write nothing.")
@click.option(
    "--full",
    "mode",
    flag_value="full",
    default=None,
    help="Re-read everything in scope (reconciliation).",
)
@click.option(
    "--incremental",
    "mode",
    flag_value="incremental",
    help="Read only what changed since the last watermark (default after the first run).",
)
@click.option("--practice", default=None, help="Organization id: sweep only its patients.")
@click.option(
    "--bulk/--search",
    default=None,
    help="Read through a Bulk Data export (_since the watermark when incremental) instead of "
    "searches (default HRM_SWEEP_BULK, else --search; docs/bulk.md).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "summary"]),
    default="json",
    show_default=True,
    help="summary: the counts and every write, readable.",
)
def sweep(
    fhir_base: str | None,
    as_of: datetime | None,
    dry_run: bool,
    mode: str | None,
    practice: str | None,
    bulk: bool | None,
    fmt: str,
) -> None:
    """Run one sweep against a FHIR server and print its summary."""
    from hrm_fhir.adapters.fhir.gateway import FHIRGateway
    from hrm_fhir.adapters.store.database import init_db, make_session_factory
    from hrm_fhir.sweep.run import run_sweep
    from hrm_fhir.workflow.chases import SweepChases

    settings = configured(fhir_base_url=fhir_base, practice=practice)
    engine = init_db(settings.database_url)
    gateway = FHIRGateway.from_settings(settings)
    rules = rule_set()
    try:
        summary = run_sweep(
            settings,
            make_session_factory(engine),
            gateway,
            rules,
            as_of=as_of.date() if as_of else clock.today(),
            dry_run=dry_run,
            full=None if mode is None else mode == "full",
            bulk=bulk,
            chases=SweepChases.of(settings, gateway, rules),
        )
        for warning in summary.warnings:
            click.echo(f"hrm-fhir: warning: {warning}", err=True)
        if fmt == "summary":
            from hrm_fhir.sweep.run import render_sweep

            with make_session_factory(engine).begin() as session:
                click.echo(render_sweep(session, summary))
        else:
            write_json(summary.to_json())
    except HRMError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        gateway.close()
        engine.dispose()
