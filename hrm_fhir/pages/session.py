"""Who is signed in: sign-in and sign-out, the idle timeout, and the role checks of the pages.

The session (a signed cookie) holds only the username and the time of the last request. The
account is re-read on every request, so disabling a user or changing their role applies at once.
A session idle for longer than ``PERMANENT_SESSION_LIFETIME`` (default 30 minutes) is over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar
from urllib.parse import urlsplit

from flask import current_app, flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import Forbidden

from hrm_fhir.app import db_session
from hrm_fhir.pages import bp
from hrm_fhir.users import User, UserRole, authenticate, get_user

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


def load_user() -> ResponseReturnValue | None:
    """Before each page: end an idle or disabled session, then require a user except on the
    public pages (a redirect to sign-in, remembering where the user was going)."""
    g.user = None
    username = session.get("user")
    now = time.time()
    if isinstance(username, str):
        seen = session.get("seen")
        if not isinstance(seen, int | float) or now - seen > idle_limit():
            session.clear()
            flash(_timed_out_message(), "notice")
        else:
            user = get_user(db_session(), username)
            if user is None:
                session.clear()
                flash("Your account is not active. Ask your administrator.", "notice")
            else:
                g.user = user
                session["seen"] = now
    if g.user is None and request.endpoint not in PUBLIC:
        if request.method == "GET":
            return redirect(url_for("pages.sign_in", next=request.full_path.rstrip("?")))
        flash("Sign in again: nothing from your last form was saved.", "notice")
        return redirect(url_for("pages.sign_in"))
    return None


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
    error = None
    if not username or not password:
        error = "Enter your username and password."
    else:
        database = db_session()
        user = authenticate(database, username, password)
        database.commit()  # keeps a re-hashed password
        if user is None:
            logger.warning("sign-in refused", extra={"user": username[:64]})
            error = "The username or password is wrong, or the account is disabled."
        else:
            session.clear()
            session.permanent = True
            session["user"] = user.username
            session["seen"] = time.time()
            logger.info("signed in", extra={"user": user.username, "role": user.role.value})
            return redirect(target or home_for(user))
    page = render_template("pages/sign_in.html", next=target, username=username, error=error)
    return page, 400


@bp.post("/sign-out")
def sign_out() -> ResponseReturnValue:
    user = signed_in()
    session.clear()
    if user is not None:
        logger.info("signed out", extra={"user": user.username})
    flash("You have signed out.", "notice")
    return redirect(url_for("pages.sign_in"))


@bp.get("/")
def home() -> ResponseReturnValue:
    return redirect(home_for(current_user()))
