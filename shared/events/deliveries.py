"""What became of each message the services send, for the clinic's integrations. No recipient
address and no message body: only which message of which appointment, and its status."""
from __future__ import annotations

from typing import Literal
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class DeliveryStatusChanged(BaseModel):
    """A message moved on: handed to the provider, refused, skipped, or (from the provider) sent on,
    delivered or not delivered. `source` says who reported it; the provider's `sent` means the
    carrier took it, the dispatcher's `sent` only that the provider accepted it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UUID = Field(default_factory=uuid4)
    event_type: Literal["DeliveryStatusChanged"] = "DeliveryStatusChanged"
    schema_version: Literal[1] = 1
    occurred_at: AwareDatetime
    appointment_id: str = Field(description="The appointment the message is about (aftercare: also "
                                             "`escalation:<id>` for staff pages).")
    delivery_id: str = Field(description="The message's row in the sending service's delivery ledger.")
    service: str = Field(description="The sending service: notifier or aftercare (each has its own ledger).")
    step: str = Field(description="Which message of the appointment, e.g. `reminder_24h`; a fallback "
                                  "ends in `:fallback`.")
    channel: Literal["sms", "email"]
    template: str
    source: Literal["dispatcher", "provider"]
    status: str = Field(description="dispatcher: sent, failed, skipped; provider: queued, sending, sent, "
                                    "delivered, undelivered, failed, canceled.")
    error_code: str | None = Field(default=None, description="Twilio's error code or the SMTP reply code.")
    reason: str | None = Field(default=None, description="Why a message was skipped (expired, opted_out, "
                                                         "landline); never patient details.")
    fallback_channel: Literal["sms", "email"] | None = Field(
        default=None, description="Set when this outcome sends the message by the other channel instead.")
    fallback_of: str | None = Field(default=None, description="On a fallback: the delivery id it replaces.")
