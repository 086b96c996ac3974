"""Deterministic synthetic GP practice: FHIR R4 resources for tests and benchmarks.

Every patient is invented: family name "Testpatient", NHS numbers from the 999 test range with a
valid Modulus 11 check digit. The same (patients, seed, as_of) always gives byte-identical output;
the only source of randomness is one ``random.Random(seed)``.

The population mixes all twelve monitored drug groups with patients on unmonitored drugs only
(about 40%), and covers therapy phases (established, overdue bloods, new and recent starts, dose
changes, stopped), out-of-range results, unit variants, unusual statuses and dates, medication
representations (coded, text only, referenced, contained), structured and free-text dosage, and a
small share (about 0.2%) of malformed resources.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import date
from pathlib import Path
from typing import IO

import orjson

from hrm_fhir.synthetic.elements import Resource, nhs_numbers
from hrm_fhir.synthetic.export import as_exported
from hrm_fhir.synthetic.patient import PatientBuilder
from hrm_fhir.synthetic.plans import SHOWCASE, random_plan

BASE_URL = "https://example.org/fhir"
BUNDLE_PATIENTS = 500


def generate_practice(patients: int, seed: int, as_of: date) -> Iterator[Resource]:
    """Yield the practice Organization, then each patient's resources (Patient first)."""
    # S311: synthetic test data, not security; a seeded PRNG is exactly what is wanted.
    rng = random.Random(seed)  # noqa: S311
    numbers = nhs_numbers(seed)
    yield {
        "resourceType": "Organization",
        "id": f"practice-{seed}",
        "active": True,
        "name": f"Synthetic Practice {seed}",
    }
    for number in range(patients):
        plan = SHOWCASE[number] if number < len(SHOWCASE) else random_plan(rng)
        for resource in PatientBuilder(rng, seed, number, as_of, plan).build(next(numbers)):
            yield as_exported(resource, as_of)


def write_practice(out: Path, patients: int, seed: int, as_of: date) -> dict[str, int]:
    """Write ``out/ndjson/<Type>.ndjson`` and ``out/bundles/*.json``; return counts per type.

    The NDJSON files are laid out as a Bulk Data $export writes them (one resource per line, one
    file per type); each collection Bundle holds the same resources for up to 500 patients.
    Existing ``*.ndjson`` and ``*.json`` files in those two folders are replaced.
    """
    ndjson_dir, bundle_dir = out / "ndjson", out / "bundles"
    for folder, pattern in ((ndjson_dir, "*.ndjson"), (bundle_dir, "*.json")):
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(pattern):
            stale.unlink()
    counts: dict[str, int] = {}
    entries: list[Resource] = []
    bundles = 0
    in_bundle = 0

    def flush() -> None:
        nonlocal bundles, in_bundle
        bundles += 1
        name = f"practice-{seed}-{bundles:04d}"
        bundle = {"resourceType": "Bundle", "id": name, "type": "collection", "entry": entries}
        (bundle_dir / f"{name}.json").write_bytes(orjson.dumps(bundle))
        entries.clear()
        in_bundle = 0

    with ExitStack() as stack:
        handles: dict[str, IO[bytes]] = {}
        for resource in generate_practice(patients, seed, as_of):
            kind = resource["resourceType"]
            if kind == "Patient":
                if in_bundle == BUNDLE_PATIENTS:
                    flush()
                in_bundle += 1
            handle = handles.get(kind)
            if handle is None:
                handle = handles[kind] = stack.enter_context(
                    (ndjson_dir / f"{kind}.ndjson").open("wb")
                )
            handle.write(orjson.dumps(resource, option=orjson.OPT_APPEND_NEWLINE))
            counts[kind] = counts.get(kind, 0) + 1
            entries.append({"fullUrl": f"{BASE_URL}/{kind}/{resource['id']}", "resource": resource})
    if entries:
        flush()
    return dict(sorted(counts.items()))
