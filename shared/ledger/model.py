"""What the ledger knows of one intended message."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its due time (or for a retry)
    SENDING = "sending"  # claimed by a dispatcher; its lease says until when
    SENT = "sent"
    FAILED = "failed"  # permanent failure or retries exhausted
    CANCELLED = "cancelled"  # the appointment changed; no longer wanted
    SKIPPED = "skipped"  # not sent on purpose (too late, opted out...)


OPEN_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)

CHANNELS = ("email", "sms")

# Messages to the clinic's staff (on-call escalations, reviews), not to patients: patient consent
# lists never silence them and they carry no unsubscribe.
STAFF_TEMPLATE_PREFIX = "staff_"


def is_staff_template(template: str) -> bool:
    return template.startswith(STAFF_TEMPLATE_PREFIX)


@dataclass(frozen=True)
class DeliveryIntent:
    """A message we mean to send: recorded before any attempt, unique per appointment version."""

    appointment_id: str
    step: str
    channel: str
    appointment_version: int
    template: str
    recipient: str
    locale: str
    due_at: datetime
    context: dict[str, Any] = field(default_factory=dict)
    expires_at: datetime | None = None
    # The patient's address on the other channel, if they agreed to it: used only when this
    # message cannot reach them on its own (shared/delivery/fallback.py).
    fallback_recipient: str | None = None


@dataclass(frozen=True)
class Delivery:
    id: str
    appointment_id: str
    step: str
    channel: str
    appointment_version: int
    template: str
    recipient: str
    locale: str
    context: dict[str, Any]
    scheduled_for: datetime
    due_at: datetime
    expires_at: datetime | None
    status: DeliveryStatus
    attempts: int
    sent_at: datetime | None
    reason: str | None
    error_code: str | None
    provider_id: str | None
    claim_token: str | None = None
    # Set when this claim took over an attempt whose dispatcher stopped before recording its
    # outcome (lease expired): the message may already have gone out, from that moment on.
    unknown_outcome_since: datetime | None = None
    # What the provider reported after taking the message (status callbacks): `status` stays SENT.
    provider_status: str | None = None
    provider_error_code: str | None = None
    provider_status_at: datetime | None = None
    fallback_recipient: str | None = None
    fallback_of: str | None = None  # set on a fallback row: the message it replaces
