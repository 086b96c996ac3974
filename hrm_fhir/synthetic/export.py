"""What a GP system's export carries besides the clinical content: meta, a record GUID, a
generated narrative, and the people and organisations involved (by display only).
"""

from __future__ import annotations

import html
import uuid
from datetime import date

from hrm_fhir.synthetic.elements import UCUM, Resource

_PROFILES = {
    kind: f"https://fhir.hl7.org.uk/StructureDefinition/UKCore-{name}"
    for kind, name in (
        ("Patient", "Patient"),
        ("MedicationRequest", "MedicationRequest"),
        ("Observation", "Observation-Lab"),
        ("Medication", "Medication"),
        ("DiagnosticReport", "DiagnosticReport-Lab"),
    )
}


_SYSTEM_ID = "https://fhir.synthetic-gp-system.example/Id/record-guid"


_REPEAT_INFO = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-MedicationRepeatInformation"
)


_NARRATIVE_KEYS = (
    "code",
    "medicationCodeableConcept",
    "valueQuantity",
    "status",
    "authoredOn",
    "effectiveDateTime",
    "birthDate",
    "gender",
    "dosageInstruction",
)


def as_exported(resource: Resource, as_of: date) -> Resource:
    """Add what a GP system's export carries besides the clinical content.

    meta, a record GUID, a generated narrative, and the people and organisations involved (by
    display only, so a server enforcing referential integrity accepts the resources). Derived
    from the resource itself: output stays deterministic and the clinical content is unchanged.
    """
    kind = resource.get("resourceType", "")
    if kind not in _PROFILES or "id" not in resource:
        return resource
    out: Resource = {
        "resourceType": kind,
        "id": resource["id"],
        "meta": {
            "versionId": "1",
            "lastUpdated": f"{as_of.isoformat()}T02:00:00+00:00",
            "source": "urn:hrm-fhir:synthetic-gp-system",
            "profile": [_PROFILES[kind]],
        },
        "text": {"status": "generated", "div": _narrative(resource)},
    }
    out.update({k: v for k, v in resource.items() if k not in out})
    guid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{_SYSTEM_ID}/{kind}/{resource['id']}"))
    out["identifier"] = [*resource.get("identifier", []), {"system": _SYSTEM_ID, "value": guid}]
    if kind == "Patient":
        out["telecom"] = [{"system": "phone", "value": "0113 496 0000", "use": "home"}]
        out["address"] = [
            {
                "use": "home",
                "line": ["1 Synthetic Street"],
                "city": "Testtown",
                "postalCode": "TE5 7ZZ",
            }
        ]
    elif kind == "MedicationRequest":
        out["requester"] = {"display": "Dr A Synthetic (GP)"}
        out["recorder"] = {"display": "Practice Pharmacist (synthetic)"}
        issued = {"url": "numberOfPrescriptionsIssued", "valueUnsignedInt": 1}
        out["extension"] = [{"url": _REPEAT_INFO, "extension": [issued]}]
        dispense = dict(out.get("dispenseRequest") or {})
        dispense.setdefault("numberOfRepeatsAllowed", 5)
        dispense.setdefault(
            "expectedSupplyDuration", {"value": 28, "unit": "day", "system": UCUM, "code": "d"}
        )
        out["dispenseRequest"] = dispense
    elif kind in ("Observation", "DiagnosticReport"):
        out["performer"] = [{"display": "Synthetic Pathology Laboratory"}]
    return out


def _narrative(resource: Resource) -> str:
    """A generated XHTML summary: one table row per top-level clinical element present."""
    rows = []
    for key in _NARRATIVE_KEYS:
        value = resource.get(key)
        if value is None:
            continue
        if isinstance(value, dict):
            scalars = (str(v) for v in value.values() if not isinstance(v, list | dict))
            text = str(value.get("text") or " ".join(scalars))
        elif isinstance(value, list):
            text = "; ".join(str(i.get("text", "")) for i in value if isinstance(i, dict))
        else:
            text = str(value)
        rows.append(f"<tr><th>{html.escape(key)}</th><td>{html.escape(text)}</td></tr>")
    body = "".join(rows)
    return f'<div xmlns="http://www.w3.org/1999/xhtml"><table><tbody>{body}</tbody></table></div>'
