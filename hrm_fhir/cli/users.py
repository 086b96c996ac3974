"""User accounts for the pages (hrm_fhir/adapters/store/users.py, docs/pages.md)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


from hrm_fhir.cli.common import configured, write_json


@click.group()
def users() -> None:
    """Accounts that sign in to the pages (HRM_DATABASE_URL)."""


@users.command("add")
@click.argument("username")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["technician", "pharmacist", "gp", "admin"]),
    help="What the user may do.",
)
@click.option("--practice", default=None, help="Organization id the user works for.")
@click.option("--display-name", default=None, help="The name shown in the pages and the audit.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def users_add(
    username: str,
    role: str,
    practice: str | None,
    display_name: str | None,
    password_stdin: bool,
) -> None:
    """Add an account; the password is asked for twice (or read from standard input)."""
    from hrm_fhir.adapters.store.users import UserError, check_password_rules, create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        check_password_rules(password, (username, display_name or ""))
        with _user_session() as session:
            user = create_user(
                session,
                username,
                role=role,
                password=password,
                practice=practice,
                display_name=display_name,
            )
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"added {user.username} ({user.role}{_practice_text(user.practice)})")


@users.command("list")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def users_list(fmt: str) -> None:
    """List every account, active or disabled."""
    from hrm_fhir.adapters.store.users import list_users

    with _user_session() as session:
        found = list_users(session)
    if fmt == "json":
        write_json(
            [
                {
                    "username": u.username,
                    "display_name": u.display_name,
                    "role": u.role.value,
                    "practice": u.practice,
                    "active": u.active,
                    "created_at": u.created_at.isoformat(),
                }
                for u in found
            ]
        )
        return
    rows = [("USERNAME", "ROLE", "PRACTICE", "STATUS", "NAME")]
    rows += [
        (
            u.username,
            u.role.value,
            u.practice or "-",
            "active" if u.active else "disabled",
            u.display_name,
        )
        for u in found
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo(
            "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[4]])
        )


@users.command("disable")
@click.argument("username")
def users_disable(username: str) -> None:
    """Disable an account: it cannot sign in, and a signed-in session ends at its next request."""
    from hrm_fhir.adapters.store.users import UserError, disable_user

    try:
        with _user_session() as session:
            user = disable_user(session, username)
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"disabled {user.username}")


@users.command("token")
@click.argument("username")
@click.option("--label", default="", help="What the token is for, shown in `users tokens`.")
@click.option(
    "--days",
    type=click.IntRange(1, 366),
    default=None,
    help="How long it is valid (default HRM_USER_TOKEN_DAYS, 90).",
)
def users_token(username: str, label: str, days: int | None) -> None:
    """Make a personal API token for USERNAME and print it once: it is stored only as a hash.
    The API takes it as `Authorization: Bearer <token>` and acts as that user."""
    from hrm_fhir.adapters.store.credentials import issue_token
    from hrm_fhir.adapters.store.users import UserError

    lifetime = days or configured().user_token_days
    try:
        with _user_session() as session:
            token, info = issue_token(session, username, days=lifetime, label=label)
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(token)
    click.echo(
        f"token {info.id} for {info.username} ({info.label}), valid until "
        f"{info.expires_at:%Y-%m-%d %H:%M} UTC. It is shown only now: keep it secret.",
        err=True,
    )


@users.command("tokens")
@click.argument("username")
def users_tokens(username: str) -> None:
    """List USERNAME's tokens (never the tokens themselves)."""
    from hrm_fhir.adapters.store.credentials import list_tokens

    with _user_session() as session:
        found = list_tokens(session, username)
    now = datetime.now(UTC)
    click.echo("ID  STATE    CREATED           EXPIRES           LAST USED         LABEL")
    for t in found:
        used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "-"
        click.echo(
            f"{t.id:<3} {t.state(now):<8} {t.created_at:%Y-%m-%d %H:%M}  "
            f"{t.expires_at:%Y-%m-%d %H:%M}  {used:<16}  {t.label}"
        )


@users.command("revoke-token")
@click.argument("username")
@click.argument("token_id", type=int, required=False)
@click.option("--all", "every", is_flag=True, help="Revoke every token of the user.")
def users_revoke_token(username: str, token_id: int | None, every: bool) -> None:
    """Revoke one of USERNAME's tokens (TOKEN_ID from `users tokens`), or all with --all."""
    from hrm_fhir.adapters.store.credentials import revoke_tokens
    from hrm_fhir.adapters.store.users import UserError

    if (token_id is not None) == every:
        raise click.UsageError("give a TOKEN_ID or --all")
    try:
        with _user_session() as session:
            revoked = revoke_tokens(session, username, token_id)
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"revoked {len(revoked)} token(s) of {username}")


def _practice_text(practice: str | None) -> str:
    return f", practice {practice}" if practice else ""


@contextmanager
def _user_session() -> Iterator[Session]:
    """A transaction on the service database (created or migrated first), committed on success."""
    from hrm_fhir.adapters.store.database import init_db, make_session_factory

    engine = init_db(configured().database_url)
    try:
        with make_session_factory(engine).begin() as session:
            yield session
    finally:
        engine.dispose()
