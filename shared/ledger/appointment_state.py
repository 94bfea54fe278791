"""The last known state of each appointment, so replayed or out-of-order events change nothing."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.ledger.tables import appointments


@dataclass(frozen=True)
class AppointmentState:
    appointment_id: str
    last_sequence: int
    status: str  # booked, rescheduled, cancelled, completed, no_show
    event: dict[str, Any]  # the last applied event, as published


class AppointmentStateStore:
    async def get(self, connection: AsyncConnection, appointment_id: str) -> AppointmentState | None:
        row = (
            await connection.execute(
                select(appointments).where(appointments.c.appointment_id == appointment_id)
            )
        ).first()
        if row is None:
            return None
        return AppointmentState(row.appointment_id, row.last_sequence, row.status, row.event)

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


class ConcurrentAppointmentUpdate(RuntimeError):
    """Another consumer changed this appointment first; the event must be processed again."""
