"""Settings, built once from ``HRM_*`` environment variables; no other module reads os.environ."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hrm_fhir.clock import DEFAULT_ZONE, parse_zone

_PRACTICE_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


@dataclass(frozen=True)
class Settings:
    fhir_base_url: str = "http://127.0.0.1:8080/fhir"
    database_url: str = "sqlite:///hrm-fhir.db"
    fhir_timeout: float = 30.0
    fhir_max_retries: int = 4
    page_size: int = 200
    auth: str = "none"
    """``none`` | ``bearer`` | ``smart``."""
    bearer_token: str = ""
    smart_token_url: str = ""
    smart_client_id: str = ""
    smart_key_file: str = ""
    smart_key_id: str = ""
    smart_algorithm: str = "RS384"
    smart_scope: str = (
        "system/Patient.rs system/MedicationRequest.rs system/Observation.rs "
        "system/Medication.rs system/Task.cruds system/Flag.cruds"
    )
    practice: str = ""
    """Organization id whose patients are swept; empty means the whole server."""
    due_window_days: int | None = None
    sweep_cron: str = "0 6 * * mon"
    reconcile_cron: str = "0 5 1 * *"
    timezone: str = DEFAULT_ZONE
    """The programme's calendar (today, due dates, months): an IANA zone name (``HRM_TIMEZONE``)."""
    api_keys: Mapping[str, str] = field(default_factory=dict)
    """API key -> its grant, ``role`` or ``role:practice`` (``parse_grant``)."""
    watermark_overlap_seconds: int = 300
    bulk_poll_ceiling: float = 15.0
    """Longest wait between Bulk Data status polls, seconds, whatever Retry-After asks."""
    bulk_timeout: float = 3600.0
    """A Bulk Data export that has not finished (and downloaded) in this many seconds fails."""
    sweep_bulk: bool = False
    """Sweeps read through a Bulk Data export instead of searches (``sweep --bulk``)."""
    chase_interval_days: int = 14
    """Days after the last contact attempt before the next reminder (or routing) is due."""
    secret_key: str = field(default="", repr=False)
    """Signs the pages' session cookie and CSRF tokens; the pages refuse to run without one."""
    session_minutes: int = 30
    """The pages sign a user out after this many minutes without a request."""
    session_max_hours: float = 12.0
    """A pages session ends this long after sign-in, however busy it is."""
    secure_cookies: bool | None = None
    """Mark the session cookie ``Secure``; None decides by ``is_sandbox`` (Secure unless the
    service talks to a FHIR server on this machine, the local sandbox)."""
    sign_in_limit_account: str = "10 per 15 minutes"
    """Failed sign-ins allowed per submitted username (a Flask-Limiter rate string)."""
    sign_in_limit_address: str = "30 per 15 minutes"
    """Failed sign-ins allowed per client address, across usernames."""
    rate_limit_storage: str = "memory://"
    """Where the sign-in counters live (a ``limits`` storage URI); memory is per process."""
    proxy_hops: int = 0
    """Reverse proxies in front of the service whose ``X-Forwarded-For`` is trusted."""
    max_request_bytes: int = 1_000_000
    """Larger request bodies are refused with 413."""
    pdf_workers: int = 1
    """PDFs rendered at once; a request beyond it gets 503 with Retry-After."""
    user_token_days: int = 90
    """How long a personal API token (``hrm-fhir users token``) is valid unless told otherwise."""
    pcns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Primary Care Network id -> the Organization ids of its practices."""
    technician_tests_per_day: float = 12.0
    """Planning assumption for the backlog forecast: monitoring Tasks one technician day closes."""
    technician_days_per_week: float = 1.0
    report_cron: str = "0 7 1-3 * mon-fri"
    """When the monthly report job wakes; it runs on the first working day (Mon-Fri) only."""
    report_dir: str = "reports"
    """Where the scheduled monthly reports are written, one folder per scope and month."""
    report_post: bool = False
    """The scheduled job also PUTs each MeasureReport to the FHIR server."""

    def with_overrides(self, overrides: Mapping[str, Any]) -> Settings:
        return replace(self, **dict(overrides))

    @property
    def is_sandbox(self) -> bool:
        """True when the FHIR server is on this machine (a loopback address): the local HAPI
        sandbox of development and tests, where the pages are served over plain HTTP."""
        host = urlsplit(self.fhir_base_url).hostname or ""
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @property
    def cookies_secure(self) -> bool:
        """Whether the session cookie is ``Secure``: as set, else everywhere but the sandbox."""
        return self.secure_cookies if self.secure_cookies is not None else not self.is_sandbox


KEY_ROLES = ("read", "operator", "integration")
"""``read``: GET; ``operator``: GET and start sweeps; ``integration``: GET and the workflow
actions, on behalf of the user it names in ``X-Acting-User`` (a system that signs users in)."""


@dataclass(frozen=True)
class KeyGrant:
    """What one API key may do: its role, and the one practice it is bound to (None: all)."""

    role: str
    practice: str | None = None


def parse_grant(text: str) -> KeyGrant:
    """``read``, ``operator:practice-1``... -> KeyGrant; ValueError for anything else."""
    role, bound, practice = text.partition(":")
    practice = practice.removeprefix("Organization/")
    if role not in KEY_ROLES or (bound and not _PRACTICE_ID.fullmatch(practice)):
        raise ValueError(
            "HRM_API_KEYS entries are key:role or key:role:practice, with role one of "
            + ", ".join(KEY_ROLES)
            + " and practice an Organization id"
        )
    return KeyGrant(role, practice or None)


def _flag(name: str, text: str) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off``, any case."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} is true or false, not {text!r}")


_ENV: dict[str, tuple[str, Callable[[str], object]]] = {
    "HRM_FHIR_BASE_URL": ("fhir_base_url", str),
    "HRM_DATABASE_URL": ("database_url", str),
    "HRM_FHIR_TIMEOUT": ("fhir_timeout", float),
    "HRM_FHIR_MAX_RETRIES": ("fhir_max_retries", int),
    "HRM_PAGE_SIZE": ("page_size", int),
    "HRM_FHIR_AUTH": ("auth", str),
    "HRM_FHIR_BEARER_TOKEN": ("bearer_token", str),
    "HRM_SMART_TOKEN_URL": ("smart_token_url", str),
    "HRM_SMART_CLIENT_ID": ("smart_client_id", str),
    "HRM_SMART_KEY_FILE": ("smart_key_file", str),
    "HRM_SMART_KEY_ID": ("smart_key_id", str),
    "HRM_SMART_ALGORITHM": ("smart_algorithm", str),
    "HRM_SMART_SCOPE": ("smart_scope", str),
    "HRM_PRACTICE": ("practice", str),
    "HRM_DUE_WINDOW_DAYS": ("due_window_days", int),
    "HRM_SWEEP_CRON": ("sweep_cron", str),
    "HRM_RECONCILE_CRON": ("reconcile_cron", str),
    "HRM_WATERMARK_OVERLAP_SECONDS": ("watermark_overlap_seconds", int),
    "HRM_BULK_POLL_CEILING": ("bulk_poll_ceiling", float),
    "HRM_BULK_TIMEOUT": ("bulk_timeout", float),
    "HRM_SWEEP_BULK": ("sweep_bulk", lambda text: _flag("HRM_SWEEP_BULK", text)),
    "HRM_CHASE_INTERVAL_DAYS": ("chase_interval_days", int),
    "HRM_SECRET_KEY": ("secret_key", str),
    "HRM_SESSION_MINUTES": ("session_minutes", int),
    "HRM_SESSION_MAX_HOURS": ("session_max_hours", float),
    "HRM_SECURE_COOKIES": ("secure_cookies", lambda text: _flag("HRM_SECURE_COOKIES", text)),
    "HRM_SIGN_IN_LIMIT_ACCOUNT": ("sign_in_limit_account", str),
    "HRM_SIGN_IN_LIMIT_ADDRESS": ("sign_in_limit_address", str),
    "HRM_RATE_LIMIT_STORAGE": ("rate_limit_storage", str),
    "HRM_PROXY_HOPS": ("proxy_hops", int),
    "HRM_MAX_REQUEST_BYTES": ("max_request_bytes", int),
    "HRM_PDF_WORKERS": ("pdf_workers", int),
    "HRM_USER_TOKEN_DAYS": ("user_token_days", int),
    "HRM_TECHNICIAN_TESTS_PER_DAY": ("technician_tests_per_day", float),
    "HRM_TECHNICIAN_DAYS_PER_WEEK": ("technician_days_per_week", float),
    "HRM_REPORT_CRON": ("report_cron", str),
    "HRM_TIMEZONE": ("timezone", lambda text: parse_zone(text).key),
    "HRM_REPORT_DIR": ("report_dir", str),
    "HRM_REPORT_POST": ("report_post", lambda text: _flag("HRM_REPORT_POST", text)),
}


def _api_keys(text: str) -> dict[str, str]:
    """``key1:operator,key2:read:practice-1`` -> {key1: operator, key2: read:practice-1}."""
    keys: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, grant = item.partition(":")
        parse_grant(grant)
        if not key:
            raise ValueError("HRM_API_KEYS has an entry without a key")
        keys[key] = grant
    return keys


def _pcns(text: str) -> dict[str, tuple[str, ...]]:
    """``pcn-a=practice-1+practice-2;pcn-b=practice-3`` -> {pcn-a: (practice-1, practice-2)...}."""
    pcns: dict[str, tuple[str, ...]] = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        pcn, _, members = item.partition("=")
        practices = tuple(p.strip() for p in members.split("+") if p.strip())
        if not pcn.strip() or not practices:
            raise ValueError("HRM_PCNS entries are pcn=practice+practice, separated by ';'")
        pcns[pcn.strip()] = practices
    return pcns


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment (or the mapping given), over the built-in defaults."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, (attr, kind) in _ENV.items():
        if env.get(name):
            values[attr] = kind(env[name])
    if env.get("HRM_API_KEYS"):
        values["api_keys"] = _api_keys(env["HRM_API_KEYS"])
    if env.get("HRM_PCNS"):
        values["pcns"] = _pcns(env["HRM_PCNS"])
    return Settings(**values)


def configured_zone(environ: Mapping[str, str] | None = None) -> str:
    """``HRM_TIMEZONE`` checked (ValueError when it names no zone), or the default; commands
    that need no other setting read only this."""
    env = os.environ if environ is None else environ
    return parse_zone(env.get("HRM_TIMEZONE") or DEFAULT_ZONE).key


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where derived files are cached: ``$XDG_CACHE_HOME/hrm-fhir``, else ``~/.cache/hrm-fhir``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hrm-fhir"
