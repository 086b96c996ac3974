"""A Bulk Data export job as data: what is asked (``ExportRequest``), the files and issues that
arrive (``FileRecord``, ``Issue``), what came of it (``ExportResult``, written as
``manifest.json``), how progress is shown, and the errors. ``bulk_export.py`` runs the job."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from hrm_fhir.adapters.fhir.urls import RESOURCE_TYPE, resource_path
from hrm_fhir.errors import HRMError

NDJSON = "application/fhir+ndjson"
MANIFEST = "manifest.json"
"""What ``export`` writes beside the files: the server's manifest and what arrived."""


class BulkExportError(HRMError):
    """The export failed: refused, failed on the server, timed out, or its files did not arrive."""


class ExportJobGone(BulkExportError):  # noqa: N818 - named for branching, after ResourceNotFound
    """The status URL answers 404/410: the job expired or was deleted."""


class DownloadError(BulkExportError):
    """One file did not arrive whole (short, cut mid-line, or failing a checksum)."""


@dataclass(frozen=True)
class ExportRequest:
    """What to export: ``group`` (Group/<id>/$export), ``patients`` (Patient/$export of those
    patients, sent as a Parameters POST), ``patient_level`` (every patient's compartment), else
    the whole system; ``types`` for ``_type`` and ``since`` (a FHIR instant) for ``_since``."""

    types: tuple[str, ...] = ()
    since: str | None = None
    type_filters: tuple[str, ...] = ()
    """``_typeFilter`` values, ``Type?search``: of a type with filters, only the resources that
    match one of them are exported."""
    group: str | None = None
    patients: tuple[str, ...] = ()
    patient_level: bool = False

    def __post_init__(self) -> None:
        for kind in self.types:
            if RESOURCE_TYPE.fullmatch(kind) is None:
                raise ValueError(f"not a FHIR resource type: {kind!r}")
        for query in self.type_filters:
            kind, mark, _ = query.partition("?")
            if (
                not mark
                or RESOURCE_TYPE.fullmatch(kind) is None
                or (self.types and kind not in self.types)
            ):
                raise ValueError(f"a type filter is Type?search of an exported type: {query!r}")
        if self.group and (self.patients or self.patient_level):
            raise ValueError("export a group or patients, not both")
        if self.group:
            resource_path("Group", self.group)
        for patient in self.patients:
            resource_path("Patient", patient.removeprefix("Patient/"))
        if self.since is not None:
            parse_instant(self.since)

    @property
    def level(self) -> str:
        if self.group:
            return "group"
        return "patient" if self.patients or self.patient_level else "system"

    @property
    def path(self) -> str:
        if self.group:
            return f"{resource_path('Group', self.group)}/$export"
        return "Patient/$export" if self.level == "patient" else "$export"

    def params(self) -> list[tuple[str, str]]:
        query = [("_outputFormat", NDJSON)]
        if self.types:
            query.append(("_type", ",".join(self.types)))
        if self.since:
            query.append(("_since", self.since))
        query += [("_typeFilter", value) for value in self.type_filters]
        return query

    def parameters(self) -> dict[str, Any]:
        """The kick-off as a Parameters resource (a POST, needed to name patients)."""
        values: list[dict[str, Any]] = [
            {"name": name, "valueString": value} for name, value in self.params()
        ]
        values += [
            {"name": "patient", "valueReference": {"reference": f"Patient/{p.split('/')[-1]}"}}
            for p in self.patients
        ]
        return {"resourceType": "Parameters", "parameter": values}


def parse_instant(text: str) -> datetime:
    """A FHIR instant (date, time and zone); ValueError otherwise."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or "T" not in text:
        raise ValueError(f"not a FHIR instant with a time zone: {text!r}")
    return moment


@dataclass
class FileRecord:
    """One downloaded file: where it came from, where it is, and what arrived."""

    type: str
    url: str
    file: str
    """Path relative to the export folder."""
    bytes: int = 0
    lines: int = 0
    """Non-empty lines: one resource each."""
    sha256: str = ""
    count: int | None = None
    """The manifest's ``count``, when the server gave one."""

    def to_json(self) -> dict[str, object]:
        return {
            "type": self.type,
            "url": self.url,
            "file": self.file,
            "bytes": self.bytes,
            "lines": self.lines,
            "sha256": self.sha256,
            "count": self.count,
        }


@dataclass(frozen=True)
class Issue:
    """One issue of an OperationOutcome in an ``error`` file."""

    severity: str
    code: str
    diagnostics: str
    where: str

    @property
    def is_error(self) -> bool:
        return self.severity in ("error", "fatal")

    def to_json(self) -> dict[str, str]:
        return {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
            "where": self.where,
        }


@dataclass
class ExportResult:
    """A finished export: the server's manifest fields and every file that arrived."""

    folder: Path
    request: ExportRequest
    kick_off: str
    status_url: str = ""
    status: str = "running"
    """``complete``, ``failed`` or ``interrupted``."""
    transaction_time: str | None = None
    requires_access_token: bool = False
    output: list[FileRecord] = field(default_factory=list)
    errors: list[FileRecord] = field(default_factory=list)
    deleted: list[FileRecord] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    job: str = ""
    """What became of the server's job: ``deleted``, ``gone`` (the server had already removed
    it, or keeps a finished one until its own retention ends) or ``not deleted: <why>``."""
    failure: str | None = None
    started_at: str = ""
    seconds: float = 0.0

    @property
    def error_issues(self) -> list[Issue]:
        """Issues of severity error or fatal: resources the export could not deliver."""
        return [issue for issue in self.issues if issue.is_error]

    def files(self) -> list[Path]:
        """The output files, in manifest order."""
        return [self.folder / record.file for record in self.output]

    def resources_by_type(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self.output:
            counts[record.type] = counts.get(record.type, 0) + record.lines
        return counts

    def to_json(self) -> dict[str, object]:
        return {
            "status": self.status,
            "failure": self.failure,
            "level": self.request.level,
            "group": self.request.group,
            "patients": len(self.request.patients),
            "types": list(self.request.types),
            "since": self.request.since,
            "kick_off": self.kick_off,
            "status_url": self.status_url,
            "transaction_time": self.transaction_time,
            "requires_access_token": self.requires_access_token,
            "started_at": self.started_at,
            "seconds": round(self.seconds, 3),
            "resources": self.resources_by_type(),
            "output": [record.to_json() for record in self.output],
            "error": [record.to_json() for record in self.errors],
            "deleted": [record.to_json() for record in self.deleted],
            "issues": [issue.to_json() for issue in self.issues],
            "job": self.job,
        }


class Progress(Protocol):
    """What the exporter tells a person watching (the CLI draws it on a terminal)."""

    def waiting(self, progress: str | None, elapsed: float) -> None: ...

    def file_started(self, index: int, total: int, name: str, size: int | None) -> None: ...

    def received(self, size: int) -> None: ...

    def file_done(self) -> None: ...


class Silent:
    """No progress shown."""

    def waiting(self, progress: str | None, elapsed: float) -> None:
        """Nothing to show."""

    def file_started(self, index: int, total: int, name: str, size: int | None) -> None:
        """Nothing to show."""

    def received(self, size: int) -> None:
        """Nothing to show."""

    def file_done(self) -> None:
        """Nothing to show."""


def record_types(types: Sequence[str]) -> tuple[str, ...]:
    """Resource types, from repeated and comma-separated values, de-duplicated in order."""
    seen: dict[str, None] = {}
    for value in types:
        for kind in value.split(","):
            if kind.strip():
                seen[kind.strip()] = None
    return tuple(seen)
