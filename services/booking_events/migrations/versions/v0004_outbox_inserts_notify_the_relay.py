"""PostgreSQL: a transaction that stores events in the outbox notifies the relay when it commits.

With several instances on one database, one relays at a time (it holds the advisory lock). Events
another instance stored waited for its next poll; the relay now listens on the outbox's channel and
publishes them at once. SQLite (one process) has nothing to notify.

A database made by `create_all` of this version has the trigger already: the steps may run again.

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
