"""PostgreSQL: inserts into booking_outbox notify the relaying instance when they commit, so that events
stored by another instance go out at once (`shared.outbox.store.insert_notification_ddl`).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 06:40:00.000000
"""

from __future__ import annotations

from shared.schema_migrations import notify_on_outbox_insert, stop_notifying_on_outbox_insert

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLE = "booking_outbox"


def upgrade() -> None:
    notify_on_outbox_insert(TABLE)


def downgrade() -> None:
    stop_notifying_on_outbox_insert(TABLE)
