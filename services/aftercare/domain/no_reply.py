"""A visit whose check-ins went unanswered: what the no-reply watch records. Pure.

Once the reply window of a visit's last round has passed, its check-ins still open are closed as
`no_reply`. A visit with an answered round is not silent, nor one the patient replied to in any other
way (STOP, an opt-out sentence, a text that could not be read: each already had its own answer);
a visit without any reply is published as `NoReplyRecorded` and goes to the on-call clinician for
review, by email.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.aftercare.domain.check_ins import CheckIn, CheckInStatus
from services.aftercare.domain.staff import to_on_call
from shared.clinic_config import ClinicConfig
from shared.events.aftercare import NoReplyRecorded
from shared.ledger.model import DeliveryIntent


@dataclass(frozen=True)
class SilenceDecision:
    appointment_id: str
    event: NoReplyRecorded | None = None  # None when an earlier round was answered: not silence
    staff_messages: tuple[DeliveryIntent, ...] = ()


def decide_silence(last: CheckIn, visit: Sequence[CheckIn], clinic: ClinicConfig, now: datetime,
                   replies: int = 0) -> SilenceDecision:
    """`last` is the visit's last-round check-in whose reply window has ended; `visit` all its check-ins;
    `replies` how many replies to them are on record."""
    if replies or any(check_in.status is CheckInStatus.ANSWERED for check_in in visit):
        return SilenceDecision(last.appointment_id)
    extra = dict(last.context.get("extra", {})) | {
        "reply_text": None, "score": None, "previous_score": None, "reasons": ["no_reply"],
        "appointment_type": last.context.get("appointment", {}).get("type"), "check_in_step": last.round,
    }
    return SilenceDecision(
        last.appointment_id,
        NoReplyRecorded(occurred_at=now, appointment_id=last.appointment_id, check_ins=len(visit)),
        to_on_call(clinic, appointment_id=last.appointment_id, step="staff_review:no_reply", template="staff_review",
                   channels=("email",), context=last.context | {"extra": extra}, now=now),
    )
