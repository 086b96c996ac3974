"""Who calls ``/api/v1``, and what they may see and do (docs/service.md, "Authentication").

Each request carries exactly one credential:

- ``X-API-Key``: a key from ``settings.api_keys`` with its grant (``config.parse_grant``): a role
  and, optionally, the one practice it is bound to. ``read`` may GET; ``operator`` may also start
  sweeps; ``integration`` may also take the workflow actions, for the user it names in
  ``X-Acting-User``: it is trusted to assert identities, as a clinical system that signs its
  users in itself is. No other key may name a user.
- ``Authorization: Bearer hrmu_...``: a person's own token (``hrm-fhir users token``). It acts as
  that person: GET, and the workflow actions their role allows; never sweeps.

A caller bound to a practice (the key's, the person's, or both, which must agree) sees only that
practice: its lists, reports and findings; another practice's patient is a 404, as for none.
A missing, unknown or doubled credential is a 401; a credential without the right a 403. With no
keys configured and no token given every request is a 401 (fail closed).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from flask import g, request
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Forbidden, NotFound, Unauthorized

from hrm_fhir.adapters.store.credentials import user_for_token
from hrm_fhir.adapters.store.users import User, get_user
from hrm_fhir.config import KeyGrant, parse_grant
from hrm_fhir.programme import Actor, Role
from hrm_fhir.web.api.workflow_schemas import ACTING_USER
from hrm_fhir.web.request_scope import db_session
from hrm_fhir.web.state import service_state

HEADER = "X-API-Key"
BEARER = "Bearer "
PERSON = "person"
"""The role of a caller with a personal token."""
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_POSTS = {
    "operator": frozenset({"api.sweeps"}),
    "integration": frozenset({"api.workflow"}),
    PERSON: frozenset({"api.workflow"}),
}
"""Which blueprints each role may POST to."""


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of this request."""

    role: str
    """``read``, ``operator``, ``integration`` or ``person``."""
    practice: str | None
    """The Organization id the caller is bound to; None sees every practice."""
    actor: Actor | None
    """The person acting: the token's owner, or the user an integration key names."""

    @property
    def organization(self) -> str | None:
        return None if self.practice is None else f"Organization/{self.practice}"


def grant_of(given: str, keys: Mapping[str, str]) -> KeyGrant | None:
    """The grant of the key given; every configured key is compared, in constant time."""
    candidate = given.encode("utf-8", "surrogatepass")
    grant = None
    for key, text in keys.items():
        if hmac.compare_digest(candidate, key.encode("utf-8", "surrogatepass")):
            grant = parse_grant(text)
    return grant


def _challenge(message: str) -> Unauthorized:
    return Unauthorized(
        message,
        www_authenticate=[
            WWWAuthenticate("ApiKey", {"header": HEADER}),
            WWWAuthenticate("Bearer", {"realm": "hrm-fhir"}),
        ],
    )


def _actor(user: User, practice: str | None) -> Actor:
    return Actor(user.username, Role(user.role.value), user.display_name, practice)


def _bound(key_practice: str | None, user: User) -> str | None:
    """The practice of a key and its user together; 403 when they disagree."""
    if key_practice is not None and user.practice not in (None, key_practice):
        raise Forbidden("this user works for another practice than the API key is bound to")
    return key_practice or user.practice


def _key_caller(given: str) -> Caller:
    grant = grant_of(given, service_state().settings.api_keys)
    if grant is None:
        raise _challenge(f"a valid {HEADER} header or a personal bearer token is required")
    named = request.headers.get(ACTING_USER)
    if named is None:
        return Caller(grant.role, grant.practice, None)
    if grant.role != "integration":
        raise Forbidden(
            f"only an integration key may name a user in {ACTING_USER}; a person sends "
            "their own token (Authorization: Bearer)"
        )
    user = get_user(db_session(), named) if named else None
    if user is None:
        raise _challenge(f"{ACTING_USER} must name an active user")
    practice = _bound(grant.practice, user)
    return Caller(grant.role, practice, _actor(user, practice))


def _token_caller(token: str) -> Caller:
    if ACTING_USER in request.headers:
        raise Forbidden(f"a personal token names its user: send no {ACTING_USER}")
    session = db_session()
    user = user_for_token(session, token)
    session.commit()  # keeps the token's last use
    if user is None:
        raise _challenge("the bearer token is unknown, expired or revoked, or its user disabled")
    return Caller(PERSON, user.practice, _actor(user, user.practice))


def authorise() -> None:
    """``before_request`` hook: identify the caller (``g.caller``), then 401 or 403 unless they
    may make this request."""
    key = request.headers.get(HEADER)
    authorization = request.headers.get("Authorization")
    if key is not None and authorization is not None:
        raise _challenge(f"send one credential: {HEADER} or Authorization, not both")
    if authorization is not None and authorization.startswith(BEARER):
        caller = _token_caller(authorization.removeprefix(BEARER).strip())
    elif key:
        caller = _key_caller(key)
    else:
        raise _challenge(f"a valid {HEADER} header or a personal bearer token is required")
    g.caller = caller
    if request.method in _READ_METHODS:
        return
    if request.blueprint not in _POSTS.get(caller.role, frozenset()):
        raise Forbidden(f"a {caller.role} credential may not {request.method} here")
    settings = service_state().settings
    if request.blueprint == "api.sweeps" and caller.practice not in (None, settings.practice):
        raise Forbidden("this API key is bound to a practice the sweep does not cover")


def caller() -> Caller:
    """This request's caller (``authorise`` has run)."""
    found = g.get("caller")
    if not isinstance(found, Caller):
        raise _challenge("not authenticated")
    return found


def acting_user() -> Actor:
    """The person this request acts for; 401 when the credential names none."""
    actor = caller().actor
    if actor is None:
        raise _challenge(
            "this endpoint acts for a person: send their token (Authorization: Bearer) or an "
            f"integration key with {ACTING_USER}"
        )
    return actor


def scoped_practice(asked: str | None) -> str | None:
    """The practice (``Organization/<id>``) a list or report covers: the caller's own when they
    are bound to one (asking for another is a 403), else the one asked for (or None)."""
    own = caller().organization
    if own is None:
        return asked if asked is None or "/" in asked else f"Organization/{asked}"
    if asked is not None and asked.removeprefix("Organization/") != caller().practice:
        raise Forbidden("this credential is bound to another practice")
    return own


def require_visible(general_practitioners: frozenset[str], missing: str) -> None:
    """404 (``missing``, as for no such patient) unless the caller may see a patient registered
    with these practices (``Organization/<id>`` references)."""
    own = caller().organization
    if own is not None and own not in general_practitioners:
        raise NotFound(missing)
