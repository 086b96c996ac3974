"""Commands that move FHIR data: ``export`` (Bulk Data), ``load`` (upload files) and ``sandbox``
(the local HAPI FHIR server)."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hrm_fhir.adapters.fhir.upload import CHUNK_SIZE, WORKERS
from hrm_fhir.config import Settings
from hrm_fhir.errors import HRMError, InputError

if TYPE_CHECKING:
    from hrm_fhir.adapters.fhir.bulk_job import ExportRequest, ExportResult

from hrm_fhir.cli.common import FHIR_BASE, configured, problem, write_json


@click.command()
@FHIR_BASE
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
    from hrm_fhir.adapters.fhir.bulk_job import ExportRequest, record_types

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
    settings = configured(
        fhir_base_url=fhir_base, bulk_poll_ceiling=poll_ceiling, bulk_timeout=timeout
    )
    try:
        result = _run_export(settings, request, out)
    except HRMError as exc:
        raise click.ClickException(f"export failed: {exc}") from exc
    summary = {k: v for k, v in result.to_json().items() if k not in ("output", "error", "deleted")}
    write_json({**summary, "files": len(result.output), "folder": str(out)})
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
    from hrm_fhir.adapters.fhir.bulk_export import BulkExporter
    from hrm_fhir.adapters.fhir.gateway import FHIRGateway
    from hrm_fhir.cli.progress import TerminalProgress

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


@click.command()
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
    from hrm_fhir.adapters.fhir.gateway import FHIRGateway
    from hrm_fhir.adapters.fhir.upload import load_paths

    gateway = FHIRGateway.from_settings(configured(fhir_base_url=fhir_base))
    try:
        report = load_paths(
            gateway,
            paths,
            chunk_size=chunk,
            transaction=transaction,
            workers=workers,
            problem=problem,
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
        write_json(report.to_json())
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


@click.command()
@click.argument("action", type=click.Choice(["start", "stop", "status", "url"]))
@click.option("--port", type=int, default=None, help="Port (default HRM_SANDBOX_PORT or 8080).")
def sandbox(action: str, port: int | None) -> None:
    """Build and run the local HAPI FHIR R4 JPA sandbox (sandbox/hapi, see docs/sandbox.md)."""
    import subprocess

    script = Path(__file__).resolve().parents[2] / "sandbox" / "hapi" / "run.sh"
    if not script.exists():
        raise click.ClickException(f"{script} not found: run from a source checkout")
    args = ["bash", str(script), action, *([str(port)] if port and action == "start" else [])]
    sys.exit(subprocess.call(args))  # noqa: S603 - fixed script, arguments validated by click


def _terminated(signum: int, _frame: object) -> None:
    """End the work in hand as an interruption, with the shell's status for the signal."""
    raise SystemExit(128 + signum)
