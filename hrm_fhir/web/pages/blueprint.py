"""The pages' blueprint and the app settings registering it sets (see the package docstring);
the route and hook modules import ``bp`` from here, and the package imports them."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from flask import Blueprint, Flask
from flask.blueprints import BlueprintSetupState

from hrm_fhir.web.state import service_state

logger = logging.getLogger(__name__)

bp = Blueprint(
    "pages",
    __name__,
    static_folder="../static",
    static_url_path="/static",
)
MIN_SECRET_KEY = 32
"""Characters: ``python -c 'import secrets; print(secrets.token_hex(32))'`` gives 64."""
TO_TURN_ON = (
    "To turn them on, set HRM_SECRET_KEY to a random value of at least 32 characters and restart "
    "the service, for example: export HRM_SECRET_KEY=$(python3 -c 'import secrets; "
    "print(secrets.token_hex(32))') (docs/pages.md, Session and secret key)."
)
"""What the administrator must do when the pages are off (the page and the log say it)."""
DISABLED = "PAGES_DISABLED"
"""app.config key: why the pages refuse to run (None when they run)."""
THROTTLE = "hrm-sign-in-throttle"
"""app.extensions key of the sign-in throttle."""


def _setup(state: BlueprintSetupState) -> None:
    if isinstance(state.app, Flask):
        configure(state.app)


def configure(app: Flask) -> None:
    """Session cookie, secret key and CSRF settings for the pages (tests may override any)."""
    from hrm_fhir.web.pages.csrf import csrf
    from hrm_fhir.web.pages.throttle import SignInThrottle

    settings = service_state(app).settings
    key = settings.secret_key or app.config.get("SECRET_KEY") or ""
    if not key and app.testing:
        key = secrets.token_hex(32)
    if len(key) < MIN_SECRET_KEY:
        reason = (
            "HRM_SECRET_KEY is not set"
            if not key
            else f"HRM_SECRET_KEY is shorter than {MIN_SECRET_KEY} characters"
        )
        app.config[DISABLED] = reason
        logger.warning(
            "the pages are off: %s. %s", reason, TO_TURN_ON, extra={"setting": "HRM_SECRET_KEY"}
        )
    else:
        app.config[DISABLED] = None
        app.secret_key = key
    _unless_given(app, "PERMANENT_SESSION_LIFETIME", timedelta(minutes=settings.session_minutes))
    _unless_given(app, "SESSION_COOKIE_NAME", "hrm_fhir_session")
    _unless_given(app, "SESSION_COOKIE_SAMESITE", "Lax")
    _unless_given(app, "SESSION_COOKIE_SECURE", settings.cookies_secure)
    if not app.config["SESSION_COOKIE_SECURE"]:
        logger.info(
            "the session cookie is not Secure (%s)",
            "HRM_SECURE_COOKIES=false"
            if settings.secure_cookies is False
            else "sandbox: the FHIR server is on this machine",
            extra={"setting": "HRM_SECURE_COOKIES"},
        )
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.extensions[THROTTLE] = SignInThrottle(
        settings.rate_limit_storage,
        settings.sign_in_limit_account,
        settings.sign_in_limit_address,
        _digest_key(app),
    )
    # Checked by the pages blueprint only (the API authenticates with keys, not cookies); a
    # token lives as long as the session that holds it.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    csrf.init_app(app)


def _digest_key(app: Flask) -> bytes:
    """The key of the sign-in digests: the secret key (random when the pages are off)."""
    key = app.secret_key
    if isinstance(key, str):
        return key.encode()
    return key or secrets.token_bytes(32)


def _unless_given(app: Flask, key: str, value: object) -> None:
    """Set ``key`` unless the app was given its own value (it still holds Flask's default)."""
    if key not in app.config or app.config[key] == Flask.default_config.get(key):
        app.config[key] = value


bp.record_once(_setup)
