"""What listing deletions costs an incremental sweep (hazard H74), against the sweep without it.

Loads the synthetic practice into a HAPI sandbox (or uses ``--fhir-base``), runs a full paged
sweep on each of two fresh ledgers, then alternates incremental sweeps with nothing changed:
one as shipped (the record types' histories since the watermark are read for deletions) and
one with that step switched off (the sweep before hazard H74 was controlled). Then deletes
``--delete`` lithium levels and runs one incremental sweep of each kind, to show what the
histories buy. Writes ``bench/out/deletions-results.json``.

    .venv/bin/python bench/bench_deletions.py --patients 2000 --runs 5
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from bench_bulk import line, settings_for, sweep
from bench_evaluate import OUT, practice
from bench_sweep import (
    _external,
    hapi,
    load,
    patients_on_server,
    server_arguments,
    server_parser,
)

from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.config import Settings
from hrm_fhir.rules.registry import RuleSet, load_rule_set
from hrm_fhir.sweep import reads

LITHIUM_LEVEL = "1006681000000100"
"""SNOMED CT serum lithium level, as the synthetic practice codes it."""


@contextmanager
def without_deletions() -> Iterator[None]:
    """The sweep as it was before deletions (and moved resources) were looked for."""
    shipped = reads._holding
    reads._holding = lambda *_args: set()
    try:
        yield
    finally:
        reads._holding = shipped


def incremental(
    settings: Settings, rules: RuleSet, pid: int | None, listed: bool
) -> dict[str, Any]:
    if listed:
        return sweep(settings, rules, pid, full=False, bulk=False)
    with without_deletions():
        return sweep(settings, rules, pid, full=False, bulk=False)


def delete_levels(base: str, organization: str, count: int) -> list[str]:
    """Delete ``count`` lithium levels of the practice's patients; their references."""
    gateway = FHIRGateway(base, timeout=300)
    try:
        found = gateway.search(
            "Observation",
            {"code": LITHIUM_LEVEL, "patient.general-practitioner": organization},
            count=count,
        )
        deleted = []
        for resource in found.resources[:count]:
            ref = f"Observation/{resource['id']}"
            gateway.request("DELETE", ref, f"delete {ref}")
            deleted.append(ref)
        return deleted
    finally:
        gateway.close()


def main() -> None:
    parser = server_parser(
        "Benchmark the deletion listing of a sweep.", patients=2_000, port=18460, runs=5
    )
    parser.add_argument("--delete", type=int, default=20, help="lithium levels to delete")
    args = server_arguments(parser)
    folder, counts, _ = practice(args.patients, args.seed)
    rules = load_rule_set()
    organization = f"Organization/practice-{args.seed}"
    server: Any = _external(args.fhir_base) if args.fhir_base else hapi(args.port, False)
    with server as (base, pid):
        if patients_on_server(base, organization) < args.patients:
            print("loading the practice ...", flush=True)
            load(base, folder / "ndjson", sum(counts.values()))
        ledgers = {}
        for name in ("listed", "unlisted"):
            settings = settings_for(base, args.seed, OUT / f"deletions-{name}.db")
            ledgers[name] = dataclasses.replace(settings, watermark_overlap_seconds=0)
            line(f"{name} full", sweep(ledgers[name], rules, pid, full=True, bulk=False))
        time.sleep(2)
        runs: dict[str, list[dict[str, Any]]] = {"listed": [], "unlisted": []}
        for index in range(args.runs):
            order = ("listed", "unlisted") if index % 2 == 0 else ("unlisted", "listed")
            for name in order:
                result = incremental(ledgers[name], rules, pid, name == "listed")
                runs[name].append(result)
                line(f"{name} incremental", result)
        deleted = delete_levels(base, organization, args.delete)
        print(f"deleted {len(deleted)} lithium levels", flush=True)
        time.sleep(1)
        after = {
            name: incremental(ledgers[name], rules, pid, name == "listed")
            for name in ("listed", "unlisted")
        }
        for name, result in after.items():
            line(f"{name} after deleting", result)
    median = {name: statistics.median(r["wall_s"] for r in rs) for name, rs in runs.items()}
    ratio = median["listed"] / median["unlisted"]
    print(f"nothing changed, median of {args.runs}: listed {median['listed']:.2f} s, "
          f"unlisted {median['unlisted']:.2f} s: {ratio:.2f}x")  # fmt: skip
    for name, result in after.items():
        summary = result["summary"]
        print(f"after deleting {len(deleted)} levels, {name}: {summary['records_read']} patients "
              f"re-read, created {summary['created']}, closed {summary['closed']}")  # fmt: skip
    results = {"patients": args.patients, "runs": runs, "median_wall_s": median, "ratio": ratio,
               "deleted": deleted, "after": after}  # fmt: skip
    (OUT / "deletions-results.json").write_bytes(
        orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS, default=str)
    )


if __name__ == "__main__":
    main()
