"""The last known state of each appointment, so replayed or out-of-order events change nothing."""
from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.notifier.domain.state import AppointmentState
from services.notifier.tables import appointments
from shared.consumer import RetryableConflict


class ConcurrentAppointmentUpdate(RetryableConflict):
    """Another consumer changed this appointment first; the event must be processed again."""


class AppointmentStateStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def get(self, connection: AsyncConnection, appointment_id: str) -> AppointmentState | None:
        row = (
            await connection.execute(
                select(appointments).where(appointments.c.appointment_id == appointment_id)
            )
        ).first()
        if row is None:
            return None
        return AppointmentState(row.appointment_id, row.last_sequence, row.status, row.event)

    async def get_many(
        self, connection: AsyncConnection, appointment_ids: Collection[str]
    ) -> dict[str, AppointmentState]:
        """The known states among `appointment_ids`, in one query."""
        rows = await connection.execute(
            select(appointments).where(appointments.c.appointment_id.in_(list(appointment_ids)))
        )
        return {
            row.appointment_id: AppointmentState(row.appointment_id, row.last_sequence, row.status, row.event)
            for row in rows
        }

    async def add_many(self, connection: AsyncConnection, states: Sequence[AppointmentState], now: datetime) -> None:
        """Appointments seen for the first time, in one statement."""
        if states:
            await connection.execute(appointments.insert(), [
                {"appointment_id": s.appointment_id, "last_sequence": s.last_sequence, "status": s.status,
                 "event": s.event, "updated_at": now}
                for s in states
            ])

    async def save(
        self, connection: AsyncConnection, state: AppointmentState, previous: AppointmentState | None, now: datetime
    ) -> None:
        values = {
            "last_sequence": state.last_sequence,
            "status": state.status,
            "event": state.event,
            "updated_at": now,
        }
        if previous is None:
            await connection.execute(
                appointments.insert().values(appointment_id=state.appointment_id, **values)
            )
            return
        result = await connection.execute(
            update(appointments)
            .where(
                appointments.c.appointment_id == state.appointment_id,
                appointments.c.last_sequence == previous.last_sequence,
            )
            .values(**values)
        )
        if result.rowcount != 1:
            raise ConcurrentAppointmentUpdate(state.appointment_id)
