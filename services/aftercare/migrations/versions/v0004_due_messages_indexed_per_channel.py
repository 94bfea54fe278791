"""The ledger's index of due messages is per channel: (status, channel, due_at) for (status, due_at).

The dispatcher claims, and asks when the next message is due, one channel at a time. On (status, due_at)
a channel with nothing pending was answered by walking every pending message of the other channel: with
a million pending emails, each "when is the next text due?" took 0.1-0.5 s on PostgreSQL.

A database made by `create_all` of this version (adopted at the baseline, see shared/schema_migrations.py)
already has the new index and not the old one: each step is taken only where it is still to be taken.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 03:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OLD, NEW = "ix_deliveries_status_due", "ix_deliveries_status_channel_due"


def _indexes() -> set[str | None]:
    return {index["name"] for index in sa.inspect(op.get_bind()).get_indexes("deliveries")}


def upgrade() -> None:
    present = _indexes()
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        if NEW not in present:
            batch_op.create_index(NEW, ["status", "channel", "due_at"], unique=False)
        if OLD in present:
            batch_op.drop_index(OLD)


def downgrade() -> None:
    present = _indexes()
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        if OLD not in present:
            batch_op.create_index(OLD, ["status", "due_at"], unique=False)
        if NEW in present:
            batch_op.drop_index(NEW)
