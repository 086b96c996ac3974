"""SMART Backend Services end to end over real HTTP: a token endpoint that checks the assertion."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, Response, request
from werkzeug.serving import BaseWSGIServer, make_server

from hrm_fhir.adapters.fhir.fhir_auth import ASSERTION_TYPE, SMARTBackendAuth
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from tests.adapters.fhir.payloads import FHIR_JSON, capability

CLIENT_ID = "hrm-fhir-sweeper"


@dataclass
class Issued:
    """Access tokens the test server handed out, those it still accepts, and assertion ids seen."""

    tokens: list[str] = field(default_factory=list)
    valid: set[str] = field(default_factory=set)
    jtis: list[str] = field(default_factory=list)


def create_server_app(public_key: rsa.RSAPublicKey, issued: Issued) -> Flask:
    app = Flask(__name__)

    @app.post("/token")
    def token() -> tuple[dict[str, object], int]:
        form = request.form
        if (
            form.get("grant_type") != "client_credentials"
            or form.get("client_assertion_type") != ASSERTION_TYPE
        ):
            return {"error": "unsupported_grant_type"}, 400
        try:
            claims = jwt.decode(
                form.get("client_assertion", ""),
                public_key,
                algorithms=["RS384"],
                audience=request.base_url,
                issuer=CLIENT_ID,
                options={"require": ["exp", "jti", "iss", "sub", "aud"]},
            )
        except jwt.InvalidTokenError as exc:
            return {"error": "invalid_client", "error_description": str(exc)}, 400
        if claims["sub"] != CLIENT_ID or claims["jti"] in issued.jtis:
            return {"error": "invalid_client", "error_description": "bad sub or replayed jti"}, 400
        issued.jtis.append(claims["jti"])
        issued.tokens.append(f"tok-{len(issued.tokens) + 1}")
        issued.valid.add(issued.tokens[-1])
        return {"access_token": issued.tokens[-1], "token_type": "bearer", "expires_in": 300}, 200

    def fhir(resource: dict[str, object]) -> Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if (
            scheme != "Bearer"
            or token not in issued.valid
            or request.headers.get("Accept") != FHIR_JSON
        ):
            return Response(status=401)
        return Response(orjson.dumps(resource), mimetype=FHIR_JSON)

    @app.get("/fhir/metadata")
    def metadata() -> Response:
        return fhir(capability({"Task": ("create", "update"), "Flag": ("create", "update")}))

    @app.get("/fhir/Patient/<patient_id>")
    def read_patient(patient_id: str) -> Response:
        return fhir({"resourceType": "Patient", "id": patient_id})

    return app


@pytest.fixture
def issued() -> Issued:
    return Issued()


@pytest.fixture
def server(rsa_key: rsa.RSAPrivateKey, issued: Issued) -> Iterator[str]:
    """The test server's base address, e.g. ``http://127.0.0.1:54321``."""
    httpd: BaseWSGIServer = make_server(
        "127.0.0.1", 0, create_server_app(rsa_key.public_key(), issued)
    )
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_smart_backend_auth_end_to_end_against_a_real_token_endpoint(
    server: str, private_pem: bytes, issued: Issued
) -> None:
    auth = SMARTBackendAuth(f"{server}/token", CLIENT_ID, private_pem, "key-1", timeout=5.0)
    gateway = FHIRGateway(f"{server}/fhir", auth=auth, timeout=5.0, max_retries=0)
    try:
        gateway.require_writable()
        issued.valid.clear()  # the server revokes tok-1: the next call gets a 401
        patient = gateway.read("Patient", "p1")
    finally:
        gateway.close()

    assert patient == {"resourceType": "Patient", "id": "p1"}
    assert issued.tokens == ["tok-1", "tok-2"]
