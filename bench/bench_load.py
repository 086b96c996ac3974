"""Benchmark ``hrm-fhir load`` against the loader it replaced, on one HAPI sandbox in one run.

- **baseline**: what ``hrm-fhir load`` did before: batch Bundles of 250, one at a time
  (``load_paths(transaction=False, chunk_size=250, workers=1)``);
- **one-conn**: transaction Bundles of ``CHUNK_SIZE``, one at a time;
- **load**: the defaults (transaction Bundles of ``CHUNK_SIZE`` on ``WORKERS`` connections).

After one load that is not counted (HAPI's JIT warms up on it), for each practice (the bundled
200-patient one, then a generated one of ``--patients``), the three are run ``--runs`` times each,
alternately, and the server is emptied with ``$expunge`` before every run, so each run loads into
an empty server. Reported: resources a second (median), the server's CPU milliseconds per
resource (steadier than wall time on a shared machine) and the ratio load/baseline. Writes
bench/out/load-results.json.

    .venv/bin/python bench/bench_load.py                       # 200 and 2,000 patients, 2 runs
    .venv/bin/python bench/bench_load.py --patients 20000 --runs 1
    .venv/bin/python bench/bench_load.py --fhir-base http://127.0.0.1:18472/fhir
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
from bench_evaluate import OUT, practice
from bench_sweep import _cpu_seconds, _external, hapi

from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.fhir.upload import CHUNK_SIZE, WORKERS, load_paths

ROOT = OUT.parent.parent
BUNDLED = ROOT / "fixtures" / "practice" / "ndjson"
STRATEGIES: dict[str, dict[str, Any]] = {
    "baseline": {"transaction": False, "chunk_size": 250, "workers": 1},
    "one-conn": {"transaction": True, "chunk_size": CHUNK_SIZE, "workers": 1},
    "load": {"transaction": True, "chunk_size": CHUNK_SIZE, "workers": WORKERS},
}


def expunge(base: str) -> None:
    """Empty the server (the sandbox allows ``$expunge``; never point this at a real server)."""
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "expungeEverything", "valueBoolean": True}],
    }
    response = requests.post(
        f"{base}/$expunge",
        data=orjson.dumps(body),
        headers={"Content-Type": "application/fhir+json"},
        timeout=900,
    )
    response.raise_for_status()


def one_load(base: str, folder: Path, pid: int | None, options: dict[str, Any]) -> dict[str, Any]:
    expunge(base)
    gateway = FHIRGateway(base, timeout=900, max_retries=2)
    cpu = _cpu_seconds(pid)
    started = time.perf_counter()
    try:
        report = load_paths(gateway, [folder], **options)
    finally:
        gateway.close()
    wall = time.perf_counter() - started
    after = _cpu_seconds(pid)
    if report.failed:
        sys.exit(f"load refused {report.failed} resources: {report.errors[:5]}")
    server_cpu = None if cpu is None or after is None else after - cpu
    return {
        "resources": report.sent,
        "bundles": report.bundles,
        "wall_s": wall,
        "resources_per_s": report.sent / wall,
        "server_cpu_ms_per_resource": None
        if server_cpu is None
        else 1000 * server_cpu / report.sent,
    }


def compare(base: str, folder: Path, pid: int | None, runs: int) -> dict[str, Any]:
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in STRATEGIES}
    for index in range(runs):
        for name, options in STRATEGIES.items():
            run = one_load(base, folder, pid, options)
            results[name].append(run)
            rate = run["resources_per_s"]
            print(f"  run {index + 1} {name:<8} {run['resources']:,} resources in "
                  f"{run['wall_s']:.1f} s = {rate:.0f}/s", flush=True)  # fmt: skip
    summary = {
        name: {
            "resources_per_s": statistics.median(r["resources_per_s"] for r in rs),
            "server_cpu_ms_per_resource": _median(r["server_cpu_ms_per_resource"] for r in rs),
        }
        for name, rs in results.items()
    }
    ratio = summary["load"]["resources_per_s"] / summary["baseline"]["resources_per_s"]
    return {"runs": results, "median": summary, "speed_ratio": ratio}


def _median(values: Any) -> float | None:
    found = [v for v in values if v is not None]
    return statistics.median(found) if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark the loader against its old strategy.")
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--port", type=int, default=18451)
    parser.add_argument("--fhir-base", help="use this running sandbox (127.0.0.1 only; emptied!)")
    args = parser.parse_args()
    if args.fhir_base and urlsplit(args.fhir_base).hostname != "127.0.0.1":
        sys.exit("--fhir-base must be on 127.0.0.1")
    generated, _, _ = practice(args.patients, args.seed)
    practices = {"bundled 200 patients": BUNDLED, f"{args.patients} patients": generated / "ndjson"}
    server: AbstractContextManager[tuple[str, int | None]] = (
        _external(args.fhir_base) if args.fhir_base else hapi(args.port, keep=False)
    )
    out: dict[str, Any] = {"strategies": STRATEGIES, "practices": {}}
    with server as (base, pid):
        print("warm-up (not counted): the bundled practice, loaded once", flush=True)
        one_load(base, BUNDLED, pid, STRATEGIES["load"])
        for label, folder in practices.items():
            print(f"{label} ({folder})", flush=True)
            out["practices"][label] = compare(base, folder, pid, args.runs)
    print()
    names = list(STRATEGIES)
    print(f"{'practice':<24}" + "".join(f"{n + ' /s':>14}" for n in names) + f"{'ratio':>8}"
          + "".join(f"{n + ' cpu ms':>16}" for n in names))  # fmt: skip
    for label, result in out["practices"].items():
        m = result["median"]
        cpu = [_fmt(m[n]["server_cpu_ms_per_resource"]) for n in names]
        print(f"{label:<24}" + "".join(f"{m[n]['resources_per_s']:>14.0f}" for n in names)
              + f"{result['speed_ratio']:>8.2f}" + "".join(f"{c:>16}" for c in cpu))  # fmt: skip
    (OUT / "load-results.json").write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
    print(f"wrote {OUT / 'load-results.json'}")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
