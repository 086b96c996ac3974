"""Fixtures for the gateway tests: a strict ``responses`` mock and a gateway that never sleeps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from tests.adapters.fhir.payloads import BASE


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


@pytest.fixture
def sleeps() -> list[float]:
    """Every delay the gateway asked to sleep, in order."""
    return []


@pytest.fixture
def gateway(sleeps: list[float]) -> Iterator[FHIRGateway]:
    gw = FHIRGateway(BASE, timeout=7.5, max_retries=3, sleep=sleeps.append, page_size=20)
    yield gw
    gw.close()


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def private_pem(rsa_key: rsa.RSAPrivateKey) -> bytes:
    return rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
