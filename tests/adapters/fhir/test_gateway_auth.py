"""Auth providers: bearer header, SMART Backend Services tokens (assertion, caching, refresh)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import jwt
import pytest
import responses
from cryptography.hazmat.primitives.asymmetric import rsa
from responses import matchers

from hrm_fhir.adapters.fhir.fhir_auth import BearerToken, NoAuth, SMARTBackendAuth, build_auth
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.config import Settings
from hrm_fhir.errors import FHIRAuthError, FHIRFatalError
from tests.adapters.fhir.payloads import BASE, patient

TOKEN_URL = "https://auth.test/token"  # noqa: S105 - an address, not a secret
CLIENT_ID = "hrm-fhir-sweeper"


class Clock:
    """A settable clock for ``now=``."""

    def __init__(self) -> None:
        self.time = 1_800_000_000.0

    def __call__(self) -> float:
        return self.time


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def smart(private_pem: bytes, clock: Clock, sleeps: list[float]) -> Iterator[FHIRGateway]:
    auth = SMARTBackendAuth(TOKEN_URL, CLIENT_ID, private_pem, "key-1", now=clock)
    gateway = FHIRGateway(BASE, auth=auth, sleep=sleeps.append)
    yield gateway
    gateway.close()


def token_reply(token: str, expires_in: int = 300) -> dict[str, object]:
    return {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": "system/Task.cruds",
    }


def bearer(token: str) -> list[object]:
    return [matchers.header_matcher({"Authorization": f"Bearer {token}"})]


def test_no_auth_sends_no_authorization_header(
    mock: responses.RequestsMock, gateway: FHIRGateway
) -> None:
    mock.get(f"{BASE}/Patient/p1", json=patient(1))

    gateway.read("Patient", "p1")

    assert "Authorization" not in mock.calls[0].request.headers


def test_bearer_token_header_is_sent(mock: responses.RequestsMock) -> None:
    gateway = FHIRGateway(BASE, auth=BearerToken("s3cret"))
    mock.get(f"{BASE}/Patient/p1", json=patient(1), match=bearer("s3cret"))

    assert gateway.read("Patient", "p1") == patient(1)
    gateway.close()


def test_smart_token_request_carries_a_signed_client_assertion(
    mock: responses.RequestsMock, smart: FHIRGateway, rsa_key: rsa.RSAPrivateKey, clock: Clock
) -> None:
    token_call = mock.post(
        TOKEN_URL,
        json=token_reply("tok-1"),
        match=[
            matchers.urlencoded_params_matcher(
                {
                    "grant_type": "client_credentials",
                    "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    "scope": Settings.smart_scope,
                },
                allow_blank=True,
                strict_match=False,
            )
        ],
    )
    mock.get(f"{BASE}/Patient/p1", json=patient(1), match=bearer("tok-1"))

    smart.read("Patient", "p1")

    form = parse_qs(str(token_call.calls[0].request.body))
    assertion = form["client_assertion"][0]
    claims = jwt.decode(
        assertion,
        rsa_key.public_key(),
        algorithms=["RS384"],
        audience=TOKEN_URL,
        issuer=CLIENT_ID,
        options={"verify_exp": False, "require": ["exp", "jti", "iss", "sub", "aud"]},
    )
    assert claims["sub"] == CLIENT_ID
    assert 0 < claims["exp"] - clock.time <= 300
    assert jwt.get_unverified_header(assertion) == {"alg": "RS384", "kid": "key-1", "typ": "JWT"}


def test_smart_assertions_have_unique_jti(private_pem: bytes) -> None:
    auth = SMARTBackendAuth(TOKEN_URL, CLIENT_ID, private_pem, "key-1")
    jtis = {
        jwt.decode(auth.client_assertion(), options={"verify_signature": False})["jti"]
        for _ in range(3)
    }

    assert len(jtis) == 3


def test_smart_token_is_cached_across_fhir_calls(
    mock: responses.RequestsMock, smart: FHIRGateway
) -> None:
    token_call = mock.post(TOKEN_URL, json=token_reply("tok-1"))
    mock.get(f"{BASE}/Patient/p1", json=patient(1), match=bearer("tok-1"))

    smart.read("Patient", "p1")
    smart.read("Patient", "p1")

    assert token_call.call_count == 1


def test_smart_token_is_refreshed_before_it_expires(
    mock: responses.RequestsMock, smart: FHIRGateway, clock: Clock
) -> None:
    mock.post(TOKEN_URL, json=token_reply("tok-1", expires_in=300))
    mock.post(TOKEN_URL, json=token_reply("tok-2", expires_in=300))
    first = mock.get(f"{BASE}/Patient/p1", json=patient(1), match=bearer("tok-1"))
    second = mock.get(f"{BASE}/Patient/p1", json=patient(1), match=bearer("tok-2"))

    smart.read("Patient", "p1")
    clock.time += 200  # within expires_in minus the 60 s margin
    smart.read("Patient", "p1")
    clock.time += 41  # 241 s: inside the margin, so renewed
    smart.read("Patient", "p1")

    assert (first.call_count, second.call_count) == (2, 1)


def test_smart_401_invalidates_the_token_and_retries_once(
    mock: responses.RequestsMock, smart: FHIRGateway, sleeps: list[float]
) -> None:
    mock.post(TOKEN_URL, json=token_reply("tok-1"))
    mock.post(TOKEN_URL, json=token_reply("tok-2"))
    mock.get(f"{BASE}/Patient/p1", status=401, match=bearer("tok-1"))
    mock.get(f"{BASE}/Patient/p1", json=patient(1), match=bearer("tok-2"))

    assert smart.read("Patient", "p1") == patient(1)
    assert sleeps == []


def test_second_401_in_a_row_is_fatal(mock: responses.RequestsMock, smart: FHIRGateway) -> None:
    token_call = mock.post(TOKEN_URL, json=token_reply("tok-1"))
    fhir_call = mock.get(f"{BASE}/Patient/p1", status=401)

    with pytest.raises(FHIRFatalError) as raised:
        smart.read("Patient", "p1")

    assert raised.value.status == 401
    assert (token_call.call_count, fhir_call.call_count) == (2, 2)


def test_token_endpoint_error_raises_auth_error(
    mock: responses.RequestsMock, smart: FHIRGateway
) -> None:
    mock.post(
        TOKEN_URL,
        status=400,
        json={"error": "invalid_client", "error_description": "unknown key id key-1"},
    )

    with pytest.raises(FHIRAuthError, match="invalid_client: unknown key id key-1") as raised:
        smart.read("Patient", "p1")

    assert (raised.value.status, raised.value.error) == (400, "invalid_client")


@pytest.mark.parametrize(
    "reply",
    [
        {"token_type": "bearer"},
        {"access_token": "t", "token_type": "mac"},
        {"access_token": "t", "token_type": "bearer", "expires_in": -5},
    ],
)
def test_unusable_token_response_raises_auth_error(
    mock: responses.RequestsMock, smart: FHIRGateway, reply: dict[str, object]
) -> None:
    mock.post(TOKEN_URL, json=reply)

    with pytest.raises(FHIRAuthError):
        smart.read("Patient", "p1")


def test_smart_refuses_a_key_that_does_not_fit_the_algorithm(private_pem: bytes) -> None:
    with pytest.raises(FHIRAuthError, match="does not fit algorithm ES384"):
        SMARTBackendAuth(TOKEN_URL, CLIENT_ID, private_pem, "key-1", algorithm="ES384")
    with pytest.raises(FHIRAuthError, match="not an unencrypted PEM"):
        SMARTBackendAuth(TOKEN_URL, CLIENT_ID, b"not a key", "key-1")


def test_from_settings_builds_the_named_auth(private_pem: bytes, tmp_path: Path) -> None:
    key_file = tmp_path / "smart.pem"
    key_file.write_bytes(private_pem)
    smart = Settings(
        auth="smart",
        smart_token_url=TOKEN_URL,
        smart_client_id=CLIENT_ID,
        smart_key_file=str(key_file),
        smart_key_id="key-1",
    )

    assert isinstance(build_auth(Settings()), NoAuth)
    bearer_settings = Settings(auth="bearer", bearer_token="t")  # noqa: S106 - a test token
    assert build_auth(bearer_settings).headers() == {"Authorization": "Bearer t"}
    assert isinstance(build_auth(smart), SMARTBackendAuth)
    gateway = FHIRGateway.from_settings(smart.with_overrides({"fhir_base_url": f"{BASE}/"}))
    assert gateway.base_url == BASE
    gateway.close()
    with pytest.raises(ValueError, match="smart_key_file"):
        build_auth(
            Settings(
                auth="smart", smart_token_url=TOKEN_URL, smart_client_id=CLIENT_ID, smart_key_id="k"
            )
        )
    with pytest.raises(ValueError, match="unknown auth mode"):
        build_auth(Settings(auth="basic"))


def test_from_settings_uses_timeout_and_page_size(mock: responses.RequestsMock) -> None:
    gateway = FHIRGateway.from_settings(
        Settings(fhir_base_url=BASE, fhir_timeout=3.0, page_size=50)
    )
    mock.get(
        f"{BASE}/Patient",
        json={"resourceType": "Bundle", "type": "searchset"},
        match=[matchers.query_param_matcher({"_count": "50"})],
    )

    gateway.search("Patient", {})

    assert mock.calls[0].request.req_kwargs["timeout"] == 3.0  # type: ignore[attr-defined]
    gateway.close()
