"""Applies appointment events: decide, then record state and intents, a batch in one transaction."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.notifier.domain.decisions import EventDecision, decide
from services.notifier.domain.state import AppointmentState
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
        [decision] = await self.handle_batch([event])
        return decision

    async def handle_batch(self, events: Sequence[AppointmentEvent]) -> list[EventDecision]:
        """Apply the events in order, all in one transaction: each sees the state the previous left."""
        now = self.clock.now()
        decisions: list[EventDecision] = []
        async with self.engine.begin() as connection:
            stored = await self.states.get_many(connection, {event.appointment_id for event in events})
            latest: dict[str, AppointmentState] = dict(stored)
            # The ledger's rows of an appointment are written with its state: an appointment first seen
            # in this batch has no history and nothing pending but what this batch records.
            may_have_pending = set(stored)
            for event in events:
                current = latest.get(event.appointment_id)
                known_before = event.appointment_id in stored
                already_sent = await self._already_sent(connection, event.appointment_id) if known_before else {}
                decision = decide(event, current, already_sent, self.clinic, now)
                if decision.applied:
                    assert decision.new_state is not None
                    if decision.cancel_pending_because and event.appointment_id in may_have_pending:
                        await self.ledger.cancel_pending(
                            connection, event.appointment_id, decision.cancel_pending_because, now
                        )
                    if decision.intents:
                        await self.ledger.record(connection, decision.intents, now)
                        may_have_pending.add(event.appointment_id)
                    latest[event.appointment_id] = decision.new_state
                decisions.append(decision)
            changed = [(state, stored.get(id_)) for id_, state in latest.items() if state is not stored.get(id_)]
            await self.states.add_many(connection, [state for state, previous in changed if previous is None], now)
            for state, previous in changed:
                if previous is not None:
                    await self.states.save(connection, state, previous, now)
        for event, decision in zip(events, decisions, strict=True):
            log.info(
                "appointment_event_applied" if decision.applied else "appointment_event_ignored",
                event_id=str(event.event_id),
                event_type=event.event_type,
                sequence=event.sequence,
                ignored_because=decision.ignored_because,
                messages=len(decision.intents),
                skipped_steps=[f"{s.step}:{s.reason}" for s in decision.skipped],
            )
        if any(decision.intents for decision in decisions):
            self.on_recorded()
        return decisions

    async def _already_sent(self, connection: AsyncConnection, appointment_id: str) -> dict[str, datetime]:
        history = await self.ledger.for_appointment(connection, appointment_id)
        return {
            delivery.step: delivery.sent_at
            for delivery in history
            if delivery.status is DeliveryStatus.SENT and delivery.sent_at is not None
        }
