"""Tables of the booking events service: its own schema, nothing of the other services."""
from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, Text

from shared.database import UtcDateTime
from shared.outbox.store import outbox_table

metadata = MetaData()

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

# The sessions of each treatment plan booked at once (POST /v1/series): one row per appointment.
series_sessions = Table(
    "booking_series_sessions",
    metadata,
    Column("appointment_id", String(100), primary_key=True),
    Column("series_id", String(80), nullable=False, index=True),
    Column("session_number", Integer, nullable=False),
    Column("session_count", Integer, nullable=False),
)

outbox = outbox_table("booking_outbox", metadata)

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

SCHEMA = metadata
