"""A patient answers a check-in, by text or through an email link.

What the answer changes is decided by `decide_answer`; it is applied here in one transaction
(the check-in, consent, messages to staff, the reply on record, events to publish), and the text
back to the patient is rendered from it.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.aftercare.domain.answers import (
    ALREADY_PAGED,
    PAGE_AGAIN_AFTER,
    Answer,
    AnswerDecision,
    decide_answer,
    paged_reasons,
)
from services.aftercare.domain.check_ins import CheckIn, CheckInStatus
from services.aftercare.domain.reply_limits import MAX_NOTE_CHARS, MAX_SMS_CHARS
from services.aftercare.domain.reply_parser import ParsedReply, ReplyIntent, parse_reply
from services.aftercare.domain.triage import TriageDecision
from services.aftercare.handlers.consent import ConsentBook
from services.aftercare.handlers.escalations import EscalationDesk
from services.aftercare.handlers.reminder_replies import ReminderReplies
from services.aftercare.handlers.trajectory import with_trajectory
from services.aftercare.store import CheckInStore
from shared.clinic_config import ClinicConfig
from shared.clock import Clock
from shared.delivery.compose import MessageComposer
from shared.ledger.ledger import DeliveryLedger
from shared.observability import get_logger
from shared.outbox.store import Outbox

log = get_logger(__name__)


@dataclass(frozen=True)
class AnswerOutcome:
    decision: TriageDecision | None  # None when nothing new was recorded
    recorded: bool  # False when this answer was already on record (a retried webhook, a second click)
    response_text: str | None
    locale: str


class CheckInAnswers:
    def __init__(self, *, engine: AsyncEngine, store: CheckInStore, ledger: DeliveryLedger, outbox: Outbox,
                 consent: ConsentBook, composer: MessageComposer, clinic: ClinicConfig, clock: Clock,
                 escalations: EscalationDesk, on_change: Callable[[], None] = lambda: None,
                 reminders: ReminderReplies | None = None) -> None:
        self.engine = engine
        self.store = store
        self.ledger = ledger
        self.outbox = outbox
        self.consent = consent
        self.composer = composer
        self.clinic = clinic
        self.clock = clock
        self.on_change = on_change
        self.escalations = escalations
        self.reminders = reminders  # a text answering a reminder is read as such (reminder_replies)

    async def sms_reply(self, message_sid: str, phone: str, text: str,
                        carrier_answered: bool = False) -> AnswerOutcome:
        now = self.clock.now()
        text = text[:MAX_SMS_CHARS]  # what Twilio delivers at most: a longer body is read no further
        answer = Answer(_new_reply_id(), "sms", text, phone, message_sid, wants_reply=not carrier_answered)
        async with self.engine.begin() as connection:
            seen, response = await self.store.response_to(connection, message_sid)
            if seen:
                return AnswerOutcome(None, False, response, "en-CA")
            to_reminder = await self.reminders.sms_reply(connection, answer, now) if self.reminders else None
            could_be = {} if to_reminder else _patients_of(await self.store.open_sent_to_phone(connection, phone, now))
            if to_reminder is not None:
                outcome = AnswerOutcome(None, True, to_reminder[1], to_reminder[0].locale)
            elif len(could_be) > 1:  # a family's shared phone: the text is not guessed to be anyone's
                outcome = await self._apply(connection, answer, parse_reply(text), None, now,
                                            could_be=tuple(could_be.values()))
            else:
                check_in = await self.store.latest_sent_to_phone(connection, phone, now)
                if check_in is not None:
                    await self.store.hold(connection, check_in.id, now)
                    check_in = await self.store.get(connection, check_in.id)  # as the answer before left it
                outcome = await self._apply(connection, answer, parse_reply(text), check_in, now)
        self.on_change()
        return outcome

    async def locale_of(self, check_in_id: str) -> str | None:
        return await self.store.locale_of(check_in_id)

    async def web_score(self, check_in_id: str, score: int) -> AnswerOutcome | None:
        now = self.clock.now()
        try:
            async with self.engine.begin() as connection:
                await self.store.hold(connection, check_in_id, now)  # a second click waits for the first
                check_in = await self.store.get(connection, check_in_id)
                if check_in is None:
                    return None
                if not check_in.is_open:
                    return AnswerOutcome(None, False, None, check_in.locale)
                parsed = ParsedReply(intent=ReplyIntent.SCORE, score=score, red_flags=(), language_hint=None)
                answer = Answer(_new_reply_id(), "web", None, check_in.phone)
                outcome = await self._apply(connection, answer, parsed, check_in, now)
        except _AnsweredMeanwhile as answered:  # everything this answer wrote is rolled back
            return AnswerOutcome(None, False, None, answered.locale)
        self.on_change()
        return outcome

    async def web_note(self, check_in_id: str, note: str) -> AnswerOutcome | None:
        """A note added on the web page; red flags in it escalate like a text would."""
        now = self.clock.now()
        note = note[:MAX_NOTE_CHARS]  # the page refuses a longer one; nothing longer is read
        parsed = parse_reply(note)
        async with self.engine.begin() as connection:
            await self.store.hold(connection, check_in_id, now)  # notes sent at once page once
            check_in = await self.store.get(connection, check_in_id)
            if check_in is None:
                return None
            await self.store.add_note(connection, check_in_id, note, now)
            if not parsed.red_flags:
                return AnswerOutcome(None, True, None, check_in.locale)
            answer = Answer(_new_reply_id(), "web", note, check_in.phone)
            outcome = await self._apply(connection, answer, ParsedReply(ReplyIntent.FREE_TEXT, None, parsed.red_flags),
                                        check_in, now)
        self.on_change()
        return outcome

    async def _apply(self, connection: AsyncConnection, answer: Answer, parsed: ParsedReply,
                     check_in: CheckIn | None, now: datetime, could_be: tuple[CheckIn, ...] = ()) -> AnswerOutcome:
        visit = await self.store.of_appointment(connection, check_in.appointment_id) if check_in else []
        paged_for = frozenset(
            reason
            for reasons in (await self.store.paged_since(connection, check_in.id, now - PAGE_AGAIN_AFTER)
                            if check_in else [])
            if ALREADY_PAGED not in reasons  # the window runs from the page, not from answers that did not page
            for reason in paged_reasons(reasons)
        )
        decision = decide_answer(answer, parsed, check_in, visit, self.clinic, now, paged_for=paged_for,
                                 could_be=could_be)
        response = await self._record(connection, decision, now)
        log.info("check_in_answer", reply_id=answer.reply_id, via=answer.via, action=decision.triage.action.value,
                 reasons=list(decision.triage.reasons), check_in_id=decision.reply.check_in_id)
        return AnswerOutcome(decision.triage, True, response, decision.locale)

    async def _record(self, connection: AsyncConnection, decision: AnswerDecision, now: datetime) -> str | None:
        """Applies the decision; returns the text that answers the patient, if any."""
        if (change := decision.check_in) is not None:
            check_in = change.check_in
            if change.count_unreadable:
                await self.store.count_unreadable(connection, check_in.id, now)
            if change.answered_with is not None and not await self.store.record_answer(
                    connection, check_in.id, change.answered_with, decision.reply.via, now):
                raise _AnsweredMeanwhile(decision.locale)
            if change.end_check_ins_because is not None:
                await self.store.close_remaining(connection, check_in.appointment_id, CheckInStatus.CLOSED, now)
                await self.ledger.cancel_pending(connection, check_in.appointment_id, change.end_check_ins_because,
                                                 now, templates=["soreness_check_in"])
        for consent in decision.consent:
            await self.consent.change(connection, consent, now)
        if decision.cancel_texts_to is not None:
            await self.ledger.cancel_pending_to(connection, "sms", decision.cancel_texts_to, "opted_out", now)
        if decision.staff_messages:
            # An escalation's alert carries its reference and acknowledgement link.
            decision = replace(decision, staff_messages=await with_trajectory(
                connection, decision.staff_messages, links=self.composer.links))
            await self.ledger.record(connection, await self.escalations.opened(connection, decision, now), now)
        response = None
        if (to_patient := decision.response) is not None:
            response = self.composer.sms_text(to_patient.template, to_patient.locale, to_patient.context,
                                              to_patient.phone)
        await self.store.add_reply(connection, decision.reply, response)
        for publication in decision.publications:
            await self.outbox.add(connection, topic=publication.topic, key=publication.key, event=publication.event,
                                  now=now)
        return response


def _new_reply_id() -> str:
    return str(uuid.uuid4())


class _AnsweredMeanwhile(Exception):
    """Another answer recorded the score of this check-in first: this one rolls back."""

    def __init__(self, locale: str) -> None:
        super().__init__("check-in answered meanwhile")
        self.locale = locale


def _patients_of(open_check_ins: list[CheckIn]) -> dict[str, CheckIn]:
    """Each patient with an open check-in for the number, and their latest one (newest first)."""
    patients: dict[str, CheckIn] = {}
    for check_in in open_check_ins:  # newest first
        extra = check_in.context.get("extra", {})
        # Check-ins recorded before patient ids were kept count each appointment as its own patient.
        patients.setdefault(str(extra.get("patient_id") or check_in.appointment_id), check_in)
    return patients
