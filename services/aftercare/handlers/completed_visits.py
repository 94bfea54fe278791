"""Completed visits: record the advice and the check-ins to come, a batch of events in one transaction."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.aftercare.domain.check_ins import AftercarePlan, plan_aftercare
from services.aftercare.domain.reminder_replies import upcoming_from_event
from services.aftercare.store import CheckInStore, UpcomingVisitStore
from shared.clinic_config import ClinicConfig
from shared.clock import Clock
from shared.delivery.context import appointment_context
from shared.delivery.recipients import reachable_channels
from shared.events.aftercare import CheckInScheduled
from shared.events.appointment import AppointmentCompleted, AppointmentEvent
from shared.ledger.ledger import DeliveryLedger
from shared.observability import get_logger
from shared.outbox.store import Outbox
from shared.topics import AFTERCARE_RECORDS

log = get_logger(__name__)


class CompletedVisitHandler:
    def __init__(self, *, engine: AsyncEngine, store: CheckInStore, ledger: DeliveryLedger, outbox: Outbox,
                 clinic: ClinicConfig, clock: Clock, on_recorded: Callable[[], None] = lambda: None,
                 upcoming: UpcomingVisitStore | None = None) -> None:
        self.engine = engine
        self.upcoming = upcoming or UpcomingVisitStore(engine)
        self.store = store
        self.ledger = ledger
        self.outbox = outbox
        self.clinic = clinic
        self.clock = clock
        self.on_recorded = on_recorded

    async def __call__(self, event: AppointmentEvent) -> AftercarePlan | None:
        [plan] = await self.handle_batch([event])
        return plan

    async def handle_batch(self, events: Sequence[AppointmentEvent]) -> list[AftercarePlan | None]:
        """Plan the aftercare of every completed visit among `events`, all in one transaction; the other
        events have none. A visit seen again adds nothing: its check-ins and messages are already there.

        Every event also moves on the visit's row among the upcoming visits (a reply to its reminder is read
        against it), in the same transaction."""
        now = self.clock.now()
        plans: list[AftercarePlan | None] = []
        async with self.engine.begin() as connection:
            await self.upcoming.apply(connection, [upcoming_from_event(event) for event in events], now)
            for event in events:
                plans.append(await self._plan(connection, event, now) if isinstance(event, AppointmentCompleted)
                             else None)
        for event, plan in zip(events, plans, strict=True):
            if plan is not None:
                log.info("visit_completed_aftercare_planned", event_id=str(event.event_id),
                         check_ins=len(plan.check_ins), messages=len(plan.intents),
                         skipped_steps=[f"{s.step}:{s.reason}" for s in plan.skipped])
        if any(plan is not None for plan in plans):
            self.on_recorded()
        return plans

    async def _plan(self, connection: AsyncConnection, event: AppointmentCompleted, now: datetime) -> AftercarePlan:
        plan = plan_aftercare(event, self.clinic, now)
        channels = reachable_channels(event.patient)
        staff_context = appointment_context(
            event, patient_id=event.patient.patient_id, patient_name=event.patient.name,
            patient_phone=event.patient.phone, needled_near_chest=event.needled_near_chest,
        )
        new_check_ins = set(await self.store.add(
            connection, event.appointment_id, plan.check_ins, channels.get("sms"), channels.get("email"),
            event.patient.locale, staff_context, now, patient_id=event.patient.patient_id,
            appointment_type=event.appointment.type.value, visit_at=event.appointment.starts_at,
        ))
        await self.ledger.record(connection, plan.intents, now)
        for check_in in plan.check_ins:
            if check_in.id in new_check_ins:
                await self.outbox.add(connection, topic=AFTERCARE_RECORDS, key=event.appointment_id, now=now,
                                      event=CheckInScheduled(occurred_at=now, check_in_id=check_in.id,
                                                             appointment_id=event.appointment_id,
                                                             round=check_in.round, due_at=check_in.due_at,
                                                             channels=list(check_in.channels)))
        return plan
