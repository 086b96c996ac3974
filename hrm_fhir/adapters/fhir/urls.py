"""The paths and URLs the gateway may use: resource types and ids checked before they become a
path, origins compared, and a path read as a server reads it (no dot segments, encoded slashes or
double encoding), so a link from the server cannot lead the gateway off its base URL."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit

RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]+")
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    default_port = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or ""), parts.port or default_port


def server_path(path: str) -> str | None:
    """``path`` percent-decoded, as a server reads it; None when it could step out of its
    folder however the server reads it: a ``.`` or ``..`` segment (also with a ``;param``, which
    some servlet containers drop), a backslash, an encoded slash, a ``%`` left after one decoding
    (double encoding) or a control character."""
    decoded = unquote(path, errors="strict")
    if "%" in decoded or "\\" in decoded or any(ord(c) < 0x20 or c == "\x7f" for c in decoded):
        return None
    if decoded.count("/") != path.count("/"):  # an encoded slash
        return None
    if any(segment.split(";")[0] in (".", "..") for segment in decoded.split("/")):
        return None
    return decoded


def check_type(resource_type: str) -> None:
    if RESOURCE_TYPE.fullmatch(resource_type) is None:
        raise ValueError(f"not a FHIR resource type: {resource_type!r}")


def resource_path(resource_type: str, resource_id: str) -> str:
    check_type(resource_type)
    if FHIR_ID.fullmatch(resource_id) is None or not resource_id.strip("."):
        raise ValueError(f"{resource_type} needs a FHIR id ([A-Za-z0-9-.]{{1,64}})")
    return f"{resource_type}/{resource_id}"


def resource_type_of(resource: dict[str, Any]) -> str:
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise ValueError("resource has no resourceType")
    check_type(resource_type)
    return resource_type
