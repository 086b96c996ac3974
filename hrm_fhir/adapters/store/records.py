"""ORM classes for the service's own state and audit ledger ("records", not FHIR resources).

Only FHIR references and resource ids are stored about patients: never names or NHS numbers.
Every timestamp is timezone-aware UTC on the way in and on the way out, on every backend, and
every text fits its column with no NUL character on every backend (``_check_text``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from functools import cache
from typing import Any, ClassVar

from sqlalchemy import DateTime, Enum, ForeignKey, LargeBinary, MetaData, String, Text, event
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, mapped_column
from sqlalchemy.types import TypeDecorator

from hrm_fhir.domain import FindingKind, Severity

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Named constraints, so Alembic batch migrations on SQLite can find and alter them."""


class SweepStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class SweepMode(StrEnum):
    FULL = "full"
    INCREMENTAL = "incremental"


class ResourceType(StrEnum):
    """The FHIR resource types the service writes."""

    TASK = "Task"
    FLAG = "Flag"


class WriteAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    CLOSE = "close"
    CANCEL = "cancel"


class WriteOutcome(StrEnum):
    OK = "ok"
    CONFLICT = "conflict"
    FAILED = "failed"


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that refuses naive values and always reads back aware UTC.

    SQLite keeps no offset, so values are converted to UTC before they are written (which also
    keeps its text comparisons in ``WHERE`` clauses correct) and marked UTC when read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; timestamps must be aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _enum(cls: type[StrEnum], length: int) -> Enum:
    """A closed set stored as its values in a plain VARCHAR (no native type, no CHECK)."""
    return Enum(
        cls,
        native_enum=False,
        length=length,
        validate_strings=True,
        values_callable=lambda members: [member.value for member in members],
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


@cache
def _text_columns(mapper: Mapper[Any]) -> tuple[tuple[str, str, int | None], ...]:
    """(attribute, ``table.column``, length) of every text column of a mapped class."""
    return tuple(
        (mapper.get_property_by_column(c).key, f"{c.table.name}.{c.name}", c.type.length)
        for c in mapper.columns
        if isinstance(c.type, String)
    )


@event.listens_for(Base, "before_insert", propagate=True)
@event.listens_for(Base, "before_update", propagate=True)
def _check_text(mapper: Mapper[Any], _connection: Connection, target: Base) -> None:
    """Refuse, before the database sees it, a text longer than its column or holding NUL.

    PostgreSQL refuses both; SQLite would store them, so a value could work in a practice's
    SQLite and fail in a PCN's PostgreSQL. Checked here, both backends raise the same error.
    """
    for key, where, length in _text_columns(mapper):
        value = getattr(target, key)
        if not isinstance(value, str):
            continue
        if length is not None and len(value) > length:
            raise ValueError(f"{where} holds at most {length} characters, not {len(value)}")
        if "\x00" in value:
            raise ValueError(f"{where}: text with a NUL character cannot be stored")


class SweepRecord(Base):
    """One sweep of the FHIR server: what it covered, how it ended, and what it did."""

    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    status: Mapped[SweepStatus] = mapped_column(_enum(SweepStatus, 16), index=True)
    mode: Mapped[SweepMode] = mapped_column(_enum(SweepMode, 16))
    dry_run: Mapped[bool]
    fhir_base: Mapped[str] = mapped_column(String(512))
    scope: Mapped[str] = mapped_column(String(128))
    """``all`` or ``Organization/<id>``."""
    as_of: Mapped[date]
    created: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    closed: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    repaired: Mapped[int] = mapped_column(default=0, server_default="0")
    """Resources the ledger held open that the server had lost, written again."""
    skipped: Mapped[int] = mapped_column(default=0)
    errors: Mapped[int] = mapped_column(default=0)
    watermark: Mapped[str | None] = mapped_column(String(64))
    """Server instant the next incremental sweep starts from."""
    error: Mapped[str | None] = mapped_column(Text)
    duration_seconds: Mapped[float | None]


class FindingRecord(Base):
    """The ledger of every finding: what was written for it, when it opened and when it closed."""

    __tablename__ = "findings"

    identifier: Mapped[str] = mapped_column(String(64), primary_key=True)
    """The finding's deterministic business identifier."""
    patient: Mapped[str] = mapped_column(String(128), index=True)
    """A FHIR reference such as ``Patient/abc``."""
    kind: Mapped[FindingKind] = mapped_column(_enum(FindingKind, 16))
    drug_group: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(80))
    """``<rule-id>@<version>``."""
    check: Mapped[str] = mapped_column(String(512))
    """The rule parts the finding names, comma-separated (an incomplete finding may name every
    prescribing check of a pack)."""
    severity: Mapped[Severity | None] = mapped_column(_enum(Severity, 16))
    due_date: Mapped[date | None]
    practice: Mapped[str | None] = mapped_column(String(128), index=True)
    resource_type: Mapped[ResourceType] = mapped_column(_enum(ResourceType, 16))
    resource_id: Mapped[str] = mapped_column(String(64))
    opened_at: Mapped[datetime]
    opened_sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id"))
    closed_at: Mapped[datetime | None] = mapped_column(index=True)
    closed_sweep_id: Mapped[int | None] = mapped_column(ForeignKey("sweeps.id"))
    close_reason: Mapped[str | None] = mapped_column(Text)
    """E.g. ``result received``, ``drug stopped``, ``patient deceased``, ``resolved``."""
    status: Mapped[str] = mapped_column(String(32))
    """The FHIR status last written, e.g. ``requested``, ``cancelled``, ``active``."""
    content_hash: Mapped[str] = mapped_column(String(64))
    """Hash of the content last written."""
    version_id: Mapped[str | None] = mapped_column(String(64))
    """The server's ``meta.versionId`` after our last write."""
    reason: Mapped[str] = mapped_column(Text)


class WriteRecord(Base):
    """One write to the FHIR server, made or attempted, with its outcome and why."""

    __tablename__ = "writes"

    id: Mapped[int] = mapped_column(primary_key=True)
    sweep_id: Mapped[int | None] = mapped_column(ForeignKey("sweeps.id"), index=True)
    """None for writes made outside a sweep."""
    at: Mapped[datetime]
    resource_type: Mapped[ResourceType] = mapped_column(_enum(ResourceType, 16))
    resource_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[WriteAction] = mapped_column(_enum(WriteAction, 16))
    finding_identifier: Mapped[str | None] = mapped_column(String(64), index=True)
    """Not a foreign key: a failed create is audited although no finding was opened."""
    http_status: Mapped[int | None]
    version_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[WriteOutcome] = mapped_column(_enum(WriteOutcome, 16))
    detail: Mapped[str | None] = mapped_column(Text)
    """Error or OperationOutcome text."""
    reason: Mapped[str] = mapped_column(Text)


class PollCursor(Base):
    """Where the next incremental sweep of a scope starts: a server instant, not a local one."""

    __tablename__ = "poll_cursors"

    scope: Mapped[str] = mapped_column(String(128), primary_key=True)
    watermark: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime]
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id"))
    server_marker: Mapped[str | None] = mapped_column(String(64))
    """Id of the marker (a ``Basic``) this ledger keeps on the server for the scope; a server
    without it has been reset or replaced."""
    scope_pages: Mapped[int | None]
    """Page requests the last whole read of the scope took: what an incremental sweep weighs
    re-reading its changed patients against."""


class LockRecord(Base):
    """A named lease, so only one process sweeps at a time."""

    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class SnapshotRecord(Base):
    """The last-read FHIR resources of one monitored patient (orjson list), so an incremental
    sweep re-reads only what changed yet still re-evaluates everyone as time passes."""

    __tablename__ = "snapshots"

    patient: Mapped[str] = mapped_column(String(128), primary_key=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    fetched_at: Mapped[datetime]
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id"))


class UserRecord(Base):
    """A person who signs in to the service's pages or API: technician, pharmacist, GP or admin."""

    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    """``technician`` | ``pharmacist`` | ``gp`` | ``admin``."""
    practice: Mapped[str | None] = mapped_column(String(128))
    """Organization id the user works for; None for users who work across practices."""
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool]
    created_at: Mapped[datetime]


class WorkflowEventRecord(Base):
    """One programme action (contact attempt, booking, sample, sign-off, escalation,
    acknowledgement, decision): who did what to which Task, when, and what was written."""

    __tablename__ = "workflow_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    task_id: Mapped[str] = mapped_column(String(64), index=True)
    patient: Mapped[str] = mapped_column(String(128), index=True)
    practice: Mapped[str | None] = mapped_column(String(128), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    """Username."""
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    """contact, booking, sample, signoff, escalate, acknowledge or decision."""
    stage_before: Mapped[str | None] = mapped_column(String(32))
    stage_after: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)
    """JSON: the action's fields (medium, outcome, dates, decision, dose text...)."""
    written: Mapped[str] = mapped_column(Text)
    """Space-separated references of what was written (``Communication/x Task/y/_history/3``)."""


class UserTokenRecord(Base):
    """A personal API token: only its SHA-256 digest is kept; the token is shown once."""

    __tablename__ = "user_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("users.username"), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    """SHA-256 of the token, hex."""
    label: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class UserSessionRecord(Base):
    """A signed-in session of the pages, held here so signing out ends every copy of its cookie.
    The cookie carries a random session id; only its SHA-256 digest is kept."""

    __tablename__ = "user_sessions"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("users.username"), index=True)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(32))
    """``signed out``, ``idle``, ``expired`` or ``disabled``."""
