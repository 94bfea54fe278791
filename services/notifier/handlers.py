"""Applies one appointment event: decide, then record state and intents in one transaction."""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from services.notifier.domain.decisions import EventDecision, decide
from services.notifier.store import AppointmentStateStore
from shared.clinic_config import ClinicConfig
from shared.clock import Clock
from shared.events.appointment import AppointmentEvent
from shared.ledger.ledger import DeliveryLedger
from shared.ledger.model import DeliveryStatus
from shared.observability import get_logger

log = get_logger(__name__)


class AppointmentEventHandler:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        ledger: DeliveryLedger,
        states: AppointmentStateStore,
        clinic: ClinicConfig,
        clock: Clock,
        on_recorded: Callable[[], None] = lambda: None,
    ) -> None:
        self.engine = engine
        self.ledger = ledger
        self.states = states
        self.clinic = clinic
        self.clock = clock
        self.on_recorded = on_recorded

    async def __call__(self, event: AppointmentEvent) -> EventDecision:
        now = self.clock.now()
        async with self.engine.begin() as connection:
            current = await self.states.get(connection, event.appointment_id)
            history = await self.ledger.for_appointment(connection, event.appointment_id)
            already_sent = {
                delivery.step: delivery.sent_at
                for delivery in history
                if delivery.status is DeliveryStatus.SENT and delivery.sent_at is not None
            }
            decision = decide(event, current, already_sent, self.clinic, now)
            if decision.applied:
                assert decision.new_state is not None
                if decision.cancel_pending_because:
                    await self.ledger.cancel_pending(
                        connection, event.appointment_id, decision.cancel_pending_because, now
                    )
                await self.ledger.record(connection, decision.intents, now)
                await self.states.save(connection, decision.new_state, current, now)
        log.info(
            "appointment_event_applied" if decision.applied else "appointment_event_ignored",
            event_id=str(event.event_id),
            event_type=event.event_type,
            sequence=event.sequence,
            ignored_because=decision.ignored_because,
            messages=len(decision.intents),
            skipped_steps=[f"{s.step}:{s.reason}" for s in decision.skipped],
        )
        if decision.intents:
            self.on_recorded()
        return decision
