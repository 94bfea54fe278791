"""Everything added to the tables since the baseline, up to the first migrations.

A database adopted at the baseline was made by `create_all` of any version up to then: a table,
column or index it already has is skipped (`if_missing`), the rest is added.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 16:01:53.506480
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
        "notifier_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=320), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("published_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("notifier_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_notifier_outbox_unpublished", ["published_at", "id"], unique=False)

    op.create_table(
        "notifier_outbox_dead",
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
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_token", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("attempt_started_at", UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column("provider_status", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("provider_error_code", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("provider_status_at", UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column("fallback_recipient", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("fallback_of", sa.String(length=36), nullable=True))
        batch_op.create_index("ix_deliveries_provider_id", ["provider_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_provider_id")
        batch_op.drop_column("fallback_of")
        batch_op.drop_column("fallback_recipient")
        batch_op.drop_column("provider_status_at")
        batch_op.drop_column("provider_error_code")
        batch_op.drop_column("provider_status")
        batch_op.drop_column("attempt_started_at")
        batch_op.drop_column("claim_token")

    op.drop_table("notifier_outbox_dead")
    with op.batch_alter_table("notifier_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_notifier_outbox_unpublished")

    op.drop_table("notifier_outbox")
