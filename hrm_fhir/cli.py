"""The ``hrm-fhir`` command line: evaluate, rules, fixtures."""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import orjson

from hrm_fhir.errors import HRMError, InputError
from hrm_fhir.offline import EvaluationRun, evaluate_paths
from hrm_fhir.rules.registry import RuleSet, load_rule_set

LONDON = ZoneInfo("Europe/London")


def _today() -> date:
    return datetime.now(LONDON).date()


def _rules() -> RuleSet:
    try:
        return load_rule_set()
    except HRMError as exc:
        raise click.ClickException(f"rule packs failed validation: {exc}") from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """hrm-fhir: high-risk drug monitoring on FHIR R4."""


@main.command()
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Evaluate as of this date (default: today, Europe/London).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "fhir", "summary"]),
    default="json",
    show_default=True,
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
    day = as_of.date() if as_of else _today()

    def problem(where: str, what: str) -> None:
        click.echo(f"hrm-fhir: {where}: {what}", err=True)

    try:
        run = evaluate_paths(paths, _rules(), day, window_days, problem)
    except InputError as exc:
        click.echo(f"hrm-fhir: {exc}", err=True)
        sys.exit(2)
    if fmt == "json":
        _write(_as_json(run))
    elif fmt == "fhir":
        from hrm_fhir.tasks.build import build_bundle

        _write(build_bundle(run.findings, run.as_of))
    else:
        from hrm_fhir.summary import render_summary

        click.echo(render_summary(run))


def _as_json(run: EvaluationRun) -> dict[str, object]:
    return {
        "as_of": run.as_of.isoformat(),
        "findings": [f.to_json() for f in run.findings],
        "skipped": [{"source": s.source, "reason": s.reason} for s in run.skipped],
    }


def _write(document: object) -> None:
    sys.stdout.buffer.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


@main.group()
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
    from hrm_fhir.synthetic import write_practice

    counts = write_practice(out, patients, seed, as_of.date())
    click.echo(orjson.dumps(counts).decode())


@main.group()
def rules() -> None:
    """Read the monitoring rule packs."""


@rules.command("list")
def rules_list() -> None:
    """List every rule pack with its version, status and sign-off state."""
    from hrm_fhir.rules.describe import describe_list

    click.echo(describe_list(_rules()))


@rules.command("show")
@click.argument("rule_id")
@click.option("--version", type=int, default=None, help="A past version (default: the newest).")
def rules_show(rule_id: str, version: int | None) -> None:
    """Print one rule pack as a clinician reads it: schedule, thresholds, checks and sources."""
    from hrm_fhir.rules.describe import describe_pack

    rule_set = _rules()
    try:
        pack = rule_set.get(rule_id, version)
    except KeyError:
        known = ", ".join(sorted({p.id for p in rule_set.packs}))
        click.echo(f"hrm-fhir: no rule {rule_id!r}; known rules: {known}", err=True)
        sys.exit(2)
    click.echo(describe_pack(pack, rule_set.catalogue))
