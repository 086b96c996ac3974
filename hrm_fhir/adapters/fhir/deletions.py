"""Resources deleted on the server since a moment, and the patients whose kept records hold a
resource (deleted, or changed so that it may name another patient now).

A change search (``_lastUpdated``) never returns a deleted resource, so without this a result
deleted from a patient's record stays in the snapshot an incremental sweep evaluates, and may
hide an overdue test until the next full sweep (hazard H74). The type-level history
(``GET [base]/Type/_history?_since=``, ids only) lists each deletion as an entry whose request
is a ``DELETE``; the patients to re-read are those whose snapshot holds the deleted resource.
Likewise a result filed to the wrong patient and then moved to the right one stays in the first
patient's snapshot unless that patient is re-read too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import orjson

from hrm_fhir.adapters.fhir.fetch import FetchReport, Resource
from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.adapters.fhir.urls import FHIR_ID
from hrm_fhir.errors import FHIRError, FHIRFatalError


def deleted_since(
    gateway: FHIRGateway,
    resource_types: Iterable[str],
    since: str,
    report: FetchReport,
    *,
    updated: set[str] | None = None,
) -> set[str]:
    """``Type/id`` of every resource of ``resource_types`` deleted after ``since``, as far as
    the server lists them: a type whose history it refuses adds a warning to
    ``report.shortfalls`` (why, and what it means), and the other types are still listed.
    ``updated``, when given, gets each resource the histories show changed past its first
    version: a history is server-wide, where a practice's change searches miss a result moved
    to a patient of another practice."""
    deleted: set[str] = set()
    types = list(dict.fromkeys(resource_types))
    for number, resource_type in enumerate(types):
        params = {"_since": since, "_elements": "id"}
        unnamed = 0
        try:
            for page in gateway.iter_pages(resource_type, params, history=True):
                report.searches += 1
                report.note_time((page.get("meta") or {}).get("lastUpdated"))
                for ref in _deletions(page, resource_type):
                    if ref is None:
                        unnamed += 1
                    else:
                        deleted.add(ref)
                if updated is not None:
                    updated.update(_updates(page, resource_type))
        except FHIRError as error:
            if not _refused(error):
                raise
            # 501: type history not implemented, for any type (asking each costs its retries)
            unlisted = types[number:] if error.status == 501 else [resource_type]
            report.shortfalls.append(
                f"the server did not list the {', '.join(unlisted)} resources deleted since "
                f"{since} ({error}): a deletion from a patient's record is seen at the next full "
                "sweep"
            )
            if error.status == 501:
                break
            continue
        if unnamed:
            report.shortfalls.append(
                f"{unnamed} deletion(s) in the server's {resource_type} history since {since} "
                f"name no {resource_type} id: a deletion from a patient's record is seen at the "
                "next full sweep"
            )
    return deleted


def _refused(error: FHIRError) -> bool:
    """The server will not list the history however often it is asked: a 4xx, or 501 Not
    Implemented (a 5xx, so the gateway retried it as temporary). Anything else that is
    temporary fails the sweep, which is repeated from the same watermark."""
    return isinstance(error, FHIRFatalError) or error.status == 501


def _deletions(page: Resource, resource_type: str) -> Iterable[str | None]:
    """The ``Type/id`` of each deleted version in one history page (``request.url`` is
    ``Type/id/_history/n`` on HAPI; the ``fullUrl`` ends ``Type/id``), None for one that names
    no id of the type. A deleted version is an entry whose request is a ``DELETE``, or one with
    neither resource nor request (a server that leaves out the request R4 asks for)."""
    for entry in page.get("entry") or ():
        request = entry.get("request") or {}
        method = request.get("method")
        if method != "DELETE" and (method is not None or "resource" in entry):
            continue
        for url in (request.get("url"), entry.get("fullUrl")):
            parts = str(url or "").split("/_history/")[0].rstrip("/").split("/")
            if len(parts) >= 2 and parts[-2] == resource_type and FHIR_ID.fullmatch(parts[-1]):
                yield f"{resource_type}/{parts[-1]}"
                break
        else:
            yield None


def _updates(page: Resource, resource_type: str) -> Iterable[str]:
    """The ``Type/id`` of each version past the first in one history page (its resource's
    ``meta.versionId``, else the ``_history/n`` of its request URL; counted when neither says)."""
    for entry in page.get("entry") or ():
        resource = entry.get("resource")
        if not isinstance(resource, dict) or resource.get("resourceType") != resource_type:
            continue
        version = (resource.get("meta") or {}).get("versionId")
        if version is None:
            url = str((entry.get("request") or {}).get("url") or "")
            version = url.partition("/_history/")[2].split("/")[0] or None
        if version != "1":
            yield f"{resource_type}/{resource.get('id')}"


def holders(refs: set[str], snapshots: Mapping[str, bytes]) -> set[str]:
    """The patients whose snapshot holds one of the resources ``refs`` (``Type/id``): the ids
    looked for in the snapshots' bytes (a search per id when there are few, else one pass that
    lists every id of a snapshot), then the candidates parsed to confirm type and id."""
    if not refs:
        return set()
    ids = {ref.split("/", 1)[1].encode() for ref in refs}
    needles = [b'"id":"' + rid + b'"' for rid in ids]
    few = len(needles) <= _FEW_IDS
    found = set()
    for patient, body in snapshots.items():
        if few and not any(needle in body for needle in needles):
            continue
        if not few and ids.isdisjoint(_IDS.findall(body)):
            continue
        held = (f"{r.get('resourceType')}/{r.get('id')}" for r in orjson.loads(body))
        if any(ref in refs for ref in held):
            found.add(patient)
    return found


_FEW_IDS = 8
"""Up to this many ids, a byte search for each beats listing the ids of every snapshot."""
_IDS = re.compile(rb'"id":"([^"\\]{1,64})"')
"""An id as orjson writes it in a snapshot (no spaces; an id never holds quotes)."""
