"""A check-in's replies are found by their index on (check_in_id, received_at), not by reading every reply.

Each answer that pages staff reads the pages already sent for its check-in; the visits with no reply are
told apart by counting their replies; the staff's list of check-ins shows each one's latest reply. Every
one of these read the whole table of replies, which grows with every text patients send.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 19:40:00.000000
"""

from __future__ import annotations

from alembic import op

from shared.schema_migrations import if_missing

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLE, INDEX = "aftercare_replies", "ix_replies_check_in_received"


def upgrade() -> None:
    if_missing.create_index(INDEX, TABLE, ["check_in_id", "received_at"], unique=False)


def downgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE)
