"""The workflow as the API, the pages and the CLI call it: the read models (``queries.py``,
``review.py``), the actions (``actions.py``) and what they return (``views.py``), under one
name that the page and API tests stand a fake in for."""

from hrm_fhir.workflow.actions import (
    acknowledge_escalation,
    arrangement_id,
    decide_non_engagement,
    record_booking,
    record_contact,
    record_monitored_by_practice,
    record_monitored_elsewhere,
    record_sample,
    route_non_engagement,
    sign_off,
)
from hrm_fhir.workflow.queries import patient_card, worklist
from hrm_fhir.workflow.review import review_queue
from hrm_fhir.workflow.views import (
    ActionResult,
    FlagSummary,
    HistoryItem,
    OpenItem,
    PatientCard,
    PatientDetails,
    ResultPoint,
    ReviewItem,
    TaskSummary,
    ThresholdInfo,
    Trend,
    WorklistEntry,
)

__all__ = [
    "ActionResult",
    "FlagSummary",
    "HistoryItem",
    "OpenItem",
    "PatientCard",
    "PatientDetails",
    "ResultPoint",
    "ReviewItem",
    "TaskSummary",
    "ThresholdInfo",
    "Trend",
    "WorklistEntry",
    "acknowledge_escalation",
    "arrangement_id",
    "decide_non_engagement",
    "patient_card",
    "record_booking",
    "record_contact",
    "record_monitored_by_practice",
    "record_monitored_elsewhere",
    "record_sample",
    "review_queue",
    "route_non_engagement",
    "sign_off",
    "worklist",
]
