"""The ledger's index of due messages is per channel: (status, channel, due_at) for (status, due_at).

The dispatcher claims, and asks when the next message is due, one channel at a time. On (status, due_at)
a channel with nothing pending was answered by walking every pending message of the other channel: with
a million pending emails, each "when is the next text due?" took 0.1-0.5 s on PostgreSQL.

A database made by `create_all` of this version (adopted at the baseline, see shared/schema_migrations.py)
already has the new index and not the old one: each step is taken only where it is still to be taken.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 03:45:00.000000
"""

from __future__ import annotations

from shared.schema_migrations import replace_index

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

OLD, NEW = "ix_deliveries_status_due", "ix_deliveries_status_channel_due"


def upgrade() -> None:
    replace_index("deliveries", OLD, NEW, ["status", "channel", "due_at"])


def downgrade() -> None:
    replace_index("deliveries", NEW, OLD, ["status", "due_at"])
