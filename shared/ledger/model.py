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
