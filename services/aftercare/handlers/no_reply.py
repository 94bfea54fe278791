"""Patients who never answered any check-in of a visit: recorded, and reported to staff, the review email
showing the patient's soreness over the plan as the alerts do."""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from services.aftercare.domain.check_ins import CheckInStatus
from services.aftercare.domain.no_reply import decide_silence
from services.aftercare.handlers.trajectory import with_trajectory
from services.aftercare.store import CheckInStore
from shared.clinic_config import ClinicConfig
from shared.clock import Clock
from shared.ledger.ledger import DeliveryLedger
from shared.links import PatientLinks
from shared.observability import get_logger
from shared.outbox.store import Outbox
from shared.topics import AFTERCARE_RECORDS

log = get_logger(__name__)


class NoReplyWatch:
    def __init__(self, *, engine: AsyncEngine, store: CheckInStore, ledger: DeliveryLedger, outbox: Outbox,
                 clinic: ClinicConfig, clock: Clock, links: PatientLinks,
                 on_recorded: Callable[[], None] = lambda: None) -> None:
        self.engine = engine
        self.store = store
        self.ledger = ledger
        self.outbox = outbox
        self.clinic = clinic
        self.clock = clock
        self.links = links
        self.on_recorded = on_recorded

    async def sweep(self) -> int:
        """One round: close the visits whose last reply window has ended; returns how many were silent."""
        now = self.clock.now()
        reported = 0
        async with self.engine.begin() as connection:
            for last in await self.store.past_last_round(connection, now - self.clinic.aftercare.reply_window):
                visit = await self.store.of_appointment(connection, last.appointment_id)
                replies = await self.store.replies_to(connection, [check_in.id for check_in in visit])
                decision = decide_silence(last, visit, self.clinic, now, replies)
                await self.store.close_remaining(connection, last.appointment_id, CheckInStatus.NO_REPLY, now)
                if decision.event is None:
                    continue
                reported += 1
                await self.outbox.add(connection, topic=AFTERCARE_RECORDS, key=decision.appointment_id, now=now,
                                      event=decision.event)
                await self.ledger.record(connection, await with_trajectory(connection, decision.staff_messages,
                                                                           links=self.links), now)
        if reported:
            log.info("no_reply_recorded", visits=reported)
            self.on_recorded()
        return reported
