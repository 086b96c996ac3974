"""Structured logging: one JSON object per line, configured by ``hrm-fhir serve`` and ``scheduler``.

Each line has ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, plus every field
passed with ``extra=``. Log calls carry counts, sweep ids, status codes and durations only. An
exception is written as its type and its frames (file, line, function), without its message or
source lines, because messages can echo data read from the FHIR server.
"""

from __future__ import annotations

import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import IO

import orjson

_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)
"""Attributes every LogRecord has; anything else came in through ``extra=``."""


class JSONFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        document.update(
            (key, value) for key, value in record.__dict__.items() if key not in _STANDARD
        )
        if record.exc_info and record.exc_info[0] is not None:
            document["exc_type"] = record.exc_info[0].__name__
            document["stack"] = [
                f"{frame.filename}:{frame.lineno} in {frame.name}"
                for frame in traceback.extract_tb(record.exc_info[2])
            ]
        return orjson.dumps(document, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def configure_logging(level: int = logging.INFO, stream: IO[str] | None = None) -> None:
    """Replace the root logger's handlers with one writing JSON lines to ``stream`` (stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
