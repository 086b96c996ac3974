"""hrm-fhir: high-risk drug monitoring on FHIR R4.

``create_app`` is here so that ``flask --app hrm_fhir`` finds the factory; it imports Flask only
when called, so ``import hrm_fhir.rules`` and the offline CLI stay free of the web stack.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """The Flask application (see ``hrm_fhir.web.app.create_app``)."""
    from hrm_fhir.web.app import create_app as factory

    return factory(overrides)


__all__ = ["create_app"]
