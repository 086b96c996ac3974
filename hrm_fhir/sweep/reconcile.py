"""Does the FHIR server still hold what the ledger says the service wrote there?

Every sweep starts here, before it reads any record:

- the service's open Tasks and its Flags in scope are read in bulk by the service's tag (two
  searches, paged), and any resource the ledger holds open that those searches did not return
  (closed by someone, or its patient moved practice) is looked up by id, fifty to a search;
  what is still not found is missing and will be written again (``repaired``);
- the server's identity: each ledger keeps a marker on the server per scope (a ``Basic`` with
  a random id, written after its first completed sweep). A server without it, or one that holds
  none of the resources the ledger holds open, has been reset or replaced: the sweep says so
  and reconciles in full (every record re-read, every resource checked), whatever the
  watermark says.

A server's CapabilityStatement cannot tell a reset from a restart (HAPI gives it a new id and
date at every start, whether or not its data survived), so the marker is the identity.
"""

from __future__ import annotations

import html
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from hrm_fhir import terminology as t
from hrm_fhir.adapters.fhir.fetch import FetchReport, Scope, our_open_resources, resources_by_id
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.store.records import FindingRecord
from hrm_fhir.errors import FHIRCapabilityError, FHIRError, FHIRFatalError

Resource = dict[str, Any]
MARKER_TYPE = "Basic"
MARKER_CODE = "server-marker"
log = logging.getLogger(__name__)


@dataclass
class ServerState:
    """What the server holds of the service's resources, as a sweep finds it before reading."""

    copies: dict[str, Resource]
    """The server's copy of each of the service's resources read so far, keyed ``Type/id``."""
    missing: set[str]
    """Resources the ledger holds open that the server does not hold."""
    reset: str | None
    """Why the server looks reset or replaced; None when it is the server the ledger knows."""
    warnings: list[str]


def ledger_key(record: FindingRecord) -> str:
    return f"{record.resource_type.value}/{record.resource_id}"


def check_server(
    gateway: FHIRGateway,
    scope: Scope,
    report: FetchReport,
    open_records: Iterable[FindingRecord],
    marker: str | None,
) -> ServerState:
    """The server's copies of the service's open resources, what the ledger holds open that the
    server lacks, and whether the server was reset (see the module docstring)."""
    copies = our_open_resources(gateway, scope, report)
    expected = {ledger_key(record) for record in open_records}
    copies.update(resources_by_id(gateway, expected - copies.keys(), report))
    missing = expected - copies.keys()
    reset, warnings = None, []
    try:
        lost = marker is not None and gateway.read(MARKER_TYPE, marker) is None
    except FHIRFatalError as exc:
        lost = False
        warnings.append(f"the server marker could not be read (HTTP {exc.status})")
    if lost:
        reset = f"the server no longer holds this ledger's marker {MARKER_TYPE}/{marker}"
    elif expected and missing == expected:
        reset = f"none of the {len(expected)} Tasks and Flags the ledger holds open is on it"
    return ServerState(copies, missing, reset, warnings)


def new_marker_id() -> str:
    return f"hrm-marker-{uuid.uuid4().hex}"


def marker_resource(marker: str, scope: Scope, created: date) -> Resource:
    """The ``Basic`` a ledger keeps on the server to recognise it after a reset."""
    text = html.escape(
        f"Written by hrm-fhir ({scope.label}) to tell this server from a reset or replaced one. "
        "Please leave it: without it the next sweep re-reads and re-checks everything."
    )
    return {
        "resourceType": MARKER_TYPE,
        "id": marker,
        "meta": {"tag": [{"system": t.TAG, "code": "hrm-fhir"}]},
        "text": {
            "status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{text}</p></div>',
        },
        "identifier": [{"system": t.SERVER_MARKER_IDENTIFIER, "value": marker}],
        "code": {
            "coding": [{"system": t.TAG, "code": MARKER_CODE}],
            "text": "hrm-fhir server marker",
        },
        "created": created.isoformat(),
    }


def keep_marker(gateway: FHIRGateway, marker: str, scope: Scope, created: date) -> str | None:
    """Write the marker (``PUT``, so writing it again is harmless); why not, or None when done.

    A server that cannot store a ``Basic`` still works: a reset is then recognised only when
    none of the resources the ledger holds open is on it.
    """
    try:
        gateway.require_writable((MARKER_TYPE,))
        gateway.update(marker_resource(marker, scope, created))
    except (FHIRError, FHIRCapabilityError) as exc:
        log.warning("server marker not written: %s", type(exc).__name__)
        return (
            f"the server marker could not be written ({type(exc).__name__}): a reset is "
            "recognised only when every resource the ledger holds open is missing"
        )
    return None
