"""Scheduled jobs with APScheduler 3: an incremental sweep, a full reconciliation, and the
monthly audit report.

``settings.sweep_cron`` (default ``0 6 * * mon``) runs the regular sweep, incremental once a
watermark exists; ``settings.reconcile_cron`` (default ``0 5 1 * *``) re-reads everything. Both
are crontab expressions in the service's time zone (``HRM_TIMEZONE``), with the day of week given by
name: APScheduler 3 numbers weekdays from Monday=0, unlike cron, so digits there are refused.

``settings.report_cron`` (default ``0 7 1-3 * mon-fri``) wakes the report job on the first
weekdays of a month; it writes last month's report (every practice and PCN) only on the month's
first working day, into ``settings.report_dir/<scope>/<YYYY-MM>/``.

Every job has ``max_instances=1``, ``coalesce=True`` (several overdue runs of a job, e.g. after
the host slept, become one) and ``misfire_grace_time=MISFIRE_GRACE_SECONDS``: a run that could
not start on time still starts up to an hour late, and later than that waits for its next time.
Jobs live in memory, so a run due while no scheduler process was up is not caught up on restart;
start one by hand (``POST /api/v1/sweeps`` or ``hrm-fhir sweep``). Within a process the app's
``SweepLauncher`` runs one sweep at a time; across processes ``run_sweep``'s database lock does,
and a job that finds a sweep running logs "skipped: another sweep is running".

Nothing here starts on import or in ``create_app``: ``hrm-fhir scheduler`` runs it in the
foreground and ``hrm-fhir serve --with-scheduler`` beside the API, so that reloaders and several
server processes do not each start one.
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import (  # type: ignore[import-untyped]
    BackgroundScheduler,
)
from apscheduler.schedulers.base import BaseScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]
from flask import Flask

from hrm_fhir import clock
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.audit.measure_report import report_id
from hrm_fhir.audit.model import MonthlyReport
from hrm_fhir.audit.outputs import (
    first_working_day,
    post_measure_report,
    previous_month,
    report_folder,
    write_report,
)
from hrm_fhir.audit.service import all_scopes, monthly_report
from hrm_fhir.config import Settings
from hrm_fhir.errors import HRMError
from hrm_fhir.sweep.launcher import SweepRequest
from hrm_fhir.web.state import service_state

logger = logging.getLogger(__name__)
REPORT_JOB = "monthly-report"

MISFIRE_GRACE_SECONDS = 3600
"""How late (seconds) a missed run may still start."""


@dataclass(frozen=True)
class ScheduledSweep:
    job_id: str
    cron: str
    full: bool | None
    """True for a full reconciliation; None lets ``run_sweep`` choose (incremental if it can)."""


def scheduled_sweeps(settings: Settings) -> tuple[ScheduledSweep, ...]:
    return (
        ScheduledSweep("sweep", settings.sweep_cron, None),
        ScheduledSweep("reconcile", settings.reconcile_cron, True),
    )


def cron_trigger(expression: str, timezone: ZoneInfo) -> CronTrigger:
    """A trigger for a five-field crontab expression whose day of week uses names."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"cron expression {expression!r} must have five fields")
    if any(char.isdigit() for char in fields[4]):
        raise ValueError(
            f"cron expression {expression!r}: give the day of week by name (mon-sun); "
            "APScheduler 3 numbers weekdays differently from cron"
        )
    return CronTrigger.from_crontab(expression, timezone=timezone)


def run_scheduled_sweep(app: Flask, job: ScheduledSweep) -> None:
    """The job body: one sweep, its outcome logged (busy, failed or the summary counts)."""
    with app.app_context():
        service_state(app).sweeps.run_logged(
            SweepRequest(full=job.full), trigger=f"schedule:{job.job_id}"
        )


def run_monthly_reports(app: Flask, today: date | None = None) -> list[Path]:
    """The report job body: on the month's first working day, last month's report for every
    practice and PCN, written to files and (with ``report_post``) PUT to the FHIR server; on any
    other day nothing. A failed post is logged and leaves the files; returns the folders."""
    state = service_state(app)
    today = today or clock.today()
    if today != first_working_day(today):
        logger.info("monthly report skipped: not the first working day", extra={"day": str(today)})
        return []
    month = previous_month(today)
    folders = []
    with app.app_context(), state.sessions()() as session:
        for scope in all_scopes(state.settings, session):
            report = monthly_report(session, state.rules, state.settings, month, scope)
            folder = report_folder(Path(state.settings.report_dir), scope.slug, month)
            write_report(report, folder)
            folders.append(folder)
            if state.settings.report_post:
                _post(state.settings, report)
    logger.info(
        "monthly reports written", extra={"reports": len(folders), "month": f"{month:%Y-%m}"}
    )
    return folders


def _post(settings: Settings, report: MonthlyReport) -> None:
    gateway = FHIRGateway.from_settings(settings)
    try:
        post_measure_report(gateway, report)
    except HRMError as exc:
        logger.error(
            "posting the MeasureReport failed; the files are written, post them with "
            "hrm-fhir report monthly --post",
            extra={"error": type(exc).__name__, "report": report_id(report)},
        )
    finally:
        gateway.close()


def build_scheduler(
    app: Flask, scheduler_cls: type[BaseScheduler] = BackgroundScheduler
) -> BaseScheduler:
    """A scheduler holding the app's sweep jobs, not yet started."""
    settings = service_state(app).settings
    zone = clock.zone()
    scheduler = scheduler_cls(timezone=zone)
    for job in scheduled_sweeps(settings):
        scheduler.add_job(
            run_scheduled_sweep,
            cron_trigger(job.cron, zone),
            args=(app, job),
            id=job.job_id,
            name=f"hrm-fhir {job.job_id}",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=MISFIRE_GRACE_SECONDS,
        )
    scheduler.add_job(
        run_monthly_reports,
        cron_trigger(settings.report_cron, zone),
        args=(app,),
        id=REPORT_JOB,
        name=f"hrm-fhir {REPORT_JOB}",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=MISFIRE_GRACE_SECONDS,
    )
    return scheduler


STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


def run_scheduler(app: Flask) -> None:
    """Run the jobs in the foreground until SIGINT (Ctrl-C) or SIGTERM; a running sweep finishes.

    The stop signals are blocked before the scheduler's threads start (threads inherit the mask)
    and then awaited with ``sigwait`` here. A Python signal handler instead (as with APScheduler's
    ``BlockingScheduler``) raises wherever the main thread happens to be, and APScheduler swallows
    ``BaseException`` in places, so a stop request could be lost.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        scheduler = build_scheduler(app)
        scheduler.start()
        try:
            signal.sigwait(STOP_SIGNALS)
        finally:
            scheduler.shutdown()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
