"""Text from outside (the FHIR server, a URL, a form) made safe where it lands: a CSV cell, a
link, a file name.

- **CSV cells** a spreadsheet would run as a formula are prefixed with ``'`` (CSV injection, as
  OWASP's "CSV Injection" page describes): a cell that begins with ``=``, ``+``, ``-``, ``@``, tab
  or carriage return, also after leading spaces, which spreadsheets skip. A phone number such as
  ``+44 7700 900123`` or a negative number (digits, spaces, brackets and hyphens only) is kept.
  Rows end in CRLF (RFC 4180), so a cell holding a CR or LF is always quoted and cannot split
  its row (with a bare ``\n`` line end, Python's csv module leaves a lone CR unquoted).
- **Links** are rendered only for absolute ``http``/``https`` URLs: a ``javascript:`` or ``data:``
  URL from a resource is shown as text, never as a link.
- **File and folder names** keep letters, digits, ``.``, ``_`` and ``-`` and never begin with a
  dot, so a practice id of ``..`` cannot leave the folder it is written in.
"""

from __future__ import annotations

import csv
import re
from typing import Any, TextIO
from urllib.parse import urlsplit

_PHONE = re.compile(r"[+\-][\d ()-]+")
_LEADING_BLANKS = re.compile(r"\A[^\S\t\r]+")
"""Leading whitespace a spreadsheet skips; tab and carriage return are triggers themselves."""
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")


def safe_cell(value: str) -> str:
    """``value``, quoted with a leading ``'`` when a spreadsheet would run it as a formula."""
    head = _LEADING_BLANKS.sub("", value)
    risky = head.startswith(_FORMULA_START) and not (
        head.startswith(("+", "-")) and _PHONE.fullmatch(head)
    )
    return f"'{value}" if risky else value


def csv_writer(out: TextIO) -> Any:
    """A CSV writer whose rows end in CRLF: every cell with a line break in it is quoted."""
    return csv.writer(out, lineterminator="\r\n")


def is_http_url(value: object) -> bool:
    """True for an absolute ``http``/``https`` URL with a host: the only links rendered."""
    if not isinstance(value, str) or any(c in value for c in "\t\r\n\\") or value != value.strip():
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def safe_name(text: str, fallback: str = "unnamed") -> str:
    """``text`` as one file or folder name: other characters become ``_``, a leading dot too."""
    name = _NAME_CHARACTERS.sub("_", text)[:100]
    if name.startswith("."):
        name = "_" + name[1:]
    return name or fallback
