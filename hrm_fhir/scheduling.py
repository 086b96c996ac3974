"""Scheduled sweeps with APScheduler 3: an incremental sweep and a full reconciliation.

``settings.sweep_cron`` (default ``0 6 * * mon``) runs the regular sweep, incremental once a
watermark exists; ``settings.reconcile_cron`` (default ``0 5 1 * *``) re-reads everything. Both
are crontab expressions in ``settings.timezone`` (Europe/London), with the day of week given by
name: APScheduler 3 numbers weekdays from Monday=0, unlike cron, so digits there are refused.

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

import signal
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import (  # type: ignore[import-untyped]
    BackgroundScheduler,
)
from apscheduler.schedulers.base import BaseScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]
from flask import Flask

from hrm_fhir.app import SweepRequest, service_state
from hrm_fhir.config import Settings

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


def build_scheduler(
    app: Flask, scheduler_cls: type[BaseScheduler] = BackgroundScheduler
) -> BaseScheduler:
    """A scheduler holding the app's sweep jobs, not yet started."""
    settings = service_state(app).settings
    zone = ZoneInfo(settings.timezone)
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
