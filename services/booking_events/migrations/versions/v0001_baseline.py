"""Baseline: the tables of booking events as `create_all` made them before there were migrations.

A database made then (these tables, no version table) is stamped at this revision at start-up,
then upgraded like any other.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.database import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "booking_appointments",
        sa.Column("appointment_id", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("starts_at", UtcDateTime(), nullable=False),
        sa.Column("location_id", sa.String(length=100), nullable=False),
        sa.Column("patient", sa.Text(), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("appointment_id"),
    )
    op.create_table(
        "booking_idempotency_keys",
        sa.Column("client", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response_body", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("client", "key"),
    )
    with op.batch_alter_table("booking_idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_booking_idempotency_keys_created_at"), ["created_at"], unique=False)

    op.create_table(
        "booking_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=320), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("published_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("booking_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_booking_outbox_unpublished", ["published_at", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("booking_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_booking_outbox_unpublished")

    op.drop_table("booking_outbox")
    with op.batch_alter_table("booking_idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_booking_idempotency_keys_created_at"))

    op.drop_table("booking_idempotency_keys")
    op.drop_table("booking_appointments")
