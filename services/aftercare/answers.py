"""What happens when a patient answers a check-in, by text or through an email link.

Everything an answer changes (the check-in, the reply on record, alerts to staff, events to
publish) is written in one transaction; the reply to the patient is rendered from it.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.aftercare.check_in_store import CheckIn, CheckInStore
from services.aftercare.consent import ConsentBook
from services.aftercare.domain.reply_parser import ParsedReply, ReplyIntent, parse_reply
from services.aftercare.domain.triage import TriageAction, TriageDecision, TriageRules, triage
from shared.clinic_config import ClinicConfig
from shared.clock import Clock
from shared.delivery.compose import MessageComposer
from shared.events.aftercare import EscalationRaised, ReplyRecorded
from shared.ledger.ledger import DeliveryLedger
from shared.ledger.model import DeliveryIntent
from shared.observability import get_logger
from shared.outbox.store import Outbox
from shared.topics import AFTERCARE_ALERTS, AFTERCARE_RECORDS

log = get_logger(__name__)

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


@dataclass(frozen=True)
class AnswerOutcome:
    decision: TriageDecision | None  # None when nothing new was recorded
    recorded: bool  # False when this answer was already on record (a retried webhook, a second click)
    response_text: str | None
    locale: str


class CheckInAnswers:
    def __init__(self, *, engine: AsyncEngine, store: CheckInStore, ledger: DeliveryLedger, outbox: Outbox,
                 consent: ConsentBook, composer: MessageComposer, clinic: ClinicConfig, clock: Clock,
                 on_change: Callable[[], None] = lambda: None) -> None:
        self.engine = engine
        self.store = store
        self.ledger = ledger
        self.outbox = outbox
        self.consent = consent
        self.composer = composer
        self.clinic = clinic
        self.clock = clock
        self.on_change = on_change
        thresholds = clinic.aftercare.triage
        self.rules = TriageRules(thresholds.reassure_at_or_below, thresholds.escalate_at_or_above)

    async def sms_reply(self, message_sid: str, phone: str, text: str,
                        carrier_answered: bool = False) -> AnswerOutcome:
        now = self.clock.now()
        async with self.engine.begin() as connection:
            seen, response = await self.store.response_to(connection, message_sid)
            if seen:
                return AnswerOutcome(None, False, response, "en-CA")
            check_in = await self.store.latest_sent_to_phone(connection, phone, now)
            parsed = parse_reply(text)
            outcome = await self._apply(connection, check_in, parsed, via="sms", text=text, now=now,
                                        message_sid=message_sid, phone=phone, reply=not carrier_answered)
        self.on_change()
        return outcome

    async def locale_of(self, check_in_id: str) -> str | None:
        async with self.engine.connect() as connection:
            check_in = await self.store.get(connection, check_in_id)
        return check_in.locale if check_in else None

    async def web_score(self, check_in_id: str, score: int) -> AnswerOutcome | None:
        now = self.clock.now()
        async with self.engine.begin() as connection:
            check_in = await self.store.get(connection, check_in_id)
            if check_in is None:
                return None
            if not check_in.is_open:
                return AnswerOutcome(None, False, None, check_in.locale)
            parsed = ParsedReply(intent=ReplyIntent.SCORE, score=score, red_flags=(), language_hint=None)
            outcome = await self._apply(connection, check_in, parsed, via="web", text=None, now=now,
                                        message_sid=None, phone=check_in.phone)
        self.on_change()
        return outcome

    async def web_note(self, check_in_id: str, note: str) -> AnswerOutcome | None:
        """A note added on the web page; red flags in it escalate like a text would."""
        now = self.clock.now()
        parsed = parse_reply(note)
        async with self.engine.begin() as connection:
            check_in = await self.store.get(connection, check_in_id)
            if check_in is None:
                return None
            await self.store.add_note(connection, check_in_id, note[:2000], now)
            if not parsed.red_flags:
                return AnswerOutcome(None, True, None, check_in.locale)
            outcome = await self._apply(connection, check_in, ParsedReply(ReplyIntent.FREE_TEXT, None, parsed.red_flags, None),
                                        via="web", text=note, now=now, message_sid=None, phone=check_in.phone)
        self.on_change()
        return outcome

    async def _apply(self, connection: AsyncConnection, check_in: CheckIn | None, parsed: ParsedReply, *,
                     via: str, text: str | None, now: datetime, message_sid: str | None,
                     phone: str | None, reply: bool = True) -> AnswerOutcome:
        previous_score = await self._previous_score(connection, check_in)
        decision = triage(parsed, previous_score=previous_score,
                          unreadable_replies_so_far=check_in.unreadable_replies if check_in else 0,
                          rules=self.rules)
        action = decision.action
        answers_open_check_in = check_in is not None and (check_in.is_open or via == "web")
        if not answers_open_check_in and action in (TriageAction.REASSURE, TriageAction.CARE_ADVICE,
                                                    TriageAction.ASK_TO_CLARIFY, TriageAction.REFER_TO_STAFF):
            # A text that answers no open check-in: staff read it, no automatic advice.
            decision = TriageDecision(TriageAction.REFER_TO_STAFF, decision.reasons + ("no_open_check_in",), False, False)
            action = decision.action
        reply_id = str(uuid.uuid4())
        if check_in is not None:
            await self._update_check_in(connection, check_in, parsed, decision, via, now)
        if phone and (action is TriageAction.OPT_OUT or "opt_out_requested" in decision.reasons):
            await self.consent.change(connection, "sms", phone, subscribed=False, source="sms_keyword", now=now)
            await self.ledger.cancel_pending_to(connection, "sms", phone, "opted_out", now)
        if phone and action is TriageAction.OPT_IN:
            await self.consent.change(connection, "sms", phone, subscribed=True, source="sms_keyword", now=now)
        if action in (TriageAction.ESCALATE, TriageAction.REFER_TO_STAFF):
            await self._alert_staff(connection, check_in, parsed, decision, previous_score, text, phone, reply_id, now)
        locale = check_in.locale if check_in else (parsed.language_hint.value if parsed.language_hint else "en-CA")
        template = RESPONSE_TEMPLATE.get(action)
        response = None
        if template is not None and via == "sms" and phone and reply:
            context = check_in.context if check_in else {"patient": {"first_name": "", "time_zone": self.clinic.clinic.time_zone}}
            response = self.composer.sms_text(template, locale, _with_score(context, parsed.score), phone)
        await self.store.add_reply(
            connection, id=reply_id, message_sid=message_sid, check_in_id=check_in.id if check_in else None,
            via=via, text=text, intent=parsed.intent.value, score=parsed.score,
            red_flags=[flag.value for flag in parsed.red_flags], action=action.value,
            reasons=list(decision.reasons), response=response, received_at=now,
        )
        await self._publish(connection, AFTERCARE_RECORDS, check_in, ReplyRecorded(
            occurred_at=now, reply_id=reply_id, check_in_id=check_in.id if check_in else None,
            appointment_id=check_in.appointment_id if check_in else None, via=via, text=text,  # type: ignore[arg-type]
            score=parsed.score, red_flags=[flag.value for flag in parsed.red_flags], action=action.value,
            reasons=list(decision.reasons),
        ))
        log.info("check_in_answer", reply_id=reply_id, via=via, action=action.value, reasons=list(decision.reasons),
                 check_in_id=check_in.id if check_in else None)
        return AnswerOutcome(decision, True, response, locale)

    async def _previous_score(self, connection: AsyncConnection, check_in: CheckIn | None) -> int | None:
        if check_in is None:
            return None
        earlier = [c for c in await self.store.of_appointment(connection, check_in.appointment_id)
                   if c.score is not None and (c.round < check_in.round or c.id == check_in.id)]
        return earlier[-1].score if earlier else None

    async def _update_check_in(self, connection: AsyncConnection, check_in: CheckIn, parsed: ParsedReply,
                               decision: TriageDecision, via: str, now: datetime) -> None:
        action = decision.action
        if action in (TriageAction.ASK_TO_CLARIFY, TriageAction.REFER_TO_STAFF):
            await self.store.count_unreadable(connection, check_in.id, now)
        if parsed.score is not None and check_in.is_open:
            await self.store.record_answer(connection, check_in.id, parsed.score, via, now)
        # STOP ends texts, not the check-ins: the email ones go on unless the patient unsubscribes there too.
        if decision.ends_check_ins and action is not TriageAction.OPT_OUT:
            await self.store.close_remaining(connection, check_in.appointment_id, "closed", now)
            await self.ledger.cancel_pending(connection, check_in.appointment_id, f"check_ins_ended:{action.value}",
                                             now, templates=["soreness_check_in"])

    async def _alert_staff(self, connection: AsyncConnection, check_in: CheckIn | None, parsed: ParsedReply,
                           decision: TriageDecision, previous_score: int | None, text: str | None,
                           phone: str | None, reply_id: str, now: datetime) -> None:
        on_call = self.clinic.aftercare.on_call
        template = "staff_alert" if decision.action is TriageAction.ESCALATE else "staff_review"
        base = dict(check_in.context) if check_in else {"patient": {"first_name": "", "time_zone": self.clinic.clinic.time_zone}}
        extra = dict(base.get("extra", {}))
        reasons = list(decision.reasons)
        if extra.get("needled_near_chest") and decision.urgent_911_advice:
            reasons.append("needled_near_chest")  # chest pain or breathlessness after needling near the chest
        extra.update(
            patient_name=extra.get("patient_name", "Unknown patient"),
            patient_phone=phone or extra.get("patient_phone"),
            reply_text=text, score=parsed.score, previous_score=previous_score,
            reasons=reasons,
            appointment_type=base.get("appointment", {}).get("type"),
            check_in_step=check_in.round if check_in else None,
        )
        context = base | {"extra": extra}
        appointment_id = check_in.appointment_id if check_in else f"unmatched:{phone}"
        await self.ledger.record(connection, [
            DeliveryIntent(appointment_id=appointment_id, step=f"{template}:{reply_id}", channel=channel,
                           appointment_version=0, template=template, recipient=address, locale="en-CA",
                           due_at=now, context=context)
            for channel, address in (("email", str(on_call.email)), ("sms", on_call.phone))
            if channel in STAFF_CHANNELS[decision.action]
        ], now)
        if decision.action is TriageAction.ESCALATE:
            await self._publish(connection, AFTERCARE_ALERTS, check_in, EscalationRaised(
                occurred_at=now, reply_id=reply_id, check_in_id=check_in.id if check_in else None,
                appointment_id=check_in.appointment_id if check_in else None, score=parsed.score,
                previous_score=previous_score, reasons=reasons,
                urgent_911_advice=decision.urgent_911_advice,
            ))

    async def _publish(self, connection: AsyncConnection, topic: str, check_in: CheckIn | None, event: BaseModel) -> None:
        key = check_in.appointment_id if check_in else "unmatched"
        await self.outbox.add(connection, topic=topic, key=key, event=event, now=self.clock.now())


def _with_score(context: dict[str, Any], score: int | None) -> dict[str, Any]:
    return context | {"extra": dict(context.get("extra", {})) | {"score": score}}

