"""One calendar for the whole service: today and local dates in ``HRM_TIMEZONE``."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from hrm_fhir import clock, create_app
from hrm_fhir.adapters.fhir.values import parse_date
from hrm_fhir.cli.main import main
from hrm_fhir.config import configured_zone, load_settings
from tests.builders import AS_OF, observation, patient, repeats

NEUT = "1022551000000104"


def test_the_default_zone_is_london_and_a_late_evening_instant_is_the_next_local_day() -> None:
    assert clock.zone().key == "Europe/London"
    # 23:30 UTC on 30 June is half past midnight on 1 July in British Summer Time
    assert clock.local_date(datetime(2026, 6, 30, 23, 30, tzinfo=UTC)) == date(2026, 7, 1)
    assert clock.local_date(datetime(2026, 12, 30, 23, 30, tzinfo=UTC)) == date(2026, 12, 30)
    assert clock.start_of(date(2026, 7, 1)).astimezone(UTC) == datetime(2026, 6, 30, 23, tzinfo=UTC)


def test_another_zone_moves_the_local_date_of_a_result() -> None:
    instant = "2026-11-26T20:00:00Z"
    assert parse_date(instant) == date(2026, 11, 26)
    clock.use_zone("Pacific/Auckland")
    assert parse_date(instant) == date(2026, 11, 27)
    assert parse_date("2026-11-26T20:00:00") == date(2026, 11, 26)  # no zone: local time


def test_hrm_timezone_is_read_and_checked() -> None:
    assert load_settings({"HRM_TIMEZONE": "America/New_York"}).timezone == "America/New_York"
    assert configured_zone({}) == "Europe/London"
    with pytest.raises(ValueError, match="'Mars/Olympus' is not an IANA time zone name"):
        load_settings({"HRM_TIMEZONE": "Mars/Olympus"})
    with pytest.raises(ValueError, match="not an IANA"):
        configured_zone({"HRM_TIMEZONE": "../../etc/passwd"})


def test_the_app_factory_sets_the_service_zone() -> None:
    create_app({"timezone": "Asia/Tokyo", "TESTING": True})
    assert clock.zone().key == "Asia/Tokyo"
    assert clock.today() == datetime.now(clock.zone()).date()


def _one_result_at(tmp_path: Path, instant: str) -> Path:
    mtx = repeats(
        "Methotrexate 2.5mg tablets",
        AS_OF - timedelta(days=500),
        AS_OF - timedelta(days=5),
        dosage="10mg weekly",
    )
    low = observation(NEUT, 1.2, "10*9/L", AS_OF, at=None)
    low["effectiveDateTime"] = instant
    path = tmp_path / "export.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in [patient(), *mtx, low]) + b"\n")
    return path


@pytest.mark.parametrize(
    ("zone", "observed_on"), [("Europe/London", "2026-11-26"), ("Pacific/Auckland", "2026-11-27")]
)
def test_evaluate_dates_a_result_in_hrm_timezone(
    tmp_path: Path, zone: str, observed_on: str
) -> None:
    path = _one_result_at(tmp_path, "2026-11-26T20:00:00Z")
    result = CliRunner(env={"HRM_TIMEZONE": zone}).invoke(
        main, ["evaluate", "--as-of", "2026-11-27", str(path)]
    )
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)["findings"]
    low = next(f for f in found if f["kind"] == "out_of_range")
    assert low["observed_on"] == observed_on


def test_a_bad_hrm_timezone_stops_every_command_with_its_name(tmp_path: Path) -> None:
    result = CliRunner(env={"HRM_TIMEZONE": "Europe/Londn"}).invoke(
        main, ["evaluate", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "'Europe/Londn' is not an IANA time zone name" in result.output
