"""Benchmark ``sweep --bulk`` against the paged sweep and against the bare export, in one run.

Against a HAPI sandbox holding the synthetic practice of bench_evaluate.py (the one
bench_sweep.py loads: start it there with ``--keep-server`` and pass its ``--fhir-base`` here,
or let this script start and load one on ``--port``), it measures, alternating, ``--runs``
times:

- **export**: ``BulkExporter.export`` of what a bulk sweep asks for (``export_request``), into a
  temporary folder: kick-off, polling, downloads, delete. Nothing else: the floor of a bulk sweep.
- **paged**: ``run_sweep(..., full=True)`` on a fresh SQLite ledger (searches, page by page).
- **bulk**: ``run_sweep(..., full=True, bulk=True)`` on a fresh SQLite ledger.

Before the first run, one unmeasured paged sweep writes every Task and Flag, so each measured
sweep finds them on the server and writes nothing: the two sweeps then differ only in how they
read. Each sweep's summary counts are compared (the same population must give the same plan).
Then one **incremental** sweep of each kind with nothing changed (once the load and the warm-up
are older than the watermark overlap), each after a full sweep of its kind on a fresh ledger.
Prints wall times, this process's CPU and the server's CPU, and the ratios bulk/paged and
bulk/export (median wall over runs). Writes bench/out/bulk-results.json.

    .venv/bin/python bench/bench_bulk.py --fhir-base http://127.0.0.1:18375/fhir --runs 2
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from bench_evaluate import AS_OF, OUT, practice
from bench_sweep import (
    _external,
    hapi,
    load,
    measured,
    patients_on_server,
    server_arguments,
    server_parser,
)

from hrm_fhir.adapters.fhir.bulk_export import BulkExporter
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.store.database import init_db, make_session_factory
from hrm_fhir.config import Settings
from hrm_fhir.rules.registry import RuleSet, load_rule_set
from hrm_fhir.sweep.run import run_sweep
from hrm_fhir.sweep.source import export_request
from hrm_fhir.workflow.chases import SweepChases

PAGE = 500
COUNTED = ("patients", "findings", "created", "updated", "closed", "unchanged", "errors")


def settings_for(base: str, seed: int, database: Path) -> Settings:
    for leftover in (database, database.with_name(database.name + "-journal")):
        leftover.unlink(missing_ok=True)
    return Settings(
        fhir_base_url=base,
        database_url=f"sqlite:///{database}",
        practice=f"practice-{seed}",
        page_size=PAGE,
        bulk_poll_ceiling=5.0,
    )


def bare_export(base: str, rules: RuleSet, server_pid: int | None) -> dict[str, Any]:
    gateway = FHIRGateway(base, timeout=300)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="hrm-bench-export-") as folder,
            measured(server_pid) as out,
        ):
            result = BulkExporter(gateway, poll_ceiling=5.0).export(
                export_request(rules), Path(folder) / "export"
            )
            out["files"] = len(result.output)
            out["bytes"] = sum(record.bytes for record in result.output)
            out["resources"] = result.resources_by_type()
    finally:
        gateway.close()
    return out


def sweep(
    settings: Settings, rules: RuleSet, server_pid: int | None, *, full: bool, bulk: bool
) -> dict[str, Any]:
    engine = init_db(settings.database_url)
    gateway = FHIRGateway.from_settings(settings)
    try:
        with measured(server_pid) as out:
            summary = run_sweep(
                settings,
                make_session_factory(engine),
                gateway,
                rules,
                as_of=AS_OF,
                full=full,
                bulk=bulk,
                chases=SweepChases.of(settings, gateway, rules),
            )
        out["summary"] = summary.to_json()
    finally:
        gateway.close()
        engine.dispose()
    return out


def incremental_pair(
    base: str, seed: int, rules: RuleSet, server_pid: int | None, written: float | None
) -> dict[str, Any]:
    """An incremental sweep of each kind with nothing changed, each after a full sweep of its
    kind on a fresh ledger; first waits until the last write (``written``, monotonic) is older
    than the watermark overlap, else "nothing changed" would see the load and the warm-up."""
    wait = (
        0.0
        if written is None
        else Settings().watermark_overlap_seconds + 10 - (time.monotonic() - written)
    )
    if wait > 0:
        print(f"waiting {wait:.0f} s: the last write must be older than the overlap")
        time.sleep(wait)
    incremental: dict[str, Any] = {}
    for name, bulk in (("paged", False), ("bulk", True)):
        settings = settings_for(base, seed, OUT / f"bulk-{name}-incr.db")
        sweep(settings, rules, server_pid, full=True, bulk=bulk)
        time.sleep(1)
        incremental[name] = sweep(settings, rules, server_pid, full=False, bulk=bulk)
        line(f"{name} incremental", incremental[name])
    return incremental


def line(name: str, result: dict[str, Any]) -> None:
    summary = result.get("summary") or {}
    counts = ", ".join(f"{k} {summary[k]}" for k in COUNTED if k in summary)
    server = result.get("server_cpu_s")
    rss = result.get("server_rss_mib")
    load = " ".join(f"{x:.1f}" for x in result["load_average"])
    print(f"  {name:<22} {result['wall_s']:8.1f} s wall, client CPU {result['client_cpu_s']:6.1f} s"
          + (f", server CPU {server:6.1f} s" if server is not None else "")
          + (f", server RSS {rss:,.0f} MiB (peak {result['server_peak_rss_mib']:,.0f})"
             if rss is not None else "")
          + f", load {load}" + (f"; {counts}" if counts else ""), flush=True)  # fmt: skip


def main() -> None:
    parser = server_parser("Benchmark the bulk sweep.", patients=20_000, port=18450, runs=2)
    parser.add_argument("--server-pid", type=int, help="the --fhir-base server's pid, for its CPU")
    parser.add_argument("--written", action="store_true",
                        help="the server holds every Task and Flag: no warm-up")  # fmt: skip
    parser.add_argument("--keep-server", action="store_true",
                        help="leave the started HAPI up (reuse it with --fhir-base)")  # fmt: skip
    parser.add_argument("--no-incremental", action="store_true",
                        help="skip the incremental pair (four more sweeps)")  # fmt: skip
    args = server_arguments(parser)
    folder, counts, _ = practice(args.patients, args.seed)
    rules = load_rule_set()
    server: Any = _external(args.fhir_base) if args.fhir_base else hapi(args.port, args.keep_server)
    with server as (base, started_pid):
        pid = started_pid or args.server_pid
        if patients_on_server(base, f"Organization/practice-{args.seed}") < args.patients:
            print("loading the practice ...", flush=True)
            load(base, folder / "ndjson", sum(counts.values()))
        if not args.written:
            print("writing every Task and Flag once (unmeasured paged sweep) ...", flush=True)
            line("warm-up", sweep(settings_for(base, args.seed, OUT / "bulk-warm.db"), rules, pid,
                                  full=True, bulk=False))  # fmt: skip
        written = time.monotonic()  # nothing is written after this
        runs: list[dict[str, Any]] = []
        for index in range(1, args.runs + 1):
            print(f"run {index} of {args.runs}", flush=True)
            run = {"export": bare_export(base, rules, pid)}
            line("bare export", run["export"])
            for name, bulk in (("paged", False), ("bulk", True)):
                database = OUT / f"bulk-{name}-run{index}.db"
                run[name] = sweep(settings_for(base, args.seed, database), rules, pid, full=True,
                                  bulk=bulk)  # fmt: skip
                line(f"{name} full sweep", run[name])
            runs.append(run)
            wall = {name: run[name]["wall_s"] for name in ("export", "paged", "bulk")}
            print(f"  run {index}: bulk/paged {wall['bulk'] / wall['paged']:.2f}x, "
                  f"bulk/export {wall['bulk'] / wall['export']:.2f}x", flush=True)  # fmt: skip
        incremental = (
            {}
            if args.no_incremental
            else incremental_pair(base, args.seed, rules, pid, None if args.written else written)
        )
    median = {
        name: statistics.median(run[name]["wall_s"] for run in runs)
        for name in ("export", "paged", "bulk")
    }
    same = all(
        {k: run["paged"]["summary"][k] for k in COUNTED}
        == {k: run["bulk"]["summary"][k] for k in COUNTED}
        for run in runs
    )
    ratios = {"bulk_to_paged": median["bulk"] / median["paged"],
              "bulk_to_export": median["bulk"] / median["export"]}  # fmt: skip
    print(f"\nmedian wall: export {median['export']:.1f} s, paged {median['paged']:.1f} s, "
          f"bulk {median['bulk']:.1f} s")  # fmt: skip
    print(f"bulk/paged {ratios['bulk_to_paged']:.2f}x, bulk/export {ratios['bulk_to_export']:.2f}x;"
          f" same counts either way: {same}")  # fmt: skip
    results = {"patients": args.patients, "seed": args.seed, "as_of": AS_OF.isoformat(),
               "runs": runs, "incremental": incremental, "median_wall_s": median,
               "ratios": ratios, "same_counts": same}  # fmt: skip
    (OUT / "bulk-results.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(f"wrote {OUT / 'bulk-results.json'}")


if __name__ == "__main__":
    main()
