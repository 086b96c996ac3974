"""The sweep trusts the server: resources it recreated, the server marker, the scope's size.

Columns are added and dropped in place (``ALTER TABLE``, SQLite 3.35 or later), never by copying
the table: ``sweeps`` is referenced by the ledger's other tables, and SQLite refuses to drop a
table other rows refer to while foreign keys are enforced.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sweeps", recreate="never") as batch:
        batch.add_column(sa.Column("repaired", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("poll_cursors", recreate="never") as batch:
        batch.add_column(sa.Column("server_marker", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("scope_pages", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("poll_cursors", recreate="never") as batch:
        batch.drop_column("scope_pages")
        batch.drop_column("server_marker")
    with op.batch_alter_table("sweeps", recreate="never") as batch:
        batch.drop_column("repaired")
