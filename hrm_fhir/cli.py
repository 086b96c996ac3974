"""The ``hrm-fhir`` command line: evaluate, rules, fixtures."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import orjson

from hrm_fhir import clock
from hrm_fhir.config import Settings, configured_zone, load_settings
from hrm_fhir.errors import HRMError, InputError
from hrm_fhir.loader import CHUNK_SIZE, WORKERS
from hrm_fhir.offline import EvaluationRun, collector_paused, evaluate_paths
from hrm_fhir.rules.registry import RuleSet, load_rule_set

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from hrm_fhir.adapters.bulk_export import ExportRequest, ExportResult
    from hrm_fhir.audit.model import MonthlyReport

F = TypeVar("F", bound=Callable[..., Any])


def _problem(where: str, what: str) -> None:
    """An unreadable file, line or resource, named on stderr (the run goes on)."""
    click.echo(f"hrm-fhir: {where}: {what}", err=True)


def _rules() -> RuleSet:
    try:
        return load_rule_set()
    except HRMError as exc:
        raise click.ClickException(f"rule packs failed validation: {exc}") from exc


def _as_of_option(text: str) -> Callable[[F], F]:
    """``--as-of YYYY-MM-DD``, optional (None means today)."""
    return click.option(
        "--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help=text
    )


_FHIR_BASE = click.option(
    "--fhir-base", default=None, help="FHIR server base URL (default HRM_FHIR_BASE_URL)."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """hrm-fhir: high-risk drug monitoring on FHIR R4."""
    try:
        clock.use_zone(configured_zone())
    except ValueError as error:
        raise click.UsageError(str(error)) from error


@main.command()
@_as_of_option("Evaluate as of this date (default: today in HRM_TIMEZONE).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "fhir", "summary", "csv"]),
    default="json",
    show_default=True,
    help="json: findings, register and coverage; fhir: a Bundle of the Tasks and Flags; "
    "summary: readable counts; csv: the register (who is on what, next due dates).",
)
@click.option(
    "--window-days",
    type=click.IntRange(min=0),
    default=None,
    help="Days ahead in which a test counts as due (default from the catalogue: 14).",
)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def evaluate(
    as_of: datetime | None, fmt: str, window_days: int | None, paths: tuple[Path, ...]
) -> None:
    """Evaluate FHIR Bundles, NDJSON files or directories and print the findings."""
    day = as_of.date() if as_of else clock.today()

    with collector_paused():  # one run that keeps what it builds until the process ends
        try:
            run = evaluate_paths(paths, _rules(), day, window_days, _problem)
        except InputError as exc:
            click.echo(f"hrm-fhir: {exc}", err=True)
            sys.exit(2)
        for warning in run.warnings:
            click.echo(f"hrm-fhir: warning: {warning}", err=True)
        if fmt == "json":
            _write(_as_json(run))
        elif fmt == "csv":
            from hrm_fhir.register import register_csv

            sys.stdout.write(register_csv(run.monitored))
        elif fmt == "fhir":
            from hrm_fhir.tasks.build import build_bundle

            _write(build_bundle(run.findings, run.as_of))
        else:
            from hrm_fhir.summary import render_summary

            click.echo(render_summary(run))


def _as_json(run: EvaluationRun) -> dict[str, object]:
    return {
        "as_of": run.as_of.isoformat(),
        "warnings": run.warnings,
        "findings": [f.to_json() for f in run.findings],
        "monitored": [entry.to_json() for entry in run.monitored],
        "unrecognised": [item.to_json() for item in run.unrecognised],
        "skipped": [{"source": s.source, "reason": s.reason} for s in run.skipped],
    }


def _write(document: object) -> None:
    sys.stdout.buffer.write(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()


@main.group()
def fixtures() -> None:
    """Synthetic FHIR data for demonstrations, tests and benchmarks."""


@fixtures.command("generate")
@click.option("--patients", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default="2026-11-27",
    show_default=True,
    help="The date the practice's history runs up to.",
)
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True)
def fixtures_generate(patients: int, seed: int, as_of: datetime, out: Path) -> None:
    """Write a deterministic synthetic practice as NDJSON (ndjson/) and Bundles (bundles/)."""
    from hrm_fhir.synthetic.practice import write_practice

    counts = write_practice(out, patients, seed, as_of.date())
    click.echo(orjson.dumps(counts).decode())


@fixtures.command("history")
@click.option("--patients", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default="2026-11-27",
    show_default=True,
    help="The first weekly sweep is the Monday on or after this day.",
)
@click.option(
    "--end",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default="2027-05-31",
    show_default=True,
    help="The last day of the history (and of the practice's record).",
)
def fixtures_history(patients: int, seed: int, start: datetime, end: datetime) -> None:
    """Fill an empty ledger (HRM_DATABASE_URL) with a synthetic practice's weekly sweeps and
    programme activity, to try the monthly report. Refuses a ledger that already has findings."""
    from sqlalchemy import select

    from hrm_fhir.db import init_db, make_session_factory, shown_url
    from hrm_fhir.records import FindingRecord
    from hrm_fhir.synthetic.history import write_history
    from hrm_fhir.synthetic.practice import generate_practice

    if end <= start:
        raise click.BadParameter("--end must be after --start")
    settings = _settings()
    engine = init_db(settings.database_url)
    try:
        with make_session_factory(engine).begin() as session:
            if session.scalar(select(FindingRecord.identifier).limit(1)) is not None:
                click.echo(
                    f"hrm-fhir: {shown_url(settings.database_url)} already holds findings; "
                    "synthetic history goes into an empty ledger only",
                    err=True,
                )
                sys.exit(2)
            resources = generate_practice(patients, seed, end.date())
            summary = write_history(
                session, _rules(), resources, start=start.date(), end=end.date(), seed=seed
            )
    finally:
        engine.dispose()
    click.echo(orjson.dumps(summary).decode())


def _settings(**overrides: object) -> Settings:
    settings = load_settings()
    return settings.with_overrides({k: v for k, v in overrides.items() if v is not None})


@main.command("init-db")
def init_db_command() -> None:
    """Create or migrate the service database (HRM_DATABASE_URL): the upgrade step of a
    deployment (docs/deploy.md). Safe to repeat, and to run while another process migrates."""
    from hrm_fhir.db import init_db, schema_revision, shown_url

    settings = _settings()
    try:
        engine = init_db(settings.database_url)
    except HRMError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        revision = schema_revision(engine)
    finally:
        engine.dispose()
    click.echo(f"database ready at schema revision {revision}: {shown_url(settings.database_url)}")


@main.command()
@_FHIR_BASE
@_as_of_option("Evaluate as of this date (default: today in HRM_TIMEZONE).")
@click.option("--dry-run", is_flag=True, help="Print the plan; write nothing.")
@click.option(
    "--full",
    "mode",
    flag_value="full",
    default=None,
    help="Re-read everything in scope (reconciliation).",
)
@click.option(
    "--incremental",
    "mode",
    flag_value="incremental",
    help="Read only what changed since the last watermark (default after the first run).",
)
@click.option("--practice", default=None, help="Organization id: sweep only its patients.")
@click.option(
    "--bulk/--search",
    default=None,
    help="Read through a Bulk Data export (_since the watermark when incremental) instead of "
    "searches (default HRM_SWEEP_BULK, else --search; docs/bulk.md).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "summary"]),
    default="json",
    show_default=True,
    help="summary: the counts and every write, readable.",
)
def sweep(
    fhir_base: str | None,
    as_of: datetime | None,
    dry_run: bool,
    mode: str | None,
    practice: str | None,
    bulk: bool | None,
    fmt: str,
) -> None:
    """Run one sweep against a FHIR server and print its summary."""
    from hrm_fhir.adapters.fhir_gateway import FHIRGateway
    from hrm_fhir.db import init_db, make_session_factory
    from hrm_fhir.sweep import run_sweep

    settings = _settings(fhir_base_url=fhir_base, practice=practice)
    engine = init_db(settings.database_url)
    gateway = FHIRGateway.from_settings(settings)
    try:
        summary = run_sweep(
            settings,
            make_session_factory(engine),
            gateway,
            _rules(),
            as_of=as_of.date() if as_of else clock.today(),
            dry_run=dry_run,
            full=None if mode is None else mode == "full",
            bulk=bulk,
        )
        for warning in summary.warnings:
            click.echo(f"hrm-fhir: warning: {warning}", err=True)
        if fmt == "summary":
            from hrm_fhir.sweep import render_sweep

            with make_session_factory(engine).begin() as session:
                click.echo(render_sweep(session, summary))
        else:
            _write(summary.to_json())
    except HRMError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        gateway.close()
        engine.dispose()


@main.command()
@_FHIR_BASE
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="A new (or empty) folder for the NDJSON files and manifest.json.",
)
@click.option("--since", default=None, help="Only resources changed after this FHIR instant.")
@click.option(
    "--type",
    "types",
    multiple=True,
    help="Resource types to export (repeat, or comma-separated; default: all).",
)
@click.option(
    "--type-filter",
    "type_filters",
    multiple=True,
    help="_typeFilter, Type?search (repeat): of that type, only what matches one of them.",
)
@click.option("--group", default=None, help="Export the members of Group/<id>.")
@click.option(
    "--patient",
    "patients",
    multiple=True,
    help="Export these patients' compartments (repeat; Patient/<id> or <id>).",
)
@click.option(
    "--all-patients", is_flag=True, help="Patient-level export: every patient's compartment."
)
@click.option(
    "--poll-ceiling",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Longest wait between status polls, s (default HRM_BULK_POLL_CEILING, 15).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=None,
    help="Give up (and delete the job) after this many s (default HRM_BULK_TIMEOUT, 3600).",
)
def export(
    fhir_base: str | None,
    out: Path,
    since: str | None,
    types: tuple[str, ...],
    type_filters: tuple[str, ...],
    group: str | None,
    patients: tuple[str, ...],
    all_patients: bool,
    poll_ceiling: float | None,
    timeout: float | None,
) -> None:
    """Run a FHIR Bulk Data $export (system, group or patient level) into a folder of NDJSON
    files with manifest.json (SHA-256 and line count of each file). Exit 0 when complete, 3 when
    complete but the server reported errors, 1 when it failed, 2 for unusable arguments."""
    from hrm_fhir.adapters.bulk_export import ExportRequest, record_types

    try:
        request = ExportRequest(
            types=record_types(types),
            since=since,
            type_filters=type_filters,
            group=group,
            patients=patients,
            patient_level=all_patients,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    settings = _settings(
        fhir_base_url=fhir_base, bulk_poll_ceiling=poll_ceiling, bulk_timeout=timeout
    )
    try:
        result = _run_export(settings, request, out)
    except HRMError as exc:
        raise click.ClickException(f"export failed: {exc}") from exc
    summary = {k: v for k, v in result.to_json().items() if k not in ("output", "error", "deleted")}
    _write({**summary, "files": len(result.output), "folder": str(out)})
    for issue in result.issues:
        click.echo(
            f"hrm-fhir: server reported {issue.severity} ({issue.code}) at {issue.where}: "
            f"{issue.diagnostics}",
            err=True,
        )
    if result.error_issues:
        click.echo(
            f"hrm-fhir: the export is incomplete: {len(result.error_issues)} error(s) in the "
            "server's error files (above; kept under error/)",
            err=True,
        )
        sys.exit(3)


def _run_export(settings: Settings, request: ExportRequest, out: Path) -> ExportResult:
    """One export with the settings' gateway and limits, a progress bar on a terminal."""
    from hrm_fhir.adapters.bulk_export import BulkExporter
    from hrm_fhir.adapters.fhir_gateway import FHIRGateway
    from hrm_fhir.terminal import TerminalProgress

    progress = TerminalProgress(sys.stderr) if sys.stderr.isatty() else None
    gateway = FHIRGateway.from_settings(settings)
    # SIGTERM (a stopped service, a killed cron job) unwinds like Ctrl-C: the job is deleted.
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        exporter = BulkExporter(
            gateway,
            poll_ceiling=settings.bulk_poll_ceiling,
            timeout=settings.bulk_timeout,
            progress=progress,
        )
        return exporter.export(request, out)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if progress is not None:
            progress.close()
        gateway.close()


@main.command()
@click.option("--fhir-base", required=True, help="FHIR server base URL.")
@click.option(
    "--chunk",
    type=click.IntRange(min=1, max=1000),
    default=CHUNK_SIZE,
    show_default=True,
    help="Resources per Bundle.",
)
@click.option(
    "--transaction/--batch",
    default=True,
    show_default=True,
    help="Transactions (all or nothing, much faster on HAPI; a refused one is re-sent as a "
    "batch for per-resource answers) or batches.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1, max=16),
    default=WORKERS,
    show_default=True,
    help="Bundles in flight at once.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "summary"]),
    default="json",
    show_default=True,
    help="summary: one line, and each refused resource with the server's reason.",
)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def load(
    fhir_base: str, chunk: int, transaction: bool, workers: int, fmt: str, paths: tuple[Path, ...]
) -> None:
    """Upload Bundles and NDJSON files to a FHIR server (PUT by id, so reloading is harmless),
    printing progress on stderr."""
    from hrm_fhir.adapters.fhir_gateway import FHIRGateway
    from hrm_fhir.loader import load_paths

    gateway = FHIRGateway.from_settings(_settings(fhir_base_url=fhir_base))
    try:
        report = load_paths(
            gateway,
            paths,
            chunk_size=chunk,
            transaction=transaction,
            workers=workers,
            problem=_problem,
            progress=_Progress(
                "load", lambda r: f"{r.sent:,} resources sent ({r.per_second:,.0f} a second)"
            ),
        )
    except InputError as exc:
        click.echo(f"hrm-fhir: {exc}", err=True)
        sys.exit(2)
    except HRMError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        gateway.close()
    if fmt == "json":
        _write(report.to_json())
    else:
        click.echo(
            f"loaded {report.sent - report.failed:,} of {report.sent:,} resources in "
            f"{report.seconds:.1f} s ({report.per_second:,.0f} a second, {report.bundles} Bundles"
            f"); {report.failed} refused"
        )
        for error in report.errors:
            click.echo(f"- refused {error}")
    if report.failed:
        sys.exit(1)


class _Progress:
    """Progress on stderr, at most one line every ``every`` seconds (none for a quick job)."""

    def __init__(self, what: str, text: Callable[[Any], str], every: float = 2.0) -> None:
        self.what = what
        self.text = text
        self.every = every
        self.last = time.monotonic()

    def __call__(self, state: Any) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            click.echo(f"hrm-fhir {self.what}: {self.text(state)}", err=True)


@main.command()
@click.argument("action", type=click.Choice(["start", "stop", "status", "url"]))
@click.option("--port", type=int, default=None, help="Port (default HRM_SANDBOX_PORT or 8080).")
def sandbox(action: str, port: int | None) -> None:
    """Build and run the local HAPI FHIR R4 JPA sandbox (sandbox/hapi, see docs/sandbox.md)."""
    import subprocess

    script = Path(__file__).resolve().parents[1] / "sandbox" / "hapi" / "run.sh"
    if not script.exists():
        raise click.ClickException(f"{script} not found: run from a source checkout")
    args = ["bash", str(script), action, *([str(port)] if port and action == "start" else [])]
    sys.exit(subprocess.call(args))  # noqa: S603 - fixed script, arguments validated by click


@main.group()
def rules() -> None:
    """Read the monitoring rule packs."""


@rules.command("list")
def rules_list() -> None:
    """List every rule pack with its version, status and sign-off state."""
    from hrm_fhir.rules.describe import describe_list

    click.echo(describe_list(_rules()))


@rules.command("show")
@click.argument("rule_id")
@click.option("--version", type=int, default=None, help="A past version (default: the newest).")
def rules_show(rule_id: str, version: int | None) -> None:
    """Print one rule pack as a clinician reads it: schedule, thresholds, checks and sources."""
    from hrm_fhir.rules.describe import describe_pack

    rule_set = _rules()
    try:
        pack = rule_set.get(rule_id, version)
    except KeyError:
        known = ", ".join(sorted({p.id for p in rule_set.packs}))
        click.echo(f"hrm-fhir: no rule {rule_id!r}; known rules: {known}", err=True)
        sys.exit(2)
    click.echo(describe_pack(pack, rule_set.catalogue))


@rules.command("shared-care")
def rules_shared_care() -> None:
    """Print how the record says another organisation monitors a drug (shared care)."""
    from hrm_fhir.rules.describe import describe_shared_care

    click.echo(describe_shared_care(_rules().catalogue))


# --- The HTTP service and the scheduler (hrm_fhir/app.py, hrm_fhir/scheduling.py) ---


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--with-scheduler",
    is_flag=True,
    help="Also run the scheduled sweeps in this process (run one such process only).",
)
def serve(host: str, port: int, with_scheduler: bool) -> None:
    """Serve the HTTP API under waitress until Ctrl-C or SIGTERM, logging JSON lines."""
    import waitress  # type: ignore[import-untyped]

    from hrm_fhir.app import create_app
    from hrm_fhir.logs import configure_logging
    from hrm_fhir.scheduling import build_scheduler
    from hrm_fhir.web.state import service_state

    configure_logging()
    app = create_app()
    scheduler = build_scheduler(app) if with_scheduler else None
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        if scheduler is not None:
            scheduler.start()
        # waitress refuses a larger body itself (413) before buffering it.
        limit = service_state(app).settings.max_request_bytes
        waitress.serve(app, host=host, port=port, max_request_body_size=limit)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
        service_state(app).close()


def _terminated(signum: int, _frame: object) -> None:
    """End the work in hand as an interruption, with the shell's status for the signal."""
    raise SystemExit(128 + signum)


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    """waitress stops on SystemExit as on Ctrl-C; a running sweep then finishes before exit."""
    raise SystemExit(0)


@main.command()
def scheduler() -> None:
    """Run the scheduled sweeps in the foreground until interrupted, logging JSON lines."""
    from hrm_fhir.app import create_app
    from hrm_fhir.logs import configure_logging
    from hrm_fhir.scheduling import run_scheduler
    from hrm_fhir.web.state import service_state

    configure_logging()
    app = create_app()
    try:
        run_scheduler(app)
    finally:
        service_state(app).close()


# --- User accounts for the pages (hrm_fhir/users.py, docs/pages.md) ---


@main.group()
def users() -> None:
    """Accounts that sign in to the pages (HRM_DATABASE_URL)."""


@users.command("add")
@click.argument("username")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["technician", "pharmacist", "gp", "admin"]),
    help="What the user may do.",
)
@click.option("--practice", default=None, help="Organization id the user works for.")
@click.option("--display-name", default=None, help="The name shown in the pages and the audit.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def users_add(
    username: str,
    role: str,
    practice: str | None,
    display_name: str | None,
    password_stdin: bool,
) -> None:
    """Add an account; the password is asked for twice (or read from standard input)."""
    from hrm_fhir.users import UserError, check_password_rules, create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        check_password_rules(password, (username, display_name or ""))
        with _user_session() as session:
            user = create_user(
                session,
                username,
                role=role,
                password=password,
                practice=practice,
                display_name=display_name,
            )
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"added {user.username} ({user.role}{_practice_text(user.practice)})")


@users.command("list")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def users_list(fmt: str) -> None:
    """List every account, active or disabled."""
    from hrm_fhir.users import list_users

    with _user_session() as session:
        found = list_users(session)
    if fmt == "json":
        _write(
            [
                {
                    "username": u.username,
                    "display_name": u.display_name,
                    "role": u.role.value,
                    "practice": u.practice,
                    "active": u.active,
                    "created_at": u.created_at.isoformat(),
                }
                for u in found
            ]
        )
        return
    rows = [("USERNAME", "ROLE", "PRACTICE", "STATUS", "NAME")]
    rows += [
        (
            u.username,
            u.role.value,
            u.practice or "-",
            "active" if u.active else "disabled",
            u.display_name,
        )
        for u in found
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo(
            "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[4]])
        )


@users.command("disable")
@click.argument("username")
def users_disable(username: str) -> None:
    """Disable an account: it cannot sign in, and a signed-in session ends at its next request."""
    from hrm_fhir.users import UserError, disable_user

    try:
        with _user_session() as session:
            user = disable_user(session, username)
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"disabled {user.username}")


@users.command("token")
@click.argument("username")
@click.option("--label", default="", help="What the token is for, shown in `users tokens`.")
@click.option(
    "--days",
    type=click.IntRange(1, 366),
    default=None,
    help="How long it is valid (default HRM_USER_TOKEN_DAYS, 90).",
)
def users_token(username: str, label: str, days: int | None) -> None:
    """Make a personal API token for USERNAME and print it once: it is stored only as a hash.
    The API takes it as `Authorization: Bearer <token>` and acts as that user."""
    from hrm_fhir.credentials import issue_token
    from hrm_fhir.users import UserError

    lifetime = days or _settings().user_token_days
    try:
        with _user_session() as session:
            token, info = issue_token(session, username, days=lifetime, label=label)
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(token)
    click.echo(
        f"token {info.id} for {info.username} ({info.label}), valid until "
        f"{info.expires_at:%Y-%m-%d %H:%M} UTC. It is shown only now: keep it secret.",
        err=True,
    )


@users.command("tokens")
@click.argument("username")
def users_tokens(username: str) -> None:
    """List USERNAME's tokens (never the tokens themselves)."""
    from hrm_fhir.credentials import list_tokens

    with _user_session() as session:
        found = list_tokens(session, username)
    now = datetime.now(UTC)
    click.echo("ID  STATE    CREATED           EXPIRES           LAST USED         LABEL")
    for t in found:
        used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "-"
        click.echo(
            f"{t.id:<3} {t.state(now):<8} {t.created_at:%Y-%m-%d %H:%M}  "
            f"{t.expires_at:%Y-%m-%d %H:%M}  {used:<16}  {t.label}"
        )


@users.command("revoke-token")
@click.argument("username")
@click.argument("token_id", type=int, required=False)
@click.option("--all", "every", is_flag=True, help="Revoke every token of the user.")
def users_revoke_token(username: str, token_id: int | None, every: bool) -> None:
    """Revoke one of USERNAME's tokens (TOKEN_ID from `users tokens`), or all with --all."""
    from hrm_fhir.credentials import revoke_tokens
    from hrm_fhir.users import UserError

    if (token_id is not None) == every:
        raise click.UsageError("give a TOKEN_ID or --all")
    try:
        with _user_session() as session:
            revoked = revoke_tokens(session, username, token_id)
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"revoked {len(revoked)} token(s) of {username}")


def _practice_text(practice: str | None) -> str:
    return f", practice {practice}" if practice else ""


@contextmanager
def _user_session() -> Iterator[Session]:
    """A transaction on the service database (created or migrated first), committed on success."""
    from hrm_fhir.db import init_db, make_session_factory

    engine = init_db(_settings().database_url)
    try:
        with make_session_factory(engine).begin() as session:
            yield session
    finally:
        engine.dispose()


# --- The monthly audit summary (hrm_fhir/audit, docs/audit.md) ---


@main.group()
def report() -> None:
    """Audit reports for the practice and the PCN."""


@report.command("monthly")
@click.option(
    "--month",
    type=click.DateTime(formats=["%Y-%m"]),
    default=None,
    help="YYYY-MM (default: last month in HRM_TIMEZONE).",
)
@click.option("--practice", default=None, help="Organization id (default HRM_PRACTICE).")
@click.option("--pcn", default=None, help="A PCN named in HRM_PCNS: its practices together.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder for report.html, report.pdf, measure-report.json, report.json and csv/.",
)
@click.option("--post", is_flag=True, help="Also PUT the MeasureReport to the FHIR server.")
@_FHIR_BASE
def report_monthly(
    month: datetime | None,
    practice: str | None,
    pcn: str | None,
    out: Path,
    post: bool,
    fhir_base: str | None,
) -> None:
    """Write the monthly audit summary of one practice or one PCN, from the ledger."""
    from hrm_fhir.audit.outputs import previous_month, write_report
    from hrm_fhir.audit.service import monthly_report, resolve_scope
    from hrm_fhir.db import init_db, make_session_factory

    if practice and pcn:
        raise click.UsageError("give --practice or --pcn, not both")
    settings = _settings(fhir_base_url=fhir_base)
    first = month.date() if month else previous_month(clock.today())
    engine = init_db(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            scope = resolve_scope(settings, session, practice=practice, pcn=pcn)
            result = monthly_report(session, _rules(), settings, first, scope)
    except HRMError as exc:
        click.echo(f"hrm-fhir: {exc}", err=True)
        sys.exit(2)
    finally:
        engine.dispose()
    for warning in result.warnings:
        click.echo(f"hrm-fhir: warning: {warning}", err=True)
    files = write_report(result, out)
    click.echo(f"{scope.label}, {first:%B %Y}: {len(files)} files in {out}")
    if post:
        _post_measure_report(settings, result)


def _post_measure_report(settings: Settings, result: MonthlyReport) -> None:
    from hrm_fhir.adapters.fhir_gateway import FHIRGateway
    from hrm_fhir.audit.outputs import post_measure_report

    gateway = FHIRGateway.from_settings(settings)
    try:
        written = post_measure_report(gateway, result)
    except HRMError as exc:
        raise click.ClickException(f"posting the MeasureReport failed: {exc}") from exc
    finally:
        gateway.close()
    click.echo(f"posted {written.location or 'MeasureReport'} (HTTP {written.status})")


# --- The technician's worklist (hrm_fhir/workflow, docs/workflow.md) ---


@main.command()
@_FHIR_BASE
@click.option("--practice", default=None, help="Organization id (default HRM_PRACTICE).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="csv: NHS number, name, phone, preferred contact, tests needed, due date.",
)
@_as_of_option("Overdue and chases as of this date (default: today in HRM_TIMEZONE).")
def worklist(fhir_base: str | None, practice: str | None, fmt: str, as_of: datetime | None) -> None:
    """Print the technician's worklist: one line per patient, most pressing first."""
    from hrm_fhir.adapters.fhir_gateway import FHIRGateway
    from hrm_fhir.db import init_db, make_session_factory
    from hrm_fhir.workflow import export, service

    settings = _settings(fhir_base_url=fhir_base, practice=practice)
    day = as_of.date() if as_of else clock.today()
    engine = init_db(settings.database_url)
    gateway = FHIRGateway.from_settings(settings)
    try:
        with make_session_factory(engine)() as session:
            entries = service.worklist(
                gateway,
                session,
                as_of=day,
                practice=settings.practice or None,
                chase_interval_days=settings.chase_interval_days,
                rules=_rules(),
            )
        details = export.patient_details(gateway, [entry.patient for entry in entries])
    except HRMError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        gateway.close()
        engine.dispose()
    if fmt == "csv":
        click.echo(export.to_csv(entries, details), nl=False)
    elif fmt == "json":
        _write(export.to_json(entries, details, day))
    else:
        click.echo(export.to_table(entries, details))


# --- The evidence pack for one patient (hrm_fhir/audit/evidence.py, docs/audit.md) ---


@main.command()
@click.argument("patient")
@_FHIR_BASE
@_as_of_option("The schedule in force, and the record to the end of this day (default: today).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "html"]),
    default="text",
    show_default=True,
    help="html: printable.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the pack to this file (created readable by its owner only, with its folder).",
)
def evidence(
    patient: str, fhir_base: str | None, as_of: datetime | None, fmt: str, out: Path | None
) -> None:
    """Print one patient's evidence pack (PATIENT: an id or Patient/<id>): the schedule that
    applied, the results considered, every Task and Flag with its versions, contact attempts,
    decisions and sign-offs."""
    from hrm_fhir.adapters.evidence_source import read_evidence
    from hrm_fhir.adapters.fhir_gateway import FHIRGateway
    from hrm_fhir.audit.evidence import build_pack
    from hrm_fhir.audit.evidence_render import render
    from hrm_fhir.db import init_db, make_session_factory

    settings = _settings(fhir_base_url=fhir_base)
    engine = init_db(settings.database_url)
    gateway = FHIRGateway.from_settings(settings)
    try:
        with make_session_factory(engine)() as session:
            source = read_evidence(gateway, session, patient)
            if source is None:
                click.echo(f"hrm-fhir: the FHIR server has no Patient {patient!r}", err=True)
                sys.exit(2)
            pack = build_pack(
                source,
                _rules(),
                as_of=as_of.date() if as_of else clock.today(),
                generated_at=clock.local_now(),
            )
    except HRMError as exc:
        raise click.ClickException(f"the FHIR server request failed: {exc}") from exc
    finally:
        gateway.close()
        engine.dispose()
    document = render(pack, fmt)
    if out is None:
        sys.stdout.buffer.write(document)
        sys.stdout.flush()
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.touch(mode=0o600)
        out.write_bytes(document)
