"""How many Synthea patients on an active monitored medicine does ``hrm-fhir evaluate`` recognise?

Counts, independently of the engine, the patients with an active MedicationRequest or
MedicationStatement whose display text names a monitored ingredient (RxNorm ingredient names,
listed below by hand, not read from the rule packs), then runs ``hrm-fhir evaluate --format json``
on the same files and compares with its ``monitored`` register. Prints the coverage and every
miss with its medication text; writes bench/out/synthea-coverage.json.

    bench/synthea.sh 300 1 20261127
    .venv/bin/python bench/synthea_coverage.py bench/out/synthea-s1-n300/fhir --as-of 2026-11-27
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

BENCH = Path(__file__).resolve().parent
HRM_FHIR = Path(sys.executable).with_name("hrm-fhir")
MONITORED = {
    "methotrexate": "methotrexate",
    "azathioprine": "azathioprine",
    "sulfasalazine": "sulfasalazine",
    "leflunomide": "leflunomide",
    "mycophenolate": "mycophenolate",
    "mycophenolic": "mycophenolate",
    "lithium": "lithium",
    "amiodarone": "amiodarone",
    "warfarin": "warfarin",
    "apixaban": "doac",
    "rivaroxaban": "doac",
    "edoxaban": "doac",
    "dabigatran": "doac",
    "olanzapine": "antipsychotic",
    "risperidone": "antipsychotic",
    "aripiprazole": "antipsychotic",
    "quetiapine": "antipsychotic",
    "haloperidol": "antipsychotic",
    "clozapine": "antipsychotic",
    "paliperidone": "antipsychotic",
    "morphine": "opioid",
    "oxycodone": "opioid",
    "hydrocodone": "opioid",
    "codeine": "opioid",
    "tramadol": "opioid",
    "tapentadol": "opioid",
    "hydromorphone": "opioid",
    "oxymorphone": "opioid",
    "meperidine": "opioid",
    "fentanyl": "opioid",
    "buprenorphine": "opioid",
    "methadone": "opioid",
    "gabapentin": "gabapentinoid",
    "pregabalin": "gabapentinoid",
}
"""RxNorm ingredient name in the display text -> the drug group it must land in."""
_NAMES = re.compile(r"\b(" + "|".join(MONITORED) + r")\b")


def expected(folder: Path) -> dict[tuple[str, str], set[str]]:
    """(patient, group) -> the medication texts of its active requests or statements."""
    found: dict[tuple[str, str], set[str]] = {}
    for path in sorted(folder.glob("*.json")):
        bundle = orjson.loads(path.read_bytes())
        for entry in bundle.get("entry") or ():
            resource = entry.get("resource") or {}
            if resource.get("resourceType") not in ("MedicationRequest", "MedicationStatement"):
                continue
            if resource.get("status") != "active":
                continue
            text = _text(resource)
            subject = str((resource.get("subject") or {}).get("reference", ""))
            patient = "Patient/" + subject.rsplit("/", 1)[-1].removeprefix("urn:uuid:")
            for name in set(_NAMES.findall(text.lower())):
                found.setdefault((patient, MONITORED[name]), set()).add(text)
    return found


def _text(resource: dict[str, Any]) -> str:
    concept = resource.get("medicationCodeableConcept") or {}
    parts = [concept.get("text") or ""]
    parts += [c.get("display") or "" for c in concept.get("coding") or ()]
    return " / ".join(p for p in parts if p)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--as-of", default="2026-11-27")
    args = parser.parse_args()
    want = expected(args.folder)
    run = subprocess.run(
        [str(HRM_FHIR), "evaluate", "--as-of", args.as_of, "--format", "json", str(args.folder)],
        capture_output=True,
        check=False,
    )
    if run.returncode != 0:
        print(run.stderr.decode(), file=sys.stderr)
        return 1
    output = orjson.loads(run.stdout)
    got = {(m["patient"], m["drug_group"]): m["matched_by"] for m in output["monitored"]}
    hits = [key for key in want if key in got]
    misses = {key: texts for key, texts in want.items() if key not in got}
    patients = {p for p, _ in want}
    recognised = {p for p in patients if all((p, g) in got for q, g in want if q == p)}
    by_group = Counter(g for _, g in want)
    missed_by_group = Counter(g for _, g in misses)
    print(f"patients with an active monitored medicine (independent count): {len(patients)}")
    print(
        f"  all of their drug groups recognised: {len(recognised)} ({_pct(recognised, patients)})"
    )
    print(f"patient drug groups: {len(want)}, recognised {len(hits)} ({_pct(hits, want)})")
    for group, count in sorted(by_group.items()):
        print(f"  {group}: {count - missed_by_group[group]}/{count}")
    print(f"matched_by: {dict(Counter(got[k] for k in hits))}")
    unrecognised = output.get("unrecognised") or []
    print(f"medication entries not recognised: {sum(u['count'] for u in unrecognised)}")
    for (patient, group), texts in sorted(misses.items()):
        print(f"  missed {patient} [{group}]: {'; '.join(sorted(texts))}")
    (BENCH / "out").mkdir(exist_ok=True)
    (BENCH / "out" / "synthea-coverage.json").write_bytes(
        orjson.dumps(
            {
                "patients": len(patients),
                "patients_recognised": len(recognised),
                "groups": len(want),
                "groups_recognised": len(hits),
                "misses": [
                    {"patient": p, "group": g, "texts": sorted(t)}
                    for (p, g), t in sorted(misses.items())
                ],
            },
            option=orjson.OPT_INDENT_2,
        )
    )
    return 0


def _pct(part: Any, whole: Any) -> str:
    return f"{100 * len(part) / len(whole):.1f}%" if whole else "n/a"


if __name__ == "__main__":
    sys.exit(main())
