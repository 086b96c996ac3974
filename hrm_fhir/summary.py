"""A readable summary of an evaluation run, for the console (``evaluate --format summary``, and
``sweep --format summary`` for what a sweep found): urgent findings first with the patient, the
counts per drug group and kind, and what was skipped and why."""

from __future__ import annotations

from collections import Counter

from hrm_fhir.display import readable
from hrm_fhir.domain import FindingKind, Severity, Skipped
from hrm_fhir.evaluation import EvaluationRun

_KINDS = (
    FindingKind.OVERDUE,
    FindingKind.DUE,
    FindingKind.OUT_OF_RANGE,
    FindingKind.PRESCRIBING,
    FindingKind.INCOMPLETE,
)


def render_summary(run: EvaluationRun, urgent_limit: int = 20, *, heading: bool = True) -> str:
    """The urgent items, counts per drug group and kind, and what was skipped (``heading``: start
    with the run's date and what was read)."""
    counts: Counter[tuple[str, FindingKind]] = Counter((f.drug_group, f.kind) for f in run.findings)
    groups = sorted({group for group, _ in counts})
    patients = len({f.patient for f in run.findings})
    elsewhere = sum(1 for entry in run.monitored if entry.monitored_elsewhere is not None)
    severe = sum(1 for f in run.findings if f.severely_overdue)
    lines = [f"hrm-fhir evaluation as of {run.as_of.isoformat()}"] if heading else []
    lines += [
        f"{run.patients} patient records read; {patients} with findings; "
        f"{len(run.findings)} findings; {len(run.skipped)} resources or lines skipped",
        f"{len(run.monitored)} patient drug groups on monitored therapy "
        f"({elsewhere} monitored elsewhere); "
        f"{sum(u.count for u in run.unrecognised)} medication entries not recognised",
        f"{severe} overdue findings severely overdue (past their schedule's tolerance)",
        *(f"WARNING: {warning}" for warning in run.warnings),
    ]
    urgent = [f for f in run.findings if f.severity is Severity.URGENT]
    lines += ["", f"URGENT (same working day): {len(urgent) or 'none'}"]
    lines += [f"- {f.patient} [{f.drug_group}] {readable(f.reason)}" for f in urgent[:urgent_limit]]
    if len(urgent) > urgent_limit:
        lines.append(f"  ... and {len(urgent) - urgent_limit} more (use --format json)")
    lines += ["", f"{'DRUG GROUP':<15}" + "".join(f"{k.value.upper():>14}" for k in _KINDS)]
    for group in groups:
        lines.append(f"{group:<15}" + "".join(f"{counts[(group, k)]:>14}" for k in _KINDS))
    if run.skipped:
        lines += [
            "",
            f"SKIPPED: {len(run.skipped)} resources or lines left out of the evaluation, in whole "
            "or in part, each with what was done instead. Correct them in the record they came "
            "from; --format json lists every one.",
        ]
        kinds = Counter(s.reason.split(":")[0] for s in run.skipped)
        first: dict[str, Skipped] = {}
        for item in run.skipped:
            first.setdefault(item.reason.split(":")[0], item)
        for kind, n in kinds.most_common(10):
            example = first[kind]
            lines.append(f"- {n} x {readable(example.reason)} (e.g. {example.source})")
    return "\n".join(lines)
