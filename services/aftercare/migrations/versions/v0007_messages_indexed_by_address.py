"""The ledger's messages to one address are found by an index on (recipient, channel); the index on
appointment_id alone goes, the unique key (appointment_id, step, channel, appointment_version) serving
every lookup by appointment.

An opt-out cancels what is pending to one address, and a text whose outcome is unknown is looked for among
those already sent to its number: the first went through every pending message of the channel, the second
through every message, while an opt-out held the database's write lock.

A database made by `create_all` of this version (adopted at the baseline, see shared/schema_migrations.py)
already has the new index and not the old one: each step is taken only where it is still to be taken.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 22:00:00.000000
"""

from __future__ import annotations

from shared.schema_migrations import replace_index

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

OLD, NEW = "ix_deliveries_appointment", "ix_deliveries_recipient"


def upgrade() -> None:
    replace_index("deliveries", OLD, NEW, ["recipient", "channel"])


def downgrade() -> None:
    replace_index("deliveries", NEW, OLD, ["appointment_id"])
