"""Settings from HRM_* variables: the monthly audit's PCNs, planning figures and report job."""

from __future__ import annotations

import pytest

from hrm_fhir.config import KeyGrant, Settings, load_settings, parse_grant


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


def test_api_keys_carry_a_role_and_an_optional_practice() -> None:
    settings = load_settings(
        {"HRM_API_KEYS": "k1:read, k2:operator:practice-1,k3:integration:Organization/org.2"}
    )
    assert {key: parse_grant(grant) for key, grant in settings.api_keys.items()} == {
        "k1": KeyGrant("read"),
        "k2": KeyGrant("operator", "practice-1"),
        "k3": KeyGrant("integration", "org.2"),
    }


@pytest.mark.parametrize("text", ["k1:admin", "k1", "k1:read:bad/practice", ":read", "k1:read:"])
def test_an_api_key_with_an_unknown_role_or_bad_practice_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="HRM_API_KEYS"):
        load_settings({"HRM_API_KEYS": text})


def test_the_security_settings_are_read() -> None:
    settings = load_settings(
        {
            "HRM_SESSION_MAX_HOURS": "8",
            "HRM_SECURE_COOKIES": "false",
            "HRM_SIGN_IN_LIMIT_ACCOUNT": "5 per hour",
            "HRM_SIGN_IN_LIMIT_ADDRESS": "20 per hour",
            "HRM_RATE_LIMIT_STORAGE": "redis://localhost:6379",
            "HRM_PROXY_HOPS": "1",
            "HRM_MAX_REQUEST_BYTES": "5000",
            "HRM_PDF_WORKERS": "2",
            "HRM_USER_TOKEN_DAYS": "30",
        }
    )
    assert (settings.session_max_hours, settings.secure_cookies) == (8.0, False)
    assert (settings.sign_in_limit_account, settings.sign_in_limit_address) == (
        "5 per hour",
        "20 per hour",
    )
    assert (settings.proxy_hops, settings.max_request_bytes, settings.pdf_workers) == (1, 5000, 2)
    assert (settings.rate_limit_storage, settings.user_token_days) == ("redis://localhost:6379", 30)
    assert Settings().secure_cookies is None, "decided by is_sandbox unless set"
