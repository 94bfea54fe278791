"""Patients who never answered any check-in of a visit: recorded, and reported to staff."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from services.aftercare.check_in_store import CheckInStore
from shared.clinic_config import ClinicConfig
from shared.clock import Clock
from shared.events.aftercare import NoReplyRecorded
from shared.ledger.ledger import DeliveryLedger
from shared.ledger.model import DeliveryIntent
from shared.observability import get_logger
from shared.outbox.store import Outbox
from shared.topics import AFTERCARE_RECORDS

log = get_logger(__name__)


class NoReplyWatch:
    def __init__(self, *, engine: AsyncEngine, store: CheckInStore, ledger: DeliveryLedger, outbox: Outbox,
                 clinic: ClinicConfig, clock: Clock, on_recorded: Callable[[], None] = lambda: None,
                 interval: timedelta = timedelta(seconds=1)) -> None:
        self.engine = engine
        self.store = store
        self.ledger = ledger
        self.outbox = outbox
        self.clinic = clinic
        self.clock = clock
        self.on_recorded = on_recorded
        self.interval = interval

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sweep()
            except Exception:
                log.exception("no_reply_sweep_failed")
            try:
                await asyncio.wait_for(stop.wait(), self.interval.total_seconds())
            except TimeoutError:
                pass

    async def sweep(self) -> int:
        now = self.clock.now()
        reported = 0
        async with self.engine.begin() as connection:
            for last in await self.store.past_last_round(connection, now - self.clinic.aftercare.reply_window):
                visit = await self.store.of_appointment(connection, last.appointment_id)
                await self.store.close_remaining(connection, last.appointment_id, "no_reply", now)
                if any(check_in.status == "answered" for check_in in visit):
                    continue  # answered an earlier round: not silence
                reported += 1
                await self.outbox.add(connection, topic=AFTERCARE_RECORDS, key=last.appointment_id, now=now,
                                      event=NoReplyRecorded(occurred_at=now, appointment_id=last.appointment_id,
                                                            check_ins=len(visit)))
                extra = dict(last.context.get("extra", {})) | {
                    "reply_text": None, "score": None, "previous_score": None, "reasons": ["no_reply"],
                    "appointment_type": last.context.get("appointment", {}).get("type"), "check_in_step": last.round,
                }
                on_call = self.clinic.aftercare.on_call
                await self.ledger.record(connection, [DeliveryIntent(
                    appointment_id=last.appointment_id, step="staff_review:no_reply", channel="email",
                    appointment_version=0, template="staff_review", recipient=str(on_call.email), locale="en-CA",
                    due_at=now, context=last.context | {"extra": extra},
                )], now)
        if reported:
            log.info("no_reply_recorded", visits=reported)
            self.on_recorded()
        return reported
