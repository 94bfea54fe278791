"""The notifier's delivery reports (clinic.deliveries.v1): the reminder texts among them are recorded, a
batch in one transaction, so that a patient's text is read against the reminder they really got."""
from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from services.aftercare.delivery_context import SentReminderStore
from services.aftercare.domain.sent_reminders import reminder_report
from shared.clock import Clock
from shared.events.deliveries import DeliveryStatusChanged
from shared.observability import get_logger

log = get_logger(__name__)


class SentReminders:
    def __init__(self, *, engine: AsyncEngine, store: SentReminderStore, clock: Clock) -> None:
        self.engine = engine
        self.store = store
        self.clock = clock

    async def handle_batch(self, events: Sequence[DeliveryStatusChanged]) -> int:
        """Record what `events` say of reminder texts; returns how many reports that was. Applying a batch
        again changes nothing (each text is one row, withdrawn at most once)."""
        reports = [report for event in events if (report := reminder_report(event)) is not None]
        if reports:
            async with self.engine.begin() as connection:
                await self.store.record(connection, reports, self.clock.now())
            log.info("reminder_texts_recorded", reports=len(reports),
                     undelivered=sum(not report.reached for report in reports))
        return len(reports)
