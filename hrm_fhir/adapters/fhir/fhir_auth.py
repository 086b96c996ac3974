"""Authorization headers for FHIR requests: none, a static bearer token, or SMART Backend Services.

SMART Backend Services (https://hl7.org/fhir/smart-app-launch/backend-services.html): the client
posts a ``client_credentials`` grant authenticated by a JWT it signs with its private key
(``private_key_jwt``) and caches the access token until shortly before ``expires_in`` runs out.
Providers are not thread-safe; give each worker its own gateway.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import jwt
import orjson
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hrm_fhir.config import Settings
from hrm_fhir.errors import FHIRAuthError

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 300
"""Seconds; SMART asks for an ``exp`` no more than five minutes ahead."""
REFRESH_MARGIN = 60.0
"""Seconds before expiry at which a cached token is replaced (at most half its lifetime)."""
DEFAULT_TOKEN_LIFETIME = 300.0
"""Assumed ``expires_in`` when the token response leaves it out."""
_KEY_TYPES: dict[str, type[rsa.RSAPrivateKey] | type[ec.EllipticCurvePrivateKey]] = {
    "RS384": rsa.RSAPrivateKey,
    "ES384": ec.EllipticCurvePrivateKey,
}


class AuthProvider(Protocol):
    """Supplies request headers; ``invalidate`` drops cached credentials after a 401."""

    def headers(self) -> dict[str, str]: ...

    def invalidate(self) -> None: ...


class NoAuth:
    """No Authorization header (the local sandbox)."""

    def headers(self) -> dict[str, str]:
        return {}

    def invalidate(self) -> None:
        """Nothing is cached."""


class BearerToken:
    """A fixed bearer token issued out of band."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("bearer token is empty")
        self._token = token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> None:
        """A fixed token cannot be renewed."""


class SMARTBackendAuth:
    """Access tokens from a SMART Backend Services token endpoint, cached until near expiry."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        private_key_pem: bytes,
        key_id: str,
        algorithm: str = "RS384",
        scope: str = Settings.smart_scope,
        now: Callable[[], float] = time.time,
        session: requests.Session | None = None,
        *,
        timeout: float = 30.0,
    ) -> None:
        if algorithm not in _KEY_TYPES:
            raise ValueError(f"SMART signing algorithm must be one of {sorted(_KEY_TYPES)}")
        try:
            key = serialization.load_pem_private_key(private_key_pem, password=None)
        except (ValueError, TypeError) as exc:
            raise FHIRAuthError("SMART private key is not an unencrypted PEM private key") from exc
        if not isinstance(key, _KEY_TYPES[algorithm]):
            raise FHIRAuthError(f"SMART private key does not fit algorithm {algorithm}")
        self._key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = key
        self._token_url = token_url
        self._client_id = client_id
        self._key_id = key_id
        self._algorithm = algorithm
        self._scope = scope
        self._now = now
        self._session = session
        self._timeout = timeout
        self._token: str | None = None
        self._expires_at = 0.0

    def headers(self) -> dict[str, str]:
        if self._token is None or self._now() >= self._expires_at:
            self._fetch_token()
        return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> None:
        self._token = None

    def client_assertion(self) -> str:
        """A freshly signed JWT identifying this client to the token endpoint."""
        claims = {
            "iss": self._client_id,
            "sub": self._client_id,
            "aud": self._token_url,
            "exp": int(self._now()) + ASSERTION_LIFETIME,
            "jti": uuid.uuid4().hex,
        }
        headers = {"kid": self._key_id, "typ": "JWT"}
        return jwt.encode(claims, self._key, algorithm=self._algorithm, headers=headers)

    def _fetch_token(self) -> None:
        form = {
            "grant_type": "client_credentials",
            "scope": self._scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.client_assertion(),
        }
        requested_at = self._now()
        try:
            if self._session is None:
                with requests.Session() as session:
                    response = self._post(session, form)
            else:
                response = self._post(self._session, form)
        except requests.RequestException as exc:
            raise FHIRAuthError(f"token endpoint unreachable ({type(exc).__name__})") from exc
        body = _json_object(response.content)
        if response.status_code != 200:
            error = _text(body.get("error"))
            description = _text(body.get("error_description"))
            detail = ": ".join(filter(None, (error, description))) or "no error given"
            raise FHIRAuthError(
                f"token endpoint refused the request (HTTP {response.status_code}): {detail}",
                status=response.status_code,
                error=error,
            )
        token = body.get("access_token")
        token_type = _text(body.get("token_type")) or ""
        if not isinstance(token, str) or not token or token_type.lower() != "bearer":
            raise FHIRAuthError("token endpoint response lacks a bearer access_token", status=200)
        expires_in = _seconds(body.get("expires_in", DEFAULT_TOKEN_LIFETIME))
        if expires_in is None:
            raise FHIRAuthError("token endpoint response has an invalid expires_in", status=200)
        self._token = token
        self._expires_at = requested_at + expires_in - min(REFRESH_MARGIN, expires_in / 2)

    def _post(self, session: requests.Session, form: dict[str, str]) -> requests.Response:
        return session.post(
            self._token_url,
            data=form,
            headers={"Accept": "application/json"},
            timeout=self._timeout,
            allow_redirects=False,
        )


def build_auth(settings: Settings) -> AuthProvider:
    """The provider named by ``settings.auth`` (``none`` | ``bearer`` | ``smart``)."""
    if settings.auth == "none":
        return NoAuth()
    if settings.auth == "bearer":
        return BearerToken(settings.bearer_token)
    if settings.auth == "smart":
        required = ("smart_token_url", "smart_client_id", "smart_key_file", "smart_key_id")
        missing = [name for name in required if not getattr(settings, name)]
        if missing:
            raise ValueError(f"SMART auth needs settings: {', '.join(missing)}")
        return SMARTBackendAuth(
            settings.smart_token_url,
            settings.smart_client_id,
            Path(settings.smart_key_file).read_bytes(),
            settings.smart_key_id,
            algorithm=settings.smart_algorithm,
            scope=settings.smart_scope,
            timeout=settings.fhir_timeout,
        )
    raise ValueError(f"unknown auth mode {settings.auth!r}; expected none, bearer or smart")


def _json_object(content: bytes) -> dict[str, object]:
    """The body as a JSON object, or empty when it is not one (error bodies vary)."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _seconds(value: object) -> float | None:
    """A positive number of seconds (some endpoints send ``expires_in`` as a string)."""
    try:
        seconds = float(value) if isinstance(value, int | float | str) else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 < seconds < math.inf else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
