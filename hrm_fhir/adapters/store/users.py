"""People who sign in to the pages: accounts on the ``users`` table, passwords hashed with scrypt.

Passwords are hashed by ``werkzeug.security`` (it ships with Flask, so nothing is added): scrypt
with N=2**15, r=8, p=3, one of OWASP's recommended scrypt settings, and a 16-character random salt.
The method is stored with each hash, so raising the cost later re-hashes a user's password the next
time they sign in. Nothing here imports Flask: the ``hrm-fhir users`` commands use it too.

Passwords are at least 12 characters and are checked with zxcvbn (Dropbox's strength estimator,
maintained for Python as the ``zxcvbn`` package): one of its 30,000 most common passwords (its
``passwords`` frequency list), or one it scores below 3 of 4 (built from common passwords, words,
names, keyboard runs, repeats or dates, or from the username), is refused with zxcvbn's reason.

Accounts are never deleted (the workflow ledger names users): they are disabled, which also ends
their sessions of the pages at once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash
from zxcvbn import zxcvbn
from zxcvbn.matching import RANKED_DICTIONARIES

from hrm_fhir.adapters.store.records import UserRecord, UserSessionRecord
from hrm_fhir.errors import HRMError


class UserRole(StrEnum):
    """What a user may do in the pages (the workflow service checks the same roles)."""

    TECHNICIAN = "technician"
    PHARMACIST = "pharmacist"
    GP = "gp"
    ADMIN = "admin"


ROLES: tuple[str, ...] = tuple(role.value for role in UserRole)
HASH_METHOD = "scrypt:32768:8:3"
"""werkzeug method string: scrypt with N=2**15, r=8, p=3 (an OWASP-recommended setting)."""
SALT_LENGTH = 16
MIN_PASSWORD = 12
MAX_PASSWORD = 256
"""Bounds the hashing work a sign-in attempt can ask for."""
MIN_STRENGTH = 3
"""zxcvbn's score (0-4) a new password needs: 3 is "safely unguessable", over 10^8 guesses."""
STRENGTH_CHARACTERS = 72
"""zxcvbn judges the first 72 characters (its own limit; its cost grows with the length)."""
_USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_PRACTICE = re.compile(r"[A-Za-z0-9\-.]{1,64}")


class UserError(HRMError):
    """A user account request is invalid (bad username, unknown role, weak password...)."""


@dataclass(frozen=True, slots=True)
class User:
    """A signed-in (or listed) user, detached from the database session."""

    username: str
    display_name: str
    role: UserRole
    practice: str | None
    active: bool
    created_at: datetime

    @classmethod
    def of(cls, record: UserRecord) -> User:
        return cls(
            username=record.username,
            display_name=record.display_name,
            role=UserRole(record.role),
            practice=record.practice,
            active=record.active,
            created_at=record.created_at,
        )


@cache
def _dummy_hash() -> str:
    """Checked when the username is unknown, so a wrong name takes as long as a wrong password."""
    return generate_password_hash("not a password: equalises timing", HASH_METHOD, SALT_LENGTH)


def hash_password(password: str, user_inputs: Sequence[str] = ()) -> str:
    """A salted scrypt hash of ``password`` (UserError when the rules refuse it)."""
    check_password_rules(password, user_inputs)
    return generate_password_hash(password, HASH_METHOD, SALT_LENGTH)


@cache
def common_passwords() -> frozenset[str]:
    """zxcvbn's 30,000 most common passwords (lower case)."""
    ranked: dict[str, int] = RANKED_DICTIONARIES["passwords"]
    return frozenset(ranked)


def check_password_rules(password: str, user_inputs: Sequence[str] = ()) -> None:
    """UserError unless ``password`` is 12-256 characters, not a common password and not easy
    to guess (zxcvbn, told the username and display name in ``user_inputs``)."""
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must be at least {MIN_PASSWORD} characters long")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"the password must be at most {MAX_PASSWORD} characters long")
    if not password.strip():
        raise UserError("the password must not be blank")
    if password.lower() in common_passwords():
        raise UserError("the password is one of the most common passwords: choose another")
    judged = zxcvbn(password[:STRENGTH_CHARACTERS], user_inputs=[i for i in user_inputs if i])
    if judged["score"] < MIN_STRENGTH:
        reason = judged["feedback"]["warning"] or "it is easy to guess"
        raise UserError(
            f"the password is too easy to guess ({reason.rstrip('.')}): a few unrelated "
            "words make a strong one"
        )


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches; never raises for a malformed stored hash."""
    try:
        return check_password_hash(password_hash, password)
    except ValueError:
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with another method or cost than ``HASH_METHOD``."""
    return not password_hash.startswith(HASH_METHOD + "$")


def normalise_username(username: str) -> str:
    name = username.strip().lower()
    if not _USERNAME.fullmatch(name):
        raise UserError(
            "a username is 1-64 characters: lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def create_user(
    session: Session,
    username: str,
    *,
    role: str,
    password: str,
    practice: str | None = None,
    display_name: str | None = None,
    now: datetime | None = None,
) -> User:
    """Add an active account (flushed, not committed); UserError when anything is invalid."""
    name = normalise_username(username)
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    if practice is not None:
        practice = practice.removeprefix("Organization/")
        if not _PRACTICE.fullmatch(practice):
            raise UserError("a practice is an Organization id ([A-Za-z0-9-.], 1-64 characters)")
    shown = (display_name or name).strip()
    if not shown or len(shown) > 128:
        raise UserError("a display name is 1-128 characters")
    if session.get(UserRecord, name) is not None:
        raise UserError(f"user {name!r} already exists")
    record = UserRecord(
        username=name,
        display_name=shown,
        role=role,
        practice=practice or None,
        password_hash=hash_password(password, (name, shown)),
        active=True,
        created_at=now or datetime.now(UTC),
    )
    session.add(record)
    session.flush()
    return User.of(record)


def list_users(session: Session) -> Sequence[User]:
    """Every account, active or not, by username."""
    records = session.scalars(select(UserRecord).order_by(UserRecord.username))
    return [User.of(record) for record in records]


def get_user(session: Session, username: str) -> User | None:
    """The active account called ``username``; None when it is unknown or disabled."""
    record = session.get(UserRecord, username.strip().lower())
    if record is None or not record.active:
        return None
    return User.of(record)


def is_account(session: Session, username: str) -> bool:
    """Whether an account (active or not) has this name."""
    return session.get(UserRecord, username.strip().lower()) is not None


def disable_user(session: Session, username: str) -> User:
    """Disable an account (flushed, not committed): it can no longer sign in or use its API
    tokens, and its sessions of the pages end. UserError when there is no such user."""
    record = session.get(UserRecord, username.strip().lower())
    if record is None:
        raise UserError(f"no user {username!r}")
    record.active = False
    session.execute(
        update(UserSessionRecord)
        .where(UserSessionRecord.username == record.username, UserSessionRecord.ended_at.is_(None))
        .values(ended_at=datetime.now(UTC), end_reason="disabled")
    )
    session.flush()
    return User.of(record)


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user whose password this is, else None (flushes a re-hash when the stored
    hash is outdated). Takes about as long for an unknown name as for a wrong password."""
    if not password or len(password) > MAX_PASSWORD:
        return None
    record = session.get(UserRecord, username.strip().lower())
    if record is None:
        verify_password(_dummy_hash(), password)
        return None
    if not verify_password(record.password_hash, password) or not record.active:
        return None
    if needs_rehash(record.password_hash):
        record.password_hash = generate_password_hash(password, HASH_METHOD, SALT_LENGTH)
        session.flush()
    return User.of(record)
