"""Benchmark ``hrm-fhir evaluate`` against a bare orjson parse of the same NDJSON.

Generates (once per seed and size) a synthetic practice under bench/out/, then times, in fresh
subprocesses, (a) reading every NDJSON line and ``orjson.loads``-ing it and (b) the real
``hrm-fhir evaluate --format json`` with stdout to /dev/null. Each run goes through a small
wrapper process that reports its one child's wall time and peak RSS, so the memory figure is
that command's own, not a maximum over earlier runs. Writes bench/out/results.json.

    .venv/bin/python bench/bench_evaluate.py                 # 20,000 patients, 3 runs each
    .venv/bin/python bench/bench_evaluate.py --patients 2000 --profile
"""

from __future__ import annotations

import argparse
import compileall
import os
import pstats
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import orjson

import hrm_fhir
from hrm_fhir.synthetic.practice import write_practice

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
AS_OF = date(2026, 11, 27)
HRM_FHIR = Path(sys.executable).with_name("hrm-fhir")
MIB = 1024 * 1024
TARGET_RATIO, AIM_RATIO, TARGET_RSS_MIB = 3.0, 1.5, 2048

PARSE = """
import pathlib, sys, orjson
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.ndjson")):
    with path.open("rb") as handle:
        for line in handle:
            orjson.loads(line)
"""

MEASURE = """
import json, resource, subprocess, sys, time
with open(sys.argv[1], "wb") as out, open(sys.argv[2], "wb") as err:
    start = time.perf_counter()
    code = subprocess.call(sys.argv[3:], stdout=out, stderr=err)
    wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": code, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
                  "max_rss_kib": usage.ru_maxrss}))
"""
"""Runs one command as its only child; RUSAGE_CHILDREN then describes exactly that command."""


def practice(patients: int, seed: int) -> tuple[Path, dict[str, int], float | None]:
    """The cached practice folder, its counts, and the generation time if it was made now."""
    folder = OUT / f"practice-s{seed}-n{patients}"
    marker = folder / "counts.json"
    if marker.exists():
        return folder, orjson.loads(marker.read_bytes()), None
    start = time.perf_counter()
    counts = write_practice(folder, patients, seed, AS_OF)
    took = time.perf_counter() - start
    marker.write_bytes(orjson.dumps(counts))
    return folder, counts, took


def measure(command: list[str], stdout: Path, stderr: Path) -> dict[str, Any]:
    wrapper = [sys.executable, "-c", MEASURE, str(stdout), str(stderr), *command]
    report = subprocess.run(wrapper, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = orjson.loads(report)
    if result["code"] != 0:
        tail = stderr.read_text(errors="replace")[-4000:]
        sys.exit(f"command failed ({result['code']}): {' '.join(command)}\n{tail}")
    return result


def summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    walls = [r["wall_s"] for r in runs]
    return {
        "median_wall_s": statistics.median(walls),
        "min_wall_s": min(walls),
        "max_wall_s": max(walls),
        "median_cpu_s": statistics.median(r["cpu_s"] for r in runs),
        "peak_rss_mib": max(r["max_rss_kib"] for r in runs) / 1024,
    }


def profile(ndjson: Path, folder: Path, top: int = 30) -> None:
    """Print the top functions by cumulative time for one evaluate run."""
    stats_file = folder / "evaluate.prof"
    command = [sys.executable, "-m", "cProfile", "-o", str(stats_file), str(HRM_FHIR), "evaluate",
               "--as-of", AS_OF.isoformat(), "--format", "json", str(ndjson)]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    pstats.Stats(str(stats_file)).sort_stats("cumulative").print_stats(top)


def _load(averages: tuple[float, float, float]) -> str:
    return ", ".join(f"{a:.2f}" for a in averages)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Benchmark hrm-fhir evaluate against a bare parse."
    )
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="also print a cProfile summary")
    args = parser.parse_args()

    folder, counts, generated = practice(args.patients, args.seed)
    ndjson = folder / "ndjson"
    sizes = {p.name: p.stat().st_size for p in sorted(ndjson.glob("*.ndjson"))}
    bundle_bytes = sum(p.stat().st_size for p in (folder / "bundles").glob("*.json"))
    parse_cmd = [sys.executable, "-c", PARSE, str(ndjson)]
    evaluate_cmd = [str(HRM_FHIR), "evaluate", "--as-of", AS_OF.isoformat(), "--format", "json",
                    str(ndjson)]  # fmt: skip
    errors = folder / "stderr.txt"

    # as an installed package has its bytecode; with PYTHONDONTWRITEBYTECODE set (as on the
    # shared machine) every run would otherwise compile the changed modules afresh
    compileall.compile_dir(Path(hrm_fhir.__file__).parent, quiet=1)
    measure(parse_cmd, Path("/dev/null"), errors)  # warm the page cache; not counted
    load_before = os.getloadavg()
    runs: dict[str, list[dict[str, Any]]] = {"parse": [], "evaluate": []}
    for _ in range(args.runs):
        runs["parse"].append(measure(parse_cmd, Path("/dev/null"), errors))
        runs["evaluate"].append(measure(evaluate_cmd, Path("/dev/null"), errors))
    load_after = os.getloadavg()
    stats = {name: summary(r) for name, r in runs.items()}
    ratio = stats["evaluate"]["median_wall_s"] / stats["parse"]["median_wall_s"]
    cpu_ratio = stats["evaluate"]["median_cpu_s"] / stats["parse"]["median_cpu_s"]

    output = folder / "evaluate.json"
    measure(evaluate_cmd, output, errors)  # once more, keeping the output to count findings
    document = orjson.loads(output.read_bytes())
    kinds: dict[str, int] = {}
    for finding in document["findings"]:
        kinds[finding["kind"]] = kinds.get(finding["kind"], 0) + 1

    total = sum(counts.values())
    print(f"practice: {args.patients} patients, seed {args.seed}: {total:,} resources "
          f"({', '.join(f'{k} {v:,}' for k, v in counts.items())})")  # fmt: skip
    if generated is not None:
        print(f"generated in {generated:.1f} s")
    print(f"NDJSON {sum(sizes.values()) / MIB:.1f} MiB in {len(sizes)} files; "
          f"bundles {bundle_bytes / MIB:.1f} MiB")  # fmt: skip
    print(f"\n{'':<10}{'median s':>10}{'min s':>9}{'max s':>9}{'cpu s':>9}{'peak RSS MiB':>14}")
    for name, s in stats.items():
        print(f"{name:<10}{s['median_wall_s']:>10.2f}{s['min_wall_s']:>9.2f}{s['max_wall_s']:>9.2f}"
              f"{s['median_cpu_s']:>9.2f}{s['peak_rss_mib']:>14.0f}")  # fmt: skip
    print(f"\nratio evaluate/parse (median wall): {ratio:.2f}x "
          f"(target <= {TARGET_RATIO:g}x, aim {AIM_RATIO:g}x); of median CPU: "
          f"{cpu_ratio:.2f}x")  # fmt: skip
    print(f"load average (1, 5, 15 min) before the runs {_load(load_before)}, "
          f"after {_load(load_after)}")  # fmt: skip
    print(f"evaluate peak RSS: {stats['evaluate']['peak_rss_mib']:.0f} MiB "
          f"(target < {TARGET_RSS_MIB} MiB)")  # fmt: skip
    print(f"evaluate output: {len(document['findings']):,} findings {kinds}, "
          f"{len(document['skipped'])} skipped")  # fmt: skip

    results = {
        "patients": args.patients, "seed": args.seed, "as_of": AS_OF.isoformat(),
        "runs_each": args.runs, "counts": counts, "resources": total,
        "ndjson_bytes": sizes, "ndjson_total_bytes": sum(sizes.values()),
        "bundles_total_bytes": bundle_bytes, "generation_s": generated,
        "runs": runs, "summary": stats, "ratio_evaluate_to_parse": ratio,
        "cpu_ratio_evaluate_to_parse": cpu_ratio,
        "load_average_before": load_before, "load_average_after": load_after,
        "targets": {"ratio_max": TARGET_RATIO, "ratio_aim": AIM_RATIO,
                    "peak_rss_mib_max": TARGET_RSS_MIB},
        "meets": {"ratio": ratio <= TARGET_RATIO,
                  "memory": stats["evaluate"]["peak_rss_mib"] < TARGET_RSS_MIB},
        "findings": len(document["findings"]), "findings_by_kind": kinds,
        "skipped": len(document["skipped"]),
    }  # fmt: skip
    (OUT / "results.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(f"wrote {OUT / 'results.json'}")
    if args.profile:
        profile(ndjson, folder)


if __name__ == "__main__":
    main()
