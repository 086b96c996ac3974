"""The workflow's part of each sweep (``sweep.run.ChaseRouter``): a Task whose second reminder went
unanswered for the chase interval goes to the pharmacist for a non-engagement decision.

The sweep is below the workflow and does not import it; whoever starts a sweep (the service, the
command line) hands it ``SweepChases``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import Session

from hrm_fhir.adapters.fhir.gateway import FHIRGateway
from hrm_fhir.config import Settings
from hrm_fhir.rules.registry import RuleSet
from hrm_fhir.workflow.actions import route_exhausted_chases
from hrm_fhir.workflow.queries import exhausted_chases
from hrm_fhir.workflow.views import TaskSummary


@dataclass(frozen=True)
class SweepChases:
    """Exhausted chases of the sweep's practice (all practices when none is set)."""

    gateway: FHIRGateway
    rules: RuleSet
    practice: str | None
    chase_interval_days: int

    @classmethod
    def of(cls, settings: Settings, gateway: FHIRGateway, rules: RuleSet) -> SweepChases:
        """The chases a sweep with these settings takes through this gateway."""
        return cls(gateway, rules, settings.practice or None, settings.chase_interval_days)

    def due(self, session: Session, as_of: date) -> set[str]:
        return {task.task_id for task in self._due(session, as_of)}

    def route(self, session: Session, as_of: date, now: datetime) -> int:
        due = self._due(session, as_of)
        routed = route_exhausted_chases(
            self.gateway, session, due, chase_interval_days=self.chase_interval_days, now=now
        )
        return len(routed)

    def _due(self, session: Session, as_of: date) -> list[TaskSummary]:
        return exhausted_chases(
            self.gateway,
            session,
            as_of=as_of,
            practice=self.practice,
            chase_interval_days=self.chase_interval_days,
            rules=self.rules,
        )
