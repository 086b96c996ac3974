"""Credentials people hold besides their password: personal API tokens and the pages' sessions.

Both are random secrets (``secrets.token_urlsafe``, 256 bits) of which the database keeps only the
SHA-256 digest: a copy of the database gives no usable token or cookie. A fast hash is right here,
unlike for passwords, because the secrets are random and long, not chosen by people.

- **Tokens** (``hrm-fhir users token NAME``) are shown once, expire (90 days unless told), can be
  revoked, and stop working when the account is disabled. They are bearer tokens for the API.
- **Sessions** of the pages end on sign-out (every copy of the cookie with them), after the idle
  limit, at the absolute limit however busy they are, and when the account is disabled.

Nothing here imports Flask: the ``hrm-fhir users`` commands use it too.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from hrm_fhir.adapters.store.records import UserSessionRecord, UserTokenRecord
from hrm_fhir.adapters.store.users import User, UserError, get_user

TOKEN_PREFIX = "hrmu_"  # noqa: S105 - a marker, not a secret
"""Marks a personal token, so secret scanners and people can tell it from an API key."""
MAX_TOKEN_DAYS = 366


def digest(secret: str) -> str:
    """The SHA-256 of a random secret, hex: what the database keeps."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


# ------------------------------------------------------------------ personal API tokens


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as listed: never the token itself."""

    id: int
    username: str
    label: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, record: UserTokenRecord) -> TokenInfo:
        return cls(
            record.id,
            record.username,
            record.label,
            record.created_at,
            record.expires_at,
            record.last_used_at,
            record.revoked_at,
        )

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= now else "active"


def issue_token(
    session: Session, username: str, *, days: int, label: str = "", now: datetime | None = None
) -> tuple[str, TokenInfo]:
    """A new token for an active account (flushed, not committed): the token, to show once, and
    what is kept of it. UserError for an unknown or disabled account or a bad lifetime."""
    user = get_user(session, username)
    if user is None:
        raise UserError(f"no active user {username!r}")
    if not 1 <= days <= MAX_TOKEN_DAYS:
        raise UserError(f"a token lives 1 to {MAX_TOKEN_DAYS} days")
    shown = label.strip() or "api"
    if len(shown) > 64:
        raise UserError("a token label is at most 64 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    moment = _now(now)
    record = UserTokenRecord(
        username=user.username,
        digest=digest(token),
        label=shown,
        created_at=moment,
        expires_at=moment + timedelta(days=days),
        last_used_at=None,
        revoked_at=None,
    )
    session.add(record)
    session.flush()
    return token, TokenInfo.of(record)


def list_tokens(session: Session, username: str) -> Sequence[TokenInfo]:
    query = select(UserTokenRecord).where(UserTokenRecord.username == username.strip().lower())
    return [TokenInfo.of(r) for r in session.scalars(query.order_by(UserTokenRecord.id))]


def revoke_tokens(
    session: Session, username: str, token_id: int | None = None, now: datetime | None = None
) -> list[TokenInfo]:
    """Revoke one token of ``username`` (or all with ``token_id`` None); flushed, not committed.
    UserError when the token is not theirs."""
    query = select(UserTokenRecord).where(
        UserTokenRecord.username == username.strip().lower(), UserTokenRecord.revoked_at.is_(None)
    )
    if token_id is not None:
        query = query.where(UserTokenRecord.id == token_id)
    records = list(session.scalars(query))
    if token_id is not None and not records:
        raise UserError(f"{username!r} has no live token {token_id}")
    for record in records:
        record.revoked_at = _now(now)
    session.flush()
    return [TokenInfo.of(r) for r in records]


def user_for_token(session: Session, token: str, now: datetime | None = None) -> User | None:
    """The active user whose live token this is (its use is noted), else None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    record = session.scalar(select(UserTokenRecord).where(UserTokenRecord.digest == digest(token)))
    moment = _now(now)
    if record is None or record.revoked_at is not None or record.expires_at <= moment:
        return None
    user = get_user(session, record.username)
    if user is not None:
        record.last_used_at = moment
        session.flush()
    return user


# ------------------------------------------------------------------ sessions of the pages


class SessionEnd(StrEnum):
    """Why a session is over (``UserSessionRecord.end_reason``)."""

    SIGNED_OUT = "signed out"
    IDLE = "idle"
    EXPIRED = "expired"
    DISABLED = "disabled"
    UNKNOWN = "unknown"
    """No such session here."""


@dataclass(frozen=True, slots=True)
class SessionLimits:
    idle: timedelta
    absolute: timedelta


def start_session(session: Session, user: User, now: datetime | None = None) -> str:
    """A new session for ``user`` (flushed): its id, for the signed cookie."""
    session_id = secrets.token_urlsafe(32)
    moment = _now(now)
    session.add(
        UserSessionRecord(
            digest=digest(session_id),
            username=user.username,
            created_at=moment,
            last_seen_at=moment,
            ended_at=None,
            end_reason=None,
        )
    )
    session.flush()
    return session_id


def resume_session(
    session: Session, session_id: str, limits: SessionLimits, now: datetime | None = None
) -> User | SessionEnd:
    """The user of a live session (its last use is noted), or why it is over (ending it)."""
    record = session.get(UserSessionRecord, digest(session_id))
    if record is None:
        return SessionEnd.UNKNOWN
    if record.ended_at is not None:
        ended = {reason.value: reason for reason in SessionEnd}
        return ended.get(record.end_reason or "", SessionEnd.UNKNOWN)
    moment = _now(now)
    user = get_user(session, record.username)
    if user is None:
        return _end(session, record, SessionEnd.DISABLED, moment)
    if moment - record.created_at >= limits.absolute:
        return _end(session, record, SessionEnd.EXPIRED, moment)
    if moment - record.last_seen_at > limits.idle:
        return _end(session, record, SessionEnd.IDLE, moment)
    record.last_seen_at = moment
    session.flush()
    return user


def end_session(session: Session, session_id: str, now: datetime | None = None) -> None:
    """Sign out: the session and every copy of its cookie are over (flushed)."""
    record = session.get(UserSessionRecord, digest(session_id))
    if record is not None and record.ended_at is None:
        _end(session, record, SessionEnd.SIGNED_OUT, _now(now))


def _end(
    session: Session, record: UserSessionRecord, reason: SessionEnd, moment: datetime
) -> SessionEnd:
    record.ended_at, record.end_reason = moment, reason.value
    session.flush()
    return reason
