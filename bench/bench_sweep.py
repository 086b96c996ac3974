"""Benchmark ``run_sweep`` against a local HAPI sandbox, next to bare paging of the same data.

Reuses the cached synthetic practice of bench_evaluate.py (bench/out/practice-s<seed>-n<N>/),
starts a private HAPI sandbox on 127.0.0.1 (unless --fhir-base names a running one), loads the
practice's NDJSON into it when it is not there yet, then, per run:

- **bare paging**: a plain ``requests`` loop that pages through what a sweep reads (Patient,
  MedicationRequest, MedicationStatement, Observation, DiagnosticReport, Procedure and the
  rules' extra searches (``fetch.record_searches``) in the practice scope, Medication unscoped)
  with ``_count=500``, parsing each page with ``orjson`` and nothing else;
- **full sweep** with a fresh SQLite database; then a second **full reconciliation** over the
  unchanged data, and an **incremental** sweep with nothing changed, on the same database.

Every HTTP request in this process is counted (``requests.Session.send`` is wrapped here, not in
the package), with the time spent waiting for it; the sweep's phases are timed by wrapping the
functions ``hrm_fhir.sweep.run`` calls. Writes bench/out/sweep-results.json.

    .venv/bin/python bench/bench_sweep.py                        # 20,000 patients, 1 run
    .venv/bin/python bench/bench_sweep.py --patients 2000 --profile
    .venv/bin/python bench/bench_sweep.py --fhir-base http://127.0.0.1:18450/fhir
"""

from __future__ import annotations

import cProfile
import functools
import importlib
import importlib.util
import io
import logging
import os
import pstats
import statistics
import subprocess
import sys
import time
from argparse import ArgumentParser, Namespace
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
from bench_evaluate import AS_OF, OUT, practice

from hrm_fhir.adapters.fhir import gateway as fhir_gateway
from hrm_fhir.adapters.fhir.fetch import RECORD_TYPES, record_searches
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.fhir.upload import load_paths
from hrm_fhir.adapters.store import ledger
from hrm_fhir.adapters.store.database import init_db, make_session_factory
from hrm_fhir.config import Settings
from hrm_fhir.rules.evaluate import Evaluator
from hrm_fhir.rules.registry import RuleSet, load_rule_set
from hrm_fhir.sweep.run import SweepSummary, run_sweep
from hrm_fhir.tasks.writer import Writer
from hrm_fhir.workflow.chases import SweepChases

SWEEP_MODULES = tuple(
    importlib.import_module(name)
    for name in ("hrm_fhir.sweep.run", "hrm_fhir.sweep.reads")
    if importlib.util.find_spec(name) is not None
)
"""Where the sweep looks up what the phase timers replace (the package changes)."""
ROOT = OUT.parent.parent
HAPI = ROOT / "sandbox" / "hapi"
JAR = HAPI / "target" / "app" / "hrm-hapi-sandbox.jar"
JAVA_OPTS = os.environ.get("HRM_SANDBOX_JAVA_OPTS", "-Xms256m -Xmx3g -XX:+ExitOnOutOfMemoryError")
"""The private sandbox's JVM options: ``HRM_SANDBOX_JAVA_OPTS`` replaces them, as for run.sh."""
JAVA = ["java", *JAVA_OPTS.split(), "-jar", str(JAR)]
START_TIMEOUT_S = 300
PAGE = 500
MAX_PAGES_PER_SEARCH = 2_000
"""Bound on every bare paging loop (1,000,000 resources at 500 a page)."""
AIM_RATIO = 1.5
MONITORED_SHARE = 0.7
"""About this share of the generated practice's patients are on a monitored drug."""
FHIR_JSON = "application/fhir+json"
MIB = 1024 * 1024
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
LABELS = {
    "baseline": "bare paging",
    "full": "full sweep (fresh DB)",
    "reconcile": "full reconciliation",
    "incremental": "incremental (no changes)",
}
WINDOWS = ("empty", "small", "large")
"""Change windows: none, then new results for ``--small`` and ``--large`` monitored patients."""
HEIGHT = {"system": "http://loinc.org", "code": "8302-2", "display": "Body height"}
"""A result no rule reads: a window of them changes what is read, never what is written."""


# --- request accounting ----------------------------------------------------------------------


@dataclass
class Traffic:
    """Every request sent in this process: counts, seconds waited, bytes received, per kind."""

    requests: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    received: int = 0
    resources: int = 0
    """Entries in the searchset Bundles the package parsed (``_bundle``)."""
    last_search: str = "?"

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "seconds": dict(self.seconds),
            "received": self.received,
            "resources": self.resources,
        }


TRAFFIC = Traffic()


def _kind(request: requests.PreparedRequest) -> str:
    """``GET search Observation``, ``GET page Observation`` (a next link), ``GET read Task`` ..."""
    parts = urlsplit(request.url or "")
    segments = [s for s in parts.path.split("/") if s]
    rest = segments[1:] if segments and segments[0] == "fhir" else segments
    method = request.method or "?"
    if not rest:
        if "_getpages" in parts.query:
            return f"{method} page {TRAFFIC.last_search}"
        return f"{method} batch"
    if rest[0] == "metadata":
        return f"{method} metadata"
    if len(rest) == 1:
        if method == "GET":
            TRAFFIC.last_search = rest[0]
            return f"GET search {rest[0]}"
        return f"{method} {rest[0]}"
    return f"{method} {'read' if method == 'GET' else 'write'} {rest[0]}"


def install_counters() -> None:
    """Wrap ``requests.Session.send`` and the gateway's Bundle check, in this process only."""
    send = requests.Session.send

    @functools.wraps(send)
    def counting_send(
        self: requests.Session, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        host = urlsplit(request.url or "").hostname
        if host != "127.0.0.1":
            raise RuntimeError(f"benchmark refuses a request to {host}")
        kind = _kind(request)
        start = time.perf_counter()
        response = send(self, request, **kwargs)
        TRAFFIC.seconds[kind] += time.perf_counter() - start
        TRAFFIC.requests[kind] += 1
        TRAFFIC.received += len(response.content)
        return response

    requests.Session.send = counting_send  # type: ignore[method-assign]

    check = fhir_gateway.bundle_of

    def counting_check(response: requests.Response, label: str, kind: str) -> dict[str, Any]:
        bundle = check(response, label, kind)
        TRAFFIC.resources += len(bundle.get("entry") or ())
        return bundle

    fhir_gateway.bundle_of = counting_check  # type: ignore[attr-defined]  # the name the gateway calls


def traffic_since(before: dict[str, Any]) -> dict[str, Any]:
    now = TRAFFIC.snapshot()
    by_kind = {
        kind: {
            "requests": n - before["requests"].get(kind, 0),
            "seconds": now["seconds"][kind] - before["seconds"].get(kind, 0.0),
        }
        for kind, n in sorted(now["requests"].items())
        if n - before["requests"].get(kind, 0)
    }
    return {
        "requests": sum(v["requests"] for v in by_kind.values()),
        "http_s": sum(v["seconds"] for v in by_kind.values()),
        "received_bytes": now["received"] - before["received"],
        "parsed_resources": now["resources"] - before["resources"],
        "by_kind": by_kind,
    }


# --- phases of a sweep -----------------------------------------------------------------------

PHASES: dict[str, dict[str, float]] = {}
"""Filled while a sweep runs: phase -> wall, cpu, requests, http_s, calls, items."""


def _timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        before = TRAFFIC.snapshot()
        wall, cpu = time.perf_counter(), time.process_time()
        result = None
        try:
            result = function(*args, **kwargs)
            return result
        finally:
            spent = traffic_since(before)
            phase = PHASES.setdefault(
                name, {"wall_s": 0.0, "cpu_s": 0.0, "requests": 0, "http_s": 0.0, "calls": 0}
            )
            phase["wall_s"] += time.perf_counter() - wall
            phase["cpu_s"] += time.process_time() - cpu
            phase["requests"] += spent["requests"]
            phase["http_s"] += spent["http_s"]
            phase["calls"] += 1
            if isinstance(result, set | dict | list):
                phase["items"] = phase.get("items", 0) + len(result)

    return wrapper


def install_phase_timers() -> None:
    """Time what ``hrm_fhir.sweep.run`` calls, by replacing the names it looks up (bench only)."""
    for name in ("check_server", "record_counts", "changed_patients", "read_records", "read_scope",
                 "read_rule_records", "resources_by_id", "desired_resources", "plan", "_records",
                 "evaluate_records", "exhausted_chases", "route_exhausted_chases",
                 "_keep_marker"):  # fmt: skip
        for module in SWEEP_MODULES:  # the package changes; time what this version has
            if hasattr(module, name):
                setattr(module, name, _timed(name, getattr(module, name)))
    for name in ("load_snapshots", "save_snapshots", "open_findings"):
        setattr(ledger, name, _timed(f"ledger.{name}", getattr(ledger, name)))
    for name in ("therapies", "latest_by_test", "assess"):
        setattr(Evaluator, name, _timed(f"Evaluator.{name}", getattr(Evaluator, name)))
    Writer.apply = _timed("Writer.apply (writeback)", Writer.apply)  # type: ignore[method-assign]


# --- the server ------------------------------------------------------------------------------


def _cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def _memory_mib(pid: int | None) -> dict[str, float]:
    """The process's resident memory now and at its peak (``VmRSS``, ``VmHWM``), in MiB."""
    if pid is None:
        return {}
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    names = {"VmRSS:": "server_rss_mib", "VmHWM:": "server_peak_rss_mib"}
    return {names[f[0]]: int(f[1]) / 1024 for f in map(str.split, lines) if f and f[0] in names}


def _metadata_ok(base: str) -> bool:
    try:
        return requests.get(f"{base}/metadata", timeout=10).status_code == 200
    except requests.RequestException:
        return False


@contextmanager
def hapi(port: int, keep: bool) -> Iterator[tuple[str, int]]:
    """A private sandbox on 127.0.0.1:port (its own process; run.sh and its pid file unused)."""
    base = f"http://127.0.0.1:{port}/fhir"
    try:
        requests.get(f"http://127.0.0.1:{port}/", timeout=2)
        sys.exit(f"port {port} is already in use; pick another with --port")
    except requests.ConnectionError:
        pass
    if not JAR.exists():
        subprocess.run(["bash", str(HAPI / "run.sh"), "build"], check=True)
    log_path = OUT / f"hapi-{port}.log"
    started = time.perf_counter()
    with log_path.open("wb") as log:
        process = subprocess.Popen([*JAVA, f"--server.port={port}"], stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)  # fmt: skip
    print(f"HAPI pid {process.pid} starting on port {port} (log {log_path})", flush=True)
    try:
        while not _metadata_ok(base):
            if process.poll() is not None:
                sys.exit(f"HAPI exited during start-up ({process.returncode}); see {log_path}")
            if time.perf_counter() - started > START_TIMEOUT_S:
                sys.exit(f"HAPI did not answer /metadata within {START_TIMEOUT_S} s")
            time.sleep(1)
        print(f"HAPI up in {time.perf_counter() - started:.0f} s", flush=True)
        yield base, process.pid
    finally:
        if keep and process.poll() is None:
            print(f"leaving HAPI running: pid {process.pid}, {base}")
        elif process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            print(f"stopped HAPI pid {process.pid}")


def patients_on_server(base: str, organization: str) -> int:
    response = requests.get(
        f"{base}/Patient",
        params={"general-practitioner": organization, "_summary": "count", "_total": "accurate"},
        headers={"Accept": FHIR_JSON, "Cache-Control": "no-cache"},
        timeout=300,
    )
    response.raise_for_status()
    return int(orjson.loads(response.content).get("total") or 0)


def load(base: str, ndjson: Path, expected: int) -> dict[str, Any]:
    gateway = FHIRGateway(base, timeout=900, max_retries=2)
    before = TRAFFIC.snapshot()
    start = time.perf_counter()
    try:
        report = load_paths(gateway, [ndjson], chunk_size=PAGE)
    finally:
        gateway.close()
    took = time.perf_counter() - start
    if report.failed or report.sent != expected:
        sys.exit(f"load incomplete: sent {report.sent} of {expected}, {report.failed} refused: "
                 f"{report.errors[:5]}")  # fmt: skip
    return {
        "wall_s": took,
        "sent": report.sent,
        "bundles": report.bundles,
        "resources_per_s": report.sent / took,
        "traffic": traffic_since(before),
    }


# --- the two things compared -----------------------------------------------------------------


@contextmanager
def measured(server_pid: int | None) -> Iterator[dict[str, Any]]:
    out: dict[str, Any] = {}
    before = TRAFFIC.snapshot()
    server = _cpu_seconds(server_pid)
    wall, cpu = time.perf_counter(), time.process_time()
    yield out
    out["wall_s"] = time.perf_counter() - wall
    out["client_cpu_s"] = time.process_time() - cpu
    after = _cpu_seconds(server_pid)
    out["server_cpu_s"] = None if server is None or after is None else after - server
    out.update(_memory_mib(server_pid))
    out["load_average"] = os.getloadavg()
    out["traffic"] = traffic_since(before)


def bare_paging(base: str, organization: str, rules: RuleSet) -> dict[str, int]:
    """Page through every search a whole read makes (the record types, the rules' extra
    searches, Medication) with plain requests + orjson; resources per type."""
    session = requests.Session()
    headers = {"Accept": FHIR_JSON, "Cache-Control": "no-cache"}
    origin = urlsplit(base)[:2]
    found: dict[str, int] = {}
    try:
        searches = [*((kind, {}) for kind in RECORD_TYPES), *record_searches(rules)]
        for kind, narrowing in [*searches, ("Medication", {})]:
            scope = {"Patient": {"general-practitioner": organization}, "Medication": {}}.get(
                kind, {"subject:Patient.general-practitioner": organization}
            )
            url: str | None = f"{base}/{kind}"
            params: dict[str, str] | None = {**narrowing, **scope, "_count": str(PAGE)}
            found.setdefault(kind, 0)
            for _ in range(MAX_PAGES_PER_SEARCH):
                if url is None or urlsplit(url)[:2] != origin:
                    sys.exit(f"bare paging: next link leaves {base}")
                response = session.get(url, params=params, headers=headers, timeout=300)
                response.raise_for_status()
                bundle = orjson.loads(response.content)
                entries = bundle.get("entry") or ()
                found[kind] += len(entries)
                TRAFFIC.resources += len(entries)
                url = next((link["url"] for link in bundle.get("link") or ()
                            if link.get("relation") == "next"), None)  # fmt: skip
                params = None
                if url is None or not entries:
                    break
            else:
                sys.exit(f"bare paging of {kind} exceeded {MAX_PAGES_PER_SEARCH} pages")
    finally:
        session.close()
    return found


def sweep_once(
    settings: Settings, gateway: FHIRGateway, rules: RuleSet, full: bool, server_pid: int | None
) -> dict[str, Any]:
    engine = init_db(settings.database_url)
    try:
        sessions = make_session_factory(engine)
        PHASES.clear()
        with measured(server_pid) as out:
            summary: SweepSummary = run_sweep(
                settings,
                sessions,
                gateway,
                rules,
                as_of=AS_OF,
                full=full,
                chases=SweepChases.of(settings, gateway, rules),
            )
        out["summary"] = summary.to_json()
        out["phases"] = {k: dict(v) for k, v in PHASES.items()}
        return out
    finally:
        engine.dispose()


def fresh_database(name: str) -> str:
    path = OUT / name
    for leftover in (path, path.with_name(path.name + "-journal")):
        leftover.unlink(missing_ok=True)
    return f"sqlite:///{path}"


def one_run(
    base: str,
    seed: int,
    rules: RuleSet,
    server_pid: int | None,
    index: int,
    loaded_at: float | None,
    window_sizes: dict[str, int],
) -> dict[str, Any]:
    """Bare paging, then full, reconciliation and incremental sweeps on one fresh database,
    then each change window (an incremental sweep and a full one over the same data).

    ``loaded_at`` (monotonic) is when this process finished loading the server, if it did: the
    incremental sweep asks for changes since the reconciliation's server time minus the
    watermark overlap, so the reconciliation waits until the load is older than that overlap;
    otherwise "no changes" would re-read every patient the load just wrote.
    """
    organization = f"Organization/practice-{seed}"
    with measured(server_pid) as baseline:
        baseline["resources_by_type"] = bare_paging(base, organization, rules)
    baseline["resources"] = sum(baseline["resources_by_type"].values())
    _line("bare paging", baseline)

    settings = Settings(
        fhir_base_url=base,
        database_url=fresh_database(f"sweep-run{index}.db"),
        practice=f"practice-{seed}",
        page_size=PAGE,
    )
    gateway = FHIRGateway.from_settings(settings)
    sweeps: dict[str, Any] = {}
    try:
        for name, full in (("full", True), ("reconcile", True), ("incremental", False)):
            if name == "reconcile" and loaded_at is not None:
                since_load = time.monotonic() - loaded_at
                wait = settings.watermark_overlap_seconds + 10 - since_load
                if wait > 0:
                    overlap = settings.watermark_overlap_seconds
                    print(f"  waiting {wait:.0f} s: the load must be older than the watermark "
                          f"overlap ({overlap} s)", flush=True)  # fmt: skip
                    time.sleep(wait)
            sweeps[name] = sweep_once(settings, gateway, rules, full, server_pid)
            _line(name, sweeps[name])
        windows = {
            label: change_window(settings, gateway, rules, server_pid, index, label, size)
            for label, size in window_sizes.items()
        }
    finally:
        gateway.close()
    return {"baseline": baseline, **sweeps, "windows": windows}


def monitored_patients(database_url: str) -> list[str]:
    """The patients the sweep keeps snapshots of (on a monitored drug), in a fixed order."""
    engine = init_db(database_url)
    try:
        with make_session_factory(engine)() as session:
            return sorted(ledger.load_snapshots(session))
    finally:
        engine.dispose()


def lab_import(base: str, patients: list[str], tag: str) -> float:
    """One new result (a height, which no rule reads) for each patient, in batches of 500;
    the seconds it took."""
    gateway = FHIRGateway(base, timeout=900, max_retries=2)
    start = time.perf_counter()
    try:
        for first in range(0, len(patients), PAGE):
            entries = []
            for n, patient in enumerate(patients[first : first + PAGE], start=first):
                rid = f"bench-{tag}-{n}"
                entries.append({
                    "resource": {
                        "resourceType": "Observation", "id": rid, "status": "final",
                        "code": {"coding": [HEIGHT]}, "subject": {"reference": patient},
                        "effectiveDateTime": (AS_OF - timedelta(days=1)).isoformat(),
                        "valueQuantity": {"value": 170, "unit": "cm", "code": "cm",
                                          "system": "http://unitsofmeasure.org"},
                    },
                    "request": {"method": "PUT", "url": f"Observation/{rid}"},
                })  # fmt: skip
            reply = gateway.transaction({"resourceType": "Bundle", "type": "batch",
                                         "entry": entries})  # fmt: skip
            if not all(e["response"]["status"].startswith("2") for e in reply["entry"]):
                sys.exit("lab import: the server refused a result")
    finally:
        gateway.close()
    return time.perf_counter() - start


def change_window(
    settings: Settings,
    gateway: FHIRGateway,
    rules: RuleSet,
    server_pid: int | None,
    index: int,
    label: str,
    size: int,
) -> dict[str, Any]:
    """New results for ``size`` monitored patients, then an incremental sweep and a full one
    over the same data (same database), each timed."""
    written = 0.0
    if size:
        patients = monitored_patients(settings.database_url)[:size]
        written = lab_import(settings.fhir_base_url, patients, f"r{index}-{label}-{time.time_ns()}")
    out: dict[str, Any] = {"size": size, "import_s": written}
    out["incremental"] = sweep_once(settings, gateway, rules, False, server_pid)
    _line(f"{label} window ({size}): incremental", out["incremental"])
    if size:
        with changed_path_forced():
            out["changed_path"] = sweep_once(settings, gateway, rules, False, server_pid)
        _line(f"{label} window ({size}): changed patients forced", out["changed_path"])
    out["full"] = sweep_once(settings, gateway, rules, True, server_pid)
    _line(f"{label} window ({size}): full", out["full"])
    return out


@contextmanager
def changed_path_forced() -> Iterator[None]:
    """Make the incremental sweep re-read its changed patients whatever paging would cost (to
    measure the path the sweep decides against): no window is too large for it."""
    module = next(m for m in SWEEP_MODULES if hasattr(m, "batch_limit"))
    real = module.batch_limit
    setattr(module, "batch_limit", lambda *_: 10**9)  # noqa: B010 - bench only
    try:
        yield
    finally:
        setattr(module, "batch_limit", real)  # noqa: B010


def profile_sweep(base: str, seed: int, rules: RuleSet, top: int = 30) -> str:
    """One more full sweep, fresh database, under cProfile; the top entries as text."""
    settings = Settings(fhir_base_url=base, database_url=fresh_database("sweep-profile.db"),
                        practice=f"practice-{seed}", page_size=PAGE)  # fmt: skip
    gateway = FHIRGateway.from_settings(settings)
    engine = init_db(settings.database_url)
    profiler = cProfile.Profile()
    try:
        profiler.enable()
        summary = run_sweep(settings, make_session_factory(engine), gateway, rules, as_of=AS_OF,
                            full=True, chases=SweepChases.of(settings, gateway, rules))  # fmt: skip
        profiler.disable()
    finally:
        engine.dispose()
        gateway.close()
    profiler.dump_stats(str(OUT / "sweep.prof"))
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    text.write(f"profiled full sweep (fresh database): {summary.to_json()}\n")
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top // 2)
    return text.getvalue()


# --- reporting -------------------------------------------------------------------------------


def _line(name: str, r: dict[str, Any]) -> None:
    extra = ""
    if "summary" in r:
        s = r["summary"]
        extra = (f" | patients {s['patients']} read {s['records_read']} findings "
                 f"{s['findings']} created {s['created']} repaired {s['repaired']} updated "
                 f"{s['updated']} closed {s['closed']} unchanged {s['unchanged']} "
                 f"errors {s['errors']}")  # fmt: skip
    print(f"  {name}: {r['wall_s']:.1f} s, {r['traffic']['requests']} requests{extra}", flush=True)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(results: dict[str, Any]) -> None:
    runs = results["runs"]
    names = ("baseline", "full", "reconcile", "incremental")
    labels = LABELS
    print(f"\n{'':<26}{'wall s':>8}{'client cpu':>11}{'server cpu':>11}{'requests':>9}"
          f"{'http s':>8}{'MiB in':>8}{'resources':>10}")  # fmt: skip
    if results.get("load"):
        ld = results["load"]
        t = ld["traffic"]
        print(f"{'load (batch of 500)':<26}{ld['wall_s']:>8.1f}{'':>11}{'':>11}{t['requests']:>9}"
              f"{t['http_s']:>8.1f}{'':>8}{ld['sent']:>10}")  # fmt: skip
    for run in runs:
        for name in names:
            r = run[name]
            t = r["traffic"]
            print(f"{labels[name]:<26}{r['wall_s']:>8.1f}{r['client_cpu_s']:>11.1f}"
                  f"{_fmt(r['server_cpu_s']):>11}{t['requests']:>9}{t['http_s']:>8.1f}"
                  f"{t['received_bytes'] / MIB:>8.1f}{t['parsed_resources']:>10}")  # fmt: skip
    if results.get("load"):
        print(f"\nload: {results['load']['sent']:,} resources in {results['load']['wall_s']:.0f} s"
              f" = {results['load']['resources_per_s']:.0f} resources/s")  # fmt: skip
    print("(resources: entries in the searchset pages received; the sweep reads some twice)")
    print("\nratios (median wall over runs):")
    for name, ratio in results["ratios"].items():
        print(f"  {labels[name]} / bare paging: {ratio:.2f}x (aim <= {AIM_RATIO:g}x)")
    print("\nchange windows (median wall over runs; ratios to bare paging of the same run):")
    print(f"  {'window':<8}{'patients':>9}{'read':>7}{'incremental':>12}{'forced':>8}{'full':>8}"
          f"{'incr/bare':>10}{'forced/bare':>12}{'full/bare':>10}{'incr/full':>10}")  # fmt: skip
    for label, w in results["windows"].items():
        forced = _fmt(w.get("changed_path_s"))
        forced_ratio = _fmt(w.get("changed_path_ratio"), 2)
        print(f"  {label:<8}{w['size']:>9}{w['records_read']:>7}{w['incremental_s']:>12.1f}"
              f"{forced:>8}{w['full_s']:>8.1f}{w['incremental_ratio']:>10.2f}{forced_ratio:>12}"
              f"{w['full_ratio']:>10.2f}{w['incremental_to_full']:>10.2f}")  # fmt: skip
    print(
        "  (forced: the incremental sweep made to re-read its changed patients whatever the cost)"
    )
    last = runs[-1]
    for name in names[1:]:
        s = last[name]["summary"]
        print(f"\n{labels[name]}: {s['patients']} patients, {s['findings']} findings; created "
              f"{s['created']}, updated {s['updated']}, closed {s['closed']}, unchanged "
              f"{s['unchanged']}, errors {s['errors']}, skipped {s['skipped']}; "
              f"{len(s['warnings'])} warnings")  # fmt: skip
        print(f"  {'phase':<28}{'calls':>6}{'wall s':>8}{'cpu s':>7}{'requests':>9}{'http s':>8}"
              f"{'items':>8}")  # fmt: skip
        for phase, p in sorted(last[name]["phases"].items(), key=lambda kv: -kv[1]["wall_s"]):
            print(f"  {phase:<28}{p['calls']:>6}{p['wall_s']:>8.1f}{p['cpu_s']:>7.1f}"
                  f"{p['requests']:>9}{p['http_s']:>8.1f}{p.get('items', ''):>8}")  # fmt: skip
        print("  requests by kind: " + ", ".join(
            f"{k} {v['requests']} ({v['seconds']:.1f} s)"
            for k, v in last[name]["traffic"]["by_kind"].items()))  # fmt: skip


def package_version() -> dict[str, Any]:
    """The commit the package was imported from, and its uncommitted changes (read-only git)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"),
            "uncommitted": git("status", "--porcelain", "--", "hrm_fhir").splitlines()}  # fmt: skip


def server_parser(description: str, *, patients: int, port: int, runs: int) -> ArgumentParser:
    """The arguments of every benchmark against a HAPI sandbox: the practice, the server, runs."""
    parser = ArgumentParser(description=description)
    parser.add_argument("--patients", type=int, default=patients)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--fhir-base", help="use this running server (127.0.0.1 only)")
    parser.add_argument("--runs", type=int, default=runs)
    return parser


def server_arguments(parser: ArgumentParser) -> Namespace:
    """The parsed arguments; a ``--fhir-base`` off this machine is refused."""
    args = parser.parse_args()
    if args.fhir_base and urlsplit(args.fhir_base).hostname != "127.0.0.1":
        sys.exit("--fhir-base must be on 127.0.0.1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return args


def main() -> None:
    parser = server_parser(
        "Benchmark a sweep against bare FHIR paging.", patients=20_000, port=18450, runs=1
    )
    parser.add_argument("--keep-server", action="store_true", help="leave the started HAPI up")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one more full sweep (cProfile, top 30)")  # fmt: skip
    parser.add_argument(
        "--small",
        type=float,
        default=0.01,
        help="small window: this share of the monitored patients (default 1%%)",
    )
    parser.add_argument(
        "--large",
        type=float,
        default=0.25,
        help="large window: this share of the monitored patients (default 25%%)",
    )
    args = server_arguments(parser)

    folder, counts, generated = practice(args.patients, args.seed)
    if generated is not None:
        print(f"generated the practice in {generated:.0f} s")
    expected = sum(counts.values())
    print(f"practice {folder.name}: {expected:,} resources {counts}", flush=True)
    version = package_version()
    print(f"hrm_fhir at {version['commit'][:12]}, {len(version['uncommitted'])} uncommitted paths")
    install_counters()
    install_phase_timers()
    rules = load_rule_set()

    server: Any = _external(args.fhir_base) if args.fhir_base else hapi(args.port, args.keep_server)
    with server as (base, pid):
        results: dict[str, Any] = {
            "patients": args.patients, "seed": args.seed, "as_of": AS_OF.isoformat(),
            "fhir_base": base, "server_started_here": not args.fhir_base,
            "counts": counts, "page_size": PAGE, "package": version, "load": None, "runs": [],
        }  # fmt: skip
        organization = f"Organization/practice-{args.seed}"
        loaded_at: float | None = None
        present = patients_on_server(base, organization)
        if present >= args.patients:
            print(f"server already holds {present} patients of {organization}; not loading")
        else:
            print(f"loading {expected:,} resources (server holds {present} patients) ...",
                  flush=True)  # fmt: skip
            results["load"] = load(base, folder / "ndjson", expected)
            loaded_at = time.monotonic()
            print(f"  loaded in {results['load']['wall_s']:.0f} s", flush=True)
        monitored = round(args.patients * MONITORED_SHARE)
        sizes = {"empty": 0, "small": max(2, round(args.small * monitored)),
                 "large": max(4, round(args.large * monitored))}  # fmt: skip
        for index in range(1, args.runs + 1):
            print(f"run {index} of {args.runs}", flush=True)
            results["runs"].append(one_run(base, args.seed, rules, pid, index, loaded_at, sizes))
        base_wall = statistics.median(r["baseline"]["wall_s"] for r in results["runs"])
        results["ratios"] = {
            name: statistics.median(r[name]["wall_s"] for r in results["runs"]) / base_wall
            for name in ("full", "reconcile", "incremental")
        }
        results["windows"] = window_summary(results["runs"])
        results["aim_ratio"] = AIM_RATIO
        if args.profile:
            results["profile"] = profile_sweep(base, args.seed, rules)
    report(results)
    (OUT / "sweep-results.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(f"wrote {OUT / 'sweep-results.json'}")
    if args.profile:
        print(results["profile"])


def window_summary(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per change window: medians over runs and the ratios to bare paging of the same run."""
    out: dict[str, dict[str, Any]] = {}
    for label in WINDOWS:
        windows = [r["windows"][label] for r in runs]
        bare = [r["baseline"]["wall_s"] for r in runs]
        walls = {
            name: [w[name]["wall_s"] for w in windows]
            for name in ("incremental", "changed_path", "full")
            if name in windows[0]
        }
        summary: dict[str, Any] = {
            "size": windows[0]["size"],
            "records_read": windows[-1]["incremental"]["summary"]["records_read"],
        }
        for name, wall in walls.items():
            summary[f"{name}_s"] = statistics.median(wall)
            summary[f"{name}_ratio"] = statistics.median(
                w / b for w, b in zip(wall, bare, strict=True)
            )
        summary["incremental_to_full"] = statistics.median(
            i / f for i, f in zip(walls["incremental"], walls["full"], strict=True)
        )
        out[label] = summary
    return out


@contextmanager
def _external(base: str) -> Iterator[tuple[str, int | None]]:
    if not _metadata_ok(base.rstrip("/")):
        sys.exit(f"{base}/metadata does not answer 200")
    yield base.rstrip("/"), None


if __name__ == "__main__":
    main()
