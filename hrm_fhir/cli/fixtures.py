"""``hrm-fhir fixtures``: a synthetic practice as FHIR files, and a synthetic programme history."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click
import orjson

from hrm_fhir.cli.common import configured, rule_set


@click.group()
def fixtures() -> None:
    """Synthetic FHIR data for demonstrations, tests and benchmarks."""


@fixtures.command("generate")
@click.option("--patients", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default="2026-11-27",
    show_default=True,
    help="The date the practice's history runs up to.",
)
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True)
def fixtures_generate(patients: int, seed: int, as_of: datetime, out: Path) -> None:
    """Write a deterministic synthetic practice as NDJSON (ndjson/) and Bundles (bundles/)."""
    from hrm_fhir.synthetic.practice import write_practice

    counts = write_practice(out, patients, seed, as_of.date())
    click.echo(orjson.dumps(counts).decode())


@fixtures.command("history")
@click.option("--patients", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default="2026-11-27",
    show_default=True,
    help="The first weekly sweep is the Monday on or after this day.",
)
@click.option(
    "--end",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default="2027-05-31",
    show_default=True,
    help="The last day of the history (and of the practice's record).",
)
def fixtures_history(patients: int, seed: int, start: datetime, end: datetime) -> None:
    """Fill an empty ledger (HRM_DATABASE_URL) with a synthetic practice's weekly sweeps and
    programme activity, to try the monthly report. Refuses a ledger that already has findings."""
    from sqlalchemy import select

    from hrm_fhir.adapters.store.database import init_db, make_session_factory, shown_url
    from hrm_fhir.adapters.store.records import FindingRecord
    from hrm_fhir.synthetic.history import write_history
    from hrm_fhir.synthetic.practice import generate_practice

    if end <= start:
        raise click.BadParameter("--end must be after --start")
    settings = configured()
    engine = init_db(settings.database_url)
    try:
        with make_session_factory(engine).begin() as session:
            if session.scalar(select(FindingRecord.identifier).limit(1)) is not None:
                click.echo(
                    f"hrm-fhir: {shown_url(settings.database_url)} already holds findings; "
                    "synthetic history goes into an empty ledger only",
                    err=True,
                )
                sys.exit(2)
            resources = generate_practice(patients, seed, end.date())
            summary = write_history(
                session, rule_set(), resources, start=start.date(), end=end.date(), seed=seed
            )
    finally:
        engine.dispose()
    click.echo(orjson.dumps(summary).decode())
