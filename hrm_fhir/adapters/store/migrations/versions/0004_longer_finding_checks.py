"""A finding's ``check`` holds every rule part it names: an incomplete finding lists each
prescribing check that missing record data kept from being assessed (up to 284 characters for
the DOAC pack), more than the 80 characters one check id needs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("findings") as batch:
        batch.alter_column(
            "check",
            existing_type=sa.String(length=80),
            type_=sa.String(length=512),
            existing_nullable=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("findings") as batch:
        batch.alter_column(
            "check",
            existing_type=sa.String(length=512),
            type_=sa.String(length=80),
            existing_nullable=False,
        )
