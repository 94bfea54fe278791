"""Everything added to the tables since the baseline, up to the first migrations.

A database adopted at the baseline was made by `create_all` of any version up to then: a table,
column or index it already has is skipped (`if_missing`), the rest is added.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 15:46:42.183831
"""

from __future__ import annotations

import sqlalchemy as sa

from shared.database import UtcDateTime
from shared.schema_migrations import if_missing as op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "booking_outbox_dead",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=320), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("dead_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("booking_outbox_dead")
