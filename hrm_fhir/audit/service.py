"""The monthly report for a practice or a PCN: what the command, the API, the page and the
scheduled job call. Reads the ledger, computes, returns the report (nothing is written)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

from sqlalchemy.orm import Session

from hrm_fhir.audit.definitions import AuditDefinitions, load_definitions
from hrm_fhir.audit.figures import month_bounds
from hrm_fhir.audit.model import AuditInputs, MonthlyReport
from hrm_fhir.audit.monthly import build_monthly_report, practice_row
from hrm_fhir.audit.source import known_practices, read_audit_inputs
from hrm_fhir.config import Settings
from hrm_fhir.errors import HRMError
from hrm_fhir.rules.registry import RuleSet
from hrm_fhir.untrusted import safe_name


class ReportScopeError(HRMError):
    """The practice or PCN asked for is not known."""


@dataclass(frozen=True)
class Scope:
    """What one report covers: one practice, or the practices of a PCN."""

    label: str
    practices: tuple[str, ...]
    pcn: str | None = None

    @property
    def slug(self) -> str:
        """The scope as one file or folder name (``untrusted.safe_name``): a practice id comes
        from the FHIR server or a URL, and ``..`` is a valid FHIR id."""
        return safe_name(f"pcn-{self.pcn}" if self.pcn else self.practices[0])


def resolve_scope(
    settings: Settings, session: Session, *, practice: str | None, pcn: str | None
) -> Scope:
    """``--practice`` / ``--pcn``; neither means the configured practice, else the only one."""
    if pcn is not None:
        members = settings.pcns.get(pcn)
        if not members:
            known = ", ".join(sorted(settings.pcns)) or "none (set HRM_PCNS)"
            raise ReportScopeError(f"unknown PCN {pcn!r}; configured: {known}")
        return Scope(f"PCN {pcn}", tuple(members), pcn)
    chosen = practice or settings.practice
    if not chosen:
        practices = known_practices(session)
        if len(practices) != 1:
            raise ReportScopeError(
                "name a practice (--practice or HRM_PRACTICE); the ledger has "
                + (", ".join(practices) or "no practices")
            )
        chosen = practices[0]
    chosen = chosen.removeprefix("Organization/")
    return Scope(f"Organization/{chosen}", (chosen,))


def all_scopes(settings: Settings, session: Session) -> list[Scope]:
    """The configured practice (else every practice in the ledger), then every PCN."""
    practices = [settings.practice] if settings.practice else known_practices(session)
    return [
        *(Scope(f"Organization/{p}", (p,)) for p in practices),
        *(
            Scope(f"PCN {pcn}", tuple(members), pcn)
            for pcn, members in sorted(settings.pcns.items())
        ),
    ]


def monthly_report(
    session: Session,
    rules: RuleSet,
    settings: Settings,
    month: date,
    scope: Scope,
    definitions: AuditDefinitions | None = None,
) -> MonthlyReport:
    """The report for ``scope``; a PCN report adds one headline row per practice."""
    definitions = definitions or load_definitions(rules)
    packs = rules.in_force(month_bounds(month)[1])
    capacity = settings.technician_tests_per_day * settings.technician_days_per_week

    def build(inputs: AuditInputs, practices: Sequence[str], label: str) -> MonthlyReport:
        return build_monthly_report(
            inputs,
            definitions,
            packs,
            scope=label,
            practices=practices,
            capacity_per_week=capacity,
        )

    inputs = read_audit_inputs(
        session, rules, definitions, month, scope.practices, window_days=settings.due_window_days
    )
    coverage = rules.coverage_warning(month_bounds(month)[1])
    report = build(inputs, scope.practices, scope.label)
    if coverage is not None:
        report = replace(report, warnings=(coverage,))
    if scope.pcn is None:
        return report
    rows = tuple(
        practice_row(build(inputs.for_practice(p), [p], f"Organization/{p}"), p)
        for p in sorted(scope.practices)
    )
    return replace(report, practice_rows=rows)
