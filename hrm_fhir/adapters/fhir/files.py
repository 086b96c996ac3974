"""Read FHIR R4 JSON: Bundles of any type, single resources, NDJSON files and directories.

Parsing uses orjson into plain dicts (the hot read path); FHIR models are kept for what the
service writes. Nothing here interprets resources beyond unwrapping Bundles.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from hrm_fhir.errors import InputError

Resource = dict[str, Any]
SUFFIXES = (".json", ".ndjson", ".jsonl")
Problem = Callable[[str, str], None]
"""Called with (where, what went wrong) for a file or line that cannot be read."""
_EXPORT_KEYS = {"kick_off", "transaction_time", "output"}
_BUFFER = 64 * 1024
"""Read buffer for NDJSON: eight times the default halves the cost of splitting lines."""


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files to read, in a stable order; raises InputError for a path that does not exist."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES))
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or directory")
    return files


def iter_resources(files: Iterable[Path], problem: Problem) -> Iterator[tuple[str, Resource]]:
    """Yield (origin, resource) for every resource in ``files``; report unreadable parts."""
    for path in files:
        if is_ndjson(path):
            yield from NdjsonPart(path).resources(problem)
        else:
            yield from _json(path, problem)


def is_ndjson(path: Path) -> bool:
    """Whether a file holds one resource (or Bundle) per line."""
    return path.suffix in (".ndjson", ".jsonl")


class NdjsonPart:
    """The lines of an NDJSON file from byte ``start`` to ``end`` (line starts; None: to the end).

    Origins are ``<name>:<line>`` with lines counted from ``start``; ``lines`` counts those read.
    """

    def __init__(
        self, path: Path, start: int = 0, end: int | None = None, name: str | None = None
    ) -> None:
        self.path = path
        self.start = start
        self.end = end
        self.name = str(path) if name is None else name
        self.lines = 0

    def resources(self, problem: Problem) -> Iterator[tuple[str, Resource]]:
        """Yield (origin, resource) for every resource in the part; report unreadable lines."""
        try:
            handle = self.path.open("rb", buffering=_BUFFER)
        except OSError as exc:
            problem(str(self.path), f"cannot be read: {exc.strerror}")
            return
        left = sys.maxsize if self.end is None else self.end - self.start
        name, loads, number = self.name, orjson.loads, 0
        with handle:
            handle.seek(self.start)
            try:
                for number, line in enumerate(handle, start=1):
                    if left <= 0:
                        number -= 1
                        break
                    left -= len(line)
                    if len(line) < 3 and not line.strip():
                        continue
                    where = f"{name}:{number}"
                    try:
                        data = loads(line)
                    except orjson.JSONDecodeError as exc:
                        problem(where, f"not valid JSON: {exc}")
                        continue
                    kind = data.get("resourceType") if data.__class__ is dict else None
                    if kind.__class__ is str and kind != "Bundle":
                        yield where, data
                    else:
                        yield from _unwrap(where, data, problem)
            finally:
                self.lines = number


def _json(path: Path, problem: Problem) -> Iterator[tuple[str, Resource]]:
    try:
        data = orjson.loads(path.read_bytes())
    except OSError as exc:
        problem(str(path), f"cannot be read: {exc.strerror}")
        return
    except orjson.JSONDecodeError as exc:
        problem(str(path), f"not valid JSON: {exc}")
        return
    if isinstance(data, dict) and data.keys() >= _EXPORT_KEYS and "resourceType" not in data:
        return  # the manifest ``hrm-fhir export`` writes beside its files: not a resource
    yield from _unwrap(str(path), data, problem)


def _unwrap(where: str, data: Any, problem: Problem) -> Iterator[tuple[str, Resource]]:
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        problem(where, "not a FHIR resource (no resourceType)")
        return
    if data["resourceType"] != "Bundle":
        yield where, data
        return
    entries = data.get("entry") or []
    if not isinstance(entries, list):
        problem(where, "Bundle.entry is not a list")
        return
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if resource is None:
            continue
        yield from _unwrap(f"{where}#entry[{index}]", resource, problem)
