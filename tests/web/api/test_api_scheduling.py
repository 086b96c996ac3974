"""The scheduled sweep jobs, inspected without starting the scheduler, and run directly."""

from __future__ import annotations

import logging
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from hrm_fhir.sweep.launcher import SweepRequest
from hrm_fhir.sweep.run import SweepBusyError, SweepSummary
from hrm_fhir.web.scheduling import (
    MISFIRE_GRACE_SECONDS,
    build_scheduler,
    cron_trigger,
    run_scheduled_sweep,
    scheduled_sweeps,
)
from hrm_fhir.web.state import service_state
from tests.web.api.conftest import AppFactory

LONDON = ZoneInfo("Europe/London")


def _summary(request: SweepRequest) -> SweepSummary:
    mode = "full" if request.full else "incremental"
    summary = SweepSummary(
        sweep_id=5, mode=mode, dry_run=False, as_of=date(2026, 3, 30), scope="all"
    )
    summary.patients, summary.findings, summary.counts.created = 12, 4, 3
    return summary


def test_three_cron_jobs_in_london_time_one_instance_each_coalesced(make_app: AppFactory) -> None:
    scheduler = build_scheduler(make_app())
    assert isinstance(scheduler, BackgroundScheduler)
    assert not scheduler.running
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"sweep", "reconcile", "monthly-report"}
    for job in jobs.values():
        assert job.max_instances == 1
        assert job.coalesce is True
        assert job.misfire_grace_time == MISFIRE_GRACE_SECONDS == 3600
        assert job.trigger.timezone == LONDON
    assert (
        str(jobs["sweep"].trigger)
        == "cron[month='*', day='*', day_of_week='mon', hour='6', minute='0']"
    )
    assert (
        str(jobs["reconcile"].trigger)
        == "cron[month='*', day='1', day_of_week='*', hour='5', minute='0']"
    )
    assert (
        str(jobs["monthly-report"].trigger)
        == "cron[month='*', day='1-3', day_of_week='mon-fri', hour='7', minute='0']"
    )
    assert [
        job.full for job in scheduled_sweeps(service_state(jobs["sweep"].args[0]).settings)
    ] == [
        None,
        True,
    ]


def test_the_weekly_sweep_fires_at_six_london_time_across_the_clock_change() -> None:
    trigger = cron_trigger("0 6 * * mon", LONDON)
    before = datetime(2026, 3, 27, 12, 0, tzinfo=LONDON)
    first = trigger.get_next_fire_time(None, before)
    assert first == datetime(2026, 3, 30, 6, 0, tzinfo=LONDON)
    assert first.utcoffset().total_seconds() == 3600


def test_crons_come_from_settings_and_the_blocking_scheduler_can_be_chosen(
    make_app: AppFactory,
) -> None:
    app = make_app(sweep_cron="30 7 * * tue-fri", reconcile_cron="0 2 * * sun")
    scheduler = build_scheduler(app, BlockingScheduler)
    assert isinstance(scheduler, BlockingScheduler)
    sweep = scheduler.get_job("sweep")
    assert "day_of_week='tue-fri'" in str(sweep.trigger)
    assert "hour='7'" in str(sweep.trigger)


@pytest.mark.parametrize("expression", ["0 6 * * 1", "0 6 * * 1-5", "0 6 * *"])
def test_numeric_weekdays_and_short_expressions_are_refused(expression: str) -> None:
    with pytest.raises(ValueError, match="cron expression"):
        cron_trigger(expression, LONDON)


def test_a_job_runs_the_sweep_in_an_app_context_and_logs_its_trigger(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[SweepRequest] = []

    def runner(request: SweepRequest) -> SweepSummary:
        seen.append(request)
        return _summary(request)

    app = make_app(SWEEP_RUNNER=runner)
    jobs = {job.id: job for job in build_scheduler(app).get_jobs()}
    with caplog.at_level(logging.INFO, logger="hrm_fhir"):
        jobs["sweep"].func(*jobs["sweep"].args)
        run_scheduled_sweep(*jobs["reconcile"].args)
    assert seen == [SweepRequest(full=None), SweepRequest(full=True)]
    done = [r for r in caplog.records if r.message == "sweep run"]
    assert [(r.trigger, r.sweep_id) for r in done] == [
        ("schedule:sweep", 5),
        ("schedule:reconcile", 5),
    ]


def test_a_sweep_already_running_is_skipped_not_an_error(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    def busy(_request: SweepRequest) -> SweepSummary:
        raise SweepBusyError("another sweep is running (the sweep lock is held)")

    app = make_app(SWEEP_RUNNER=busy)
    job = build_scheduler(app).get_job("sweep")
    with caplog.at_level(logging.INFO, logger="hrm_fhir"):
        run_scheduled_sweep(*job.args)
    [record] = [r for r in caplog.records if r.name.startswith("hrm_fhir")]
    assert record.message == "skipped: another sweep is running"
    assert record.levelno == logging.INFO
    assert not service_state(app).sweeps.is_busy()
