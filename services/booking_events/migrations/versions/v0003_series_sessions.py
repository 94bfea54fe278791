"""The sessions of treatment plans booked at once (POST /v1/series).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa

from shared.schema_migrations import if_missing as op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "booking_series_sessions",
        sa.Column("appointment_id", sa.String(length=100), nullable=False),
        sa.Column("series_id", sa.String(length=80), nullable=False),
        sa.Column("session_number", sa.Integer(), nullable=False),
        sa.Column("session_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("appointment_id"),
    )
    op.create_index(
        op.f("ix_booking_series_sessions_series_id"), "booking_series_sessions", ["series_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_booking_series_sessions_series_id"), table_name="booking_series_sessions")
    op.drop_table("booking_series_sessions")
