"""What the commands share: options, the rule set, settings and output helpers."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import orjson

from hrm_fhir.config import Settings, load_settings
from hrm_fhir.errors import HRMError
from hrm_fhir.rules.registry import RuleSet, load_rule_set

F = TypeVar("F", bound=Callable[..., Any])


def problem(where: str, what: str) -> None:
    """An unreadable file, line or resource, named on stderr (the run goes on)."""
    click.echo(f"hrm-fhir: {where}: {what}", err=True)


def rule_set() -> RuleSet:
    """The bundled rule packs; invalid packs end the command with the reason."""
    try:
        return load_rule_set()
    except HRMError as exc:
        raise click.ClickException(f"rule packs failed validation: {exc}") from exc


def as_of_option(text: str) -> Callable[[F], F]:
    """``--as-of YYYY-MM-DD``, optional (None means today)."""
    return click.option(
        "--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help=text
    )


FHIR_BASE = click.option(
    "--fhir-base", default=None, help="FHIR server base URL (default HRM_FHIR_BASE_URL)."
)


def write_json(document: object) -> None:
    sys.stdout.buffer.write(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()


def configured(**overrides: object) -> Settings:
    settings = load_settings()
    return settings.with_overrides({k: v for k, v in overrides.items() if v is not None})
