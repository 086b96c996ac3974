"""Benchmark: the monthly report for a large practice with a year of programme history.

Builds (once, cached in bench/out/report-s<seed>-n<patients>/ledger.db) a SQLite ledger holding a
synthetic practice's weekly sweeps, findings, team activity and snapshots from 30 November 2026 to
28 November 2027, then measures, each in a fresh process and against a bare read of the same
ledger in the same run:

- **read**: the floor. sqlite3 reads every finding, workflow event and snapshot row and orjson
  parses each snapshot body and event detail. Nothing else.
- **compute**: what the page and the API do. ``monthly_report`` (read the inputs, run the
  engine over every snapshot as of month end, compute every figure) and ``render_html``.
- **report**: ``hrm-fhir report monthly --month 2027-10``, everything: HTML, PDF, CSV, the
  MeasureReport and the JSON.

See bench/README.md for how to read the results.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import orjson
from bench_evaluate import HRM_FHIR, MIB, OUT, measure, summary

from hrm_fhir.adapters.store.database import init_db, make_session_factory
from hrm_fhir.rules.registry import load_rule_set
from hrm_fhir.synthetic.history import write_history
from hrm_fhir.synthetic.practice import generate_practice

START, END = date(2026, 11, 27), date(2027, 11, 28)
MONTH = "2027-10"
TARGET_SECONDS = 10.0

READ = """
import sqlite3, sys, orjson
db = sqlite3.connect(sys.argv[1])
for table in ("findings", "sweeps"):
    db.execute(f"SELECT * FROM {table}").fetchall()
for (detail,) in db.execute("SELECT detail FROM workflow_events"):
    orjson.loads(detail)
for (body,) in db.execute("SELECT body FROM snapshots"):
    orjson.loads(body)
"""

COMPUTE = """
import sys
from datetime import date
from hrm_fhir.audit.render import render_html
from hrm_fhir.audit.service import monthly_report, resolve_scope
from hrm_fhir.config import load_settings
from hrm_fhir.adapters.store.database import init_db, make_session_factory
from hrm_fhir.rules.registry import load_rule_set
settings = load_settings()
with make_session_factory(init_db(settings.database_url))() as session:
    scope = resolve_scope(settings, session, practice=sys.argv[1], pcn=None)
    month = date.fromisoformat(sys.argv[2])
    report = monthly_report(session, load_rule_set(), settings, month, scope)
print(len(render_html(report)))
"""


def ledger(patients: int, seed: int) -> tuple[Path, dict[str, Any]]:
    """The cached ledger and what it holds (generated and simulated on first use)."""
    folder = OUT / f"report-s{seed}-n{patients}"
    marker = folder / "history.json"
    path = folder / "ledger.db"
    if marker.exists():
        return path, orjson.loads(marker.read_bytes())
    folder.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    started = time.perf_counter()
    resources = list(generate_practice(patients, seed, END))
    sessions = make_session_factory(init_db(f"sqlite:///{path}"))
    with sessions.begin() as session:
        history = write_history(
            session, load_rule_set(), resources, start=START, end=END, seed=seed
        )
    facts = {
        "patients": patients,
        "resources": len(resources),
        "monitored": history.patients,
        "sweeps": history.sweeps,
        "findings": history.findings,
        "events": history.events,
        "ledger_mib": round(path.stat().st_size / MIB, 1),
        "built_s": round(time.perf_counter() - started, 1),
    }
    marker.write_bytes(orjson.dumps(facts))
    return path, facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    path, facts = ledger(args.patients, args.seed)
    os.environ["HRM_DATABASE_URL"] = f"sqlite:///{path}"
    folder = path.parent
    practice = f"practice-{args.seed}"
    commands = {
        "read": [sys.executable, "-c", READ, str(path)],
        "compute": [sys.executable, "-c", COMPUTE, practice, f"{MONTH}-01"],
        "report": [
            *(str(HRM_FHIR), "report", "monthly", "--month", MONTH),
            *("--practice", practice, "--out", str(folder / "report")),
        ],
    }
    measure(commands["read"], folder / "read.out", folder / "read.err")  # warm the page cache
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, command in commands.items():
            runs[name].append(measure(command, folder / f"{name}.out", folder / f"{name}.err"))
    results = {name: summary(r) for name, r in runs.items()}
    floor = results["read"]["median_wall_s"]
    print(f"ledger: {orjson.dumps(facts).decode()}")
    heading = ("median s", "min s", "max s", "cpu s", "peak MiB", "ratio")
    print(f"{'':8} " + " ".join(f"{h:>9}" for h in heading))
    for name, row in results.items():
        ratio = row["median_wall_s"] / floor
        cells = (row["median_wall_s"], row["min_wall_s"], row["max_wall_s"], row["median_cpu_s"])
        print(f"{name:8} " + " ".join(f"{c:9.2f}" for c in cells), end=" ")
        print(f"{row['peak_rss_mib']:9.0f} {ratio:9.2f}")
    met = results["compute"]["median_wall_s"] < TARGET_SECONDS
    print(f"compute (page/API) under {TARGET_SECONDS:.0f} s: {'yes' if met else 'NO'}")
    (OUT / "report-results.json").write_bytes(
        orjson.dumps(
            {"ledger": facts, "runs": runs, "summary": results}, option=orjson.OPT_INDENT_2
        )
    )


if __name__ == "__main__":
    main()
