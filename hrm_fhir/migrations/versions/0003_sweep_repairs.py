"""The sweep trusts the server: resources it recreated, the server marker, the scope's size.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sweeps") as batch:
        batch.add_column(sa.Column("repaired", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("poll_cursors") as batch:
        batch.add_column(sa.Column("server_marker", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("scope_pages", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("poll_cursors") as batch:
        batch.drop_column("scope_pages")
        batch.drop_column("server_marker")
    with op.batch_alter_table("sweeps") as batch:
        batch.drop_column("repaired")
