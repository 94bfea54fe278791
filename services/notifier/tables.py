"""The notifier's schema: what it knows of each appointment, plus the delivery ledger and suppressions."""
from __future__ import annotations

from sqlalchemy import JSON, Column, Integer, MetaData, String, Table

from shared.database import UtcDateTime, schema
from shared.ledger import tables as ledger_tables
from shared.outbox.store import outbox_table

metadata = MetaData()

appointments = Table(
    "appointments",
    metadata,
    Column("appointment_id", String(100), primary_key=True),
    Column("last_sequence", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("event", JSON, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# The delivery status events (clinic.deliveries.v1), stored with the ledger change that caused them.
outbox = outbox_table("notifier_outbox", metadata)

# Everything the notifier database holds: its own tables, the delivery ledger and suppressions.
SCHEMA = schema(metadata, ledger_tables.deliveries, ledger_tables.sms_suppressions,
                ledger_tables.email_suppressions)
