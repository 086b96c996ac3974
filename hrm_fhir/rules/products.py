"""Published code lists of medicinal products (dm+d VTM, VMP and AMP): read and validated.

Each list the catalogue cites (``[code_lists.<id>]``) is a CSV in ``rules/codelists/`` with the
columns ``code,term,ingredient,brand``. Every code must be a well-formed SNOMED CT identifier (a
spreadsheet that turned it into ``1.2E+16`` fails the check digit), name an ingredient of a pack
or catalogue class, and resolve to that one ingredient across all lists; a brand names one
ingredient; and every file is cited.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection, Iterable, Mapping

from hrm_fhir.errors import RuleDefinitionError
from hrm_fhir.rules.catalogue import Catalogue, CodeList, ProductCode

COLUMNS = ["code", "term", "ingredient", "brand"]
_BRAND = re.compile(r"^[a-z][a-z0-9 .'-]*[a-z0-9]$")
_SCTID = re.compile(r"^[1-9][0-9]{5,17}$")
_SHOWN = 20

# Verhoeff check digit tables (SNOMED CT identifiers end with a Verhoeff check digit).
_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)


def is_sctid(code: str) -> bool:
    """A SNOMED CT identifier: 6 to 18 digits, no leading zero, valid Verhoeff check digit."""
    if not _SCTID.match(code):
        return False
    check = 0
    for position, digit in enumerate(reversed(code)):
        check = _D[check][_P[position % 8][int(digit)]]
    return check == 0


def read_code_lists(
    catalogue: Catalogue, files: Mapping[str, str], ingredients: Collection[str]
) -> dict[tuple[str, str], ProductCode]:
    """Every product of every cited list by (system, code); raise on any problem."""
    cited = {code_list.file for code_list in catalogue.code_lists.values()}
    problems = [
        f"codelists/{name} is not cited in the catalogue"
        for name in sorted(files)
        if name not in cited
    ]
    products: dict[tuple[str, str], ProductCode] = {}
    brands: dict[str, str] = {}
    for code_list in catalogue.code_lists.values():
        text = files.get(code_list.file)
        if text is None:
            problems.append(f"code list {code_list.id}: codelists/{code_list.file} is missing")
            continue
        for product, problem in _rows(code_list, text, ingredients):
            if problem:
                problems.append(problem)
                continue
            key = (code_list.system, product.code)
            known = products.get(key)
            if known is not None and known.ingredient != product.ingredient:
                problems.append(
                    f"{code_list.file}: {product.code} is {product.ingredient} here but "
                    f"{known.ingredient} in {known.code_list}"
                )
            products.setdefault(key, product)
            if product.brand:
                owner = brands.setdefault(product.brand, product.ingredient)
                if owner != product.ingredient:
                    problems.append(
                        f"{code_list.file}: brand {product.brand!r} is both {owner} and "
                        f"{product.ingredient}"
                    )
    if problems:
        more = f" (and {len(problems) - _SHOWN} more)" if len(problems) > _SHOWN else ""
        raise RuleDefinitionError("; ".join(problems[:_SHOWN]) + more)
    return products


def _rows(
    code_list: CodeList, text: str, ingredients: Collection[str]
) -> Iterable[tuple[ProductCode, str]]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header != COLUMNS:
        yield _NONE, f"codelists/{code_list.file}: the header must be {','.join(COLUMNS)}"
        return
    for line, row in enumerate(reader, start=2):
        where = f"codelists/{code_list.file}:{line}"
        if len(row) != len(COLUMNS):
            yield _NONE, f"{where}: expected {len(COLUMNS)} columns, found {len(row)}"
            continue
        code, term, ingredient, brand = (cell.strip() for cell in row)
        if not is_sctid(code):
            yield _NONE, f"{where}: {code!r} is not a SNOMED CT id (mangled by a spreadsheet?)"
        elif ingredient not in ingredients:
            yield _NONE, f"{where}: ingredient {ingredient!r} is in no pack or class"
        elif brand and not _BRAND.match(brand):
            yield _NONE, f"{where}: brand {brand!r} must be lower-case words"
        else:
            yield ProductCode(code, term, ingredient, brand, code_list.id), ""


_NONE = ProductCode("", "", "", "", "")
