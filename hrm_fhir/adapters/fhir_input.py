"""Read FHIR R4 JSON: Bundles of any type, single resources, NDJSON files and directories.

Parsing uses orjson into plain dicts (the hot read path); FHIR models are kept for what the
service writes. Nothing here interprets resources beyond unwrapping Bundles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from hrm_fhir.errors import InputError

Resource = dict[str, Any]
SUFFIXES = (".json", ".ndjson", ".jsonl")
Problem = Callable[[str, str], None]
"""Called with (where, what went wrong) for a file or line that cannot be read."""


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


Claim = Callable[[bytes], bool | None]
"""For NDJSON lines before parsing: True (this reader's), False (skip), None (parse to decide)."""


def iter_resources(
    files: Iterable[Path],
    problem: Problem,
    claim: Claim | None = None,
    claimed_problem: Problem | None = None,
) -> Iterator[tuple[str, Resource]]:
    """Yield (origin, resource) for every resource in ``files``; report unreadable parts.

    With ``claim``, NDJSON lines claimed by another reader are not parsed, and a bad line this
    reader claimed is reported to ``claimed_problem`` (``problem`` for everything else).
    """
    for path in files:
        if path.suffix in (".ndjson", ".jsonl"):
            yield from _ndjson(path, problem, claim, claimed_problem or problem)
        else:
            yield from _json(path, problem)


def _ndjson(
    path: Path, problem: Problem, claim: Claim | None, claimed_problem: Problem
) -> Iterator[tuple[str, Resource]]:
    try:
        handle = path.open("rb")
    except OSError as exc:
        problem(str(path), f"cannot be read: {exc.strerror}")
        return
    name = str(path)
    with handle:
        for number, line in enumerate(handle, start=1):
            if len(line) < 3 and not line.strip():
                continue
            mine = None if claim is None else claim(line)
            if mine is False:
                continue
            try:
                data = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                where = f"{name}:{number}"
                (claimed_problem if mine else problem)(where, f"not valid JSON: {exc}")
                continue
            kind = data.get("resourceType") if isinstance(data, dict) else None
            if isinstance(kind, str) and kind != "Bundle":
                yield f"{name}:{number}", data
            else:
                yield from _unwrap(f"{name}:{number}", data, problem)


def _json(path: Path, problem: Problem) -> Iterator[tuple[str, Resource]]:
    try:
        data = orjson.loads(path.read_bytes())
    except OSError as exc:
        problem(str(path), f"cannot be read: {exc.strerror}")
        return
    except orjson.JSONDecodeError as exc:
        problem(str(path), f"not valid JSON: {exc}")
        return
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
