"""A tiny synthetic practice per test, with ids unique to the test run."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from hrm_fhir.programme import Actor, Role
from hrm_fhir.workflow.resources import arrangement_task
from tests.builders import LOINC, SNOMED, observation, patient, prescription, repeats

AS_OF = date(2026, 11, 27)
FBC, LFT, EGFR, LITHIUM = (
    "1022441000000101",
    "997531000000108",
    "1011481000000105",
    "1006681000000100",
)
TOXIC_LITHIUM = "166957006"
"""SNOMED CT "lithium level high - toxic", a coded finding the lithium pack acts on."""
INR = "6301-6"
"""LOINC INR."""
Resource = dict[str, Any]
Coding = dict[str, str]
ACTIVE = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
    ]
}


class Practice:
    """Builds resources whose ids and references carry the run prefix."""

    def __init__(self, run_id: str) -> None:
        self.run = run_id
        self.org = f"{run_id}-org"
        self._n = 0

    def organization(self) -> Resource:
        return {"resourceType": "Organization", "id": self.org, "name": "Synthetic test practice"}

    def pid(self, name: str) -> str:
        return f"{self.run}-{name}"

    def _rid(self, kind: str) -> str:
        self._n += 1
        return f"{self.run}-{kind}{self._n}"

    def patient(self, name: str, **extra: Any) -> Resource:
        gp = [{"reference": f"Organization/{self.org}"}]
        return patient(self.pid(name), generalPractitioner=gp, **extra)

    def repeats(self, name: str, text: str, start: date, end: date, **kw: Any) -> list[Resource]:
        chain = repeats(text, start, end, pid=self.pid(name), **kw)
        for resource in chain:
            resource["id"] = self._rid("mr")
        return chain

    def prescription(self, name: str, text: str, on: date, **kw: Any) -> Resource:
        return prescription(text, on, pid=self.pid(name), rid=self._rid("mr"), **kw)

    def result(
        self, name: str, code: str, value: float | None, unit: str, on: date, system: str = SNOMED
    ) -> Resource:
        return observation(
            code, value, unit, on, pid=self.pid(name), rid=self._rid("obs"), system=system
        )

    def warfarin(self, name: str, inr: float, born: str = "1960-01-01") -> list[Resource]:
        """A patient on warfarin for two years, with an INR of ``inr`` three days ago."""
        long_ago, recent = AS_OF - timedelta(days=700), AS_OF - timedelta(days=6)
        return [
            self.patient(name, born=born),
            *self.repeats(name, "Warfarin 3mg tablets", long_ago, recent),
            self.result(name, INR, inr, "{INR}", AS_OF - timedelta(days=3), system=LOINC),
        ]

    def entry(self, kind: str, name: str, code: Coding, **fields: Any) -> Resource:
        """A resource of the patient's coded ``code`` (a Condition, Procedure, Flag...)."""
        return {
            "resourceType": kind,
            "id": self._rid(kind.lower()),
            "subject": {"reference": f"Patient/{self.pid(name)}"},
            "code": {"coding": [code]},
            **fields,
        }

    def condition(self, name: str, code: Coding, on: date) -> Resource:
        """An active Condition coded ``code``, from ``on``."""
        return self.entry("Condition", name, code, clinicalStatus=ACTIVE, onsetDateTime=str(on))

    def statement(self, name: str, text: str, since: date, dosage: str) -> Resource:
        """An active MedicationStatement: the patient takes ``text`` since ``since``."""
        return {
            "resourceType": "MedicationStatement",
            "id": self._rid("ms"),
            "status": "active",
            "subject": {"reference": f"Patient/{self.pid(name)}"},
            "medicationCodeableConcept": {"text": text},
            "effectiveDateTime": since.isoformat(),
            "dosage": [{"text": dosage}],
        }

    def inr_goal(self, name: str, low: float, high: float) -> Resource:
        """The patient's own INR target range, as a Goal in force."""
        return {
            "resourceType": "Goal",
            "id": self._rid("goal"),
            "lifecycleStatus": "active",
            "subject": {"reference": f"Patient/{self.pid(name)}"},
            "description": {"text": "INR target range"},
            "target": [
                {
                    "measure": {"coding": [{"system": LOINC, "code": INR}]},
                    "detailRange": {"low": {"value": low}, "high": {"value": high}},
                }
            ],
        }

    def monitored_elsewhere(self, name: str, group: str, by: str, review_on: date) -> Resource:
        """The pharmacist's decision that ``by`` monitors the patient's ``group`` until
        ``review_on`` (the service's arrangement Task, as the workflow writes it)."""
        pharmacist = Actor("pharmacist-1", Role.PHARMACIST, "Pat Pharmacist", self.org)
        return arrangement_task(
            None,
            resource_id=self._rid("arrangement"),
            patient=f"Patient/{self.pid(name)}",
            drug_group=group,
            title=group.capitalize(),
            actor=pharmacist,
            now=datetime.combine(AS_OF, time(9), UTC),
            today=AS_OF,
            elsewhere=(by, review_on),
        )

    def bloods(self, name: str, on: date) -> list[Resource]:
        return [
            self.result(name, FBC, None, "1", on),
            self.result(name, LFT, None, "1", on),
            self.result(name, EGFR, 88, "mL/min/{1.73_m2}", on),
        ]


def lithium_level(practice: Practice, resources: list[Resource], name: str) -> Resource:
    """The one lithium level of patient ``name`` among ``resources``."""
    [level] = [
        r
        for r in resources
        if r["resourceType"] == "Observation"
        and r["subject"]["reference"] == f"Patient/{practice.pid(name)}"
        and r["code"]["coding"][0]["code"] == LITHIUM
    ]
    return level


def starter(practice: Practice) -> list[Resource]:
    """Four patients: methotrexate bloods overdue, lithium toxic level, high-dose opioid, none."""
    return [practice.organization(), *_four(practice, "")]


def several(practice: Practice, copies: int) -> list[Resource]:
    """``copies`` times the starter's four patients (named ``mtx0``, ``lith0``... ``mtx1``...)."""
    return [practice.organization(), *(r for n in range(copies) for r in _four(practice, str(n)))]


def _four(p: Practice, n: str) -> list[Resource]:
    long_ago, recent = AS_OF - timedelta(days=700), AS_OF - timedelta(days=6)
    return [
        p.patient(f"mtx{n}"),
        *p.repeats(
            f"mtx{n}", "Methotrexate 2.5mg tablets", long_ago, recent, dosage="10mg once weekly"
        ),
        *p.bloods(f"mtx{n}", AS_OF - timedelta(days=120)),
        p.patient(f"lith{n}", born="1970-05-05"),
        *p.repeats(
            f"lith{n}",
            "Lithium carbonate 400mg MR tablets",
            long_ago,
            recent,
            dosage="800mg at night",
        ),
        p.result(f"lith{n}", LITHIUM, 1.6, "mmol/L", AS_OF - timedelta(days=2)),
        *p.bloods(f"lith{n}", AS_OF - timedelta(days=30)),
        p.patient(f"opioid{n}"),
        *p.repeats(
            f"opioid{n}",
            "Morphine sulfate 60mg modified-release tablets",
            long_ago,
            recent,
            dosage="60mg twice daily",
        ),
        p.patient(f"statin{n}"),
        *p.repeats(f"statin{n}", "Atorvastatin 20mg tablets", long_ago, recent),
    ]
