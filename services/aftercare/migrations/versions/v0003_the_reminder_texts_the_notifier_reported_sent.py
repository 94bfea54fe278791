"""The reminder texts the notifier reported sent (clinic.deliveries.v1): what a patient's text answers.

A database made by `create_all` of a later version already has the table: it is then left as it is
(`if_missing`).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 17:41:55.104030
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.database import UtcDateTime
from shared.schema_migrations import if_missing

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if_missing.create_table(
        "aftercare_sent_reminders",
        sa.Column("delivery_id", sa.String(length=36), nullable=False),
        sa.Column("appointment_id", sa.String(length=100), nullable=False),
        sa.Column("step", sa.String(length=100), nullable=False),
        sa.Column("sent_at", UtcDateTime(), nullable=False),
        sa.Column("undelivered_at", UtcDateTime(), nullable=True),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("delivery_id"),
    )
    with if_missing.batch_alter_table("aftercare_sent_reminders", schema=None) as batch_op:
        batch_op.create_index("ix_sent_reminders_appointment", ["appointment_id", "sent_at"], unique=False)



def downgrade() -> None:
    with op.batch_alter_table("aftercare_sent_reminders", schema=None) as batch_op:
        batch_op.drop_index("ix_sent_reminders_appointment")

    op.drop_table("aftercare_sent_reminders")
