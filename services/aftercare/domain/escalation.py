"""The escalation chain: who is paged next, and what a staff acknowledgement means. Pure, no I/O.

- An escalation is raised by a worrying answer; the on-call clinician is paged at once (the staff alert,
  by email and SMS), and the alert carries the escalation's short reference and a link to acknowledge it.
- Nobody acknowledged within the clinic's `acknowledge_within` of the last page: the next of the chain
  (backup, then lead) is paged with `staff_escalation_page`, by email and SMS. As long again after the
  lead's page the chain is exhausted: recorded and published, there is nobody more to page. A watch that
  was down pages one member per round, each one a full period after the previous page.
- Anyone of the chain acknowledges it, by SMS or through the email link; paging stops. A second
  acknowledgement changes nothing. One after the chain was exhausted still records who took it.
- A staff text "OK" or "ACK" acknowledges the one open escalation its sender was paged for; with
  several open it needs the reference ("OK 1234") and acknowledges none until it has one.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from services.aftercare.domain.staff import STAFF_LOCALE
from shared.clinic_config import ClinicConfig
from shared.events.aftercare import (
    EscalationAcknowledged,
    EscalationExhausted,
    EscalationPaged,
    EscalationRaised,
    StaffRole,
)
from shared.ledger.model import DeliveryIntent

PAGE_TEMPLATE = "staff_escalation_page"
PAGE_CHANNELS: tuple[Literal["email", "sms"], ...] = ("email", "sms")
# How long an escalation can be acknowledged: the email link's validity, and the SMS's window.
ACKNOWLEDGE_VALIDITY = timedelta(hours=24)
REFERENCE_DIGITS = 4
EscalationEvent = EscalationPaged | EscalationAcknowledged | EscalationExhausted
AckVia = Literal["sms", "email_link"]
StepKind = Literal["raised", "paged", "acknowledged", "exhausted"]

_ACK_TEXT = re.compile(r"^\s*(?:ok(?:ay)?|ack(?:nowledged?)?)\b[\s#:.,-]*(?P<reference>\d{4})?[\s.!]*$",
                       re.IGNORECASE)


class EscalationStatus(StrEnum):
    OPEN = "open"  # paging goes on until someone acknowledges
    ACKNOWLEDGED = "acknowledged"
    EXHAUSTED = "exhausted"  # everyone was paged, nobody acknowledged (it can still be acknowledged)


@dataclass(frozen=True)
class Escalation:
    id: str  # the reply_id of its EscalationRaised
    reference: str
    appointment_id: str | None
    reasons: tuple[str, ...]
    context: dict[str, Any]  # what the staff alert showed; the pages show it too
    raised_at: datetime
    paged: int  # how many of the chain have been paged: 1 is the on-call clinician
    last_paged_at: datetime
    status: EscalationStatus
    acknowledged_by: StaffRole | None = None
    acknowledged_at: datetime | None = None


@dataclass(frozen=True)
class StepOnRecord:
    escalation_id: str
    kind: StepKind
    occurred_at: datetime
    role: StaffRole | None = None
    contact_name: str | None = None
    channel: str | None = None  # email or sms for a page; sms or email_link for an acknowledgement


@dataclass(frozen=True)
class EscalationChange:
    """What one step records: the escalation's new state (applied only if it still was `expected_paged`)."""

    escalation: Escalation
    expected_paged: int
    expected_statuses: tuple[EscalationStatus, ...]
    steps: tuple[StepOnRecord, ...]
    events: tuple[EscalationEvent, ...]  # for the alerts topic, keyed by the appointment
    staff_messages: tuple[DeliveryIntent, ...] = field(default=())


def next_due_at(escalation: Escalation, clinic: ClinicConfig) -> datetime | None:
    """When the next page (or the end of the chain) is due; None once acknowledged or exhausted."""
    if escalation.status is not EscalationStatus.OPEN:
        return None
    return escalation.last_paged_at + clinic.aftercare.acknowledge_within


def open_escalation(raised: EscalationRaised, alert: Sequence[DeliveryIntent], reference: str,
                    acknowledge_url: str, clinic: ClinicConfig, now: datetime) -> EscalationChange:
    """The escalation of a worrying answer, its on-call alert carrying the reference and the link."""
    on_call = clinic.aftercare.on_call
    messages = tuple(_with_acknowledgement(intent, reference, acknowledge_url) for intent in alert)
    escalation = Escalation(
        id=raised.reply_id, reference=reference, appointment_id=raised.appointment_id,
        reasons=tuple(raised.reasons), context=alert[0].context if alert else {}, raised_at=now, paged=1,
        last_paged_at=now, status=EscalationStatus.OPEN,
    )
    channels = [channel for channel in PAGE_CHANNELS if any(intent.channel == channel for intent in messages)]
    return EscalationChange(
        escalation=escalation, expected_paged=0, expected_statuses=(), staff_messages=messages,
        steps=(StepOnRecord(escalation.id, "raised", now),
               *(StepOnRecord(escalation.id, "paged", now, "on_call", on_call.name, channel) for channel in channels)),
        # EscalationRaised, published with the answer, says the on-call clinician was paged.
        events=(),
    )


def next_step(escalation: Escalation, clinic: ClinicConfig, now: datetime,
              acknowledge_url: Callable[[StaffRole], str]) -> EscalationChange | None:
    """The page (or the end of the chain) that is due at `now`; None when nothing is due."""
    due = next_due_at(escalation, clinic)
    if due is None or now < due:
        return None
    chain = clinic.aftercare.escalation_chain()
    if escalation.paged >= len(chain):
        exhausted = replace(escalation, status=EscalationStatus.EXHAUSTED)
        paged: list[StaffRole] = [staff_role(role) for role, _ in chain]
        return EscalationChange(
            escalation=exhausted, expected_paged=escalation.paged, expected_statuses=(EscalationStatus.OPEN,),
            steps=(StepOnRecord(escalation.id, "exhausted", now),),
            events=(EscalationExhausted(
                occurred_at=now, escalation_id=escalation.id, reference=escalation.reference,
                appointment_id=escalation.appointment_id, paged=paged, raised_at=escalation.raised_at,
            ),),
        )
    name, contact = chain[escalation.paged]
    role = staff_role(name)
    extra = dict(escalation.context.get("extra", {})) | {
        "escalation_reference": escalation.reference,
        "acknowledge_url": acknowledge_url(role),
        "escalation_raised_at": escalation.raised_at.isoformat(),
        "paged_role": role,
        "not_acknowledged_by": [c.name for _, c in chain[:escalation.paged]],
    }
    addresses = {"email": str(contact.email), "sms": contact.phone}
    messages = tuple(
        DeliveryIntent(appointment_id=f"escalation:{escalation.id}", step=f"{PAGE_TEMPLATE}:{role}",
                       channel=channel, appointment_version=0, template=PAGE_TEMPLATE,
                       recipient=addresses[channel], locale=STAFF_LOCALE, due_at=now,
                       context=escalation.context | {"extra": extra})
        for channel in PAGE_CHANNELS
    )
    return EscalationChange(
        escalation=replace(escalation, paged=escalation.paged + 1, last_paged_at=now),
        expected_paged=escalation.paged, expected_statuses=(EscalationStatus.OPEN,), staff_messages=messages,
        steps=tuple(StepOnRecord(escalation.id, "paged", now, role, contact.name, channel)
                    for channel in PAGE_CHANNELS),
        events=(EscalationPaged(
            occurred_at=now, escalation_id=escalation.id, reference=escalation.reference,
            appointment_id=escalation.appointment_id, role=role, contact_name=contact.name,
            channels=list(PAGE_CHANNELS),
        ),),
    )


def acknowledge(escalation: Escalation, role: StaffRole, via: AckVia, clinic: ClinicConfig,
                now: datetime) -> EscalationChange | None:
    """`role` takes the escalation; None when it was acknowledged already."""
    if escalation.status is EscalationStatus.ACKNOWLEDGED:
        return None
    name = dict(clinic.aftercare.escalation_chain())[role].name
    return EscalationChange(
        escalation=replace(escalation, status=EscalationStatus.ACKNOWLEDGED, acknowledged_by=role,
                           acknowledged_at=now),
        expected_paged=escalation.paged,
        expected_statuses=(EscalationStatus.OPEN, EscalationStatus.EXHAUSTED),
        steps=(StepOnRecord(escalation.id, "acknowledged", now, role, name, via),),
        events=(EscalationAcknowledged(
            occurred_at=now, escalation_id=escalation.id, reference=escalation.reference,
            appointment_id=escalation.appointment_id, role=role, contact_name=name, via=via,
            raised_at=escalation.raised_at,
        ),),
    )


# --- a text from a staff phone ---

@dataclass(frozen=True)
class StaffTextDecision:
    escalation: Escalation | None  # the one to acknowledge, if any
    reply: str  # the text back to the sender (no patient details)


def decide_staff_text(text: str, role: StaffRole, recent: Sequence[Escalation],
                      clinic: ClinicConfig) -> StaffTextDecision:
    """`recent`: the escalations raised within ACKNOWLEDGE_VALIDITY, whatever their status."""
    found = _ACK_TEXT.match(text)
    if found is None:
        return StaffTextDecision(None, "To acknowledge an escalation, reply OK and its number, e.g. OK 1234.")
    reference = found.group("reference")
    waiting = [e for e in recent if e.status is not EscalationStatus.ACKNOWLEDGED]
    if reference is not None:
        matching = [e for e in waiting if e.reference == reference]
        if len(matching) == 1:
            return StaffTextDecision(matching[0], acknowledged_reply(matching[0]))
        taken = [e for e in recent if e.reference == reference and e.acknowledged_by]
        if not matching and taken:
            return StaffTextDecision(None, already_reply(taken[0], clinic))
        return StaffTextDecision(None, f"No open escalation {reference}. Use the link in the email if in doubt.")
    position = [name for name, _ in clinic.aftercare.escalation_chain()].index(role)
    paged_to_sender = [e for e in waiting if e.paged > position]
    if len(paged_to_sender) == 1:
        return StaffTextDecision(paged_to_sender[0], acknowledged_reply(paged_to_sender[0]))
    if not paged_to_sender:
        return StaffTextDecision(None, "No open escalation to acknowledge.")
    references = ", ".join(e.reference for e in paged_to_sender)
    return StaffTextDecision(None, f"Several escalations are open ({references}): reply OK and the number, "
                                   f"e.g. OK {paged_to_sender[0].reference}.")


def acknowledged_reply(escalation: Escalation) -> str:
    return f"Escalation {escalation.reference} acknowledged: it is yours. Nobody else will be paged."


def already_reply(escalation: Escalation, clinic: ClinicConfig) -> str:
    by = dict(clinic.aftercare.escalation_chain()).get(escalation.acknowledged_by or "")
    return f"Escalation {escalation.reference} was already acknowledged{f' by {by.name}' if by else ''}."


def free_reference(taken: set[str], draw: Callable[[], int]) -> str:
    """A reference no recent escalation has; `draw` gives a random number in [0, 10**REFERENCE_DIGITS)."""
    for _ in range(100):
        reference = f"{draw() % 10 ** REFERENCE_DIGITS:0{REFERENCE_DIGITS}d}"
        if reference not in taken:
            return reference
    raise RuntimeError("no free escalation reference: too many recent escalations")


def _with_acknowledgement(intent: DeliveryIntent, reference: str, url: str) -> DeliveryIntent:
    extra = dict(intent.context.get("extra", {})) | {"escalation_reference": reference, "acknowledge_url": url}
    return replace(intent, context=intent.context | {"extra": extra})




def staff_role(name: str) -> StaffRole:
    """The role named in the clinic config (or a stored row), typed."""
    try:
        return _ROLES[name]
    except KeyError:
        raise ValueError(f"unknown staff role {name!r}") from None


_ROLES: dict[str, StaffRole] = {"on_call": "on_call", "backup": "backup", "lead": "lead"}
