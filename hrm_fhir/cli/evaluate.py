"""``hrm-fhir evaluate``: FHIR files evaluated offline, as JSON, CSV, a Bundle or a summary."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from hrm_fhir import clock
from hrm_fhir.cli.common import as_of_option, problem, rule_set, write_json
from hrm_fhir.errors import InputError
from hrm_fhir.offline import EvaluationRun, collector_paused, evaluate_paths


@click.command()
@as_of_option("Evaluate as of this date (default: today in HRM_TIMEZONE).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "fhir", "summary", "csv"]),
    default="json",
    show_default=True,
    help="json: findings, register and coverage; fhir: a Bundle of the Tasks and Flags; "
    "summary: readable counts; csv: the register (who is on what, next due dates).",
)
@click.option(
    "--window-days",
    type=click.IntRange(min=0),
    default=None,
    help="Days ahead in which a test counts as due (default from the catalogue: 14).",
)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def evaluate(
    as_of: datetime | None, fmt: str, window_days: int | None, paths: tuple[Path, ...]
) -> None:
    """Evaluate FHIR Bundles, NDJSON files or directories and print the findings."""
    day = as_of.date() if as_of else clock.today()

    with collector_paused():  # one run that keeps what it builds until the process ends
        try:
            run = evaluate_paths(paths, rule_set(), day, window_days, problem)
        except InputError as exc:
            click.echo(f"hrm-fhir: {exc}", err=True)
            sys.exit(2)
        for warning in run.warnings:
            click.echo(f"hrm-fhir: warning: {warning}", err=True)
        if fmt == "json":
            write_json(_as_json(run))
        elif fmt == "csv":
            from hrm_fhir.register import register_csv

            sys.stdout.write(register_csv(run.monitored))
        elif fmt == "fhir":
            from hrm_fhir.tasks.build import build_bundle

            write_json(build_bundle(run.findings, run.as_of))
        else:
            from hrm_fhir.summary import render_summary

            click.echo(render_summary(run))


def _as_json(run: EvaluationRun) -> dict[str, object]:
    return {
        "as_of": run.as_of.isoformat(),
        "warnings": run.warnings,
        "findings": [f.to_json() for f in run.findings],
        "monitored": [entry.to_json() for entry in run.monitored],
        "unrecognised": [item.to_json() for item in run.unrecognised],
        "skipped": [{"source": s.source, "reason": s.reason} for s in run.skipped],
    }
