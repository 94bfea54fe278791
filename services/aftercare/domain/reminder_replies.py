"""What a patient's text means when it answers a reminder: pure rules, no I/O.

- Context: a text is read against the last message the patient's phone really got. A visit's
  reminder is "out" from the moment the notifier reported its reminder text sent (clinic.deliveries.v1,
  read by `domain/sent_reminders.py`) until the visit starts (its reply window), while the visit is
  still booked. A reminder that was skipped, failed, cancelled before it went out, or that the carrier
  could not deliver, is no context; nor is one sent before the visit was last booked or rescheduled (it
  named the old time). When a reminder is out and it went out after the latest soreness check-in text
  aftercare sent to that phone, the text answers the reminder; otherwise it is read as aftercare reads
  every other text. Of several visits with a reminder out, the latest reminder sent is the one the
  patient answers.
- Reading: "C", "yes", "oui", "confirmed", "je confirme", "I'll be there", "je serai là" confirm;
  "R", "reschedule", "can I move it", "je dois annuler", "je voudrais changer", "I can't make it"
  ask for a change. Anything else ("ok?", "maybe", "peut-être", a question about a confirmation, a
  text both confirming and asking for a change) is unclear: the patient is asked again, nothing is
  guessed or published.
- STOP, START and HELP (and their French and Twilio forms, CANCEL included) keep their carrier
  meaning in every context, and a text naming a red flag (chest pain, trouble breathing...) is read
  as aftercare reads it, so it still reaches the on-call clinician: neither is a reminder answer.
- A confirmation publishes `AppointmentConfirmed`, a change request `ChangeRequested` (with a short
  excerpt of the reply) and emails the front desk; the patient is told what happens next in their
  language. The same answer again is answered again, but neither published nor emailed twice.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.aftercare.domain.answers import Answer, Publication, ReplyOnRecord, ResponseToPatient
from services.aftercare.domain.reply_keywords import asks_to_opt_out, keyword_intent
from services.aftercare.domain.reply_kinds import ReplyIntent
from services.aftercare.domain.reply_limits import event_excerpt
from services.aftercare.domain.reply_parser import parse_reply
from services.aftercare.domain.reply_text import EDGE_SYMBOLS, normalize
from shared.clinic_config import ClinicConfig
from shared.delivery.context import appointment_context
from shared.delivery.recipients import reachable_channels
from shared.events.appointment import AppointmentEvent
from shared.events.booking_requests import AppointmentConfirmed, ChangeRequested
from shared.ledger.model import DeliveryIntent
from shared.topics import APPOINTMENT_REQUESTS

CONFIRMED_TEMPLATE = "reminder_confirmed_reply"
CHANGE_TEMPLATE = "reminder_change_reply"
CLARIFICATION_TEMPLATE = "reminder_clarification"
FRONT_DESK_TEMPLATE = "staff_change_request"
STAFF_LOCALE = "en-CA"


class ReminderReading(StrEnum):
    CONFIRM = "confirm"
    CHANGE = "change"
    UNCLEAR = "unclear"
    OPT_OUT = "opt_out"  # carrier keywords: handled as every other text
    OPT_IN = "opt_in"
    HELP = "help"
    HEALTH_CONCERN = "health_concern"  # a red flag: read as aftercare reads it, so it reaches the clinician


class UpcomingStatus(StrEnum):
    BOOKED = "booked"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"
    COMPLETED = "completed"


class ReminderAnswer(StrEnum):
    CONFIRMED = "confirmed"
    CHANGE_REQUESTED = "change_requested"


STATUS_AFTER = {
    "AppointmentBooked": UpcomingStatus.BOOKED,
    "AppointmentRescheduled": UpcomingStatus.BOOKED,
    "AppointmentCancelled": UpcomingStatus.CANCELLED,
    "AppointmentNoShow": UpcomingStatus.NO_SHOW,
    "AppointmentCompleted": UpcomingStatus.COMPLETED,
}


@dataclass(frozen=True)
class UpcomingVisit:
    appointment_id: str
    sequence: int
    phone: str | None
    locale: str
    appointment_type: str
    starts_at: datetime
    status: UpcomingStatus
    planned_at: datetime  # when the booking or reschedule was made: a reminder sent before named another time
    context: dict[str, Any]
    answer: ReminderAnswer | None = None


def upcoming_from_event(event: AppointmentEvent) -> UpcomingVisit:
    """The visit as an appointment event leaves it; its phone only when the patient agreed to texts."""
    patient = event.patient
    return UpcomingVisit(
        appointment_id=event.appointment_id, sequence=event.sequence, phone=reachable_channels(patient).get("sms"),
        locale=str(patient.locale), appointment_type=event.appointment.type.value,
        starts_at=event.appointment.starts_at, status=STATUS_AFTER[event.event_type], planned_at=event.occurred_at,
        context=appointment_context(event, patient_id=patient.patient_id, patient_name=patient.name),
    )


_CARRIER = {ReplyIntent.OPT_OUT: ReminderReading.OPT_OUT, ReplyIntent.OPT_IN: ReminderReading.OPT_IN,
            ReplyIntent.HELP: ReminderReading.HELP}
_LETTER = {"c": ReminderReading.CONFIRM, "r": ReminderReading.CHANGE}
_PLAIN_YES = re.compile(r"^(?:yes|yeah|yep|yup|y|oui|ouais|ok(?:ay)? (?:i'?ll|i will) be there)\b")
_CONFIRMS = re.compile(
    r"\b(?:confirm(?:ed|e|er)?|i'?ll be there|i will be there|will be there|see you (?:then|there|soon)"
    r"|je serai la|j'y serai|je serai present(?:e)?|nous serons la|on sera la)\b"
)
_CHANGES = re.compile(
    "|".join([
        r"\breschedul\w*", r"\bmove (?:it|my|the|our)\b", r"\bchange (?:it|my|the|our|of)\b",
        r"\b(?:can'?t|cannot|can not|won'?t|will not|unable to) (?:make it|come|attend|be there|go)\b",
        r"\b(?:won'?t|will not|not) be able to (?:make it|come|attend|be there)\b",
        r"\b(?:another|different|new|other) (?:time|day|date)\b", r"\b(?:need|have) to cancel\b",
        r"\bannul\w*", r"\bchanger\b", r"\bmodifier\b", r"\bdeplacer\b", r"\breporter\b",
        r"\b(?:autre|nouvelle|nouveau) (?:moment|heure|jour|date|rendez-vous|rdv)\b",
        r"\bne (?:peux|pourrai|pourrais|serai) (?:pas|plus)\b",
    ])
)


def read_reminder_reply(text: str) -> ReminderReading:
    """What a text means as an answer to a reminder; UNCLEAR unless it clearly confirms or asks for a change."""
    normalized = normalize(text)
    intent = keyword_intent(normalized)
    if intent in _CARRIER:
        return _CARRIER[intent]
    if asks_to_opt_out(normalized):
        return ReminderReading.OPT_OUT
    if parse_reply(text).red_flags:
        return ReminderReading.HEALTH_CONCERN
    core = EDGE_SYMBOLS.sub("", normalized)
    if core in _LETTER:
        return _LETTER[core]
    changes = _CHANGES.search(normalized) is not None
    confirms = _CONFIRMS.search(normalized) is not None
    if changes:
        # "yes, I need to reschedule" asks for a change; "I'll be there, or can I move it?" is unclear.
        return ReminderReading.UNCLEAR if confirms else ReminderReading.CHANGE
    if (confirms or _PLAIN_YES.match(core)) and "?" not in normalized:  # "yes?" or "confirmed?" asks
        return ReminderReading.CONFIRM
    return ReminderReading.UNCLEAR


def reminder_out(visit: UpcomingVisit, sent_at: datetime | None, now: datetime) -> datetime | None:
    """When the visit's latest reminder text went out (`sent_at`, as the notifier reported it), while its
    reply window is open: the visit still booked and not started, the reminder about its current time."""
    if visit.status is not UpcomingStatus.BOOKED or now >= visit.starts_at or sent_at is None:
        return None
    return sent_at if visit.planned_at <= sent_at <= now else None


def visit_answered(visits: Sequence[UpcomingVisit], reminders_sent: Mapping[str, datetime], now: datetime,
                   last_check_in_at: datetime | None) -> UpcomingVisit | None:
    """The visit whose reminder a text from the phone answers, if the last message it got was a reminder.

    `visits`: the phone's visits; `reminders_sent`: when each visit's latest reminder text really went out
    (visits without one are absent); `last_check_in_at`: when aftercare's latest soreness check-in text to
    the phone went out, if one did.
    """
    out = [(sent, visit) for visit in visits
           if (sent := reminder_out(visit, reminders_sent.get(visit.appointment_id), now)) is not None]
    if not out:
        return None
    sent, visit = max(out, key=lambda pair: (pair[0], pair[1].starts_at))
    if last_check_in_at is not None and last_check_in_at >= sent:
        return None  # the check-in came after the reminder: the text answers the check-in
    return visit


@dataclass(frozen=True)
class ReminderReplyDecision:
    """Everything a reply to a reminder records and sends."""

    reading: ReminderReading
    locale: str  # the patient's, as their booking gives it
    answer: ReminderAnswer | None  # the visit's new answer, when it changes
    response: ResponseToPatient | None
    staff_messages: tuple[DeliveryIntent, ...]
    reply: ReplyOnRecord
    publications: tuple[Publication, ...]


_ANSWERS = frozenset({ReminderReading.CONFIRM, ReminderReading.CHANGE, ReminderReading.UNCLEAR})


def decide_reminder_reply(answer: Answer, reading: ReminderReading, visit: UpcomingVisit, clinic: ClinicConfig,
                          now: datetime) -> ReminderReplyDecision | None:
    """None when the text is no answer to the reminder: STOP, START and HELP keep their carrier meaning and
    a red flag reaches the on-call clinician, handled as every other text."""
    if reading not in _ANSWERS:
        return None
    new_answer = {ReminderReading.CONFIRM: ReminderAnswer.CONFIRMED,
                  ReminderReading.CHANGE: ReminderAnswer.CHANGE_REQUESTED}.get(reading)
    changes = new_answer is not None and new_answer is not visit.answer
    template = {ReminderReading.CONFIRM: CONFIRMED_TEMPLATE, ReminderReading.CHANGE: CHANGE_TEMPLATE}.get(
        reading, CLARIFICATION_TEMPLATE)
    reply = ReplyOnRecord(
        id=answer.reply_id, message_sid=answer.message_sid, check_in_id=None, via=answer.via, text=answer.text,
        intent=f"reminder_{reading.value}", score=None, red_flags=[],
        action=new_answer.value if new_answer else "ask_to_clarify",
        reasons=[f"reminder_reply:{visit.appointment_id}", *(() if changes or not new_answer else ("repeated",))],
        received_at=now,
    )
    starts_at = visit.starts_at
    fields = dict(occurred_at=now, appointment_id=visit.appointment_id, starts_at=starts_at, reply_id=reply.id,
                  reply_excerpt=event_excerpt(answer.text))
    publications: tuple[Publication, ...] = ()
    staff: tuple[DeliveryIntent, ...] = ()
    if changes and new_answer is ReminderAnswer.CONFIRMED:
        publications = (Publication(APPOINTMENT_REQUESTS, visit.appointment_id, AppointmentConfirmed(**fields)),)
    elif changes and new_answer is ReminderAnswer.CHANGE_REQUESTED:
        publications = (Publication(APPOINTMENT_REQUESTS, visit.appointment_id, ChangeRequested(**fields)),)
        staff = (to_front_desk(visit, answer, clinic, now),)
    response = None
    if answer.phone and answer.wants_reply:
        response = ResponseToPatient(template, visit.locale, answer.phone, visit.context)
    return ReminderReplyDecision(reading, visit.locale, new_answer if changes else None, response, staff, reply,
                                 publications)


def front_desk_address(clinic: ClinicConfig) -> str:
    return str(clinic.clinic.front_desk_email or clinic.clinic.email)


def to_front_desk(visit: UpcomingVisit, answer: Answer, clinic: ClinicConfig, now: datetime) -> DeliveryIntent:
    """The front desk's email: call the patient back to find a new time."""
    extra = dict(visit.context.get("extra", {})) | {
        "reply_text": event_excerpt(answer.text), "patient_phone": answer.phone, "patient_locale": visit.locale,
    }
    return DeliveryIntent(
        appointment_id=visit.appointment_id, step=f"{FRONT_DESK_TEMPLATE}:{answer.reply_id}", channel="email",
        appointment_version=0, template=FRONT_DESK_TEMPLATE, recipient=front_desk_address(clinic),
        locale=STAFF_LOCALE, due_at=now, context=visit.context | {"extra": extra},
    )
