"""Completed visits: record the advice and the check-ins to come, a batch of events in one transaction."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from services.aftercare.domain.check_ins import AftercarePlan, plan_aftercare
from services.aftercare.domain.reminder_replies import upcoming_from_event
from services.aftercare.store import CheckInStore, UpcomingVisitStore, VisitCheckIns
from shared.clinic_config import ClinicConfig
from shared.clock import Clock
from shared.delivery.context import appointment_context
from shared.delivery.recipients import reachable_channels
from shared.events.aftercare import CheckInScheduled
from shared.events.appointment import AppointmentCompleted, AppointmentEvent
from shared.ledger.ledger import DeliveryLedger
from shared.observability import get_logger
from shared.outbox.store import Outbox, OutgoingEvent
from shared.scheduling.memo import PlanMemo
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
        against it), in the same transaction. The batch is written in a few statements whatever its size:
        the upcoming visits, then every check-in, every message and every outbox event, each kind at once and
        in the events' order."""
        now = self.clock.now()
        # Visits that end together, in one zone, reached the same way, share their schedules' plans.
        memo = PlanMemo()
        plans = [plan_aftercare(event, self.clinic, now, plan_of=memo.plan) if isinstance(event, AppointmentCompleted)
                 else None for event in events]
        completions = [(event, plan) for event, plan in zip(events, plans, strict=True)
                       if isinstance(event, AppointmentCompleted) and plan is not None]
        async with self.engine.begin() as connection:
            await self.upcoming.apply(connection, [upcoming_from_event(event) for event in events], now)
            new_check_ins = set(await self.store.add_many(
                connection, [_check_ins_of(event, plan) for event, plan in completions], now))
            await self.ledger.record(connection, [intent for _, plan in completions for intent in plan.intents], now)
            scheduled: list[OutgoingEvent] = []
            for event, plan in completions:
                for check_in in plan.check_ins:
                    if check_in.id in new_check_ins:
                        new_check_ins.discard(check_in.id)  # told once, by the first visit that planned it
                        scheduled.append(OutgoingEvent(AFTERCARE_RECORDS, event.appointment_id, CheckInScheduled(
                            occurred_at=now, check_in_id=check_in.id, appointment_id=event.appointment_id,
                            round=check_in.round, due_at=check_in.due_at, channels=list(check_in.channels))))
            await self.outbox.add_many(connection, scheduled, now)
        if completions:
            log.info("visits_completed_aftercare_planned", visits=len(completions),
                     check_ins=sum(len(plan.check_ins) for _, plan in completions),
                     messages=sum(len(plan.intents) for _, plan in completions),
                     skipped_steps=dict(Counter(f"{s.step}:{s.reason}"
                                                for _, plan in completions for s in plan.skipped)))
            self.on_recorded()
        return plans


def _check_ins_of(event: AppointmentCompleted, plan: AftercarePlan) -> VisitCheckIns:
    channels = reachable_channels(event.patient)
    staff_context = appointment_context(
        event, patient_id=event.patient.patient_id, patient_name=event.patient.name,
        patient_phone=event.patient.phone, needled_near_chest=event.needled_near_chest,
    )
    return VisitCheckIns(event.appointment_id, plan.check_ins, channels.get("sms"), channels.get("email"),
                         event.patient.locale, staff_context, patient_id=event.patient.patient_id,
                         appointment_type=event.appointment.type.value, visit_at=event.appointment.starts_at)
