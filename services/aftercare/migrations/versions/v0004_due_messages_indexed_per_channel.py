"""The ledger's index of due messages is per channel: (status, channel, due_at) for (status, due_at).

The dispatcher claims, and asks when the next message is due, one channel at a time. On (status, due_at)
a channel with nothing pending was answered by walking every pending message of the other channel: with
a million pending emails, each "when is the next text due?" took 0.1-0.5 s on PostgreSQL.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 03:45:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_deliveries_status_channel_due", ["status", "channel", "due_at"], unique=False)
        batch_op.drop_index("ix_deliveries_status_due")


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_deliveries_status_due", ["status", "due_at"], unique=False)
        batch_op.drop_index("ix_deliveries_status_channel_due")
