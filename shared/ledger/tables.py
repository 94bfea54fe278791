"""Tables of the delivery ledger: every intended message, and the addresses that opted out."""
from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from shared.database import UtcDateTime

# The ledger's own schema; a service copies it into its own with `shared.database.schema`.
metadata = MetaData()

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("appointment_id", String(100), nullable=False),
    Column("step", String(100), nullable=False),
    Column("channel", String(10), nullable=False),
    Column("appointment_version", Integer, nullable=False),
    Column("template", String(100), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("locale", String(10), nullable=False),
    Column("context", JSON, nullable=False),
    Column("scheduled_for", UtcDateTime(), nullable=False),
    Column("due_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime()),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("lease_until", UtcDateTime()),
    # Set at each claim: only the dispatcher holding it may record what became of the attempt.
    Column("claim_token", String(36)),
    # When the current (or last) attempt was claimed: where to look for it at the provider when
    # its outcome is unknown.
    Column("attempt_started_at", UtcDateTime()),
    Column("reason", Text),
    Column("error_code", String(20)),
    Column("provider_id", String(200)),
    Column("sent_at", UtcDateTime()),
    # What the provider said became of it after it took the message (Twilio's status callbacks):
    # the furthest status reached, its error code, and when we heard it. `status` stays ours.
    Column("provider_status", String(20)),
    Column("provider_error_code", String(20)),
    Column("provider_status_at", UtcDateTime()),
    # The patient's address on the other channel, when they agreed to it: where a message that
    # cannot reach them on its own channel goes instead (see shared/delivery/fallback.py).
    Column("fallback_recipient", String(320)),
    # On a fallback row: the id of the message it replaces.
    Column("fallback_of", String(36)),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("appointment_id", "step", "channel", "appointment_version", name="uq_delivery_intent"),
    # The dispatcher's claims and next-due times are per channel: each is a range of this index, in due
    # order (one channel's messages are not found by walking past the other's).
    Index("ix_deliveries_status_channel_due", "status", "channel", "due_at"),
    # An appointment's messages are found by the unique key, which starts with appointment_id; one address's
    # (an opt-out, a text whose outcome is unknown looked for among those sent to its number) by this.
    Index("ix_deliveries_recipient", "recipient", "channel"),
    Index("ix_deliveries_provider_id", "provider_id"),
)

sms_suppressions = Table(
    "sms_suppressions",
    metadata,
    Column("phone", String(20), primary_key=True),
    Column("opted_out_at", UtcDateTime(), nullable=False),
    Column("source", String(50), nullable=False),
)

email_suppressions = Table(
    "email_suppressions",
    metadata,
    Column("email", String(320), primary_key=True),
    Column("opted_out_at", UtcDateTime(), nullable=False),
    Column("source", String(50), nullable=False),
)
