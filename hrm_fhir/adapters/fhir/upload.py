"""Upload FHIR Bundles and NDJSON to any FHIR server: transaction Bundles on a few connections.

Resources with an id are sent as ``PUT Type/id`` (so loading twice changes nothing), others as
``POST``. They go in three waves, each finished before the next starts, so that a server enforcing
referential integrity accepts what points at earlier waves: first what records point at
(Organization, Location, Practitioner, PractitionerRole, Medication), then Patients, then the rest.
Within a wave ``workers`` Bundles of ``chunk_size`` entries travel at once.

A transaction is all or nothing. When the server refuses one, the same chunk is sent again as a
batch, so that each resource gets its own answer. A resource refused in its wave (one that points
at a resource loaded beside it, say) is sent once more after the last wave; what the server still
refuses is reported with its reason. Nothing is dropped silently: ``sent`` counts every resource
read, ``failed`` those the server refused in the end, and ``errors`` names them.

A Bundle whose entries are all PUTs is retried on a timeout or 5xx like any PUT (sending it twice
writes nothing twice); one with a POST is not, as for any create.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hrm_fhir.adapters.fhir.files import expand_paths, iter_resources
from hrm_fhir.errors import FHIRFatalError

if TYPE_CHECKING:
    from hrm_fhir.adapters.fhir.gateway import FHIRGateway

Resource = dict[str, Any]
Item = tuple[str, Resource]
"""Where the resource was read (``file:line``) and the resource."""
WAVES = (
    frozenset({"Organization", "Location", "Practitioner", "PractitionerRole", "Medication"}),
    frozenset({"Patient"}),
)
"""The types loaded before everything else, wave by wave."""
CHUNK_SIZE = 200
WORKERS = 2
MAX_ERRORS = 50


@dataclass
class LoadReport:
    sent: int = 0
    failed: int = 0
    bundles: int = 0
    retried: int = 0
    """Resources refused in their wave and sent once more at the end."""
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    """``where: status: the server's reason`` for each resource refused in the end (first 50)."""

    @property
    def per_second(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "bundles": self.bundles,
            "retried": self.retried,
            "seconds": round(self.seconds, 1),
            "resources_per_second": round(self.per_second),
            "errors": self.errors,
        }


@dataclass(frozen=True)
class _Refused:
    item: Item
    reason: str


@dataclass(frozen=True)
class _Answer:
    """What the server said about one chunk."""

    bundles: int
    refused: list[_Refused]


def _entry(resource: Resource) -> Resource:
    kind, rid = resource["resourceType"], resource.get("id")
    if isinstance(rid, str) and rid:
        return {"resource": resource, "request": {"method": "PUT", "url": f"{kind}/{rid}"}}
    return {"resource": resource, "request": {"method": "POST", "url": kind}}


def _chunks(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _reason(entry: Resource) -> str:
    """``400 Bad Request: HAPI-1094: Resource Patient/x not found ...`` from a batch entry."""
    response = entry.get("response") or {}
    status = str(response.get("status", "no status"))
    issues = (response.get("outcome") or {}).get("issue") or [{}]
    detail = str(issues[0].get("diagnostics") or "")
    return f"{status}: {detail}" if detail else status


class _Uploader:
    def __init__(self, gateway: FHIRGateway, kind: str) -> None:
        self.gateway = gateway
        self.kind = kind

    def send(self, chunk: Sequence[Item]) -> _Answer:
        """Send one chunk; a refused transaction goes again as a batch, for per-resource answers."""
        entries = [_entry(resource) for _, resource in chunk]
        idempotent = all(e["request"]["method"] == "PUT" for e in entries)
        if self.kind == "transaction":
            bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
            try:
                self.gateway.transaction(bundle, idempotent=idempotent)
            except FHIRFatalError:
                return self._batch(chunk, entries, idempotent, bundles=2)
            return _Answer(1, [])
        return self._batch(chunk, entries, idempotent, bundles=1)

    def _batch(
        self, chunk: Sequence[Item], entries: list[Resource], idempotent: bool, *, bundles: int
    ) -> _Answer:
        bundle = {"resourceType": "Bundle", "type": "batch", "entry": entries}
        try:
            response = self.gateway.transaction(bundle, idempotent=idempotent)
        except FHIRFatalError as exc:
            return _Answer(bundles, [_Refused(item, str(exc)) for item in chunk])
        answers = list(response.get("entry") or ())
        answers += [{"response": {"status": "no answer in the batch response"}}] * (
            len(chunk) - len(answers)
        )
        refused = [
            _Refused(item, _reason(answer))
            for item, answer in zip(chunk, answers, strict=False)
            if not str((answer.get("response") or {}).get("status", "")).startswith("2")
        ]
        return _Answer(bundles, refused)


def load_paths(
    gateway: FHIRGateway,
    paths: Iterable[Path],
    *,
    chunk_size: int = CHUNK_SIZE,
    transaction: bool = True,
    workers: int = WORKERS,
    problem: Callable[[str, str], None] = lambda where, what: None,
    progress: Callable[[LoadReport], None] = lambda report: None,
) -> LoadReport:
    """Send every resource under ``paths``; return what was sent and what the server refused.
    ``progress`` is called after each Bundle with the report so far."""
    if chunk_size < 1 or workers < 1:
        raise ValueError("chunk_size and workers must be at least 1")
    files = expand_paths(paths)
    report = LoadReport()
    uploader = _Uploader(gateway, "transaction" if transaction else "batch")
    started = time.monotonic()
    refused: list[_Refused] = []

    def account(answer: _Answer, size: int) -> None:
        """Count a chunk's answer (``size``: resources sent for the first time)."""
        report.bundles += answer.bundles
        report.sent += size
        refused.extend(answer.refused)
        report.seconds = time.monotonic() - started
        progress(report)

    early: list[list[Item]] = [[] for _ in WAVES]
    for item in iter_resources(files, problem):
        wave = next((i for i, types in enumerate(WAVES) if item[1]["resourceType"] in types), None)
        if wave is not None:
            early[wave].append(item)
    quiet: Callable[[str, str], None] = lambda where, what: None  # noqa: E731 - said above
    rest = (
        item
        for item in iter_resources(files, quiet)
        if not any(item[1]["resourceType"] in types for types in WAVES)
    )
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hrm-load") as pool:
        for wave_items in (*early, rest):
            _wave(pool, uploader, _chunks(wave_items, chunk_size), workers, account)
    if refused:
        report.retried = len(refused)
        again = [r.item for r in refused]
        refused.clear()
        retry = _Uploader(gateway, "batch")
        for chunk in _chunks(again, chunk_size):
            account(retry.send(chunk), 0)
    report.failed = len(refused)
    report.errors = [f"{r.item[0]}: {r.reason}" for r in refused[:MAX_ERRORS]]
    report.seconds = time.monotonic() - started
    return report


def _wave(
    pool: ThreadPoolExecutor,
    uploader: _Uploader,
    chunks: Iterable[list[Item]],
    workers: int,
    account: Callable[[_Answer, int], None],
) -> None:
    """Send the chunks, ``workers`` at a time (a few more queued), and wait for all of them."""
    pending: dict[Future[_Answer], int] = {}

    def collect(when: str) -> None:
        done, _ = wait(pending, return_when=when)
        for future in done:
            account(future.result(), pending.pop(future))

    try:
        for chunk in chunks:
            if len(pending) >= 2 * workers:
                collect(FIRST_COMPLETED)
            pending[pool.submit(uploader.send, chunk)] = len(chunk)
        while pending:
            collect(FIRST_COMPLETED)
    finally:
        for future in pending:
            future.cancel()
