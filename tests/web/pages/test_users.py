"""User accounts: password hashing, validation, disabling, and the ``hrm-fhir users`` commands."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session

from hrm_fhir.adapters.store.credentials import list_tokens, user_for_token
from hrm_fhir.adapters.store.database import init_db, make_session_factory
from hrm_fhir.adapters.store.records import UserRecord
from hrm_fhir.adapters.store.users import (
    HASH_METHOD,
    UserError,
    UserRole,
    authenticate,
    create_user,
    disable_user,
    get_user,
    hash_password,
    list_users,
    needs_rehash,
    verify_password,
)
from hrm_fhir.cli.main import main

PASSWORD = "correct horse battery staple"  # noqa: S105 - test accounts only


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    engine = init_db(database_url)
    with make_session_factory(engine)() as session:
        yield session
    engine.dispose()


def test_a_hash_is_salted_scrypt_and_verifies_only_the_right_password() -> None:
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first != second
    assert first.startswith(HASH_METHOD + "$")
    assert PASSWORD not in first
    assert verify_password(first, PASSWORD)
    assert not verify_password(first, PASSWORD + "!")
    assert not verify_password("not-a-hash", PASSWORD)
    assert not needs_rehash(first)
    assert needs_rehash("pbkdf2:sha256:1000$salt$abc")


@pytest.mark.parametrize(
    ("password", "message"),
    [("short", "at least 12"), ("x" * 300, "at most 256"), (" " * 12, "blank")],
)
def test_weak_or_absurd_passwords_are_refused(password: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        hash_password(password)


def test_create_then_authenticate(session: Session) -> None:
    user = create_user(
        session, "  Pat.Smith ", role="pharmacist", password=PASSWORD, practice="Organization/org-1"
    )
    assert (user.username, user.role, user.practice, user.display_name) == (
        "pat.smith",
        UserRole.PHARMACIST,
        "org-1",
        "pat.smith",
    )
    assert authenticate(session, "PAT.SMITH", PASSWORD) == user
    assert authenticate(session, "pat.smith", "wrong password entirely") is None
    assert authenticate(session, "nobody", PASSWORD) is None
    assert authenticate(session, "pat.smith", "") is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"username": "bad name"}, "a username is"),
        ({"username": "-dash"}, "a username is"),
        ({"role": "nurse"}, "unknown role"),
        ({"practice": "not/an/id"}, "a practice is"),
        ({"display_name": "x" * 200}, "a display name"),
        ({"password": "short"}, "at least 12"),
    ],
)
def test_invalid_accounts_are_refused_and_nothing_is_added(
    session: Session, kwargs: dict[str, str], message: str
) -> None:
    fields = {"username": "ok", "role": "technician", "password": PASSWORD, **kwargs}
    username = fields.pop("username")
    with pytest.raises(UserError, match=message):
        create_user(session, username, **fields)  # type: ignore[arg-type]
    assert session.query(UserRecord).count() == 0


def test_a_duplicate_username_is_refused(session: Session) -> None:
    create_user(session, "sam", role="technician", password=PASSWORD)
    with pytest.raises(UserError, match="already exists"):
        create_user(session, "SAM", role="gp", password=PASSWORD)


def test_a_disabled_user_cannot_sign_in_and_is_kept(session: Session) -> None:
    create_user(session, "sam", role="technician", password=PASSWORD)
    disabled = disable_user(session, "sam")
    assert not disabled.active
    assert authenticate(session, "sam", PASSWORD) is None
    assert get_user(session, "sam") is None
    assert [u.username for u in list_users(session)] == ["sam"]
    with pytest.raises(UserError, match="no user"):
        disable_user(session, "nobody")


def test_an_old_hash_is_upgraded_at_sign_in(session: Session) -> None:
    from werkzeug.security import generate_password_hash

    create_user(session, "sam", role="technician", password=PASSWORD)
    record = session.get(UserRecord, "sam")
    assert record is not None
    record.password_hash = generate_password_hash(PASSWORD, "pbkdf2:sha256:1000")
    assert authenticate(session, "sam", PASSWORD) is not None
    assert record.password_hash.startswith(HASH_METHOD + "$")
    assert verify_password(record.password_hash, PASSWORD)


# --- hrm-fhir users ---


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, database_url: str) -> CliRunner:
    for name in [n for n in os.environ if n.startswith("HRM_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HRM_DATABASE_URL", database_url)
    return CliRunner()


def test_users_add_reads_the_password_from_stdin_and_list_shows_it(
    cli: CliRunner, database_url: str
) -> None:
    added = cli.invoke(
        main,
        [
            "users",
            "add",
            "tess",
            "--role",
            "technician",
            "--practice",
            "org-1",
            "--display-name",
            "Tess Tech",
            "--password-stdin",
        ],
        input=PASSWORD + "\n",
    )
    assert added.exit_code == 0, added.output
    assert added.output == "added tess (technician, practice org-1)\n"
    listed = cli.invoke(main, ["users", "list"])
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert lines[0].split() == ["USERNAME", "ROLE", "PRACTICE", "STATUS", "NAME"]
    assert lines[1].split() == ["tess", "technician", "org-1", "active", "Tess", "Tech"]
    engine = init_db(database_url)
    try:
        with make_session_factory(engine)() as session:
            assert authenticate(session, "tess", PASSWORD) is not None
    finally:
        engine.dispose()


def test_users_add_prompts_twice_for_the_password(cli: CliRunner) -> None:
    added = cli.invoke(
        main, ["users", "add", "phil", "--role", "pharmacist"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert added.exit_code == 0, added.output
    assert "Repeat for confirmation" in added.output
    assert PASSWORD not in added.output
    listed = json.loads(cli.invoke(main, ["users", "list", "--format", "json"]).output)
    assert [(u["username"], u["role"], u["practice"], u["active"]) for u in listed] == [
        ("phil", "pharmacist", None, True)
    ]


def test_users_add_refuses_bad_input_clearly(cli: CliRunner) -> None:
    weak = cli.invoke(
        main, ["users", "add", "tess", "--role", "technician", "--password-stdin"], input="short\n"
    )
    assert weak.exit_code == 1
    assert "at least 12 characters" in weak.output
    role = cli.invoke(main, ["users", "add", "tess", "--role", "nurse", "--password-stdin"])
    assert role.exit_code == 2
    assert "nurse" in role.output
    first = cli.invoke(
        main, ["users", "add", "tess", "--role", "gp", "--password-stdin"], input=PASSWORD
    )
    assert first.exit_code == 0
    again = cli.invoke(
        main, ["users", "add", "tess", "--role", "gp", "--password-stdin"], input=PASSWORD
    )
    assert again.exit_code == 1
    assert "already exists" in again.output


def test_users_disable(cli: CliRunner) -> None:
    cli.invoke(main, ["users", "add", "tess", "--role", "gp", "--password-stdin"], input=PASSWORD)
    disabled = cli.invoke(main, ["users", "disable", "tess"])
    assert (disabled.exit_code, disabled.output) == (0, "disabled tess\n")
    assert "disabled" in cli.invoke(main, ["users", "list"]).output.splitlines()[1]
    unknown = cli.invoke(main, ["users", "disable", "nobody"])
    assert unknown.exit_code == 1
    assert "no user 'nobody'" in unknown.output


def test_users_token_is_shown_once_stored_hashed_listed_and_revoked(
    cli: CliRunner, database_url: str
) -> None:
    cli.invoke(main, ["users", "add", "tess", "--role", "gp", "--password-stdin"], input=PASSWORD)
    made = cli.invoke(main, ["users", "token", "tess", "--label", "laptop", "--days", "7"])
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    assert token.startswith("hrmu_")
    assert "shown only now" in made.stderr
    engine = init_db(database_url)
    with make_session_factory(engine)() as session:
        assert user_for_token(session, token) is not None
        [stored] = list_tokens(session, "tess")
    listed = cli.invoke(main, ["users", "tokens", "tess"])
    assert token not in listed.output
    assert "active" in listed.output
    assert "laptop" in listed.output
    assert cli.invoke(main, ["users", "revoke-token", "tess"]).exit_code == 2
    revoked = cli.invoke(main, ["users", "revoke-token", "tess", str(stored.id)])
    assert (revoked.exit_code, revoked.output) == (0, "revoked 1 token(s) of tess\n")
    with make_session_factory(engine)() as session:
        assert user_for_token(session, token) is None
    engine.dispose()
    assert "revoked" in cli.invoke(main, ["users", "tokens", "tess"]).output
    unknown = cli.invoke(main, ["users", "token", "nobody"])
    assert unknown.exit_code == 1
    assert "no active user 'nobody'" in unknown.output


def test_users_add_refuses_a_common_password(cli: CliRunner) -> None:
    result = cli.invoke(
        main, ["users", "add", "tess", "--role", "gp", "--password-stdin"], input="password1234\n"
    )
    assert result.exit_code == 1
    assert "most common passwords" in result.output
