"""The oral morphine equivalent (OME) over a therapy's current opioid products.

Read by the OME prescribing check and by any condition on the ``ome`` measure (a schedule
modifier's or a prescribing check's).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hrm_fhir.rules.facts import PackMeasure
from hrm_fhir.rules.model import Condition, RulePack
from hrm_fhir.rules.therapy import ProductRequest, Therapy, daily_dose_mg


@dataclass(frozen=True, slots=True)
class OmeTotal:
    """The oral morphine equivalent over a therapy's current products, and what it left out."""

    total: float
    parts: tuple[str, ...]
    unread: tuple[ProductRequest, ...]
    """Products of an ingredient with a factor whose dose cannot be read."""
    no_factor: tuple[str, ...]
    verified: bool


def ome_total(pack: RulePack, products: tuple[ProductRequest, ...]) -> OmeTotal:
    """Total oral morphine equivalent over every current product of every opioid (modified and
    immediate release of one drug both count), with the pack's factors."""
    factors = {i.name: i.ome for i in pack.ingredients if i.ome is not None}
    total, parts, verified = 0.0, [], True
    unread: list[ProductRequest] = []
    no_factor: list[str] = []
    for product in products:
        name, request = product.ingredient, product.request
        ome = factors.get(name)
        if ome is None:
            no_factor.append(name)
            continue
        if ome.per == "ug/h":
            if request.strength_unit is None:
                unread.append(product)
                continue
            if request.strength_unit != "ug/h" or not request.strength:
                no_factor.append(f"{name} (not a patch)")
                continue
            patches = request.dosage.dose_value if request.dosage.dose_unit == "unit" else 1.0
            amount = request.strength * (patches or 1.0)
            total += amount * ome.factor
            parts.append(f"{name} {amount:g} micrograms/hour x {ome.factor:g}")
        else:
            dose = daily_dose_mg(request)
            if dose is None:
                unread.append(product)
                continue
            total += dose * ome.factor
            parts.append(f"{name} {dose:g} mg/day x {ome.factor:g}")
        verified = verified and ome.verified
    return OmeTotal(total, tuple(parts), tuple(unread), tuple(no_factor), verified)


def reads_ome(conditions: Iterable[Condition]) -> bool:
    """Whether some condition reads the total oral morphine equivalent (``pack_measures``)."""
    return any(c.measure == "ome" for c in conditions)


def pack_measures(pack: RulePack, therapy: Therapy) -> dict[str, PackMeasure | None]:
    """The measures only the pack can work out, for conditions that read one (``reads_ome``):
    ``ome`` (a lower bound when a dose could not be read)."""
    found = ome_total(pack, therapy.products)
    return {"ome": PackMeasure(found.total, lower_bound=bool(found.unread))}
