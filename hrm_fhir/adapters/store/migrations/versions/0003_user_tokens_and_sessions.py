"""Personal API tokens and server-side sessions of the pages (digests only, never the secrets).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _user() -> sa.Column[str]:
    return sa.Column("username", sa.String(length=64), nullable=False)


def upgrade() -> None:
    op.create_table(
        "user_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        _user(),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        _timestamp("created_at"),
        _timestamp("expires_at"),
        _timestamp("last_used_at", nullable=True),
        _timestamp("revoked_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["username"], ["users.username"], name=op.f("fk_user_tokens_username_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_tokens")),
        sa.UniqueConstraint("digest", name=op.f("uq_user_tokens_digest")),
    )
    op.create_index(op.f("ix_user_tokens_username"), "user_tokens", ["username"], unique=False)
    op.create_table(
        "user_sessions",
        sa.Column("digest", sa.String(length=64), nullable=False),
        _user(),
        _timestamp("created_at"),
        _timestamp("last_seen_at"),
        _timestamp("ended_at", nullable=True),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["username"], ["users.username"], name=op.f("fk_user_sessions_username_users")
        ),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_user_sessions")),
    )
    op.create_index(op.f("ix_user_sessions_username"), "user_sessions", ["username"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_user_sessions_username"), table_name="user_sessions")
    op.drop_table("user_sessions")
    op.drop_index(op.f("ix_user_tokens_username"), table_name="user_tokens")
    op.drop_table("user_tokens")
