"""What patients ask of the booking system, heard by aftercare in their replies to a reminder.

The booking system owns appointments: these are requests, not changes. They carry which appointment,
when it starts, and at most a short excerpt of the reply (never the whole text, no phone number).
"""
from __future__ import annotations

from typing import Literal
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

REPLY_EXCERPT_CHARS = 160  # one SMS segment, as on the aftercare records


class _BookingRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UUID = Field(default_factory=uuid4)
    schema_version: Literal[1] = 1
    occurred_at: AwareDatetime
    appointment_id: str = Field(min_length=1, max_length=100)
    starts_at: AwareDatetime = Field(description="The visit's start as the patient's reminder gave it.")
    reply_id: str = Field(description="The reply on aftercare's record that made the request.")
    via: Literal["sms"] = "sms"
    reply_excerpt: str | None = Field(default=None, max_length=REPLY_EXCERPT_CHARS,
                                      description="The start of the patient's reply.")


class AppointmentConfirmed(_BookingRequest):
    """The patient answered their reminder: they will come."""

    event_type: Literal["AppointmentConfirmed"] = "AppointmentConfirmed"


class ChangeRequested(_BookingRequest):
    """The patient answered their reminder: they need another time (or cannot come). The front desk
    was emailed and will call them; the appointment stays as it is until the booking system changes it."""

    event_type: Literal["ChangeRequested"] = "ChangeRequested"
