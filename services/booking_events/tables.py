"""Tables of the booking events service (on the shared metadata, so prefixed `booking_`)."""
from __future__ import annotations

from sqlalchemy import JSON, Column, Index, Integer, String, Table, Text

from shared.database import UtcDateTime, metadata

appointments = Table(
    "booking_appointments",
    metadata,
    Column("appointment_id", String(100), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("starts_at", UtcDateTime(), nullable=False),
    Column("location_id", String(100), nullable=False),
    Column("patient", Text, nullable=False),  # PatientContact as JSON
    Column("details", Text, nullable=False),  # AppointmentDetails as JSON
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# Rows are published in id order; one appointment's rows get increasing ids because its
# changes are serialised by the lock on its booking_appointments row.
outbox = Table(
    "booking_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("topic", String(200), nullable=False),
    Column("key", String(100), nullable=False),
    Column("value", Text, nullable=False),
    Column("headers", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("published_at", UtcDateTime()),
    Index("ix_booking_outbox_unpublished", "published_at", "id"),
)

idempotency_keys = Table(
    "booking_idempotency_keys",
    metadata,
    # The client is a digest of its API key: two integrators may pick the same key.
    Column("client", String(16), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response_body", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False, index=True),
)
