"""What a patient's answer to a check-in changes: pure rules, no I/O.

- The reply is triaged against the latest score of the visit so far (this round's, or an earlier one's).
- A text that answers no open check-in (an unknown number, a text before the first check-in went
  out, a check-in already closed) gets no automatic advice: staff read it. A web answer always
  belongs to the check-in of its link.
- A score answers an open check-in once; a reply that could not be read is counted on the check-in.
- An answer that ends the check-ins closes the rest and cancels their pending messages; STOP ends
  texts, not the check-ins (the email ones go on unless the patient unsubscribes there too).
- STOP, also when sent along with a red flag, suppresses texts to the number and cancels those
  pending; START lifts the suppression.
- An escalation pages the on-call clinician by email and SMS and publishes `EscalationRaised`; a
  reply to review goes by email. Every answer is published as `ReplyRecorded`.
- The patient is answered by text only when they texted and the carrier did not answer already.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from services.aftercare.domain.check_ins import CheckIn
from services.aftercare.domain.reply_kinds import ParsedReply
from services.aftercare.domain.staff import to_on_call, unmatched_context
from services.aftercare.domain.triage import TriageAction, TriageDecision, TriageRules, triage
from shared.clinic_config import ClinicConfig
from shared.events.aftercare import EscalationRaised, ReplyRecorded
from shared.ledger.model import DeliveryIntent
from shared.topics import AFTERCARE_ALERTS, AFTERCARE_RECORDS

Via = Literal["sms", "web"]
ConsentSource = Literal["sms_keyword", "email_link", "carrier_opt_out", "sms_reply"]

RESPONSE_TEMPLATE = {
    TriageAction.REASSURE: "check_in_reassurance",
    TriageAction.CARE_ADVICE: "check_in_care_advice",
    TriageAction.ESCALATE: "check_in_escalation_reply",
    TriageAction.ASK_TO_CLARIFY: "check_in_clarification",
    TriageAction.OPT_OUT: "opt_out_confirmation",
    TriageAction.OPT_IN: "opt_in_confirmation",
    TriageAction.HELP: "help_reply",
}
# Staff are paged (email and SMS) only when it is urgent; a reply to review goes by email.
STAFF_CHANNELS = {TriageAction.ESCALATE: ("email", "sms"), TriageAction.REFER_TO_STAFF: ("email",)}
_ADVICE = frozenset({TriageAction.REASSURE, TriageAction.CARE_ADVICE, TriageAction.ASK_TO_CLARIFY,
                     TriageAction.REFER_TO_STAFF})


@dataclass(frozen=True)
class Answer:
    """A patient's answer as it arrived."""

    reply_id: str
    via: Via
    text: str | None
    phone: str | None
    message_sid: str | None = None
    wants_reply: bool = True  # False when the carrier has already answered STOP or START itself


@dataclass(frozen=True)
class CheckInChange:
    check_in: CheckIn
    count_unreadable: bool
    answered_with: int | None  # the score that answers it, when it is open
    end_check_ins_because: str | None  # close the rest and cancel their pending messages


@dataclass(frozen=True)
class ConsentChange:
    channel: Literal["sms", "email"]
    address: str
    subscribed: bool
    source: ConsentSource


@dataclass(frozen=True)
class ResponseToPatient:
    """A text to render with the message templates and send back in the webhook's answer."""

    template: str
    locale: str
    phone: str
    context: dict[str, Any]


@dataclass(frozen=True)
class Publication:
    topic: str
    key: str
    event: BaseModel


@dataclass(frozen=True)
class ReplyOnRecord:
    id: str
    message_sid: str | None
    check_in_id: str | None
    via: Via
    text: str | None
    intent: str
    score: int | None
    red_flags: list[str]
    action: str
    reasons: list[str]
    received_at: datetime


@dataclass(frozen=True)
class AnswerDecision:
    """Everything one answer records and sends, in the order the handler applies it."""

    triage: TriageDecision
    locale: str
    check_in: CheckInChange | None
    consent: tuple[ConsentChange, ...]
    cancel_texts_to: str | None  # the number that opted out: texts pending to it are cancelled
    staff_messages: tuple[DeliveryIntent, ...]
    response: ResponseToPatient | None
    reply: ReplyOnRecord
    publications: tuple[Publication, ...]


def decide_answer(answer: Answer, parsed: ParsedReply, check_in: CheckIn | None, visit: Sequence[CheckIn],
                  clinic: ClinicConfig, now: datetime) -> AnswerDecision:
    """`check_in` is the one the answer is for, if any; `visit` all the check-ins of its visit, by round."""
    thresholds = clinic.aftercare.triage
    rules = TriageRules(thresholds.reassure_at_or_below, thresholds.escalate_at_or_above)
    previous = previous_score(check_in, visit)
    decision = triage(parsed, previous_score=previous,
                      unreadable_replies_so_far=check_in.unreadable_replies if check_in else 0, rules=rules)
    answers_open_check_in = check_in is not None and (check_in.is_open or answer.via == "web")
    if not answers_open_check_in and decision.action in _ADVICE:
        decision = TriageDecision(TriageAction.REFER_TO_STAFF, (*decision.reasons, "no_open_check_in"), False, False)
    action = decision.action
    locale = check_in.locale if check_in else (parsed.language_hint.value if parsed.language_hint else "en-CA")
    opts_out = bool(answer.phone) and (action is TriageAction.OPT_OUT or "opt_out_requested" in decision.reasons)
    key = check_in.appointment_id if check_in else "unmatched"
    reply = ReplyOnRecord(
        id=answer.reply_id, message_sid=answer.message_sid, check_in_id=check_in.id if check_in else None,
        via=answer.via, text=answer.text, intent=parsed.intent.value, score=parsed.score,
        red_flags=[flag.value for flag in parsed.red_flags], action=action.value, reasons=list(decision.reasons),
        received_at=now,
    )
    staff_messages, escalation = _to_staff(answer, parsed, check_in, decision, previous, clinic, now)
    recorded = ReplyRecorded(
        occurred_at=now, reply_id=reply.id, check_in_id=reply.check_in_id,
        appointment_id=check_in.appointment_id if check_in else None, via=answer.via, text=answer.text,
        score=parsed.score, red_flags=reply.red_flags, action=reply.action, reasons=reply.reasons,
    )
    return AnswerDecision(
        triage=decision,
        locale=locale,
        check_in=_check_in_change(check_in, parsed, decision),
        consent=_consent_changes(answer, action, opts_out),
        cancel_texts_to=answer.phone if opts_out else None,
        staff_messages=staff_messages,
        response=_response(answer, parsed, check_in, action, locale, clinic),
        reply=reply,
        publications=(
            *((Publication(AFTERCARE_ALERTS, key, escalation),) if escalation else ()),
            Publication(AFTERCARE_RECORDS, key, recorded),
        ),
    )


def previous_score(check_in: CheckIn | None, visit: Sequence[CheckIn]) -> int | None:
    """The latest score of the visit up to this check-in: this round's if answered, else an earlier one's."""
    if check_in is None:
        return None
    earlier = [c for c in visit if c.score is not None and (c.round < check_in.round or c.id == check_in.id)]
    return earlier[-1].score if earlier else None


def _check_in_change(check_in: CheckIn | None, parsed: ParsedReply, decision: TriageDecision) -> CheckInChange | None:
    if check_in is None:
        return None
    action = decision.action
    return CheckInChange(
        check_in=check_in,
        count_unreadable=action in (TriageAction.ASK_TO_CLARIFY, TriageAction.REFER_TO_STAFF),
        answered_with=parsed.score if parsed.score is not None and check_in.is_open else None,
        # STOP ends texts, not the check-ins.
        end_check_ins_because=(f"check_ins_ended:{action.value}"
                               if decision.ends_check_ins and action is not TriageAction.OPT_OUT else None),
    )


def _consent_changes(answer: Answer, action: TriageAction, opts_out: bool) -> tuple[ConsentChange, ...]:
    if not answer.phone:
        return ()
    if opts_out:
        return (ConsentChange("sms", answer.phone, subscribed=False, source="sms_keyword"),)
    if action is TriageAction.OPT_IN:
        return (ConsentChange("sms", answer.phone, subscribed=True, source="sms_keyword"),)
    return ()


def _response(answer: Answer, parsed: ParsedReply, check_in: CheckIn | None, action: TriageAction, locale: str,
              clinic: ClinicConfig) -> ResponseToPatient | None:
    template = RESPONSE_TEMPLATE.get(action)
    if template is None or answer.via != "sms" or not answer.phone or not answer.wants_reply:
        return None
    context = check_in.context if check_in else unmatched_context(clinic)
    with_score = context | {"extra": dict(context.get("extra", {})) | {"score": parsed.score}}
    return ResponseToPatient(template, locale, answer.phone, with_score)


def _to_staff(answer: Answer, parsed: ParsedReply, check_in: CheckIn | None, decision: TriageDecision,
              previous: int | None, clinic: ClinicConfig,
              now: datetime) -> tuple[tuple[DeliveryIntent, ...], EscalationRaised | None]:
    """The on-call clinician's messages, and the escalation to publish when it is urgent."""
    channels = STAFF_CHANNELS.get(decision.action)
    if channels is None:
        return (), None
    escalates = decision.action is TriageAction.ESCALATE
    template = "staff_alert" if escalates else "staff_review"
    base = dict(check_in.context) if check_in else unmatched_context(clinic)
    extra = dict(base.get("extra", {}))
    reasons = list(decision.reasons)
    if extra.get("needled_near_chest") and decision.urgent_911_advice:
        reasons.append("needled_near_chest")  # chest pain or breathlessness after needling near the chest
    extra.update(
        patient_name=extra.get("patient_name", "Unknown patient"),
        patient_phone=answer.phone or extra.get("patient_phone"),
        reply_text=answer.text, score=parsed.score, previous_score=previous,
        reasons=reasons,
        appointment_type=base.get("appointment", {}).get("type"),
        check_in_step=check_in.round if check_in else None,
    )
    messages = to_on_call(
        clinic, appointment_id=check_in.appointment_id if check_in else f"unmatched:{answer.phone}",
        step=f"{template}:{answer.reply_id}", template=template, channels=channels,
        context=base | {"extra": extra}, now=now,
    )
    if not escalates:
        return messages, None
    return messages, EscalationRaised(
        occurred_at=now, reply_id=answer.reply_id, check_in_id=check_in.id if check_in else None,
        appointment_id=check_in.appointment_id if check_in else None, score=parsed.score,
        previous_score=previous, reasons=reasons, urgent_911_advice=decision.urgent_911_advice,
    )

