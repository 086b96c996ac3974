"""The ``hrm-fhir`` command line: the group and its commands, one module per command group.

Each command imports what it needs when it runs, so ``hrm-fhir evaluate`` stays free of the web
stack and the database.
"""

from __future__ import annotations

import click

from hrm_fhir import clock
from hrm_fhir.cli.audit import evidence, report
from hrm_fhir.cli.database import init_db_command
from hrm_fhir.cli.evaluate import evaluate
from hrm_fhir.cli.fhir import export, load, sandbox
from hrm_fhir.cli.fixtures import fixtures
from hrm_fhir.cli.rules import rules
from hrm_fhir.cli.service import scheduler, serve
from hrm_fhir.cli.sweep import sweep
from hrm_fhir.cli.users import users
from hrm_fhir.cli.workflow import worklist
from hrm_fhir.config import configured_zone


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """hrm-fhir: high-risk drug monitoring on FHIR R4."""
    try:
        clock.use_zone(configured_zone())
    except ValueError as error:
        raise click.UsageError(str(error)) from error


main.add_command(report)
main.add_command(evidence)
main.add_command(init_db_command)
main.add_command(evaluate)
main.add_command(export)
main.add_command(load)
main.add_command(sandbox)
main.add_command(fixtures)
main.add_command(rules)
main.add_command(serve)
main.add_command(scheduler)
main.add_command(sweep)
main.add_command(users)
main.add_command(worklist)
