"""A FHIR Bulk Data Access (``$export``) client: https://hl7.org/fhir/uv/bulkdata/export.html

Kick-off (``Prefer: respond-async``) at system, patient or group level; poll the status URL the
server gives in ``Content-Location``, waiting what ``Retry-After`` asks (never longer than
``poll_ceiling``; 1, 2, 4... seconds when it asks nothing) within ``timeout`` overall; then
download every output and error file, streamed to disk with its SHA-256, size and line count,
retrying a file that breaks off, comes up short of ``Content-Length``, ends in half a line,
fails the server's ``Content-Digest``/``Digest`` or the manifest's ``count``. The job is deleted
(``DELETE`` on the status URL) at the end and when anything fails or is interrupted. What
arrived is described in ``manifest.json`` beside the files.

Every request goes through FHIRGateway (its retries, its auth: SMART Backend Services as for
searches), which sends credentials only under the configured base; a file on other storage
(``requiresAccessToken`` false) is fetched without them, and only over https.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from base64 import b64decode
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests

from hrm_fhir.adapters.fhir.answers import outcome_text, retry_after_seconds
from hrm_fhir.adapters.fhir.bulk_job import (
    MANIFEST,
    NDJSON,
    BulkExportError,
    DownloadError,
    ExportJobGone,
    ExportRequest,
    ExportResult,
    FileRecord,
    Issue,
    Progress,
    Silent,
    parse_instant,
)
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.fhir.urls import RESOURCE_TYPE
from hrm_fhir.errors import FHIRError, FHIRTemporaryError, ResourceNotFound

log = logging.getLogger(__name__)

TRANSIENT_ISSUES = frozenset(
    {"transient", "lock-error", "no-store", "exception", "timeout", "incomplete", "throttled"}
)
"""IssueType ``transient`` and its children: a status answer that says "ask again later"."""
_CHUNK = 1024 * 1024
_FOLDERS = {"output": "", "error": "error/", "deleted": "deleted/"}
"""Where each kind of file goes, under the export folder."""


class BulkExporter:
    """Runs exports through one gateway; see the module docstring for the protocol."""

    def __init__(
        self,
        gateway: FHIRGateway,
        *,
        poll_ceiling: float = 15.0,
        timeout: float = 3600.0,
        download_attempts: int = 3,
        transient_polls: int = 5,
        progress: Progress | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if poll_ceiling <= 0 or timeout <= 0 or download_attempts < 1:
            raise ValueError("poll_ceiling and timeout are > 0, download_attempts >= 1")
        self._gateway = gateway
        self._ceiling = poll_ceiling
        self._timeout = timeout
        self._attempts = download_attempts
        self._transient_polls = transient_polls
        self._progress: Progress = progress or Silent()
        self._clock = clock
        self._sleep = sleep

    def export(self, request: ExportRequest, folder: Path) -> ExportResult:
        """Run one export into ``folder`` (new or empty) and write its manifest there.

        Raises BulkExportError (after writing the manifest, status ``failed``) when the export
        cannot be completed; error outputs do not raise: they are in ``result.issues``.
        """
        _prepare(folder)
        started = self._clock()
        result = ExportResult(
            folder,
            request,
            kick_off=f"{self._gateway.base_url}/{request.path}",
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        try:
            result.status_url = self._kick_off(request)
            manifest = self._wait(result.status_url, started)
            self._read_manifest(manifest, result)
            self._download_all(manifest, result)
            result.status = "complete"
        except BaseException as exc:  # also Ctrl-C: the job is deleted, the manifest written
            result.status = "failed" if isinstance(exc, Exception) else "interrupted"
            result.failure = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if result.status_url:
                result.job = self._delete(result.status_url)
            result.seconds = self._clock() - started
            _write_manifest(result)
        return result

    def _kick_off(self, request: ExportRequest) -> str:
        headers = {
            "Accept": "application/fhir+json",
            "Prefer": "respond-async",
            # HAPI hands back an earlier identical job's files unless told not to.
            "Cache-Control": "no-cache",
        }
        label = f"export kick-off ({request.level})"
        if request.patients:
            response = self._gateway.request(
                "POST", request.path, label, body=request.parameters(), headers=headers
            )
        else:
            response = self._gateway.request(
                "GET", request.path, label, params=request.params(), headers=headers
            )
        location = response.headers.get("Content-Location")
        if response.status_code != 202 or not location:
            raise BulkExportError(
                f"{label}: expected 202 Accepted with a Content-Location, got HTTP "
                f"{response.status_code}" + ("" if location else " without Content-Location")
            )
        log.info("export started (%s level)", request.level)
        return location

    def _wait(self, status_url: str, started: float) -> dict[str, Any]:
        """Poll until the manifest arrives; the manifest as a JSON object."""
        interval = 1.0
        transient = 0
        while True:
            try:
                response = self._gateway.request(
                    "GET",
                    status_url,
                    "export status",
                    headers={"Accept": "application/json"},
                    accept=(429, 500, 502, 503, 504),
                )
            except ResourceNotFound as exc:
                raise ExportJobGone(
                    f"export status: HTTP {exc.status}: the job expired or was deleted"
                ) from exc
            except FHIRError as exc:
                raise BulkExportError(
                    f"export status: {exc}" + (f": {exc.outcome}" if exc.outcome else "")
                ) from exc
            status = response.status_code
            if status == 200:
                return _manifest(response)
            if status == 202:
                transient = 0
                self._progress.waiting(response.headers.get("X-Progress"), self._since(started))
            elif status != 429:
                body = _json(response.content)
                codes = _issue_codes(body)
                if codes and not codes <= TRANSIENT_ISSUES:
                    detail = outcome_text(body) or ", ".join(sorted(codes))
                    raise BulkExportError(f"export failed on the server (HTTP {status}): {detail}")
                transient += 1
                if transient > self._transient_polls:
                    raise FHIRTemporaryError(
                        f"export status: HTTP {status} {transient} times in a row", status=status
                    )
            asked = response.headers.get("Retry-After")
            wait = retry_after_seconds(asked) if asked else None
            delay = min(self._ceiling, interval if wait is None else max(wait, 0.5))
            interval = min(self._ceiling, interval * 2)
            if self._since(started) + delay > self._timeout:
                raise BulkExportError(
                    f"export did not finish within {self._timeout:.0f} s (the job is deleted)"
                )
            self._sleep(delay)

    def _since(self, started: float) -> float:
        return self._clock() - started

    def _read_manifest(self, manifest: dict[str, Any], result: ExportResult) -> None:
        time_ = manifest.get("transactionTime")
        if not isinstance(time_, str):
            raise BulkExportError("export manifest has no transactionTime")
        parse_instant(time_)
        result.transaction_time = time_
        result.requires_access_token = manifest.get("requiresAccessToken") is True

    def _download_all(self, manifest: dict[str, Any], result: ExportResult) -> None:
        """Every output, error and deleted file, in that order, each into its list."""
        lists = {"output": result.output, "error": result.errors, "deleted": result.deleted}
        items = [(kind, item) for kind in lists for item in manifest.get(kind) or ()]
        taken: dict[str, int] = {}
        for index, (kind, item) in enumerate(items, start=1):
            stem = f"{_FOLDERS[kind]}{item['type']}"
            taken[stem] = taken.get(stem, 0) + 1
            count = item.get("count")
            record = FileRecord(
                item["type"],
                item["url"],
                f"{stem}-{taken[stem]}.ndjson",
                count=count if type(count) is int else None,
            )
            self._download(record, result, index, len(items))
            lists[kind].append(record)
            if kind == "error":
                result.issues.extend(_issues(result.folder / record.file, record.file))

    def _download(self, record: FileRecord, result: ExportResult, index: int, total: int) -> None:
        credentials = result.requires_access_token
        if not credentials and urlsplit(record.url).scheme != "https":
            raise DownloadError(
                f"{record.file}: a file fetched without credentials must be on https"
            )
        target = result.folder / record.file
        target.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, self._attempts + 1):
            try:
                self._fetch(record, target, credentials, index, total)
                return
            except (DownloadError, FHIRTemporaryError, *_BROKEN) as exc:
                target.with_suffix(".part").unlink(missing_ok=True)
                if attempt == self._attempts:
                    message = exc if isinstance(exc, FHIRError | DownloadError) else repr(exc)
                    raise DownloadError(
                        f"{record.file}: did not arrive whole after {attempt} attempts: {message}"
                    ) from exc
                log.warning("%s: attempt %d failed (%s), retrying", record.file, attempt, exc)
                self._sleep(min(self._ceiling, 2.0**attempt))
            except BaseException:  # any other failure, or Ctrl-C: no half file is left behind
                target.with_suffix(".part").unlink(missing_ok=True)
                raise

    def _fetch(
        self, record: FileRecord, target: Path, credentials: bool, index: int, total: int
    ) -> None:
        """Stream one file to ``<target>.part``, checking it, then move it into place."""
        response = self._gateway.request(
            "GET",
            record.url,
            f"export file {record.file}",
            headers={"Accept": NDJSON},
            stream=True,
            credentials=credentials,
        )
        part = target.with_suffix(".part")
        digest = hashlib.sha256()
        size = lines = 0
        tail = b""
        with response, part.open("wb") as handle:
            length = _int(response.headers.get("Content-Length"))
            encoded = bool(response.headers.get("Content-Encoding"))
            self._progress.file_started(index, total, record.file, None if encoded else length)
            for chunk in response.iter_content(_CHUNK):
                handle.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                pieces = (tail + chunk).split(b"\n")
                tail = pieces.pop()
                lines += sum(1 for piece in pieces if piece.strip())
                self._progress.received(len(chunk))
            expected_digest = _server_digest(response.headers)
        self._progress.file_done()
        if length is not None and not encoded and size != length:
            raise DownloadError(f"{record.file}: {size} of {length} bytes arrived")
        if tail.strip():
            try:
                orjson.loads(tail)
            except orjson.JSONDecodeError as exc:
                raise DownloadError(f"{record.file}: the last line is cut short") from exc
            lines += 1
        if expected_digest is not None and expected_digest != digest.digest():
            raise DownloadError(f"{record.file}: SHA-256 differs from the server's digest")
        if record.count is not None and record.count != lines:
            raise DownloadError(
                f"{record.file}: {lines} resources arrived, the manifest counts {record.count}"
            )
        os.replace(part, target)
        record.bytes, record.lines, record.sha256 = size, lines, digest.hexdigest()

    def _delete(self, status_url: str) -> str:
        """Ask the server to delete the job and its files; what became of it."""
        try:
            response = self._gateway.request(
                "DELETE", status_url, "export delete", accept=(404, 410)
            )
        except (FHIRError, OSError) as exc:
            log.warning("export delete failed: %s", exc)
            return f"not deleted: {exc}"
        return "gone" if response.status_code in (404, 410) else "deleted"


_BROKEN = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
"""A download that broke off part way."""


def _prepare(folder: Path) -> None:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise BulkExportError(f"{folder} is not an empty folder: an export goes into a new one")
    folder.mkdir(parents=True, exist_ok=True)


def _write_manifest(result: ExportResult) -> None:
    text = orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2) + b"\n"
    (result.folder / MANIFEST).write_bytes(text)


def _json(content: bytes) -> object:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


def _manifest(response: requests.Response) -> dict[str, Any]:
    body = _json(response.content)
    if not isinstance(body, dict):
        raise BulkExportError("export manifest is not a JSON object")
    for kind in ("output", "error", "deleted"):
        items = body.get(kind, [])
        if not isinstance(items, list) or not all(
            isinstance(item, dict)
            and isinstance(item.get("type"), str)
            and RESOURCE_TYPE.fullmatch(item["type"])
            and isinstance(item.get("url"), str)
            and urlsplit(item["url"]).scheme in ("http", "https")
            for item in items
        ):
            raise BulkExportError(f"export manifest: {kind} is not a list of type and url")
    return body


def _issue_codes(body: object) -> set[str]:
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return set()
    issues = body.get("issue")
    return {
        str(issue.get("code"))
        for issue in (issues if isinstance(issues, list) else [])
        if isinstance(issue, dict)
    }


def _issues(path: Path, name: str) -> list[Issue]:
    """Every issue of every OperationOutcome in an error file (an unreadable line is one too)."""
    found: list[Issue] = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{name}:{number}"
            outcome = _json(line)
            issues = outcome.get("issue") if isinstance(outcome, dict) else None
            if not isinstance(issues, list):
                found.append(Issue("error", "invalid", "not an OperationOutcome", where))
                continue
            for issue in issues:
                if isinstance(issue, dict):
                    found.append(_issue(issue, where))
    return found


def _issue(issue: dict[str, Any], where: str) -> Issue:
    details = issue.get("details")
    text = details.get("text") if isinstance(details, dict) else None
    diagnostics = issue.get("diagnostics") or text or ""
    return Issue(
        str(issue.get("severity") or "error"), str(issue.get("code") or ""), str(diagnostics), where
    )


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.strip().isdigit() else None


_DIGEST = re.compile(r"sha-256=:?([A-Za-z0-9+/=]+):?", re.IGNORECASE)


def _server_digest(headers: Mapping[str, str]) -> bytes | None:
    """The SHA-256 the server states for the body: ``Content-Digest``/``Repr-Digest`` (RFC 9530,
    ``sha-256=:<base64>:``) or ``Digest`` (RFC 3230, ``SHA-256=<base64>``); None when none."""
    for name in ("Content-Digest", "Repr-Digest", "Digest"):
        value = headers.get(name)
        match = _DIGEST.search(value) if value else None
        if match:
            try:
                return b64decode(match.group(1), validate=True)
            except ValueError:
                return b""  # an unreadable digest never matches
    return None
