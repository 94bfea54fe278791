"""A patient's text answering their reminder: read against the visit whose reminder was the last message
their phone really got (the notifier's reports, `delivery_context.py`; rules in `domain/reminder_replies.py`),
then applied in the transaction of the webhook's answer: the visit's answer, the front desk's email, the
reply on record, the request events in the outbox."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from services.aftercare.delivery_context import SentReminderStore, last_check_in_texted
from services.aftercare.domain.answers import Answer
from services.aftercare.domain.reminder_replies import (
    ReminderReplyDecision,
    decide_reminder_reply,
    read_reminder_reply,
    visit_answered,
)
from services.aftercare.store import CheckInStore, UpcomingVisitStore
from shared.clinic_config import ClinicConfig
from shared.delivery.compose import MessageComposer
from shared.ledger.ledger import DeliveryLedger
from shared.observability import get_logger
from shared.outbox.store import Outbox

log = get_logger(__name__)


class ReminderReplies:
    def __init__(self, *, upcoming: UpcomingVisitStore, sent: SentReminderStore, check_ins: CheckInStore,
                 ledger: DeliveryLedger, outbox: Outbox, composer: MessageComposer, clinic: ClinicConfig) -> None:
        self.upcoming = upcoming
        self.sent = sent
        self.check_ins = check_ins
        self.ledger = ledger
        self.outbox = outbox
        self.composer = composer
        self.clinic = clinic

    async def sms_reply(self, connection: AsyncConnection, answer: Answer,
                        now: datetime) -> tuple[ReminderReplyDecision, str | None] | None:
        """The decision and the text back, when the text answers a reminder; None when it is read as
        aftercare reads every other text (no reminder text reached the phone, a check-in text sent since,
        STOP/HELP, a red flag)."""
        if not answer.phone:
            return None
        visits = await self.upcoming.of_phone(connection, answer.phone, now)
        if not visits:
            return None
        reminders_sent = await self.sent.latest_reached(connection, [visit.appointment_id for visit in visits])
        if not reminders_sent:
            return None
        visit = visit_answered(visits, reminders_sent, now, await last_check_in_texted(connection, answer.phone))
        if visit is None:
            return None
        reading = read_reminder_reply(answer.text or "")
        held = await self.upcoming.hold(connection, visit.appointment_id, now)  # a second reply waits for this one
        decision = decide_reminder_reply(answer, reading, held or visit, self.clinic, now)
        if decision is None:
            return None
        if decision.answer is not None:
            await self.upcoming.record_answer(connection, visit.appointment_id, decision.answer, now)
        await self.ledger.record(connection, list(decision.staff_messages), now)
        response = None
        if (to_patient := decision.response) is not None:
            response = self.composer.sms_text(to_patient.template, to_patient.locale, to_patient.context,
                                              to_patient.phone)
        await self.check_ins.add_reply(connection, decision.reply, response)
        for publication in decision.publications:
            await self.outbox.add(connection, topic=publication.topic, key=publication.key, event=publication.event,
                                  now=now)
        log.info("reminder_reply", reply_id=answer.reply_id, appointment_id=visit.appointment_id,
                 reading=reading.value, published=[type(p.event).__name__ for p in decision.publications])
        return decision, response
