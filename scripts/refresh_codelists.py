"""Turn a downloaded public code list into a ``hrm_fhir/rules/codelists/<name>.csv``.

    .venv/bin/python scripts/refresh_codelists.py SOURCE hrm_fhir/rules/codelists/NAME.csv \
        [--ingredient NAME] [--brand BRAND=INGREDIENT ...] [--no-brand BRAND ...] \
        [--leave-out CODE ...]

SOURCE is an OpenSAFELY/opencodelists CSV (``code,term`` or ``id,term`` or the dm+d form
``code,term,dmd_id,dmd_type,bnf_code``, or the EBM DataLab notebook form ``type,id,bnf_code,nm``;
other columns ignored) or a GM-SDE ``<drug>.snomed.txt``
(tab-separated code and term). Each row's ingredient is, in this order:

1. ``--ingredient`` when given;
2. for ``VMP previous to <code>`` / ``VMP subsequent to <code>`` rows, the ingredient of that code
   (in this list or a shipped one);
3. the ingredient of a ``--brand`` named in the term;
4. the ingredient the shipped rules recognise in the term (name, synonym, co-name, brand of a
   shipped list). A term that names several takes the one of the earliest group, packs before
   classes and classes in catalogue order (so Nurofen Plus is codeine, not ibuprofen, and Tarka is
   verapamil, not trandolapril), then the first named;
5. for a term that names none (a brand), the ingredient of the other rows of the same BNF
   chemical substance (the first nine characters of ``bnf_code``), when the source has that column.

The brand column is the words before the first number or form of a term that does not name its
ingredient (``--no-brand`` blanks one that is a common phrase, not a name). ``--leave-out`` drops a
row that is not a product (a laboratory test, a reference-set concept) or not of its ingredient
(a wrong row in the source); say why in the citation. Rows whose code is not
a SNOMED CT id (e.g. ``1.2E+16`` from a spreadsheet), repeated rows and rows whose ingredient
cannot be told are listed on stderr and left out. Then cite the list in ``catalogue.toml``
(``[code_lists.<id>]``) and run the tests.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from hrm_fhir.rules.products import COLUMNS, is_sctid
from hrm_fhir.rules.registry import load_rule_set
from hrm_fhir.rules.therapy import MedicationIndex

_LINKED = re.compile(r"^VMP (?:previous|subsequent) to (\d+)$")
_FORMS = (
    "tablets?|caplets?|capsules?|effervescent|dispersible|oral|linctus|solution|suspension|liquid"
    "|patches|injection|granules|suppositor(?:y|ies)|modified-release|m/r"
)
_BRAND = re.compile(rf"^(.*?)(?:\s+(?:\d|\(|(?:{_FORMS})\b)|$)")


@dataclass(frozen=True)
class _Term:
    codings: tuple[tuple[str, str], ...]
    text: str


@dataclass(frozen=True)
class _Row:
    code: str
    term: str
    chemical: str
    """The BNF chemical substance (first nine characters of the BNF code), or empty."""


def _source_rows(path: Path) -> list[_Row]:
    text = path.read_text(encoding="utf-8-sig")
    if path.name.endswith(".txt"):
        return [
            _Row(*line.split("\t", 1), "")  # type: ignore[call-arg]
            for line in text.splitlines()
            if "\t" in line
        ]
    reader = csv.DictReader(text.splitlines())
    fields = reader.fieldnames or ()
    code_column = next(c for c in ("code", "id", "dmd_id") if c in fields)
    term_column = next(c for c in ("term", "dmd_name", "nm") if c in fields)
    return [
        _Row(row[code_column].strip(), row[term_column].strip(), (row.get("bnf_code") or "")[:9])
        for row in reader
    ]


class _Placer:
    """Which ingredient a term names, by the rule of the module docstring (steps 3 and 4)."""

    def __init__(self, index: MedicationIndex, groups: list[str], brands: dict[str, str]) -> None:
        self._names = index._names
        self._rank: dict[str, int] = {}
        for group in groups:
            self._rank.setdefault(group, len(self._rank))
        self._brands = brands
        names = sorted(self._names, key=len, reverse=True)
        self._pattern = re.compile(r"\b(" + "|".join(re.escape(n) for n in names) + r")\b")

    def ingredient(self, lower: str) -> str | None:
        for brand, ingredient in self._brands.items():
            if re.search(rf"\b{re.escape(brand)}\b", lower):
                return ingredient
        found = [self._names[m.group(1)] for m in self._pattern.finditer(lower)]
        if not found:
            return None
        return min(found, key=lambda hit: self._rank.get(hit[0], len(self._rank)))[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--ingredient")
    parser.add_argument("--brand", action="append", default=[], metavar="BRAND=INGREDIENT")
    parser.add_argument("--no-brand", action="append", default=[], metavar="BRAND")
    parser.add_argument("--leave-out", action="append", default=[], metavar="CODE")
    args = parser.parse_args()
    rules = load_rule_set()
    groups = [p.drug_group for p in rules.packs] + list(rules.catalogue.classes)
    placer = _Placer(
        MedicationIndex(rules.packs, rules.catalogue),
        groups,
        dict(b.lower().split("=", 1) for b in args.brand),
    )
    generic = MedicationIndex(rules.packs, replace(rules.catalogue, products={}))
    """Names, synonyms and co-names only: a term that uses none of them carries a brand."""
    shipped = {code: p.ingredient for (_, code), p in rules.catalogue.products.items()}
    rows = _source_rows(args.source)
    known: dict[str, str] = {}
    placed: list[tuple[_Row, str]] = []
    pending: list[_Row] = []
    left_out: list[str] = []
    seen: set[str] = set()
    leave_out = set(args.leave_out)
    for row in sorted(rows, key=lambda r: _LINKED.match(r.term) is not None):
        if row.code in leave_out:
            left_out.append(f"{row.code},{row.term}: left out (--leave-out)")
            continue
        if row.code in seen:
            left_out.append(f"{row.code},{row.term}: repeated row")
            continue
        seen.add(row.code)
        if not is_sctid(row.code):
            left_out.append(f"{row.code},{row.term}: not a SNOMED CT id")
            continue
        linked = _LINKED.match(row.term)
        ingredient = args.ingredient or (
            known.get(linked.group(1)) or shipped.get(linked.group(1))
            if linked
            else placer.ingredient(row.term.lower())
        )
        if ingredient is None:
            pending.append(row)
            continue
        known[row.code] = ingredient
        placed.append((row, ingredient))
    by_chemical: dict[str, Counter[str]] = {}
    for row, ingredient in placed:
        if row.chemical:
            by_chemical.setdefault(row.chemical, Counter())[ingredient] += 1
    for row in pending:
        votes = by_chemical.get(row.chemical) if row.chemical else None
        if votes:
            placed.append((row, votes.most_common(1)[0][0]))
        else:
            left_out.append(f"{row.code},{row.term}: no ingredient of a pack or class named")
    no_brand = {b.lower() for b in args.no_brand}
    out: list[list[str]] = [
        [row.code, row.term, ingredient, _brand(row.term, ingredient, generic, no_brand)]
        for row, ingredient in placed
    ]
    out.sort(key=lambda r: (r[2], r[1], r[0]))
    with args.out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(out)
    counts = Counter(ingredient for _, ingredient in placed)
    print(
        f"{len(rows)} rows read, {len(out)} written to {args.out}, {len(left_out)} left out",
        file=sys.stderr,
    )
    by_ingredient = ", ".join(f"{i} {n}" for i, n in sorted(counts.items()))
    print(f"  by ingredient: {by_ingredient}", file=sys.stderr)
    print("  brands: " + ", ".join(sorted({r[3] for r in out if r[3]})), file=sys.stderr)
    for line in left_out:
        print(f"  left out: {line}", file=sys.stderr)
    return 0


def _brand(term: str, ingredient: str, generic: MedicationIndex, no_brand: set[str]) -> str:
    """The brand a term carries: its leading words when it names neither the ingredient nor a
    linked VMP."""
    lower = term.lower()
    names = generic._spellings.get(ingredient, [ingredient])
    if _LINKED.match(term) or any(re.search(rf"\b{re.escape(n)}\b", lower) for n in names):
        return ""
    prefix = _BRAND.match(lower)
    brand = "" if prefix is None else prefix.group(1)
    # a brand is lower-case words (products.py): stop at "&", "," or "/" ("Nurofen Cold & Flu")
    brand = re.split(r"[^a-z0-9 .'-]", brand, maxsplit=1)[0].strip(" .,'-")
    return "" if len(brand) < 3 or brand in no_brand else brand


if __name__ == "__main__":
    sys.exit(main())
