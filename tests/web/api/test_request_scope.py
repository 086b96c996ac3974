"""Each request opens at most one database session and one FHIR gateway, and closes both when it
ends (the API and the pages share ``web/request_scope.py``)."""

from __future__ import annotations

import pytest
from flask import Flask

from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.web.request_scope import db_session, fhir_gateway
from hrm_fhir.web.state import service_state


def test_one_gateway_and_one_session_per_request_closed_when_it_ends(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[FHIRGateway] = []
    monkeypatch.setattr(FHIRGateway, "close", lambda self: closed.append(self))
    with app.test_request_context("/api/v1/findings"):
        gateway, session = fhir_gateway(), db_session()
        assert fhir_gateway() is gateway
        assert db_session() is session
        assert gateway.base_url == service_state(app).settings.fhir_base_url.rstrip("/")
        assert closed == []
    assert closed == [gateway]
    with app.test_request_context("/api/v1/findings"):
        assert fhir_gateway() is not gateway
