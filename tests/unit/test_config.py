"""Settings from HRM_* variables: the monthly audit's PCNs, planning figures and report job."""

from __future__ import annotations

import pytest

from hrm_fhir.config import Settings, load_settings


def test_defaults_need_no_environment() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.pcns == {}
    assert (settings.technician_tests_per_day, settings.technician_days_per_week) == (12.0, 1.0)
    assert settings.report_post is False


def test_pcns_and_report_settings_are_read() -> None:
    settings = load_settings(
        {
            "HRM_PCNS": " north = practice-1 + practice-2 ; south=practice-3;",
            "HRM_TECHNICIAN_TESTS_PER_DAY": "15",
            "HRM_TECHNICIAN_DAYS_PER_WEEK": "2.5",
            "HRM_REPORT_DIR": "/srv/reports",
            "HRM_REPORT_POST": "yes",
        }
    )
    assert settings.pcns == {"north": ("practice-1", "practice-2"), "south": ("practice-3",)}
    assert (settings.technician_tests_per_day, settings.technician_days_per_week) == (15.0, 2.5)
    assert (settings.report_dir, settings.report_post) == ("/srv/reports", True)


@pytest.mark.parametrize("text", ["north", "north=", "=practice-1", "north=+"])
def test_a_pcn_without_a_name_or_practices_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="HRM_PCNS entries are pcn=practice"):
        load_settings({"HRM_PCNS": text})


def test_a_report_post_flag_that_is_not_a_boolean_is_refused() -> None:
    with pytest.raises(ValueError, match="HRM_REPORT_POST is true or false"):
        load_settings({"HRM_REPORT_POST": "sometimes"})
