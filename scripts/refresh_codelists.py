"""Turn a downloaded public code list into a ``hrm_fhir/rules/codelists/<name>.csv``.

    .venv/bin/python scripts/refresh_codelists.py SOURCE.csv hrm_fhir/rules/codelists/NAME.csv \
        [--ingredient NAME] [--brand BRAND=INGREDIENT ...]

SOURCE is an OpenSAFELY/opencodelists CSV (``code,term`` or ``id,term``, extra columns ignored)
or a GM-SDE ``<drug>.snomed.txt`` (tab-separated code and term). Each row's ingredient is
``--ingredient`` when given, else the ingredient the shipped rules recognise in the term (name,
synonym, brand of an already shipped list, co-name, or ``--brand``); ``VMP previous to <code>``
rows take the ingredient of that code. The brand column is the words before the first number
of a term that does not name its ingredient. Rows whose code is not a SNOMED CT id (e.g.
``1.2E+16`` from a spreadsheet) or whose ingredient cannot be told are listed on stderr and left
out. Then cite the list in ``catalogue.toml`` (``[code_lists.<id>]``) and run the tests.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from hrm_fhir.rules.products import COLUMNS, is_sctid
from hrm_fhir.rules.registry import load_rule_set
from hrm_fhir.rules.therapy import MedicationIndex

_PREVIOUS = re.compile(r"^VMP previous to (\d+)$")
_FORMS = (
    "tablets?|caplets?|capsules?|effervescent|dispersible|oral|linctus|solution|suspension|liquid"
    "|patches|injection|granules|suppositor(?:y|ies)|modified-release|m/r"
)
_BRAND = re.compile(rf"^(.*?)(?:\s+(?:\d|\(|(?:{_FORMS})\b)|$)")


@dataclass(frozen=True)
class _Term:
    codings: tuple[tuple[str, str], ...]
    text: str


def _source_rows(path: Path) -> list[tuple[str, str]]:
    text = path.read_text(encoding="utf-8-sig")
    if path.name.endswith(".txt"):
        return [tuple(line.split("\t", 1)) for line in text.splitlines() if "\t" in line]  # type: ignore[misc]
    reader = csv.DictReader(text.splitlines())
    code_column = next(c for c in ("code", "id", "dmd_id") if c in (reader.fieldnames or ()))
    term_column = next(c for c in ("term", "dmd_name") if c in (reader.fieldnames or ()))
    return [(row[code_column].strip(), row[term_column].strip()) for row in reader]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--ingredient")
    parser.add_argument("--brand", action="append", default=[], metavar="BRAND=INGREDIENT")
    args = parser.parse_args()
    rules = load_rule_set()
    index = MedicationIndex(rules.packs, rules.catalogue)
    generic = MedicationIndex(rules.packs, replace(rules.catalogue, products={}))
    """Names, synonyms and co-names only: a term that uses none of them carries a brand."""
    brands = dict(b.lower().split("=", 1) for b in args.brand)
    rows = _source_rows(args.source)
    known: dict[str, str] = {}
    out: list[list[str]] = []
    left_out: list[str] = []
    for code, term in sorted(rows, key=lambda r: _PREVIOUS.match(r[1]) is not None):
        lower = term.lower()
        previous = _PREVIOUS.match(term)
        match = index.match(_Term((), lower))
        ingredient = (
            args.ingredient
            or (known.get(previous.group(1)) if previous else None)
            or next(
                (i for b, i in brands.items() if re.search(rf"\b{re.escape(b)}\b", lower)), None
            )
            or (match.ingredient if match else None)
        )
        if not is_sctid(code) or ingredient is None:
            left_out.append(f"{code},{term}")
            continue
        known[code] = ingredient
        names = generic._spellings.get(ingredient, [ingredient])
        named = previous or any(re.search(rf"\b{re.escape(n)}\b", lower) for n in names)
        prefix = _BRAND.match(lower)
        brand = "" if named or prefix is None else prefix.group(1).strip(" .,")
        brand = "" if len(brand) < 3 else brand
        out.append([code, term, ingredient, brand])
    with args.out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(sorted(out, key=lambda r: (r[2], r[1], r[0])))
    print(f"{len(out)} rows written to {args.out}; {len(left_out)} left out", file=sys.stderr)
    for line in left_out:
        print(f"  left out: {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
