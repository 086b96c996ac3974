"""Evaluate FHIR files offline: read, map, evaluate. The one place file I/O meets the rules.

Each worker maps its own share of the files, so a run cannot hand all its resources to
``evaluation.evaluate_records``; it shares its per-patient step, ``evaluation.assess_each``.

Large inputs are shared between workers by bytes (the first runs in this process, the others
in forked ones): every NDJSON file is cut into one line-aligned byte range per worker (other
files go whole, in contiguous runs of about equal size), and each worker parses and maps only
its own ranges, keeping what each range gave per patient. A patient that more than one worker
has read is then handed to one of them, which joins the parts in reading order; Medications are
shared with every worker before the requests that name them are mapped. So every record is
whole, and built in the order one reader would have built it, before any rule sees it: the
output is that of a one-process run, byte for byte.
"""

from __future__ import annotations

import gc
import os
import re
import traceback
import zlib
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hrm_fhir.adapters.fhir.files import NdjsonPart, expand_paths, is_ndjson, iter_resources
from hrm_fhir.adapters.fhir.mapping import RecordBuilder, Resource
from hrm_fhir.domain import (
    FINDING_ORDER,
    Finding,
    PatientRecord,
    PatientRef,
    RegisterEntry,
    Skipped,
)
from hrm_fhir.evaluation import (
    EvaluationRun,
    UnrecognisedKey,
    assess_each,
    unrecognised_products,
)
from hrm_fhir.rules.evaluate import Evaluator
from hrm_fhir.rules.registry import RuleSet

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

Problem = Callable[[str, str], None]
PARALLEL_FROM_BYTES = 32 * 1024 * 1024
"""Inputs smaller than this are evaluated in one process (workers cost more than they save)."""


@dataclass(frozen=True, slots=True)
class _Chunk:
    """What one worker reads of one file: a byte range of an NDJSON file, or a whole file."""

    index: int
    """Place in reading order: files in order, each file's ranges in byte order."""
    path: Path
    worker: int
    start: int = 0
    end: int | None = None

    @property
    def name(self) -> str:
        """The file name; for a range after the first, a token standing for it that
        ``_Origins`` resolves once the lines of the ranges before it are counted."""
        return str(self.path) if self.start == 0 else f"\0{self.index}"


_Segment = tuple[int, int]
"""Where part of a record was read: (0, chunk index), then (1, chunk index) for the requests
that name a Medication, which one reader maps after everything else."""
_Parts = dict[_Segment, dict[PatientRef, PatientRecord]]
_Handover = list[tuple[_Segment, PatientRef, PatientRecord]]
_Read = tuple[dict[int, int], dict[int, dict[str, Resource]]]
"""Lines read and Medications read, by chunk index."""


@dataclass(frozen=True)
class _Result:
    findings: list[Finding]
    register: list[RegisterEntry]
    unrecognised: Counter[UnrecognisedKey]
    skipped: list[Skipped]
    problems: list[tuple[int, str, str]]
    """(chunk index, where, what) for each unreadable file or line, in reading order."""
    patients: int
    later: list[Skipped]
    """Results dated after the as-of date."""


@dataclass(frozen=True)
class _Failure:
    traceback: str


@contextmanager
def collector_paused() -> Iterator[None]:
    """Reading builds hundreds of thousands of long-lived objects and no reference cycles;
    the cyclic collector would rescan them over and over (measured: half the read time). What
    exists when the run ends (the rule set, the findings) is then moved out of the collector's
    sight (``gc.freeze``): rescanning it once collection resumes cost a one-process run a
    quarter of its time, and the parent of workers a fifth of its own. Frozen objects are still
    freed when the last reference goes; only a reference cycle among them would be kept."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


class _Worker:
    """One process's share of a run: read its chunks, then evaluate the patients it owns."""

    def __init__(
        self, evaluator: Evaluator, chunks: list[_Chunk], index: int, workers: int
    ) -> None:
        self._rules = evaluator.rules
        self.evaluator = evaluator
        self._chunks = [chunk for chunk in chunks if chunk.worker == index]
        self._index = index
        self._workers = workers
        self._builders: dict[int, RecordBuilder] = {}
        self._parts: _Parts = {}
        self._problems: list[tuple[int, str, str]] = []

    def read(self) -> _Read:
        """Map each chunk into records of its own; the lines and Medications each one held."""
        medicines = self._rules.medicines()
        lines: dict[int, int] = {}
        for chunk in self._chunks:
            builder = self._builders[chunk.index] = RecordBuilder(self._rules.catalogue, medicines)
            lines[chunk.index] = self._read(chunk, builder)
            self._parts[(0, chunk.index)] = builder.take()
        return lines, {i: b.medications for i, b in self._builders.items() if b.medications}

    def _read(self, chunk: _Chunk, builder: RecordBuilder) -> int:
        """Add the chunk's resources to ``builder``; the number of lines read."""

        def problem(where: str, what: str) -> None:
            self._problems.append((chunk.index, where, what))

        if not is_ndjson(chunk.path):
            for origin, resource in iter_resources([chunk.path], problem):
                builder.add(origin, resource)
            return 0
        part = NdjsonPart(chunk.path, chunk.start, chunk.end, chunk.name)
        add = builder.add
        for origin, resource in part.resources(problem):
            add(origin, resource)
        return part.lines

    def finish(self, medications: dict[str, Resource]) -> set[PatientRef]:
        """Map the requests that name a Medication, with every Medication any worker read;
        return the patients this worker holds parts of."""
        for index, builder in self._builders.items():
            builder.medications.update(medications)
            self._parts[(1, index)] = builder.finish()
        return {ref for part in self._parts.values() for ref in part}

    def hand_over(self, shared: set[PatientRef]) -> dict[int, _Handover]:
        """Remove and return, by owner, the parts of shared patients (held by other workers too)
        that another worker owns."""
        out: dict[int, _Handover] = {}
        for ref in shared:
            owner = zlib.crc32(ref.encode()) % self._workers
            if owner == self._index:
                continue
            for segment, part in self._parts.items():
                record = part.pop(ref, None)
                if record is not None:
                    out.setdefault(owner, []).append((segment, ref, record))
        return out

    def evaluate(self, received: _Handover) -> _Result:
        """Join each patient's parts, with those received, in reading order; evaluate them."""
        for segment, ref, record in received:
            self._parts.setdefault(segment, {})[ref] = record
        records = _join(self._parts)
        findings: list[Finding] = []
        register: list[RegisterEntry] = []
        later: list[Skipped] = []
        for _, assessment in assess_each(self.evaluator, records):
            findings.extend(assessment.findings)
            register.extend(assessment.register)
            later.extend(assessment.later)
        skipped = [s for builder in self._builders.values() for s in builder.skipped]
        unrecognised: Counter[UnrecognisedKey] = Counter()
        for builder in self._builders.values():
            unrecognised.update(builder.unrecognised)
        return _Result(
            findings, register, unrecognised, skipped, self._problems, len(records), later
        )

    def release(self) -> None:
        """Let go of the records and readers (their findings are out)."""
        self._parts = {}
        self._builders = {}


def _join(parts: _Parts) -> dict[PatientRef, PatientRecord]:
    """One record per patient, its parts appended in reading order."""
    records: dict[PatientRef, PatientRecord] = {}
    for segment in sorted(parts):
        for ref, part in parts[segment].items():
            record = records.get(ref)
            if record is None:
                records[ref] = part
                continue
            record.prescriptions.extend(part.prescriptions)
            record.results.extend(part.results)
            record.targets.extend(part.targets)
            record.arrangements.extend(part.arrangements)
            if part.patient is not None:
                record.patient = part.patient
    return records


def _plan(files: list[Path], workers: int) -> list[_Chunk]:
    """The files in reading order, shared out: every NDJSON file in one line-aligned byte range
    per worker, other files whole, in contiguous runs of about equal size."""
    sizes = {path: path.stat().st_size for path in files if not is_ndjson(path)}
    total = sum(sizes.values()) or 1
    chunks: list[_Chunk] = []
    done = 0
    for path in files:
        if is_ndjson(path):
            for worker, (start, end) in enumerate(_ranges(path, workers)):
                chunks.append(_Chunk(len(chunks), path, worker, start, end))
        else:
            middle = done + sizes[path] // 2
            chunks.append(_Chunk(len(chunks), path, min(workers - 1, middle * workers // total)))
            done += sizes[path]
    return chunks


def _ranges(path: Path, parts: int) -> list[tuple[int, int | None]]:
    """``parts`` byte ranges covering an NDJSON file, each starting at a line start (one range,
    the whole file, when it cannot be read: its reader reports that)."""
    starts = [0]
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            for part in range(1, parts):
                offset = max(size * part // parts, starts[-1])
                if offset > 0:
                    handle.seek(offset - 1)
                    handle.readline()
                    offset = handle.tell()
                starts.append(offset)
    except OSError:
        return [(0, None)]
    return list(zip(starts, [*starts[1:], None], strict=True))


def _run_workers(workers: list[_Worker]) -> tuple[list[_Read], list[_Result]]:
    """Run the first worker in this process and each other one in a forked process, passing
    Medications and shared patients between them; every step waits for all of them."""
    channels: list[Connection | _Here] = [_Here(workers[0])]
    processes = []
    try:
        if len(workers) > 1:
            import multiprocessing  # only here: a one-process run does without its import time

            context = multiprocessing.get_context("fork")
            for worker in workers[1:]:
                here, there = context.Pipe()
                process = context.Process(target=_serve, args=(there, worker), daemon=True)
                process.start()
                there.close()
                channels.append(here)
                processes.append(process)
        reads: list[_Read] = _gather(channels)
        _send(channels, [_medications(reads)] * len(channels))
        held: list[set[PatientRef]] = _gather(channels)
        seen = Counter(ref for refs in held for ref in refs)
        _send(channels, [{ref for ref in refs if seen[ref] > 1} for refs in held])
        handovers: list[dict[int, _Handover]] = _gather(channels)
        _send(
            channels,
            [[p for out in handovers for p in out.get(k, ())] for k in range(len(channels))],
        )
        results: list[_Result] = _gather(channels)
    finally:
        for channel in channels:
            channel.close()
        for process in processes:
            process.kill()  # done (every reply is in) or failed; either way not needed now
            process.join()
    return reads, results


def _steps(worker: _Worker, release: bool = False) -> Generator[Any, Any, None]:
    """One worker's side of ``_run_workers``: each step's reply, given the message before it.
    With ``release``, what the worker read is let go of as soon as its findings are out (in
    this process, while the others finish; a forked worker just ends)."""
    message = yield worker.read()
    message = yield worker.finish(message)
    message = yield worker.hand_over(message)
    result = worker.evaluate(message)
    if release:
        worker.release()
    yield result


def _serve(conn: Connection, worker: _Worker) -> None:
    """A forked worker's side of ``_run_workers``."""
    try:
        steps = _steps(worker)
        conn.send(next(steps))
        for _ in range(3):  # Medications, shared patients, parts handed over: then done
            conn.send(steps.send(conn.recv()))
    except Exception:
        conn.send(_Failure(traceback.format_exc()))


class _Here:
    """The worker this process runs, behind a forked worker's send and receive: a message is
    kept until its reply is asked for, so this process does its share while the others do
    theirs, and its findings need no pickling."""

    def __init__(self, worker: _Worker) -> None:
        self._steps = _steps(worker, release=True)
        self._message: Any = None
        self._started = False

    def send(self, message: Any) -> None:
        self._message = message

    def recv(self) -> Any:
        try:
            if not self._started:
                self._started = True
                return next(self._steps)
            return self._steps.send(self._message)
        except Exception:
            return _Failure(traceback.format_exc())

    def close(self) -> None:
        self._steps.close()


def _send(channels: list[Connection | _Here], messages: list[Any]) -> None:
    for channel, message in zip(channels, messages, strict=True):
        channel.send(message)


def _gather(channels: list[Connection | _Here]) -> list[Any]:
    """Every worker's reply, in worker order: this process's own share first (the forked
    workers do theirs meanwhile), then each forked worker's as soon as it arrives."""
    received: dict[int, Any] = {
        n: channel.recv() for n, channel in enumerate(channels) if isinstance(channel, _Here)
    }
    pending = {n: c for n, c in enumerate(channels) if not isinstance(c, _Here)}
    if pending:
        from multiprocessing.connection import wait

        while pending:
            for ready in wait(list(pending.values())):
                n = next(k for k, conn in pending.items() if conn is ready)
                received[n] = pending.pop(n).recv()
    replies = [received[n] for n in range(len(channels))]
    for reply in replies:
        if isinstance(reply, _Failure):
            raise RuntimeError(f"an evaluation worker failed:\n{reply.traceback}")
    return replies


def _medications(reads: list[_Read]) -> dict[str, Resource]:
    """Every Medication read, the one read last winning, as one reader keeps them."""
    by_chunk = sorted(
        ((index, found) for _, medications in reads for index, found in medications.items()),
        key=lambda item: item[0],
    )
    merged: dict[str, Resource] = {}
    for _, found in by_chunk:
        merged.update(found)
    return merged


class _Origins:
    """Turns the range tokens in origins into ``<file>:<line>``."""

    _TOKEN = re.compile("\0(\\d+):(\\d+)")

    def __init__(self, chunks: list[_Chunk], reads: list[_Read]) -> None:
        lines = {index: count for counts, _ in reads for index, count in counts.items()}
        self._names = {chunk.index: str(chunk.path) for chunk in chunks}
        self._bases: dict[int, int] = {}
        base = 0
        for chunk in chunks:
            base = base if chunk.start else 0
            self._bases[chunk.index] = base
            base += lines.get(chunk.index, 0)

    def __call__(self, where: str) -> str:
        return self._TOKEN.sub(self._resolve, where) if "\0" in where else where

    def _resolve(self, token: re.Match[str]) -> str:
        index = int(token[1])
        return f"{self._names[index]}:{self._bases[index] + int(token[2])}"


def _combine(
    evaluator: Evaluator,
    chunks: list[_Chunk],
    reads: list[_Read],
    results: list[_Result],
    problem: Problem,
) -> EvaluationRun:
    """One run from the workers' results: problems reported in reading order, origins resolved,
    findings and skips in a stable order whichever worker produced them."""
    origin = _Origins(chunks, reads)
    problems = sorted((p for result in results for p in result.problems), key=lambda p: p[0])
    skipped = [Skipped(source=origin(where), reason=what) for _, where, what in problems]
    for item in skipped:
        problem(item.source, item.reason)
    skipped.extend(Skipped(origin(s.source), s.reason) for r in results for s in r.skipped)
    later = sum(len(r.later) for r in results)
    skipped.extend(s for r in results for s in r.later)
    skipped.sort(key=lambda s: (s.source, s.reason))
    findings = [f for result in results for f in result.findings]
    findings.sort(key=FINDING_ORDER)
    patients = sum(result.patients for result in results)
    register = sorted(
        (entry for result in results for entry in result.register),
        key=lambda e: (e.patient, e.drug_group),
    )
    counts: Counter[UnrecognisedKey] = Counter()
    for result in results:
        counts.update(result.unrecognised)
    return EvaluationRun(
        as_of=evaluator.as_of,
        findings=findings,
        skipped=skipped,
        patients=patients,
        monitored=register,
        unrecognised=unrecognised_products(counts),
        warnings=evaluator.warnings(later),
    )


def default_workers() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1


def evaluate_paths(
    paths: Iterable[Path],
    rules: RuleSet,
    as_of: date,
    window_days: int | None = None,
    problem: Problem = lambda where, what: None,
    workers: int | None = None,
) -> EvaluationRun:
    """Evaluate every patient found under ``paths`` as of ``as_of``.

    ``workers`` None chooses: one process for small inputs, else one per available core (on
    platforms with fork). Unreadable files and lines go to ``problem``, in reading order.
    """
    files = expand_paths(paths)
    if workers is None:
        size = sum(f.stat().st_size for f in files)
        workers = default_workers() if size >= PARALLEL_FROM_BYTES else 1
    if not hasattr(os, "fork"):
        workers = 1
    chunks = _plan(files, workers)
    evaluator = Evaluator.create(rules, as_of, window_days)
    rules.medicines()  # built here, once, and inherited by every forked worker
    team = [_Worker(evaluator, chunks, k, workers) for k in range(workers)]
    with collector_paused():
        reads, results = _run_workers(team)
        return _combine(team[0].evaluator, chunks, reads, results, problem)
