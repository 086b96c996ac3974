"""API-key authentication for ``/api/v1``: header ``X-API-Key``, keys from ``settings.api_keys``.

A ``read`` key may GET; an ``operator`` key may also POST. A missing or unknown key is a 401
and a key without the role a 403. With no keys configured every request is a 401 (fail closed).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from flask import request
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Forbidden, Unauthorized

from hrm_fhir.app import service_state

HEADER = "X-API-Key"
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_RANK = {"read": 1, "operator": 2}


def role_of(given: str, keys: Mapping[str, str]) -> str | None:
    """The role of the key given; every configured key is compared, in constant time."""
    candidate = given.encode("utf-8", "surrogatepass")
    role = None
    for key, key_role in keys.items():
        if hmac.compare_digest(candidate, key.encode("utf-8", "surrogatepass")):
            role = key_role
    return role


def authorise() -> None:
    """``before_request`` hook: raise 401 or 403 unless the key's role allows the method."""
    given = request.headers.get(HEADER, "")
    role = role_of(given, service_state().settings.api_keys) if given else None
    if role is None:
        raise Unauthorized(
            f"a valid {HEADER} header is required",
            www_authenticate=WWWAuthenticate("ApiKey", {"header": HEADER}),
        )
    needed = "read" if request.method in _READ_METHODS else "operator"
    if _RANK.get(role, 0) < _RANK[needed]:
        raise Forbidden(f"this API key lacks the {needed} role")
