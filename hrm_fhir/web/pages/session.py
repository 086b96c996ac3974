"""Who is signed in: sign-in and sign-out, the session's limits, and the role checks of the pages.

Sessions are held server-side (``hrm_fhir/adapters/store/credentials.py``): the signed cookie
carries only a random session id (and the CSRF token). Signing out ends the session on the server,
so a copy of the cookie is worthless from then on; so does disabling the account. A session idle for
longer than ``PERMANENT_SESSION_LIFETIME`` (``HRM_SESSION_MINUTES``, default 30) is over, and so is
one older than ``HRM_SESSION_MAX_HOURS`` (default 12) however busy it is. The account is re-read on
every request, so a changed role applies at once.

Failed sign-ins are throttled per username and per address (``hrm_fhir/web/pages/throttle.py``);
the log names the account only when it exists, and never holds the submitted username as typed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import ParamSpec, TypeVar
from urllib.parse import urlsplit

from flask import current_app, flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import Forbidden

from hrm_fhir.adapters.store.credentials import (
    SessionEnd,
    SessionLimits,
    end_session,
    resume_session,
    start_session,
)
from hrm_fhir.adapters.store.users import User, UserRole, authenticate, is_account
from hrm_fhir.web.pages.blueprint import THROTTLE, bp
from hrm_fhir.web.pages.throttle import SignInThrottle
from hrm_fhir.web.request_scope import db_session
from hrm_fhir.web.state import service_state

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

PUBLIC = frozenset({"pages.sign_in", "pages.static"})
"""Endpoints open without signing in; every other page needs a user."""
SIGN_OFF_ROLES = frozenset({UserRole.PHARMACIST, UserRole.ADMIN})
"""Who may sign off results and decide on non-engagement (as the workflow service checks)."""
ACKNOWLEDGE_ROLES = frozenset({UserRole.GP, UserRole.ADMIN})
CONTACT_ROLES = frozenset({UserRole.TECHNICIAN, UserRole.PHARMACIST, UserRole.ADMIN})
"""Who records contact attempts, bookings and samples."""


def current_user() -> User:
    """The signed-in user (the before-request hook has made sure there is one)."""
    user = g.get("user")
    if not isinstance(user, User):
        raise Forbidden("sign in first")
    return user


def signed_in() -> User | None:
    user = g.get("user")
    return user if isinstance(user, User) else None


def can(user: User | None, roles: frozenset[UserRole]) -> bool:
    return user is not None and user.role in roles


def requires(
    roles: frozenset[UserRole],
) -> Callable[[Callable[P, ResponseReturnValue]], Callable[P, ResponseReturnValue]]:
    """A view decorator: 403 unless the signed-in user has one of ``roles``."""

    def decorate(view: Callable[P, ResponseReturnValue]) -> Callable[P, ResponseReturnValue]:
        @wraps(view)
        def checked(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
            user = current_user()
            if user.role not in roles:
                extra = {"user": user.username, "role": user.role.value}
                logger.warning("page refused for role", extra={**extra, "url": request.endpoint})
                raise Forbidden(f"a {user.role.value} may not do this")
            return view(*args, **kwargs)

        return checked

    return decorate


def idle_limit() -> float:
    return float(current_app.permanent_session_lifetime.total_seconds())


def now() -> datetime:
    """The time now (tests pin it with a ``CLOCK`` callable in app.config)."""
    clock = current_app.config.get("CLOCK")
    moment = clock() if callable(clock) else datetime.now(UTC)
    if not isinstance(moment, datetime):
        raise TypeError("CLOCK must return a datetime")
    return moment


def _limits() -> SessionLimits:
    hours = service_state().settings.session_max_hours
    return SessionLimits(current_app.permanent_session_lifetime, timedelta(hours=hours))


def load_user() -> ResponseReturnValue | None:
    """Before each page: resume the server-side session (ending an idle, expired or disabled
    one), then require a user except on the public pages (a redirect to sign-in, remembering
    where the user was going)."""
    g.user = None
    session_id = session.get("sid")
    if isinstance(session_id, str):
        database = db_session()
        resumed = resume_session(database, session_id, _limits(), now())
        database.commit()
        if isinstance(resumed, User):
            g.user = resumed
        else:
            session.clear()
            flash(_ended_message(resumed), "notice")
    if g.user is None and request.endpoint not in PUBLIC:
        if request.method == "GET":
            return redirect(url_for("pages.sign_in", next=request.full_path.rstrip("?")))
        flash("Sign in again: nothing from your last form was saved.", "notice")
        return redirect(url_for("pages.sign_in"))
    return None


def _ended_message(reason: SessionEnd) -> str:
    if reason is SessionEnd.IDLE:
        return _timed_out_message()
    if reason is SessionEnd.EXPIRED:
        hours = service_state().settings.session_max_hours
        return f"You were signed out {hours:g} hours after signing in. Sign in again."
    if reason is SessionEnd.DISABLED:
        return "Your account is not active. Ask your administrator."
    if reason is SessionEnd.SIGNED_OUT:
        return "This session was signed out. Sign in again."
    return "Your session has ended. Sign in again."


def _timed_out_message() -> str:
    minutes = round(idle_limit() / 60)
    span = f"{minutes} minutes" if minutes >= 2 else f"{round(idle_limit())} seconds"
    return f"You were signed out after {span} without activity."


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site: never another host, scheme or a protocol-relative URL."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target:
        return None
    return target


def home_for(user: User) -> str:
    if user.role == UserRole.PHARMACIST:
        return url_for("pages.review")
    if user.role == UserRole.GP:
        return url_for("pages.escalations")
    return url_for("pages.worklist")


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> ResponseReturnValue:
    target = _safe_next(request.values.get("next"))
    if request.method == "GET":
        user = signed_in()
        if user is not None:
            return redirect(target or home_for(user))
        return render_template("pages/sign_in.html", next=target, username="", error=None)
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    if not username or not password:
        return _refused(target, username, "Enter your username and password.", 400)
    throttle = _throttle()
    address = request.remote_addr or "unknown"
    wait = throttle.wait_seconds(username, address)
    if wait is not None:
        _log_refusal("sign-in locked", username)
        minutes = max(1, round(wait / 60))
        message = (
            "Too many failed sign-ins. Wait "
            + (f"{minutes} minutes" if minutes > 1 else "a minute")
            + " and try again, or ask your administrator."
        )
        page, status = _refused(target, username, message, 429)
        return page, status, {"Retry-After": str(wait)}
    database = db_session()
    user = authenticate(database, username, password)
    if user is None:
        database.commit()
        throttle.failed(username, address)
        _log_refusal("sign-in refused", username)
        message = "The username or password is wrong, or the account is disabled."
        return _refused(target, username, message, 400)
    throttle.succeeded(username)
    session.clear()
    session.permanent = True
    session["sid"] = start_session(database, user, now())
    database.commit()  # the session, and a re-hashed password
    logger.info("signed in", extra={"user": user.username, "role": user.role.value})
    return redirect(target or home_for(user))


def _refused(target: str | None, username: str, error: str, status: int) -> tuple[str, int]:
    page = render_template("pages/sign_in.html", next=target, username=username, error=error)
    return page, status


def _throttle() -> SignInThrottle:
    found = current_app.extensions[THROTTLE]
    if not isinstance(found, SignInThrottle):
        raise TypeError(f"app.extensions[{THROTTLE!r}] is not a SignInThrottle")
    return found


def _log_refusal(message: str, username: str) -> None:
    """The account when it exists, and always a keyed digest of what was typed: never the text
    itself, which may be a password typed into the wrong field."""
    extra = {"attempt": _throttle().attempt_id(username)}
    if is_account(db_session(), username):
        extra["user"] = username.strip().lower()
    logger.warning(message, extra=extra)


@bp.post("/sign-out")
def sign_out() -> ResponseReturnValue:
    user = signed_in()
    session_id = session.get("sid")
    if isinstance(session_id, str):
        database = db_session()
        end_session(database, session_id, now())
        database.commit()
    session.clear()
    if user is not None:
        logger.info("signed out", extra={"user": user.username})
    flash("You have signed out.", "notice")
    return redirect(url_for("pages.sign_in"))


@bp.get("/")
def home() -> ResponseReturnValue:
    return redirect(home_for(current_user()))
