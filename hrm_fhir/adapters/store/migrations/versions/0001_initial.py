"""Initial schema: sweeps, findings ledger, write audit, poll cursors, locks and snapshots.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.Integer(), nullable=False),
        _timestamp("started_at"),
        _timestamp("finished_at", nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("fhir_base", sa.String(length=512), nullable=False),
        sa.Column("scope", sa.String(length=128), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("closed", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("watermark", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_seconds", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sweeps")),
    )
    op.create_index(op.f("ix_sweeps_status"), "sweeps", ["status"])

    op.create_table(
        "findings",
        sa.Column("identifier", sa.String(length=64), nullable=False),
        sa.Column("patient", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("drug_group", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.String(length=80), nullable=False),
        sa.Column("check", sa.String(length=80), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("practice", sa.String(length=128), nullable=True),
        sa.Column("resource_type", sa.String(length=16), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        _timestamp("opened_at"),
        sa.Column("opened_sweep_id", sa.Integer(), nullable=False),
        _timestamp("closed_at", nullable=True),
        sa.Column("closed_sweep_id", sa.Integer(), nullable=True),
        sa.Column("close_reason", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["opened_sweep_id"], ["sweeps.id"], name=op.f("fk_findings_opened_sweep_id_sweeps")
        ),
        sa.ForeignKeyConstraint(
            ["closed_sweep_id"], ["sweeps.id"], name=op.f("fk_findings_closed_sweep_id_sweeps")
        ),
        sa.PrimaryKeyConstraint("identifier", name=op.f("pk_findings")),
    )
    op.create_index(op.f("ix_findings_patient"), "findings", ["patient"])
    op.create_index(op.f("ix_findings_practice"), "findings", ["practice"])
    op.create_index(op.f("ix_findings_closed_at"), "findings", ["closed_at"])

    op.create_table(
        "writes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sweep_id", sa.Integer(), nullable=True),
        _timestamp("at"),
        sa.Column("resource_type", sa.String(length=16), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("finding_identifier", sa.String(length=64), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("version_id", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sweep_id"], ["sweeps.id"], name=op.f("fk_writes_sweep_id_sweeps")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_writes")),
    )
    op.create_index(op.f("ix_writes_sweep_id"), "writes", ["sweep_id"])
    op.create_index(op.f("ix_writes_finding_identifier"), "writes", ["finding_identifier"])

    op.create_table(
        "poll_cursors",
        sa.Column("scope", sa.String(length=128), nullable=False),
        sa.Column("watermark", sa.String(length=64), nullable=False),
        _timestamp("updated_at"),
        sa.Column("sweep_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sweep_id"], ["sweeps.id"], name=op.f("fk_poll_cursors_sweep_id_sweeps")
        ),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_poll_cursors")),
    )

    op.create_table(
        "locks",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        _timestamp("acquired_at"),
        _timestamp("expires_at"),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_locks")),
    )

    op.create_table(
        "snapshots",
        sa.Column("patient", sa.String(length=128), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        _timestamp("fetched_at"),
        sa.Column("sweep_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sweep_id"], ["sweeps.id"], name=op.f("fk_snapshots_sweep_id_sweeps")
        ),
        sa.PrimaryKeyConstraint("patient", name=op.f("pk_snapshots")),
    )


def downgrade() -> None:
    op.drop_table("snapshots")
    op.drop_table("locks")
    op.drop_table("poll_cursors")
    op.drop_table("writes")
    op.drop_table("findings")
    op.drop_table("sweeps")
