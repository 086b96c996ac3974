"""One synthetic patient's resources (Patient, Medications, MedicationRequests, Observations and
DiagnosticReports) built from its plan, every choice drawn from the practice's one random source.
"""

from __future__ import annotations

import copy
import random
from datetime import date, timedelta

from hrm_fhir.synthetic.elements import (
    LOINC,
    NHS_NUMBER,
    SNOMED,
    Resource,
    dates_every,
    instant,
    quantity,
)
from hrm_fhir.synthetic.groups import (
    ANALYTES,
    DIAZEPAM,
    FBC,
    GROUP_NAMES,
    GROUPS,
    HIGH_OME,
    LEFLUNOMIDE,
    MTX_DAILY,
    PREGABALIN,
    TRIMETHOPRIM,
    UNMONITORED,
    Dose,
    Group,
    Product,
    analyte_value,
    concept,
    dosage,
    medication_body,
    previous_dose,
)
from hrm_fhir.synthetic.plans import NON_COUNTING, Plan

_COURSE = "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy"


_OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


_REPORT_CATEGORY = "http://terminology.hl7.org/CodeSystem/v2-0074"


class PatientBuilder:
    """Build one patient's resources from a plan, drawing every choice from the shared rng."""

    def __init__(self, rng: random.Random, seed: int, number: int, as_of: date, plan: Plan) -> None:
        self.rng = rng
        self.key = f"{seed}-{number}"
        self.practice = f"Organization/practice-{seed}"
        self.as_of = as_of
        self.plan = plan
        self.flags = plan.flags
        self.serial = 0
        self.medications: list[Resource] = []
        self.requests: list[Resource] = []
        self.observations: list[Resource] = []
        self.reports: list[Resource] = []

    def build(self, nhs_number: str) -> list[Resource]:
        group = GROUPS[self.plan.group] if self.plan.group else None
        age = self._age(group)
        end = self.as_of
        patient = self._patient(nhs_number, age, group)
        if "deceased" in self.flags:
            end = self.as_of - timedelta(days=self.rng.randint(20, 400))
            patient["deceasedDateTime"] = instant(end, "14:00:00")
        if group is None:
            self._unmonitored(end)
        else:
            self._monitored(group, end)
        malformed = self._malformed()
        return [
            patient,
            *self.medications,
            *self.requests,
            *self.observations,
            *self.reports,
            *malformed,
        ]

    # -- identity
    def _id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.key}-{self.serial}"

    def _subject(self) -> Resource:
        return {"reference": f"Patient/p-{self.key}"}

    def _age(self, group: Group | None) -> int:
        if "low_crcl" in self.flags:
            return self.rng.randint(82, 93)
        if "age65" in self.flags:
            return self.rng.randint(66, 88)
        low, high = group.ages if group else (18, 95)
        return self.rng.randint(low, high)

    def _patient(self, nhs_number: str, age: int, group: Group | None) -> Resource:
        born = self.as_of - timedelta(days=age * 365 + age // 4 + self.rng.randint(1, 360))
        gender = self.rng.choice(("female", "male")) if self.rng.random() > 0.005 else "unknown"
        label = f"{group.name if group else 'unmonitored'} {self.plan.phase.replace('_', ' ')}"
        return {
            "resourceType": "Patient",
            "id": f"p-{self.key}",
            "identifier": [{"system": NHS_NUMBER, "value": nhs_number}],
            "name": [{"family": "Testpatient", "given": [label.title()]}],
            "gender": gender,
            "birthDate": born.isoformat(),
            "generalPractitioner": [{"reference": self.practice}],
            "managingOrganization": {"reference": self.practice},
        }

    # -- prescribing
    def _unmonitored(self, end: date) -> None:
        count = 1 if self.rng.random() < 0.7 else 2
        for product in self.rng.sample(UNMONITORED, count):
            start = end - timedelta(days=self.rng.randint(0, 27) + 28 * self.rng.randint(0, 1))
            dates = dates_every(start, end, 28)
            self._chain([(product, product.doses[0])] * len(dates), dates)
        if self.rng.random() < 0.35:
            key = self.rng.choice(("cholesterol", "hba1c", "weight", "bp"))
            day = end - timedelta(days=self.rng.randint(30, 700))
            self.observations.extend(self._draw(day, (key,), {}))
        if self.flags.intersection(NON_COUNTING):
            group = GROUPS[self.rng.choice(GROUP_NAMES)]
            product = self.rng.choice(group.products)
            self._non_counting(product, product.doses[0], end)

    def _monitored(self, group: Group, end: date) -> None:
        rng = self.rng
        product = rng.choice(HIGH_OME if "high_ome" in self.flags else group.products)
        dose = MTX_DAILY if "daily" in self.flags else rng.choice(product.doses)
        dates, change = self._issue_dates(group, end)
        items = [(product, dose)] * len(dates)
        previous = previous_dose(product, dose, group)
        if change is not None and previous is not None:
            items[:change] = [previous] * change
        elif change is not None:
            change = None
        representation = next(
            (f for f in ("med_ref", "contained", "text_only") if f in self.flags), "coded"
        )
        self._chain(items, dates, representation)
        self._companions(dates, end)
        self._non_counting(product, dose, dates[-1])
        latest = self._latest_check(group, dates, change, end)
        if latest is not None and group.panel:
            self._bloods(group, latest, end)
        if latest is not None and group.review:
            self._review(group, latest, end)

    def _issue_dates(self, group: Group, end: date) -> tuple[list[date], int | None]:
        """Issue dates, oldest first, and the index of the first request after a dose change."""
        rng, phase = self.rng, self.plan.phase
        if phase == "new":
            return dates_every(end - timedelta(days=rng.randint(3, 41)), end, 28), None
        if phase == "recent":
            span = rng.randint(45, 180)
            return dates_every(end - timedelta(days=span), end, 28 * (span // 84 + 1)), None
        if phase == "stopped":
            last = end - timedelta(days=rng.randint(400, 1500))
            count = rng.randint(2, 3)
            return [last - timedelta(days=28 * (count - 1 - i)) for i in range(count)], None
        span = rng.randint(*group.course)
        gaps = 2 if span <= 336 else 3
        last = end - timedelta(days=rng.randint(0, 27))
        if phase == "dose_change":
            last = end - timedelta(days=rng.randint(7, 70))
        dates = [last - timedelta(days=span * (gaps - i) // gaps) for i in range(gaps + 1)]
        if phase != "dose_change":
            return dates, None
        return [*dates[:-1], *dates_every(last, end, 28)], gaps

    def _chain(
        self,
        items: list[tuple[Product, Dose]],
        dates: list[date],
        representation: str = "coded",
        course: str = "continuous",
    ) -> None:
        """A repeat chain: completed issues, the latest active (or stopped when therapy ended)."""
        final = "stopped" if self.plan.phase == "stopped" and course == "continuous" else "active"
        med_ids: dict[str, str] = {}
        for index, (day, (product, dose)) in enumerate(zip(dates, items, strict=True)):
            status = final if index == len(dates) - 1 else "completed"
            if representation == "med_ref" and product.text not in med_ids:
                med_ids[product.text] = self._medication_resource(product)
            medication = self._medication(product, representation, med_ids.get(product.text))
            self.requests.append(self._request(product, day, dose, status, course, medication))

    def _medication_resource(self, product: Product) -> str:
        """A separate Medication resource for ``medicationReference``; returns its id."""
        med_id = self._id("med")
        self.medications.append(
            {"resourceType": "Medication", "id": med_id, **medication_body(product)}
        )
        return med_id

    def _medication(
        self, product: Product, representation: str, med_id: str | None = None
    ) -> tuple[str, Resource]:
        """How a request names its medication: (element name, value), fresh dicts each time."""
        if representation == "text_only":
            return "medicationCodeableConcept", {"text": product.text}
        if representation == "contained":
            return "#med", {"resourceType": "Medication", "id": "med", **medication_body(product)}
        if med_id is not None:
            return "medicationReference", {"reference": f"Medication/{med_id}"}
        return "medicationCodeableConcept", concept(product)

    def _request(
        self,
        product: Product,
        day: date,
        dose: Dose,
        status: str,
        course: str,
        medication: tuple[str, Resource],
        intent: str = "order",
    ) -> Resource:
        request: Resource = {
            "resourceType": "MedicationRequest",
            "id": self._id("mr"),
            "status": status,
            "intent": intent,
            "subject": self._subject(),
            "authoredOn": day.isoformat(),
            "courseOfTherapyType": {"coding": [{"system": _COURSE, "code": course}]},
            "dosageInstruction": [dosage(product, dose, structured="structured" in self.flags)],
        }
        kind, value = medication
        if kind == "#med":
            request["contained"] = [value]
            request["medicationReference"] = {"reference": "#med"}
        else:
            request[kind] = value
        return request

    def _companions(self, dates: list[date], end: date) -> None:
        """Interacting co-prescriptions: opioid + benzodiazepine or gabapentinoid, MTX + others."""
        for flag, product in (
            ("benzo", DIAZEPAM),
            ("with_gabapentinoid", PREGABALIN),
            ("with_leflunomide", LEFLUNOMIDE),
        ):
            if flag in self.flags:
                self._chain([(product, self.rng.choice(product.doses))] * len(dates), dates)
        if "with_trimethoprim" in self.flags:
            day = end - timedelta(days=self.rng.randint(0, 10))
            self._chain([(TRIMETHOPRIM, TRIMETHOPRIM.doses[0])], [day], course="acute")

    def _non_counting(self, product: Product, dose: Dose, day: date) -> None:
        """Requests the engine must ignore: entered in error, cancelled, draft, proposal."""
        for flag, status, intent in (
            ("req_eie", "entered-in-error", "order"),
            ("req_cancelled", "cancelled", "order"),
            ("req_draft", "draft", "order"),
            ("proposal", "active", "proposal"),
        ):
            if flag in self.flags:
                medication = self._medication(product, "coded")
                self.requests.append(
                    self._request(product, day, dose, status, "continuous", medication, intent)
                )

    # -- results
    def _latest_check(
        self, group: Group, dates: list[date], change: int | None, end: date
    ) -> date | None:
        """When monitoring was last done, by phase; None for a new start with no baseline."""
        rng, phase = self.rng, self.plan.phase
        if phase == "established":
            return end - timedelta(days=rng.randint(7, group.in_date or group.review))
        if phase == "overdue":
            return end - timedelta(days=rng.randint(*group.overdue))
        if phase == "new":
            return dates[0] - timedelta(days=rng.randint(3, 21)) if rng.random() < 0.7 else None
        if phase == "recent":
            return end - timedelta(days=rng.randint(10, 40))
        if phase == "dose_change" and change is not None:
            return dates[change] - timedelta(days=rng.randint(3, 14))
        return dates[-1] - timedelta(days=rng.randint(0, 60))

    def _review(self, group: Group, latest: date, end: date) -> None:
        """A coded "medication review done" Observation (no value)."""
        if self.plan.phase == "established":
            latest = end - timedelta(days=self.rng.randint(7, group.review))
        self.observations.append(
            {
                "resourceType": "Observation",
                "id": self._id("obs"),
                "status": "final",
                "code": {
                    "coding": [
                        {"system": SNOMED, "code": "314530002", "display": "Medication review done"}
                    ],
                    "text": "Medication review done",
                },
                "subject": self._subject(),
                "effectiveDateTime": instant(latest, "11:00:00"),
            }
        )

    def _bloods(self, group: Group, latest: date, end: date) -> None:
        rng = self.rng
        overrides: dict[str, float] = dict(self.plan.abnormal)
        if "low_crcl" in self.flags:
            overrides |= {
                "weight": round(rng.uniform(44, 58), 1),
                "creatinine": rng.randint(150, 220),
                "egfr": rng.randint(24, 38),
            }
        if "creatinine_rise" in self.flags and "creatinine" in group.panel:
            baseline = rng.randint(62, 85)
            overrides["creatinine"] = round(baseline * rng.uniform(1.35, 1.6))
            earlier = latest - timedelta(days=rng.randint(150, 330))
            self.observations.extend(self._draw(earlier, ("creatinine",), {"creatinine": baseline}))
        day = latest
        for draw in range(group.draws):
            current = draw == 0
            self.observations.extend(
                self._draw(day, group.panel, overrides if current else {}, latest=current)
            )
            day -= timedelta(days=rng.randint(21, 42))
        self._result_oddities(group, latest, end)

    def _draw(
        self, day: date, keys: tuple[str, ...], overrides: dict[str, float], *, latest: bool = False
    ) -> list[Resource]:
        """One blood draw (or clinic check): Observations, or a DiagnosticReport for the FBC."""
        variant = latest and "unit_variant" in self.flags
        report_keys: tuple[str, ...] = ()
        if latest and "diag_report" in self.flags and any(k in FBC for k in keys):
            report_keys = FBC
            keys = tuple(k for k in keys if k not in FBC)
        out = [self._observation(k, day, overrides, variant=variant) for k in keys]
        if latest and "unknown_unit" in self.flags and out:
            value = out[0]["valueQuantity"]["value"]
            out[0]["valueQuantity"] = quantity(value, "furlongs", ucum=False)
        if latest and "period_date" in self.flags and out:
            del out[0]["effectiveDateTime"]
            out[0]["effectivePeriod"] = {"start": instant(day), "end": instant(day, "09:45:00")}
        if latest and "issued_date" in self.flags and out:
            out[-1].pop("effectiveDateTime", None)
            out[-1].pop("effectivePeriod", None)
            out[-1]["issued"] = instant(day + timedelta(days=1), "16:05:00")
        if report_keys:
            self.reports.append(self._report(day, report_keys, overrides, variant))
        return out

    def _observation(
        self,
        key: str,
        day: date,
        overrides: dict[str, float],
        *,
        variant: bool = False,
        status: str = "final",
    ) -> Resource:
        if key == "bp":
            return self._blood_pressure(day, overrides)
        analyte = ANALYTES[key]
        value = overrides.get(key, self.rng.uniform(analyte.low, analyte.high))
        resource: Resource = {
            "resourceType": "Observation",
            "id": self._id("obs"),
            "status": status,
            "category": [{"coding": [{"system": _OBS_CATEGORY, "code": analyte.category}]}],
            "code": {},
            "subject": self._subject(),
            "effectiveDateTime": instant(day),
        }
        resource.update(analyte_value(key, value, variant))
        if analyte.reference is not None:
            low, high = analyte.reference
            bounds = {"low": low, "high": high}
            resource["referenceRange"] = [
                {name: quantity(v, analyte.unit) for name, v in bounds.items() if v is not None}
            ]
        return resource

    def _blood_pressure(self, day: date, overrides: dict[str, float]) -> Resource:
        components = []
        for key in ("sbp", "dbp"):
            analyte = ANALYTES[key]
            value = overrides.get(key, self.rng.uniform(analyte.low, analyte.high))
            components.append(analyte_value(key, value, False))
        return {
            "resourceType": "Observation",
            "id": self._id("obs"),
            "status": "final",
            "category": [{"coding": [{"system": _OBS_CATEGORY, "code": "vital-signs"}]}],
            "code": {
                "coding": [
                    {"system": SNOMED, "code": "75367002", "display": "Blood pressure"},
                    {"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"},
                ],
                "text": "Blood pressure",
            },
            "subject": self._subject(),
            "effectiveDateTime": instant(day),
            "component": components,
        }

    def _report(
        self, day: date, keys: tuple[str, ...], overrides: dict[str, float], variant: bool
    ) -> Resource:
        contained = []
        for index, key in enumerate(keys, start=1):
            analyte = ANALYTES[key]
            value = overrides.get(key, self.rng.uniform(analyte.low, analyte.high))
            contained.append(
                {
                    "resourceType": "Observation",
                    "id": f"o{index}",
                    "status": "final",
                    **analyte_value(key, value, variant),
                }
            )
        return {
            "resourceType": "DiagnosticReport",
            "id": self._id("dr"),
            "contained": contained,
            "status": "final",
            "category": [{"coding": [{"system": _REPORT_CATEGORY, "code": "HM"}]}],
            "code": {
                "coding": [
                    {"system": SNOMED, "code": "1022441000000101", "display": "Full blood count"},
                    {"system": LOINC, "code": "58410-2", "display": "Full blood count"},
                ],
                "text": "Full blood count",
            },
            "subject": self._subject(),
            "effectiveDateTime": instant(day),
            "issued": instant(day, "16:00:00"),
            "result": [{"reference": f"#o{i}"} for i in range(1, len(keys) + 1)],
        }

    def _result_oddities(self, group: Group, latest: date, end: date) -> None:
        """Results that must never count as the test done: entered in error (skipped with a
        reason), preliminary (compared with thresholds, the finding says so), dated after as-of
        (skipped with a reason and a run warning)."""
        key = next(k for k in group.panel if k != "bp")
        analyte = ANALYTES[key]
        wild = {key: analyte.high * 3}
        for flag, status, day in (
            ("res_eie", "entered-in-error", latest + timedelta(days=1)),
            ("res_prelim", "preliminary", latest + timedelta(days=2)),
            ("res_future", "final", end + timedelta(days=self.rng.randint(1, 30))),
        ):
            if flag in self.flags:
                self.observations.append(self._observation(key, day, wild, status=status))

    # -- malformed
    def _malformed(self) -> list[Resource]:
        """At most one broken copy of an existing resource, with a fresh id."""
        observations = [o for o in self.observations if o["status"] == "final"]
        if "bad_authored" in self.flags or (
            self.flags & {"bad_subject", "bad_date"} and not observations
        ):
            broken = {**copy.deepcopy(self.requests[-1]), "id": self._id("mr")}
            del broken["authoredOn"]
            return [broken]
        if "bad_subject" in self.flags:
            broken = {**copy.deepcopy(observations[0]), "id": self._id("obs")}
            del broken["subject"]
            return [broken]
        if "bad_date" in self.flags:
            broken = {**copy.deepcopy(observations[0]), "id": self._id("obs")}
            for name in ("effectiveDateTime", "effectivePeriod", "issued"):
                broken.pop(name, None)
            return [broken]
        return []
