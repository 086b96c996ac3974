"""``hrm-fhir init-db``: create or migrate the service's database."""

from __future__ import annotations

import click

from hrm_fhir.cli.common import configured
from hrm_fhir.errors import HRMError


@click.command("init-db")
def init_db_command() -> None:
    """Create or migrate the service database (HRM_DATABASE_URL): the upgrade step of a
    deployment (docs/deploy.md). Safe to repeat, and to run while another process migrates."""
    from hrm_fhir.adapters.store.database import init_db, schema_revision, shown_url

    settings = configured()
    try:
        engine = init_db(settings.database_url)
    except HRMError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        revision = schema_revision(engine)
    finally:
        engine.dispose()
    click.echo(f"database ready at schema revision {revision}: {shown_url(settings.database_url)}")
