"""Events the aftercare service publishes: consent changes, check-in records and alerts."""
from __future__ import annotations

from typing import Literal
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class _AftercareEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UUID = Field(default_factory=uuid4)
    schema_version: Literal[1] = 1
    occurred_at: AwareDatetime


class ConsentChanged(_AftercareEvent):
    """A patient opted out of (or back into) a channel; every service stops sending at once."""

    event_type: Literal["ConsentChanged"] = "ConsentChanged"
    channel: Literal["sms", "email"]
    address: str
    subscribed: bool
    source: Literal["sms_keyword", "email_link", "carrier_opt_out", "sms_reply"]


class CheckInScheduled(_AftercareEvent):
    event_type: Literal["CheckInScheduled"] = "CheckInScheduled"
    check_in_id: str
    appointment_id: str
    round: int
    due_at: AwareDatetime
    channels: list[str]


class ReplyRecorded(_AftercareEvent):
    event_type: Literal["ReplyRecorded"] = "ReplyRecorded"
    reply_id: str
    check_in_id: str | None
    appointment_id: str | None
    via: Literal["sms", "web"]
    text: str | None
    score: int | None
    red_flags: list[str]
    action: str
    reasons: list[str]


class EscalationRaised(_AftercareEvent):
    """A worrying answer: the on-call clinician has been alerted."""

    event_type: Literal["EscalationRaised"] = "EscalationRaised"
    reply_id: str
    check_in_id: str | None
    appointment_id: str | None
    score: int | None
    previous_score: int | None
    reasons: list[str]
    urgent_911_advice: bool


class NoReplyRecorded(_AftercareEvent):
    event_type: Literal["NoReplyRecorded"] = "NoReplyRecorded"
    appointment_id: str
    check_ins: int


# The escalation chain. `escalation_id` is the `reply_id` of the EscalationRaised it follows;
# `reference` is the short number staff quote in an SMS ("OK 1234"). No patient details.
StaffRole = Literal["on_call", "backup", "lead"]


class EscalationPaged(_AftercareEvent):
    """A member of the escalation chain has been paged (the on-call clinician first, then backup, then lead)."""

    event_type: Literal["EscalationPaged"] = "EscalationPaged"
    escalation_id: str
    reference: str
    appointment_id: str | None
    role: StaffRole
    contact_name: str
    channels: list[Literal["email", "sms"]]


class EscalationAcknowledged(_AftercareEvent):
    """Someone of the chain has taken the escalation: nobody else is paged."""

    event_type: Literal["EscalationAcknowledged"] = "EscalationAcknowledged"
    escalation_id: str
    reference: str
    appointment_id: str | None
    role: StaffRole
    contact_name: str
    via: Literal["sms", "email_link"]
    raised_at: AwareDatetime


class EscalationExhausted(_AftercareEvent):
    """Everyone of the chain was paged and nobody acknowledged in time."""

    event_type: Literal["EscalationExhausted"] = "EscalationExhausted"
    escalation_id: str
    reference: str
    appointment_id: str | None
    paged: list[StaffRole]
    raised_at: AwareDatetime


class ScreeningSubmitted(_AftercareEvent):
    """A patient answered the pre-visit questions. Only the ids of the questions whose answer matters
    (a "yes", or text the practitioner should read) are named; the answers themselves are not."""

    event_type: Literal["ScreeningSubmitted"] = "ScreeningSubmitted"
    appointment_id: str
    appointment_type: str
    appointment_starts_at: AwareDatetime
    submission: int = Field(ge=1)  # 2 and more: these answers replace the earlier ones
    flagged: list[str]
    practitioner_notified: bool
