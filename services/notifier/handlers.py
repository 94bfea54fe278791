"""Applies appointment events: decide, then record state and intents, a batch in one transaction.

A batch is read with two queries (the states of its appointments, what was already sent for them) and
written with a few statements whatever its size: the ledger's changes go in rounds (`LedgerWrites`), the
states in one insert and one replacement.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.notifier.domain.decisions import EventDecision, decide
from services.notifier.domain.state import AppointmentState, AppointmentVersion
from services.notifier.store import AppointmentStateStore
from shared.clinic_config import ClinicConfig
from shared.clock import Clock
from shared.events.appointment import AppointmentEvent
from shared.ledger.ledger import DeliveryLedger
from shared.ledger.model import DeliveryIntent
from shared.observability import get_logger
from shared.scheduling.memo import PlanMemo

log = get_logger(__name__)
IGNORED_EVENT_IDS_LOGGED = 20


@dataclass
class _Round:
    cancellations: dict[str, str] = field(default_factory=dict)  # appointment id -> reason
    intents: list[DeliveryIntent] = field(default_factory=list)


@dataclass
class LedgerWrites:
    """A batch's ledger changes, in the order its events made them, written in as few statements as keep
    that order: a change goes in the round after the last change to the same appointment (a cancellation
    sees what an earlier event recorded, and leaves alone what a later one records), so a round touches
    each appointment once and its cancellations and its recordings are one statement each."""

    rounds: list[_Round] = field(default_factory=list)
    _last_round: dict[str, int] = field(default_factory=dict)

    def cancel(self, appointment_id: str, reason: str) -> None:
        self._round_for([appointment_id]).cancellations[appointment_id] = reason

    def record(self, intents: Iterable[DeliveryIntent]) -> None:
        intents = list(intents)
        self._round_for({intent.appointment_id for intent in intents}).intents.extend(intents)

    def _round_for(self, appointment_ids: Iterable[str]) -> _Round:
        ids = list(appointment_ids)
        number = max((self._last_round.get(id_, -1) for id_ in ids), default=-1) + 1
        for id_ in ids:
            self._last_round[id_] = number
        while len(self.rounds) <= number:
            self.rounds.append(_Round())
        return self.rounds[number]

    async def write(self, connection: AsyncConnection, ledger: DeliveryLedger, states: AppointmentStateStore,
                    now: datetime) -> None:
        for round_ in self.rounds:
            await states.cancel_pending(connection, round_.cancellations, now)
            if round_.intents:
                await ledger.record(connection, round_.intents, now)


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
            stored = await self.states.versions(connection, {event.appointment_id for event in events})
            # What was sent changes only when a dispatcher sends: the batch's own changes never make a
            # message sent, so one read before them stands for each event's.
            sent = await self.states.sent_steps(connection, stored)
            latest: dict[str, AppointmentVersion] = dict(stored)
            # The ledger's rows of an appointment are written with its state: an appointment first seen
            # in this batch has no history and nothing pending but what this batch records.
            may_have_pending = set(stored)
            writes = LedgerWrites()
            # The batch's appointments at one time, in one zone, share a plan: it is made once.
            plans = PlanMemo()
            for event in events:
                decision = decide(event, latest.get(event.appointment_id), sent.get(event.appointment_id, {}),
                                  self.clinic, now, plan_of=plans.plan)
                if decision.applied:
                    assert decision.new_state is not None
                    if decision.cancel_pending_because and event.appointment_id in may_have_pending:
                        writes.cancel(event.appointment_id, decision.cancel_pending_because)
                    if decision.intents:
                        writes.record(decision.intents)
                        may_have_pending.add(event.appointment_id)
                    latest[event.appointment_id] = decision.new_state
                decisions.append(decision)
            await writes.write(connection, self.ledger, self.states, now)
            # An appointment's latest is a new state once one of its events was applied.
            changed = [(state, stored.get(id_)) for id_, state in latest.items() if isinstance(state, AppointmentState)]
            await self.states.add_many(connection, [state for state, previous in changed if previous is None], now)
            await self.states.replace_many(
                connection, [(state, previous) for state, previous in changed if previous is not None], now)
        _log_batch(events, decisions)
        if any(decision.intents for decision in decisions):
            self.on_recorded()
        return decisions


def _log_batch(events: Sequence[AppointmentEvent], decisions: Sequence[EventDecision]) -> None:
    """One line per batch (a line per event would cost more than applying it): how many were applied,
    the messages recorded, and the ignored ones by reason with some of their ids."""
    ignored = [(event, decision.ignored_because) for event, decision in zip(events, decisions, strict=True)
               if not decision.applied]
    log.info(
        "appointment_events_applied",
        events=len(events),
        applied=len(events) - len(ignored),
        messages=sum(len(decision.intents) for decision in decisions),
        skipped_steps=dict(Counter(f"{s.step}:{s.reason}" for decision in decisions for s in decision.skipped)),
        ignored=dict(Counter(reason for _, reason in ignored)),
        ignored_event_ids=[str(event.event_id) for event, _ in ignored[:IGNORED_EVENT_IDS_LOGGED]],
    )
