"""``hrm-fhir rules``: read the monitoring rule packs."""

from __future__ import annotations

import sys

import click

from hrm_fhir.cli.common import rule_set


@click.group()
def rules() -> None:
    """Read the monitoring rule packs."""


@rules.command("list")
def rules_list() -> None:
    """List every rule pack with its version, status and sign-off state."""
    from hrm_fhir.rules.describe import describe_list

    click.echo(describe_list(rule_set()))


@rules.command("show")
@click.argument("rule_id")
@click.option("--version", type=int, default=None, help="A past version (default: the newest).")
def rules_show(rule_id: str, version: int | None) -> None:
    """Print one rule pack as a clinician reads it: schedule, thresholds, checks and sources."""
    from hrm_fhir.rules.describe import describe_pack

    packs = rule_set()
    try:
        pack = packs.get(rule_id, version)
    except KeyError:
        known = ", ".join(sorted({p.id for p in packs.packs}))
        click.echo(f"hrm-fhir: no rule {rule_id!r}; known rules: {known}", err=True)
        sys.exit(2)
    click.echo(describe_pack(pack, packs.catalogue))


@rules.command("shared-care")
def rules_shared_care() -> None:
    """Print how the record says another organisation monitors a drug (shared care)."""
    from hrm_fhir.rules.describe import describe_shared_care

    click.echo(describe_shared_care(rule_set().catalogue))
