"""Evaluate FHIR files offline: read, map, evaluate. The one place file I/O meets the rules.

Large inputs are split across worker processes by patient: every worker parses every line but
maps and evaluates only its own patients, so the mapping and rule work (most of the cost) runs
in parallel while each patient's record stays whole in one process. Output is the same as a
single-process run, byte for byte.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import re
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from hrm_fhir.adapters.fhir_input import expand_paths, iter_resources
from hrm_fhir.adapters.fhir_mapping import RecordBuilder, patient_key
from hrm_fhir.domain import Finding, PatientRecord, PatientRef, Skipped
from hrm_fhir.rules.evaluate import Engine
from hrm_fhir.rules.registry import RuleSet
from hrm_fhir.rules.therapy import MedicationIndex

Problem = Callable[[str, str], None]
PARALLEL_FROM_BYTES = 32 * 1024 * 1024
"""Inputs smaller than this are evaluated in one process (workers cost more than they save)."""


@dataclass(frozen=True)
class EvaluationRun:
    as_of: date
    findings: list[Finding]
    skipped: list[Skipped]
    patients: int


_PATIENT_FIRST = b'{"resourceType":"Patient","id":"'
_SUBJECT = b'"subject":{"reference":"Patient/'
_SUBJECT_ID = re.compile(rb'"subject":\{"reference":"Patient/([A-Za-z0-9\-.]{1,64})"')
_ID_THEN_QUOTE = re.compile(rb'([A-Za-z0-9\-.]{1,64})"')


@dataclass(frozen=True)
class _Partition:
    index: int
    count: int

    def owns(self, resource: dict[str, Any]) -> bool:
        """Resources without a patient (Medication, malformed ones) are read by every worker
        but reported by the first only, through ``reports``."""
        key = patient_key(resource)
        if key is None:
            return resource.get("resourceType") == "Medication" or self.index == 0
        return zlib.crc32(key.encode()) % self.count == self.index

    @property
    def reports(self) -> bool:
        return self.index == 0

    def claim(self, line: bytes) -> bool | None:
        """Decide from the raw NDJSON line, without parsing it, when that is certain: a Patient
        written id-first, or a resource with exactly one patient subject and nothing contained.
        None (parse and decide) for anything else."""
        if line.startswith(_PATIENT_FIRST):
            found = _ID_THEN_QUOTE.match(line, len(_PATIENT_FIRST))
        else:
            found = _SUBJECT_ID.search(line)
            if found is None or line.find(_SUBJECT, found.end()) >= 0 or b'"contained"' in line:
                return None
        if found is None:
            return None
        return zlib.crc32(b"Patient/" + found.group(1)) % self.count == self.index


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Reading builds hundreds of thousands of long-lived objects and no reference cycles;
    the cyclic collector would rescan them over and over (measured: half the read time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_records(
    paths: Iterable[Path],
    rules: RuleSet,
    problem: Problem,
    partition: _Partition | None = None,
) -> tuple[dict[PatientRef, PatientRecord], list[Skipped]]:
    """Every patient's record from the files under ``paths``; unreadable parts reported."""
    files = expand_paths(paths)
    index = MedicationIndex(rules.packs, rules.catalogue)
    builder = RecordBuilder(rules.catalogue, index.is_relevant)
    skipped: list[Skipped] = []
    reports = partition is None or partition.reports

    def record(where: str, what: str) -> None:
        skipped.append(Skipped(source=where, reason=what))
        problem(where, what)

    def report(where: str, what: str) -> None:
        if reports:
            record(where, what)

    with _collector_paused():
        if partition is None:
            for origin, resource in iter_resources(files, report):
                builder.add(origin, resource)
        else:
            _read_partition(files, partition, builder, report, record)
        records = builder.finish()
    return records, [*skipped, *builder.skipped]


def _read_partition(
    files: list[Path],
    partition: _Partition,
    builder: RecordBuilder,
    report: Problem,
    record: Problem,
) -> None:
    """Add this worker's resources: NDJSON lines it claims without re-checking, lines no worker
    could claim from their bytes (and whole JSON files) when their patient is this worker's."""
    claimed = [False]

    def claim(line: bytes) -> bool | None:
        mine = partition.claim(line)
        claimed[0] = mine is True
        return mine

    ndjson = [f for f in files if f.suffix in (".ndjson", ".jsonl")]
    for origin, resource in iter_resources(ndjson, report, claim, record):
        if claimed[0] or partition.owns(resource):
            builder.add(origin, resource)
    others = [f for f in files if f.suffix not in (".ndjson", ".jsonl")]
    for origin, resource in iter_resources(others, report):
        if partition.owns(resource):
            builder.add(origin, resource)


def _evaluate(
    paths: list[Path],
    rules: RuleSet,
    as_of: date,
    window_days: int | None,
    problem: Problem,
    partition: _Partition | None,
) -> EvaluationRun:
    records, skipped = read_records(paths, rules, problem, partition)
    engine = Engine.create(rules, as_of, window_days)
    findings: list[Finding] = []
    with _collector_paused():
        for key in sorted(records):
            findings.extend(engine.evaluate(records[key]))
    return EvaluationRun(as_of=as_of, findings=findings, skipped=skipped, patients=len(records))


def _stderr_problem(where: str, what: str) -> None:
    print(f"hrm-fhir: {where}: {what}", file=sys.stderr)


def _worker(args: tuple[list[Path], RuleSet, date, int | None, int, int]) -> EvaluationRun:
    paths, rules, as_of, window_days, index, count = args
    return _evaluate(paths, rules, as_of, window_days, _stderr_problem, _Partition(index, count))


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
    platforms with fork). Worker processes print file problems to stderr themselves.
    """
    path_list = list(paths)
    files = expand_paths(path_list)
    if workers is None:
        size = sum(f.stat().st_size for f in files)
        workers = default_workers() if size >= PARALLEL_FROM_BYTES else 1
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        run = _evaluate(path_list, rules, as_of, window_days, problem, None)
        return _ordered(run, [run])
    context = multiprocessing.get_context("fork")
    jobs = [(path_list, rules, as_of, window_days, k, workers) for k in range(workers)]
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        parts = list(pool.map(_worker, jobs))
    return _ordered(parts[0], parts)


def _ordered(first: EvaluationRun, parts: list[EvaluationRun]) -> EvaluationRun:
    """One run with findings and skips in a stable order, whichever process produced them."""
    findings = [f for part in parts for f in part.findings]
    findings.sort(key=lambda f: (f.patient, f.drug_group, f.kind.value, f.check, f.identifier))
    skipped = sorted(
        (s for part in parts for s in part.skipped), key=lambda s: (s.source, s.reason)
    )
    return EvaluationRun(
        as_of=first.as_of,
        findings=findings,
        skipped=skipped,
        patients=sum(part.patients for part in parts),
    )
