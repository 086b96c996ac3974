"""The project's exception tree."""


class HRMError(Exception):
    """Base class for errors this service raises on purpose."""


class DatabaseURLError(HRMError):
    """``HRM_DATABASE_URL`` names a database the service cannot use (e.g. no driver installed)."""


class RuleDefinitionError(HRMError):
    """A rule pack or the catalogue failed validation; nothing is loaded."""


class InputError(HRMError):
    """An input path or file cannot be read or parsed at all."""


class FHIRError(HRMError):
    """A request to the FHIR server failed.

    ``status`` is the HTTP status (None when no response arrived); ``outcome`` is the first
    OperationOutcome issue's diagnostics or details text. The outcome may echo request data, so
    it is kept out of the message (which is safe to log).
    """

    def __init__(
        self, message: str, *, status: int | None = None, outcome: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.outcome = outcome


class FHIRTemporaryError(FHIRError):
    """Connection failure, timeout, 408, 429 or 5xx: worth trying again later."""


class FHIRFatalError(FHIRError):
    """A 4xx (other than 408/429) or a malformed response: retrying will not help."""


class ResourceNotFound(FHIRFatalError):  # noqa: N818 - named for branching, after fhir-py
    """404 Not Found or 410 Gone."""


class VersionConflict(FHIRFatalError):  # noqa: N818 - named for branching, after fhir-py
    """409/412 on a write sent with If-Match: re-read and re-apply."""


class OffOriginLinkError(FHIRError):
    """A Bundle ``next`` link leaves the configured base URL; it is not followed."""


class FHIRCapabilityError(HRMError):
    """The server's CapabilityStatement lacks a resource type or interaction the service needs."""


class FHIRAuthError(HRMError):
    """The SMART token endpoint refused or could not be reached; ``error`` is its OAuth code."""

    def __init__(
        self, message: str, *, status: int | None = None, error: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error


class WorkflowError(HRMError):
    """A programme action that the Task's current stage does not allow, or unusable input."""


class WorkflowPermissionError(WorkflowError):
    """The acting user's role or practice does not allow the action; nothing was written."""


class WorkflowConflictError(WorkflowError):
    """The Task changed since the user loaded it (stale version); nothing was written."""


class WorkflowNotFoundError(WorkflowError):
    """No such Task (or Flag, or GP escalation) on the FHIR server."""
