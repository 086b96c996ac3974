"""Evaluate a 1,000,000-patient synthetic Bulk Data export offline: time and peak memory.

Generates (once; kept for reruns) the synthetic practice with ``hrm_fhir.synthetic.practice.
generate_practice`` as a Bulk Data ``$export`` lays it out, one NDJSON file per resource type,
into a temporary folder outside the repository (``--out``, default ``$TMPDIR/hrm-million-s<seed>
-n<patients>``; nothing is committed). Then, alternating, each in a fresh process:

- **parse**: read every line and ``orjson.loads`` it (the floor);
- **evaluate**: ``hrm-fhir evaluate --as-of 2026-11-27 --format json <folder>`` (stdout to a file).

For each run: wall time, CPU time of the command and its children, the largest single process's
peak RSS (``ru_maxrss`` of the children) and the peak of the whole process group's RSS, sampled
from ``/proc`` every 0.2 s (``evaluate`` forks one worker per core, so the sum is what the
machine must hold). Writes ``<out>-results.json`` beside the folder and prints a table.

    .venv/bin/python bench/bench_million.py                      # 1,000,000 patients, 1 run each
    .venv/bin/python bench/bench_million.py --patients 100000 --runs 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import orjson
from bench_evaluate import AS_OF, HRM_FHIR, MIB, PARSE

from hrm_fhir.synthetic.practice import generate_practice

PAGE = os.sysconf("SC_PAGE_SIZE")


def generate(folder: Path, patients: int, seed: int) -> tuple[dict[str, int], float | None]:
    """The NDJSON export in ``folder`` (made now if missing), its counts, and the time taken."""
    marker = folder / "counts.json"
    if marker.exists():
        return orjson.loads(marker.read_bytes()), None
    folder.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    start = time.perf_counter()
    with ExitStack() as stack:
        handles: dict[str, IO[bytes]] = {}
        for resource in generate_practice(patients, seed, AS_OF):
            kind = resource["resourceType"]
            if kind not in handles:
                handles[kind] = stack.enter_context((folder / f"{kind}.ndjson").open("wb"))
            handles[kind].write(orjson.dumps(resource) + b"\n")
            counts[kind] = counts.get(kind, 0) + 1
    took = time.perf_counter() - start
    marker.write_bytes(orjson.dumps(counts))
    return counts, took


def _group_rss(group: int) -> int:
    """Bytes resident in every process of the process group."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[2]) == group:
                total += int(Path(f"/proc/{entry}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
    return total


def measure(command: list[str], stdout: Path) -> dict[str, Any]:
    """Run ``command`` in its own process group; wall, CPU, largest and summed peak RSS."""
    before = os.times()
    start = time.perf_counter()
    with stdout.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE,
                                   start_new_session=True)  # fmt: skip
        peak = [0]

        def sample() -> None:
            while process.poll() is None:
                peak[0] = max(peak[0], _group_rss(process.pid))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, errors = process.communicate()
        sampler.join()
    wall = time.perf_counter() - start
    after = os.times()
    if process.returncode != 0:
        sys.exit(f"command failed ({process.returncode}): {' '.join(command)}\n{errors[-4000:]!r}")
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "wall_s": wall,
        "cpu_s": (after.children_user - before.children_user)
        + (after.children_system - before.children_system),
        "largest_process_peak_rss_mib": usage.ru_maxrss / 1024,
        "group_peak_rss_mib": peak[0] / MIB,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Evaluate a very large synthetic export offline.")
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="folder for the export (temporary)")
    args = parser.parse_args()
    folder = args.out or Path(tempfile.gettempdir()) / f"hrm-million-s{args.seed}-n{args.patients}"
    if Path(__file__).resolve().parents[1] in folder.resolve().parents:
        sys.exit("--out must be outside the repository (the export is not committed)")

    counts, generated = generate(folder, args.patients, args.seed)
    size = sum(p.stat().st_size for p in folder.glob("*.ndjson"))
    total = sum(counts.values())
    made = f" (generated in {generated:.0f} s)" if generated else ""
    print(f"{args.patients:,} patients, {total:,} resources, {size / MIB:,.0f} MiB NDJSON in "
          f"{folder}{made}", flush=True)  # fmt: skip
    parse = [sys.executable, "-c", PARSE, str(folder)]
    evaluate = [str(HRM_FHIR), "evaluate", "--as-of", AS_OF.isoformat(), "--format", "json",
                str(folder)]  # fmt: skip
    output = folder.with_name(f"{folder.name}-evaluate.json")  # outside: evaluate reads *.json
    runs: dict[str, list[dict[str, Any]]] = {"parse": [], "evaluate": []}
    for index in range(args.runs):
        runs["parse"].append(measure(parse, Path(os.devnull)))
        print(f"run {index + 1}: parse {runs['parse'][-1]}", flush=True)
        runs["evaluate"].append(measure(evaluate, output))
        print(f"run {index + 1}: evaluate {runs['evaluate'][-1]}", flush=True)
    document = orjson.loads(output.read_bytes())
    best = {name: min(r, key=lambda run: run["wall_s"]) for name, r in runs.items()}
    ratio = best["evaluate"]["wall_s"] / best["parse"]["wall_s"]
    print(f"\n{'':<10}{'wall s':>9}{'CPU s':>9}{'largest RSS MiB':>17}{'all RSS MiB':>13}")
    for name, run in best.items():
        largest, group = run["largest_process_peak_rss_mib"], run["group_peak_rss_mib"]
        print(f"{name:<10}{run['wall_s']:>9.1f}{run['cpu_s']:>9.1f}{largest:>17,.0f}"
              f"{group:>13,.0f}")  # fmt: skip
    findings, register = len(document["findings"]), len(document["monitored"])
    print(f"ratio evaluate/parse: {ratio:.2f}x; {findings:,} findings, {register:,} register "
          f"lines, {len(document['skipped']):,} skipped")  # fmt: skip
    results = {
        "patients": args.patients, "seed": args.seed, "as_of": AS_OF.isoformat(),
        "resources": total, "counts": counts, "ndjson_bytes": size, "generation_s": generated,
        "cores": os.cpu_count(), "runs": runs, "best": best, "ratio_evaluate_to_parse": ratio,
        "findings": len(document["findings"]), "register": len(document["monitored"]),
        "skipped": len(document["skipped"]),
    }  # fmt: skip
    written = folder.with_name(f"{folder.name}-results.json")
    written.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(f"wrote {written}")


if __name__ == "__main__":
    main()
