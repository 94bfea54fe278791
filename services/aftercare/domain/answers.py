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
  reply to review goes by email. Every answer is published as `ReplyRecorded`, with a short excerpt
  of its text, never the whole text (`reply_limits`).
- A check-in pages once per reason within `PAGE_AGAIN_AFTER`: a later answer with no new reason
  is recorded (and its note kept with the check-in) without paging again.
- A text from a number that several patients with open check-ins share answers none of them: it is
  not guessed. The patient gets a neutral answer (the 911 line when a red flag is in it), and staff
  a review email naming the appointments it could belong to.
- The patient is answered by text only when they texted and the carrier did not answer already.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel

from services.aftercare.domain.check_ins import CheckIn
from services.aftercare.domain.reply_kinds import ParsedReply
from services.aftercare.domain.reply_limits import event_excerpt
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
# Within this time of a page about a check-in, an answer with no new reason does not page again.
PAGE_AGAIN_AFTER = timedelta(hours=12)
ALREADY_PAGED = "already_paged"
# A neutral answer to a text that could belong to several patients: no advice tied to a visit.
RECEIVED_TEMPLATE = "check_in_received"


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
                  clinic: ClinicConfig, now: datetime, *, paged_for: frozenset[str] = frozenset(),
                  could_be: Sequence[CheckIn] = ()) -> AnswerDecision:
    """`check_in` is the one the answer is for, if any; `visit` all the check-ins of its visit, by round.

    `paged_for`: the reasons this check-in already paged staff for within `PAGE_AGAIN_AFTER`.
    `could_be`: when the text's number is shared by patients with open check-ins, the latest open
    check-in of each, newest first (then `check_in` is None).
    """
    thresholds = clinic.aftercare.triage
    rules = TriageRules(thresholds.reassure_at_or_below, thresholds.escalate_at_or_above)
    previous = previous_score(check_in, visit)
    decision = triage(parsed, previous_score=previous,
                      unreadable_replies_so_far=check_in.unreadable_replies if check_in else 0, rules=rules)
    answers_open_check_in = check_in is not None and (check_in.is_open or answer.via == "web")
    if could_be and decision.action in _ADVICE:
        decision = TriageDecision(TriageAction.REFER_TO_STAFF, (*decision.reasons, *_shared_phone(could_be)),
                                  False, False)
    elif could_be and decision.action is TriageAction.ESCALATE:
        decision = TriageDecision(TriageAction.ESCALATE, (*decision.reasons, *_shared_phone(could_be)),
                                  decision.ends_check_ins, decision.urgent_911_advice)
    elif not answers_open_check_in and decision.action in _ADVICE:
        decision = TriageDecision(TriageAction.REFER_TO_STAFF, (*decision.reasons, "no_open_check_in"), False, False)
    action = decision.action
    locale = check_in.locale if check_in else (parsed.language_hint.value if parsed.language_hint else "en-CA")
    opts_out = bool(answer.phone) and (action is TriageAction.OPT_OUT or "opt_out_requested" in decision.reasons)
    key = check_in.appointment_id if check_in else "unmatched"
    pages_again = not _already_paged(decision, paged_for)
    reply = ReplyOnRecord(
        id=answer.reply_id, message_sid=answer.message_sid, check_in_id=check_in.id if check_in else None,
        via=answer.via, text=answer.text, intent=parsed.intent.value, score=parsed.score,
        red_flags=[flag.value for flag in parsed.red_flags], action=action.value,
        reasons=[*decision.reasons, *(() if pages_again else (ALREADY_PAGED,))], received_at=now,
    )
    staff_messages, escalation = (_to_staff(answer, parsed, check_in, decision, previous, clinic, now, could_be)
                                  if pages_again else ((), None))
    recorded = ReplyRecorded(
        occurred_at=now, reply_id=reply.id, check_in_id=reply.check_in_id,
        appointment_id=check_in.appointment_id if check_in else None, via=answer.via,
        text=event_excerpt(answer.text), score=parsed.score, red_flags=reply.red_flags, action=reply.action,
        reasons=reply.reasons,
    )
    return AnswerDecision(
        triage=decision,
        locale=locale,
        check_in=_check_in_change(check_in, parsed, decision),
        consent=_consent_changes(answer, action, opts_out),
        cancel_texts_to=answer.phone if opts_out else None,
        staff_messages=staff_messages,
        response=_response(answer, parsed, check_in, action, locale, clinic, shared_phone=bool(could_be)),
        reply=reply,
        publications=(
            *((Publication(AFTERCARE_ALERTS, key, escalation),) if escalation else ()),
            Publication(AFTERCARE_RECORDS, key, recorded),
        ),
    )


def paged_reasons(decision_reasons: Sequence[str]) -> frozenset[str]:
    """The reasons a page was about: not the notes on how the answer arrived."""
    return frozenset(reason for reason in decision_reasons if reason not in _NOT_A_PAGE_REASON)


_NOT_A_PAGE_REASON = frozenset({"opt_out_requested", ALREADY_PAGED})


def _already_paged(decision: TriageDecision, paged_for: frozenset[str]) -> bool:
    """An escalation whose every reason already paged staff about this check-in, within the window."""
    reasons = paged_reasons(decision.reasons)
    return decision.action is TriageAction.ESCALATE and bool(reasons) and reasons <= paged_for


def _shared_phone(could_be: Sequence[CheckIn]) -> tuple[str, ...]:
    """Reasons staff read as "could be one of N patients", with the appointments (no patient details)."""
    appointments = ", ".join(sorted(check_in.appointment_id for check_in in could_be))
    return (f"shared_phone_patients:{len(could_be)}", f"possible_appointments:{appointments}")


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
              clinic: ClinicConfig, shared_phone: bool = False) -> ResponseToPatient | None:
    template = RESPONSE_TEMPLATE.get(action)
    if shared_phone and action is TriageAction.REFER_TO_STAFF:
        template = RECEIVED_TEMPLATE  # no advice that could be about another patient's visit
    if template is None or answer.via != "sms" or not answer.phone or not answer.wants_reply:
        return None
    context = check_in.context if check_in else unmatched_context(clinic)
    with_score = context | {"extra": dict(context.get("extra", {})) | {"score": parsed.score}}
    return ResponseToPatient(template, locale, answer.phone, with_score)


def _to_staff(answer: Answer, parsed: ParsedReply, check_in: CheckIn | None, decision: TriageDecision,
              previous: int | None, clinic: ClinicConfig, now: datetime,
              could_be: Sequence[CheckIn] = ()) -> tuple[tuple[DeliveryIntent, ...], EscalationRaised | None]:
    """The on-call clinician's messages, and the escalation to publish when it is urgent."""
    channels = STAFF_CHANNELS.get(decision.action)
    if channels is None:
        return (), None
    escalates = decision.action is TriageAction.ESCALATE
    template = "staff_alert" if escalates else "staff_review"
    base = dict(check_in.context) if check_in else unmatched_context(clinic)
    if could_be:
        # The newest visit's details let the email render; its title and reasons say whose it may be.
        newest = dict(could_be[0].context)
        base = newest | {"extra": dict(newest.get("extra", {})) | {
            "patient_name": f"one of {len(could_be)} patients who share this phone"}}
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

