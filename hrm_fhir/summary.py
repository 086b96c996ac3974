"""A readable summary of an evaluation run, for the console (``--format summary``)."""

from __future__ import annotations

from collections import Counter

from hrm_fhir.domain import FindingKind, Severity
from hrm_fhir.offline import EvaluationRun

_KINDS = (
    FindingKind.OVERDUE,
    FindingKind.DUE,
    FindingKind.OUT_OF_RANGE,
    FindingKind.PRESCRIBING,
    FindingKind.INCOMPLETE,
)


def render_summary(run: EvaluationRun, urgent_limit: int = 20) -> str:
    """Counts per drug group and kind, the urgent items, and what was skipped."""
    counts: Counter[tuple[str, FindingKind]] = Counter((f.drug_group, f.kind) for f in run.findings)
    groups = sorted({group for group, _ in counts})
    patients = len({f.patient for f in run.findings})
    elsewhere = sum(1 for entry in run.monitored if entry.monitored_elsewhere is not None)
    severe = sum(1 for f in run.findings if f.severely_overdue)
    lines = [
        f"hrm-fhir evaluation as of {run.as_of.isoformat()}",
        f"{run.patients} patient records read; {patients} with findings; "
        f"{len(run.findings)} findings; {len(run.skipped)} resources or lines skipped",
        f"{len(run.monitored)} patient drug groups on monitored therapy "
        f"({elsewhere} monitored elsewhere); "
        f"{sum(u.count for u in run.unrecognised)} medication entries not recognised",
        f"{severe} overdue findings severely overdue (past their schedule's tolerance)",
        *(f"WARNING: {warning}" for warning in run.warnings),
        "",
        f"{'DRUG GROUP':<15}" + "".join(f"{k.value.upper():>14}" for k in _KINDS),
    ]
    for group in groups:
        lines.append(f"{group:<15}" + "".join(f"{counts[(group, k)]:>14}" for k in _KINDS))
    urgent = [f for f in run.findings if f.severity is Severity.URGENT]
    if urgent:
        lines += ["", f"URGENT (same working day): {len(urgent)}"]
        lines += [f"- {f.patient} [{f.drug_group}] {f.reason}" for f in urgent[:urgent_limit]]
        if len(urgent) > urgent_limit:
            lines.append(f"  ... and {len(urgent) - urgent_limit} more (use --format json)")
    if run.skipped:
        reasons = Counter(s.reason.split(":")[0] for s in run.skipped)
        lines += ["", "SKIPPED"]
        lines += [f"- {n} x {reason}" for reason, n in reasons.most_common(10)]
    return "\n".join(lines)
